"""dlclassics: classic deep-learning experiments as fast, tested PyTorch software."""

__version__ = "0.1.0"
