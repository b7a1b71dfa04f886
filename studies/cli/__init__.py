"""`mdiff-study` (study.py) and its subcommands, one module each: parse, call the library, print."""
