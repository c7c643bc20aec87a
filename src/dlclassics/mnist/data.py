"""MNIST-format data: IDX files found or downloaded, validated, split, and held in memory.

Images stay uint8 tensors; `normalize` maps a batch to [-1, 1] (mean 0.5, std 0.5, as the original)
when it is used, so a batch is an index slice and nothing is converted per sample.
"""

import functools
import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from dlclassics.core.download import DownloadError, fetch
from dlclassics.core.errors import InputError
from dlclassics.core.machine import data_root

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801
NUM_CLASSES = 10
# Images (or labels) in one file: 14x MNIST's 70,000 and more than any MNIST-format set (EMNIST
# ByClass has 814,255), yet at most 784 MB of images, so a header's count is never a risk.
MAX_ITEMS = 1_000_000


@dataclass(frozen=True)
class Source:
    title: str
    mirrors: tuple[str, ...]  # tried in turn
    md5: dict[str, str]  # published checksums of the .gz files, by file name
    system_dirs: tuple[str, ...]
    classes: tuple[str, ...]


SOURCES = {
    "mnist": Source(
        title="MNIST",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        system_dirs=(),
        classes=tuple(str(d) for d in range(10)),
    ),
    "fashion-mnist": Source(
        title="Fashion-MNIST",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        # Debian's dataset-fashion-mnist package
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
}


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _paths(folder: Path) -> dict[str, Path | None]:
    return {key: _find(folder, name) for key, name in FILES.items()}


def locate(dataset: str, data_dir: Path | None) -> dict[str, Path | None]:
    """The four IDX files: from `data_dir`, else a system folder, else the cache (downloading)."""
    if data_dir is not None:
        found = _paths(Path(data_dir))
        missing = [FILES[k] for k, p in found.items() if p is None]
        if missing:
            raise InputError(f"--data-dir {data_dir} lacks {', '.join(missing)} (or .gz)")
        return found
    source = SOURCES[dataset]
    for folder in source.system_dirs:
        found = _paths(Path(folder))
        if all(found.values()):
            return found
    cache = data_root() / dataset
    failed = []
    for name in FILES.values():
        if _find(cache, name) is None:
            gz = f"{name}.gz"
            try:
                fetch([m + gz for m in source.mirrors], cache / gz, f"md5:{source.md5[gz]}")
            except DownloadError as e:
                failed.append((gz, e))
    if failed:
        names = ", ".join(n for n, _ in failed)
        raise InputError(
            f"cannot download {names} ({failed[0][1]}); put a copy in {cache} or pass --data-dir"
        )
    return _paths(cache)


def read_idx(path: Path, magic: int) -> np.ndarray:
    """One IDX file as a uint8 array, after checking its magic number, dimensions and length.

    The header is read first and its counts bounded before the data is read, so a header or a
    gzip stream that claims more than it holds costs at most MAX_ITEMS images of memory."""
    gz = path.suffix == ".gz"
    try:
        with gzip.open(path, "rb") if gz else path.open("rb") as f:
            dims, size = _header(path, f, magic)
            if not gz and (have := path.stat().st_size - f.tell()) != size:  # before allocating
                raise InputError(f"{path}: {have} bytes of data, header says {size}")
            data = f.read(size)  # GzipFile.read(n) inflates at most n bytes
            if len(data) != size:
                raise InputError(f"{path}: {len(data)} bytes of data, header says {size}")
            if f.read(1):
                raise InputError(f"{path}: more than the {size} bytes of data its header says")
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise InputError(f"{path}: cannot read ({e})") from e
    return np.frombuffer(data, np.uint8).reshape(dims)


def _header(path: Path, f: BinaryIO, magic: int) -> tuple[list[int], int]:
    """The dimensions an IDX header states, and the bytes of data they make, both bounded."""
    ndim = magic & 0xFF
    header = f.read(4 + 4 * ndim)
    if len(header) < 4 + 4 * ndim or int.from_bytes(header[:4], "big") != magic:
        found = header[:4].hex() if len(header) >= 4 else "nothing"
        raise InputError(f"{path}: not an IDX file of this kind (magic {found}, want {magic:08x})")
    dims = [int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if ndim == 3 and dims[1:] != [28, 28]:
        raise InputError(f"{path}: images are {dims[1]}x{dims[2]}, want 28x28")
    if dims[0] > MAX_ITEMS:
        kind = "images" if ndim == 3 else "labels"
        raise InputError(f"{path}: header claims {dims[0]:,} {kind}, more than {MAX_ITEMS:,}")
    return dims, math.prod(dims)


def _read_pair(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(images_path, IMAGE_MAGIC)
    labels = read_idx(labels_path, LABEL_MAGIC)
    if len(images) != len(labels):
        raise InputError(f"{labels_path}: {len(labels)} labels for {len(images)} images")
    if len(labels) and labels.max() >= NUM_CLASSES:
        raise InputError(f"{labels_path}: label {labels.max()} out of range 0..9")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


@dataclass
class Split:
    images: torch.Tensor  # uint8, (n, 28, 28)
    labels: torch.Tensor  # int64, (n,)

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


@dataclass
class MnistData:
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def to(self, device: torch.device) -> "MnistData":
        return MnistData(
            self.train.to(device), self.val.to(device), self.test.to(device), self.classes
        )


def load(dataset: str, data_dir: Path | None, seed: int) -> MnistData:
    """Train/val (90/10 of the official training set, shuffled by `seed`) and the official test."""
    paths = locate(dataset, data_dir)
    images, labels = _read_pair(paths["train_images"], paths["train_labels"])
    test = Split(*_read_pair(paths["test_images"], paths["test_labels"]))
    n_val = len(labels) // 10
    if n_val == 0 or len(test) == 0:
        raise InputError(f"too few images: {len(labels)} training, {len(test)} test")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    val, train = order[:n_val], order[n_val:]
    return MnistData(
        Split(images[train], labels[train]),
        Split(images[val], labels[val]),
        test,
        SOURCES[dataset].classes,
    )


@functools.lru_cache(maxsize=2)
def load_cached(dataset: str, data_dir: str, seed: int) -> MnistData:
    """`load` (`data_dir` "" to find or download the files), parsed once per process: the trials
    of a study and its summary share one copy, which none of them modifies."""
    return load(dataset, Path(data_dir) if data_dir else None, seed)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (n, 28, 28) -> float (n, 1, 28, 28) in [-1, 1]: ToTensor then Normalize(0.5, 0.5)."""
    return images.unsqueeze(1).float().mul_(2 / 255).sub_(1)


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One shuffled pass as index slices, the ragged tail dropped so all batches share a shape."""
    order = torch.randperm(n, generator=generator)
    return list(order[: n - n % batch_size].split(batch_size))


def batch_generator(seed: int) -> torch.Generator:
    """The generator that orders batches; one per run so every run sees the same order."""
    return torch.Generator().manual_seed(seed + 1)
