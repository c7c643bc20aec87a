"""Words as the original tokenised them (Keras' `text_to_word_sequence`), and the special tokens.

Without torch: the configs check their words with it, and `--help` must not wait for torch.
"""

import re

PAD, START, UNK, EOS = 0, 1, 2, 3
SPECIALS = ["<PAD>", "<START>", "<UNK>", "<EOS>"]
_KERAS_FILTERS = re.compile(r'[!"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~\t\n]')


def words(line: str) -> list[str]:
    """Keras' `text_to_word_sequence` with its default filters: lower-cased, the punctuation
    replaced by spaces, split on white space."""
    return _KERAS_FILTERS.sub(" ", line.lower()).split()
