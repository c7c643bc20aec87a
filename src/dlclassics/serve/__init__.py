"""`dlclassics serve`: a local web demo of the language model, the digit classifier and XOR."""
