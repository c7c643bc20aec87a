"""XOR: hand-set and trained BTU networks, and the hyperparameter study."""
