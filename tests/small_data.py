"""Tiny generated data: MNIST-style IDX files and sentence corpora. The tests use it (through
conftest.py), and so does CI's site build, as a script:

    python tests/small_data.py DIR    # DIR laid out as $DLCLASSICS_DATA: mnist/, lm/wikisimple.txt

Only numpy and the standard library: it runs before anything heavier is needed.
"""

import gzip
import random
import sys
from pathlib import Path

import numpy as np

# MNIST: IDX files of a tiny learnable dataset.


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """`array` as an IDX file: its magic number, its dimensions, its bytes."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def make_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise plus a bright 5x5 block whose position gives the class: easy to learn."""
    images = rng.integers(0, 60, size=(len(labels), 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
        r, col = 4 + 12 * (c // 5), 1 + 5 * (c % 5)
        images[i, r : r + 5, col : col + 5] = 250
    return images


def write_idx_set(folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = True) -> Path:
    """The four standard IDX files of a tiny learnable dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        files = {
            f"{prefix}-images-idx3-ubyte": idx_bytes(make_images(labels, rng), 0x803),
            f"{prefix}-labels-idx1-ubyte": idx_bytes(labels, 0x801),
        }
        for name, raw in files.items():
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw, mtime=0))
            else:
                (folder / name).write_bytes(raw)
    return folder


# Language model: corpora.

CORPUS_WORDS = ["love", "i", "you", "cake", "tea", "the", "a", "dog", "cat", "runs", "eats", "big"]


def write_corpus(path: Path, n: int = 300, seed: int = 0, words: list[str] = CORPUS_WORDS) -> Path:
    """`n` sentences of 2 to 8 words drawn uniformly from `words` ("Love cake the."): a
    vocabulary the tests know, and no structure to learn beyond word frequencies."""
    r = random.Random(seed)
    lines = [" ".join(r.choice(words) for _ in range(r.randint(2, 8))) for _ in range(n)]
    path.write_text("\n".join(f"{s.capitalize()}." for s in lines) + "\n")
    return path


def write_svo_corpus(path: Path, sentences: int = 400) -> Path:
    """`sentences` sentences of a subject, a verb and an object ("a cat sees the ball."): a
    corpus with structure, that a model learns in a few steps."""
    rng = random.Random(0)
    subjects = ["a cat", "the dog", "a man", "two birds"]
    verbs = ["sees", "eats"]
    objects = ["a cake", "the ball", "some food"]
    lines = [
        f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}."
        for _ in range(sentences)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_data_home(home: Path) -> Path:
    """`home` laid out as $DLCLASSICS_DATA after the downloads, with tiny data: what the
    notebooks read in quick mode."""
    write_idx_set(home / "mnist", n_train=400, n_test=100)
    (home / "lm").mkdir(parents=True, exist_ok=True)
    write_svo_corpus(home / "lm" / "wikisimple.txt")
    return home


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} DIR")
    print(write_data_home(Path(sys.argv[1])))
