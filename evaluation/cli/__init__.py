"""`mdiff-eval` (eval.py) and its subcommands, one module each: parse, call the library, print."""
