"""The reader app's model, without Qt: the reading session, the display state, the keymap,
windowing, case loading and the review list. Nothing here imports PySide6 or pyqtgraph, so it runs
and is tested on a machine without them."""
