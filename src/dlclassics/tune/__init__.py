"""`dlclassics tune`: settings searched with Optuna."""
