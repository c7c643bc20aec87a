import os
import shutil
import sys

import pytest
import torch

from dlclassics.xor import batched, fused
from dlclassics.xor.batched import RunResults, train_batched, xavier_init
from dlclassics.xor.config import GridPoint, SweepConfig

# With seed 0 and patience 5, four runs stop by epoch 1000 (at 451 to 977), so the batch drops
# them there; one more stops at 1057, and three run to the end, 1234, which is no multiple of the
# 500-epoch chunks.
POINTS = [GridPoint(lr, h, b) for lr in (4.0, 2.0) for h in (1, 3) for b in (False, True)]
RULE = SweepConfig(max_epochs=1234, patience=5)
EPOCHS = [451, 591, 881, 977, 1057, 1234, 1234, 1234]


@pytest.fixture
def rebuild():
    """`load_epochs` asked afresh, here and after the test."""
    fused.load_epochs.cache_clear()
    yield
    fused.load_epochs.cache_clear()


def train(dtype: torch.dtype = torch.float32, fused: bool = True) -> RunResults:
    init = xavier_init(POINTS, torch.Generator().manual_seed(0))
    return train_batched(POINTS, init, RULE, dtype=dtype, fused=fused)


def assert_same(a: RunResults, b: RunResults) -> None:
    """Bit for bit: the same operations in the same order, in one process on one thread."""
    for name in ("succeeded", "epochs", "train_loss", "val_loss"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name, value in a.weights.state_dict().items():
        assert torch.equal(value, b.weights.state_dict()[name]), name


def require_build_tools() -> None:
    """Skip without a compiler, ninja or setuptools (cpp_extension's): the fused epochs cannot
    build there. CI has them all and says so (DLCLASSICS_REQUIRE_FUSED=1): there they must."""
    if os.environ.get("DLCLASSICS_REQUIRE_FUSED") == "1":
        return
    cpp_extension = pytest.importorskip("torch.utils.cpp_extension")
    if shutil.which(cpp_extension.get_cxx_compiler()) is None:
        pytest.skip("no C++ compiler: the fused epochs cannot be built")
    if not cpp_extension.is_ninja_available():
        pytest.skip("no ninja: the fused epochs cannot be built")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_epochs_are_the_python_loops(dtype, monkeypatch):
    require_build_tools()
    epochs = fused.load_epochs()
    assert epochs is not None, "a C++ compiler and ninja are here: the fused epochs should build"
    calls, retired = [], []
    monkeypatch.setattr(batched, "load_epochs", lambda: lambda *a: calls.append(a) or epochs(*a))
    record = batched._Results.record
    monkeypatch.setattr(
        batched._Results,
        "record",
        lambda self, ids, *args: retired.append(len(ids)) or record(self, ids, *args),
    )
    compiled = train(dtype)
    assert [call[-2:] for call in calls] == [(1, 500), (501, 1000), (1001, 1234)]
    assert retired == [4, 4], "the batch should drop its four finished runs at epoch 1000"
    assert sorted(compiled.epochs.tolist()) == EPOCHS
    assert_same(compiled, train(dtype, fused=False))


@pytest.mark.parametrize("missing", ["compiler", "ninja", "cpp_extension"])
def test_without_a_compiler_the_python_loop_runs(missing, monkeypatch, rebuild):
    if missing == "compiler":
        monkeypatch.setenv("CXX", "/nonexistent/c++")
    elif missing == "ninja":
        cpp_extension = pytest.importorskip("torch.utils.cpp_extension")
        monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: False)
    else:  # as where setuptools, which it imports, is missing
        monkeypatch.delattr(torch.utils, "cpp_extension")
        monkeypatch.setitem(sys.modules, "torch.utils.cpp_extension", None)
    assert fused.load_epochs() is None
    python = []
    reference = batched._epochs
    monkeypatch.setattr(batched, "_epochs", lambda *a: python.append(a) or reference(*a))
    result = train()
    assert len(python) == 3, "train_batched should run its Python epochs"
    assert sorted(result.epochs.tolist()) == EPOCHS


def test_a_failed_build_warns_and_falls_back(tmp_path, monkeypatch, rebuild):
    require_build_tools()
    broken = tmp_path / "fused.cpp"
    broken.write_text("this is not C++\n")
    # Another source is another library name: the real one's operator is never registered twice.
    assert fused.library_name(broken) != fused.library_name(fused.SOURCE)
    monkeypatch.setattr(fused, "SOURCE", broken)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "build"))
    with pytest.warns(UserWarning, match="fused XOR epochs not built .*Python runs them"):
        assert fused.load_epochs() is None
    assert train().epochs.max() == RULE.max_epochs
