"""The desktop app a radiologist uses to rate a study (PySide6 + pyqtgraph)."""

APP_TITLE = "mdiff reader"
