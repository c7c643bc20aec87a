"""MNIST from logistic regression to CNNs, on an in-memory data pipeline."""
