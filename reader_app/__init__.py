"""The desktop app a radiologist uses to rate a study (PySide6 + pyqtgraph)."""

APP_TITLE = "mdiff reader"
DEFAULT_SIZE = (1400, 900)  # the reading window's width and height in pixels
