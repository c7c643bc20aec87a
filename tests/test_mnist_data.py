import dataclasses
import gzip
import hashlib
from pathlib import Path

import pytest
import torch
from conftest import write_idx_set

from dlclassics.core import download
from dlclassics.core.errors import InputError
from dlclassics.mnist import data as mnist_data


def test_reads_gzipped_and_plain_files_alike(tmp_path):
    a = mnist_data.load("mnist", write_idx_set(tmp_path / "gz"), seed=0)
    b = mnist_data.load("mnist", write_idx_set(tmp_path / "raw", gz=False), seed=0)
    assert (len(a.train), len(a.val), len(a.test)) == (540, 60, 200)
    assert torch.equal(a.train.images, b.train.images)
    assert a.train.images.dtype == torch.uint8
    assert torch.equal(a.test.labels, b.test.labels)


def test_split_is_a_seeded_partition(tmp_path):
    folder = write_idx_set(tmp_path)
    a, b, c = (mnist_data.load("mnist", folder, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.val.labels, b.val.labels)
    assert not torch.equal(a.val.images, c.val.images)
    everything = torch.cat([a.train.images, a.val.images]).flatten(1)
    assert len(torch.unique(everything, dim=0)) == 600


def test_load_cached_parses_once_per_setting(tmp_path):
    folder = write_idx_set(tmp_path)
    a = mnist_data.load_cached("mnist", str(folder), 0)
    assert mnist_data.load_cached("mnist", str(folder), 0) is a
    other_seed = mnist_data.load_cached("mnist", str(folder), 1)
    assert other_seed is not a and not torch.equal(other_seed.val.labels, a.val.labels)
    assert torch.equal(a.test.images, mnist_data.load("mnist", folder, seed=0).test.images)


def test_dataset_names_and_classes():
    # `reproduce` offers these names; every dataset has ten class names.
    assert list(mnist_data.SOURCES) == ["mnist", "fashion-mnist"]
    assert all(len(s.classes) == mnist_data.NUM_CLASSES for s in mnist_data.SOURCES.values())


def test_normalize_maps_to_minus_one_one():
    x = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    assert mnist_data.normalize(x).flatten().tolist() == [-1.0, 1.0]
    assert mnist_data.normalize(x).shape == (1, 1, 1, 2)


def test_epoch_batches_cover_each_index_once():
    batches = mnist_data.epoch_batches(103, 10, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [10] * 10
    assert len(torch.unique(torch.cat(batches))) == 100


def _corrupt(folder: Path, name: str, raw: bytes) -> None:
    (folder / f"{name}.gz").write_bytes(gzip.compress(raw))


@pytest.mark.parametrize(
    ("name", "mutate", "message"),
    [
        ("train-images-idx3-ubyte", lambda raw: b"\x00\x00\x08\x01" + raw[4:], "magic"),
        ("train-images-idx3-ubyte", lambda raw: raw[:-100], "header says"),
        ("t10k-labels-idx1-ubyte", lambda raw: raw[:8] + b"\x0c" + raw[9:], "out of range"),
        ("t10k-labels-idx1-ubyte", lambda raw: raw[:7] + b"\x05" + raw[8:-195], "labels for"),
    ],
)
def test_corrupt_files_name_the_file(tmp_path, name, mutate, message):
    folder = write_idx_set(tmp_path)
    raw = gzip.decompress((folder / f"{name}.gz").read_bytes())
    _corrupt(folder, name, mutate(raw))
    with pytest.raises(InputError, match=message) as e:
        mnist_data.load("mnist", folder, seed=0)
    assert name in str(e.value)


def test_truncated_gzip_is_an_input_error(tmp_path):
    folder = write_idx_set(tmp_path)
    path = folder / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(InputError, match=r"train-labels-idx1-ubyte\.gz"):
        mnist_data.load("mnist", folder, seed=0)


def test_missing_file_in_data_dir(tmp_path):
    folder = write_idx_set(tmp_path)
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(InputError, match="lacks t10k-images-idx3-ubyte"):
        mnist_data.load("mnist", folder, seed=0)


def _point_mirror(monkeypatch, mirrors: tuple[str, ...], md5: dict[str, str]) -> None:
    source = dataclasses.replace(mnist_data.SOURCES["mnist"], mirrors=mirrors, md5=md5)
    monkeypatch.setitem(mnist_data.SOURCES, "mnist", source)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(download, "BACKOFF", 0.01)


def test_offline_error_says_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("DLCLASSICS_DATA", str(tmp_path / "cache"))
    _point_mirror(monkeypatch, ("http://127.0.0.1:9/",), mnist_data.SOURCES["mnist"].md5)
    with pytest.raises(InputError) as e:
        mnist_data.load("mnist", None, seed=0)
    message = str(e.value)
    assert "train-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert "(127.0.0.1:9: cannot connect after 4 tries)" in message
    assert f"put a copy in {tmp_path / 'cache' / 'mnist'} or pass --data-dir" in message
    assert "\n" not in message
    assert not list((tmp_path / "cache" / "mnist").glob("*"))


def _serve(server, folder, prefix: str) -> dict[str, str]:
    for p in folder.iterdir():
        server.scripts[f"/{prefix}/{p.name}"] = [("ok", p.read_bytes())]
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_download_from_the_mirrors_in_turn_and_cache(tmp_path, monkeypatch, faulty_server):
    mirror = write_idx_set(tmp_path / "mirror")
    md5 = _serve(faulty_server, mirror, "original")
    # The first mirror answers 503 once, then serves only the labels; the original has the rest.
    for name in md5:
        faulty_server.scripts[f"/s3/{name}"] = [("status", 503), ("status", 404)]
        if "labels" in name:
            faulty_server.scripts[f"/s3/{name}"][1] = faulty_server.scripts[f"/original/{name}"][0]
    monkeypatch.setenv("DLCLASSICS_DATA", str(tmp_path / "cache"))
    _point_mirror(monkeypatch, (f"{faulty_server.url}/s3/", f"{faulty_server.url}/original/"), md5)
    data = mnist_data.load("mnist", None, seed=0)
    assert len(data.test) == 200
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(md5)
    asked = {path: n for path, n in faulty_server.requests.items()}
    assert asked == {f"/s3/{n}": 2 for n in md5} | {
        f"/original/{n}": 1 for n in md5 if "images" in n
    }
    mnist_data.load("mnist", None, seed=0)  # from the cache now
    assert faulty_server.requests == asked


def test_download_rejects_a_bad_checksum(tmp_path, monkeypatch, faulty_server):
    mirror = write_idx_set(tmp_path / "mirror")
    md5 = _serve(faulty_server, mirror, "m")
    monkeypatch.setenv("DLCLASSICS_DATA", str(tmp_path / "cache"))
    _point_mirror(monkeypatch, (f"{faulty_server.url}/m/",), dict.fromkeys(md5, "0" * 32))
    with pytest.raises(InputError, match="checksum mismatch"):
        mnist_data.load("mnist", None, seed=0)
    assert not list((tmp_path / "cache" / "mnist").glob("*"))


def test_fashion_mnist_falls_back_to_the_official_repository():
    mirrors = mnist_data.SOURCES["fashion-mnist"].mirrors
    assert "s3" in mirrors[0]
    assert mirrors[1].startswith("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/")
