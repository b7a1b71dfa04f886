"""One trainer shared by every model (`trainer.py`); each model's losses plug into it."""
