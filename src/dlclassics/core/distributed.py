"""Data-parallel training under `torchrun`: one model, one global batch split over processes.

torchrun starts one process per GPU (or several on CPUs) and tells each its place in the environment
(RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE). `start` joins the process group (gloo on CPUs,
NCCL on GPUs); `wrap` puts the model in DistributedDataParallel, which sums the gradients of the
ranks' parts of a batch during the backward pass. Every rank reads the same data with the same
seed and takes its own part of each batch (`part`); evaluations split their batches the same way
and add up over the ranks (`sum_over_ranks`). Only rank 0 writes (`is_main`).

Without torchrun's environment nothing here does anything: one process, as before.
"""

import atexit
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from dlclassics.core.errors import InputError
from dlclassics.core.machine import resolve_device

T = TypeVar("T")

# A rank that waits this long on the others gives up with an error rather than hanging; torchrun
# then ends the job. Long enough for rank 0 to evaluate or checkpoint while the others wait.
TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class World:
    """This process's place in the job: 1 process of 1 without torchrun."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1


def launched() -> bool:
    """Whether torchrun started this process."""
    return "RANK" in os.environ


def world() -> World:
    """What torchrun's environment says (read again each call: it never changes in a process)."""
    if not launched():
        return World()
    env = {k: int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    return World(env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"])


def active() -> bool:
    """Whether this process is one of a torchrun job's, with its process group joined."""
    return dist.is_available() and dist.is_initialized()


def ranks() -> int:
    """The number of processes training together: 1 outside a joined torchrun job."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0, the one process that writes the run directory (every process, without torchrun)."""
    return world().rank == 0


def start(device_name: str, batch_size: int) -> torch.device:
    """The device the command trains on (`resolve_device`); under torchrun, also check the job
    against it and join the process group. `batch_size` is the smallest global batch the command
    will take: every process needs a row of it.
    """
    device = resolve_device(device_name)
    if not launched():
        return device
    w = world()
    if batch_size < w.size:
        raise InputError(
            f"a global batch of {batch_size} cannot be split over {w.size} processes: "
            "give a batch size of at least the number of processes"
        )
    if device.type == "cuda":
        gpus = torch.cuda.device_count()
        if w.local_size > gpus:
            raise InputError(
                f"{w.local_size} processes on this machine but {gpus} GPUs: "
                "start at most one process per GPU (--nproc-per-node)"
            )
        torch.cuda.set_device(w.local_rank)
    if not active():
        # Each process's share of the machine's cores (torchrun otherwise sets one thread each).
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // w.local_size))
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT)
        atexit.register(_leave)  # on an error's way out too
    return device


def _leave() -> None:
    if active():
        dist.destroy_process_group()


def finish() -> None:
    """The end of a torchrun job's command: every rank waits for the others (rank 0 summarises
    meanwhile), then leaves the process group while the interpreter is whole. Gloo's threads
    outliving it can abort a rank at exit ("terminate called without an active exception")."""
    if active():
        dist.barrier()
        _leave()


def local(device: torch.device) -> torch.device:
    """The device of this process: under torchrun, a CUDA device is the GPU of its local rank."""
    if device.type == "cuda" and active():
        return torch.device("cuda", world().local_rank)
    return device


def wrap(model: nn.Module) -> nn.Module:
    """`model` in DistributedDataParallel under torchrun (itself otherwise).

    DDP starts every rank from rank 0's weights and averages the gradients over the ranks: a rank
    multiplies its part's loss by the number of ranks so that the average is the sum, the whole
    batch's gradient. The random stream is then offset by the rank, so that dropout masks differ
    between the ranks' parts of a batch, as they differ between rows in one process.
    """
    if not active():
        return model
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    wrapped = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    torch.manual_seed(torch.initial_seed() + world().rank)
    return wrapped


def part(rows: int) -> tuple[slice, float]:
    """This rank's rows of a global batch of `rows`, contiguous and disjoint, and their weight:
    1, or 0 for a rank left without rows (a short last batch), which gets the first row as a
    stand-in and so still takes part in DDP's all-reduce, adding nothing."""
    if not active():
        return slice(0, rows), 1.0
    w = world()
    start, stop = rows * w.rank // w.size, rows * (w.rank + 1) // w.size
    return (slice(start, stop), 1.0) if start < stop else (slice(0, 1), 0.0)


def shard(items: list[T]) -> list[T]:
    """This rank's share of `items` (every rank's `items` the same): every size-th one."""
    w = world()
    return items[w.rank :: w.size] if active() else items


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `values` over the ranks (`values` itself without torchrun)."""
    if not active():
        return values
    device = torch.device("cuda", world().local_rank) if dist.get_backend() == "nccl" else "cpu"
    total = values.detach().to(device, copy=True)
    dist.all_reduce(total)
    return total.to(values.device)


def any_rank(flag: bool) -> bool:
    """Whether `flag` is set on any rank: so that every rank stops at the same step."""
    return bool(sum_over_ranks(torch.tensor([float(flag)]))[0] > 0)


def barrier() -> None:
    if active():
        dist.barrier()


def from_main(compute: Callable[[], T]) -> T:
    """`compute()`, run on rank 0 only and its value sent to every rank: for what rank 0 reads
    from the run directory, which other machines may not have. An InputError on rank 0 is raised
    on every rank."""
    if not active():
        return compute()
    box: list[Any] = [None]
    if is_main():
        try:
            box = [(True, compute())]
        except InputError as e:
            box = [(False, str(e))]
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise InputError(value)
    return value
