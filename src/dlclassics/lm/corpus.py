"""Reading a corpus, tokenising it as Keras does, the vocabulary, and the train/val/test split.

One sentence per line. Words follow Keras' `text_to_word_sequence`: lower-cased, the punctuation
below replaced by spaces, split on white space.
"""

import hashlib
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from dlclassics.core.download import DownloadError, fetch
from dlclassics.core.errors import InputError
from dlclassics.core.machine import data_root
from dlclassics.core.rundir import MAX_DATA_BYTES, read_regular
from dlclassics.lm.config import MAX_SENTENCE_WORDS
from dlclassics.lm.words import SPECIALS, UNK, words

# The original's corpus, and its git blob id in pbloem/language-models (master): it verifies the
# download without knowing its size in advance.
CORPUS_URLS = (
    "https://raw.githubusercontent.com/pbloem/language-models/master/datasets/wikisimple.txt",
)
CORPUS_HASH = "gitblob:c8be4c81a9080e671d9708b1df24cce9a7f9d6f9"

# Bounds on what a corpus may cost, besides its size (MAX_DATA_BYTES). The lines bound the Python
# objects the text becomes (a file of one-letter lines takes about 100 bytes of memory per byte);
# a sentence's words bound the LM's memory, which grows with batch size x longest sentence x
# hidden or vocabulary size.
MAX_LINES = 5_000_000


def read_corpus(path: Path, max_length: int | None = None) -> tuple[list[list[str]], str]:
    """The sentences of the corpus at `path` (see `read_sentences`), and the sha256 of the very
    bytes they were read from: a second read to hash the file could see another file."""
    data = read_regular(Path(path), MAX_DATA_BYTES, "corpus")
    return _sentences(data, path, max_length), hashlib.sha256(data).hexdigest()


def read_sentences(path: Path, max_length: int | None = None) -> list[list[str]]:
    """The tokenised sentences of a UTF-8 file, one per line; bad files raise InputError.

    Lines without words are dropped, as are sentences of more than `max_length` words or
    MAX_SENTENCE_WORDS."""
    return read_corpus(path, max_length)[0]


def _sentences(data: bytes, path: Path, max_length: int | None) -> list[list[str]]:
    if not data.strip():
        raise InputError(f"corpus {path} is empty")
    if b"\x00" in data:
        raise InputError(f"corpus {path} looks binary (it contains NUL bytes), expected UTF-8 text")
    limit = min(max_length or MAX_SENTENCE_WORDS, MAX_SENTENCE_WORDS)
    sentences, too_long = [], 0
    # Line by line, so that only the sentences are held, not the text and its lines as well.
    for number, raw in enumerate(io.BytesIO(data), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(
                f"corpus {path} is not UTF-8 text (line {number}, bad byte at {e.start + 1})"
            ) from e
        for sentence in map(words, line.splitlines()):
            if len(sentence) > limit:
                too_long += 1
            elif sentence:
                sentences.append(sentence)
        if max(number, len(sentences)) > MAX_LINES:
            raise InputError(f"corpus {path} has more than {MAX_LINES:,} lines")
    if not sentences:
        longer = f" ({too_long} longer)" if too_long else ""
        raise InputError(f"corpus {path} has no usable sentence of at most {limit} words{longer}")
    return sentences


def default_corpus() -> Path:
    """The original's corpus, downloaded and verified on first use into $DLCLASSICS_DATA."""
    path = data_root() / "lm" / "wikisimple.txt"
    if path.exists():
        return path
    try:
        return fetch(CORPUS_URLS, path, CORPUS_HASH)
    except DownloadError as e:
        raise InputError(
            f"cannot download the default corpus {path.name} ({e}); put a copy at {path} "
            "or pass a text file with one sentence per line as --corpus PATH"
        ) from e


@dataclass
class Vocabulary:
    words: list[str]

    def __post_init__(self) -> None:
        self.ids = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, sentences: list[list[str]], size: int) -> "Vocabulary":
        """The `size` most frequent words after the four special tokens (ties: first seen)."""
        counts = Counter(w for s in sentences for w in s)
        return cls(SPECIALS + [w for w, _ in counts.most_common(size)])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentence: list[str]) -> list[int]:
        return [self.ids.get(w, UNK) for w in sentence]

    def unknown(self, sentence: list[str]) -> list[str]:
        return [w for w in sentence if w not in self.ids]


@dataclass(frozen=True)
class Sentences:
    """The tokenised sentences of each part of the corpus."""

    train: list[list[str]]
    val: list[list[str]]
    test: list[list[str]]


def split(sentences: list[list[str]], seed: int) -> Sentences:
    """80/10/10 at the sentence level, shuffled with the run's seed."""
    if len(sentences) < 10:
        raise InputError(
            f"the corpus has {len(sentences)} usable sentence(s); an 80/10/10 split needs at "
            "least 10"
        )
    order = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = n_test = len(sentences) // 10
    n_train = len(sentences) - n_val - n_test
    pick = [sentences[i] for i in order]
    return Sentences(pick[:n_train], pick[n_train : n_train + n_val], pick[n_train + n_val :])
