"""The reader app's Qt views: thin widgets that render the Qt-free model (`reader_app.model`) and
forward the reader's input to it."""
