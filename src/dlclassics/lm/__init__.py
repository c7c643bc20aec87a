"""The LSTM language model: forward and reverse, perplexity, generation, sentence probability."""
