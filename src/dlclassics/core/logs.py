"""TensorBoard logs: each trial's in `<trial>/tensorboard/`."""

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from dlclassics.core import distributed
from dlclassics.core.rundir import TENSORBOARD

# A logger takes the values of one step: numbers become TensorBoard scalars, strings text.
Log = Callable[[Mapping[str, float | str], int], None]


@contextmanager
def tensorboard(trial_directory: Path) -> Iterator[Log]:
    """A `Log` writing TensorBoard events into the trial's folder (on rank 0 of a torchrun job
    only)."""
    if not distributed.is_main():
        yield lambda values, step: None
        return
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(Path(trial_directory) / TENSORBOARD) as writer:

        def log(values: Mapping[str, float | str], step: int) -> None:
            for tag, value in values.items():
                if isinstance(value, str):
                    writer.add_text(tag, value, step)
                else:
                    writer.add_scalar(tag, value, step)

        yield log
