"""The batched XOR trainer's epochs compiled: fused.cpp, built once into torch's extension cache.

Its loop does batched._epochs' ATen operations in C++, so an epoch costs the kernels only, not
thirty round trips through Python. Where no C++ compiler or ninja is found, or the build fails,
`load_epochs` returns None and the trainer runs its Python loop, with the same results.
"""

import functools
import hashlib
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

# (x, w1, w2, a, terms, signed_logits, step, out_mask, sign, threshold, last_improved, delta,
# goal, patience, first, last) -> (terms, signed_logits, threshold): see batched._epochs.
Epochs = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

SOURCE = Path(__file__).with_name("fused.cpp")


def library_name(source: Path) -> str:
    """The library's name in torch's extension cache, one per checkout and source: under one
    name, two checkouts would rebuild it in turn (its build file records the source's path),
    and one could load it while the other rewrites it."""
    digest = hashlib.sha256(str(source.resolve()).encode() + b"\0" + source.read_bytes())
    return f"dlclassics_xor_fused_{digest.hexdigest()[:12]}"


@functools.cache
def load_epochs() -> Epochs | None:
    """The compiled epochs, or None where they cannot be built (built once per machine and
    source, in 10 to 30 seconds; later processes load the cached library)."""
    try:
        from torch.utils import cpp_extension  # needs setuptools, which not every install has
    except ImportError:
        return None
    compiler = cpp_extension.get_cxx_compiler()
    if shutil.which(compiler) is None or not cpp_extension.is_ninja_available():
        return None
    try:
        name = library_name(SOURCE)
        cpp_extension.load(name, [str(SOURCE)], extra_cflags=["-O2"], is_python_module=False)
    except (OSError, RuntimeError) as e:  # a failed build is a RuntimeError with ninja's log
        reason = str(e).splitlines()[0]
        warnings.warn(f"fused XOR epochs not built ({reason}); Python runs them", stacklevel=2)
        return None
    return torch.ops.dlclassics_xor.epochs
