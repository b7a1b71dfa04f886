"""The reader app's command: one module per command with a thin `main()` (`reader.py`)."""
