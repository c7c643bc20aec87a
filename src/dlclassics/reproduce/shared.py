"""`reproduce --workers N` / `--storage URL`: the trials of every part shared among workers.

Each part is a study on the storage (`<study-name>-<part>`, e.g. `reproduce-mnist-cnn`), run by
the part's own command as one worker of that study (`dlclassics.workers`). A worker goes through
the parts twice. The first time with `--no-wait`: it moves on to the next part as soon as no
trial of this one is waiting, so while one worker trains the CNN study's last trial the other
already trains the language model's first. The second time waiting: a trial whose worker died is
run again, and every part is finished before the report is written.

`--workers N` runs N workers here, each a thread driving the part commands' processes with 1/N of
the cores; `--storage` without `--workers` makes this process one worker, to be started on every
machine with the same `--out` (a shared folder). Each worker logs to `logs/<host>-<pid>-<n>.log`.
"""

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import TextIO

import torch
from tqdm import tqdm

from dlclassics.core.rundir import RunDir
from dlclassics.experiments import Experiment
from dlclassics.reproduce.config import ReproduceConfig
from dlclassics.reproduce.parts import Outcome, command_line, part_config, run_command
from dlclassics.scale import Scale
from dlclassics.workers import open_storage, worker_count

# A part's exit codes after Ctrl-C (its own, or Python's death by SIGINT): the workers stop.
INTERRUPTED = (130, -signal.SIGINT)
STOP_SECONDS = 10  # after Ctrl-C, how long a part may take to save its trial and exit


def run_parts_shared(
    config: ReproduceConfig, root: Path, parts: list[Experiment], corpus: str | None, scale: Scale
) -> list[Outcome]:
    """Every part run by `scale.workers` workers (one without) on `scale.storage` (default: an
    SQLite file in `root`); each part's outcome, its seconds summed over the workers."""
    url = scale.url(root)
    open_storage(url)  # the tables made here, so that the workers do not race to make them
    prefix = scale.name("reproduce")
    trials = sum(len(p.study.trials(part_config(p, config, corpus))) for p in parts)
    count = worker_count(scale.workers or 1, trials)
    env = os.environ | {"OMP_NUM_THREADS": str(max(1, torch.get_num_threads() // count))}
    spent = dict.fromkeys((p.name for p in parts), 0.0)
    errors: dict[str, str] = {}
    finished: set[str] = set()
    running: set[subprocess.Popen] = set()
    lock, stop = threading.Lock(), threading.Event()

    def run(part: Experiment, log: TextIO, wait: bool) -> None:
        """The part's command as one worker of its study; what came of it, recorded."""
        args = command_line(part, root / part.name, config, corpus)
        args += ["--storage", url, "--study-name", f"{prefix}-{part.name}"]
        args += [] if wait else ["--no-wait"]
        log.write(f"\n# {time.strftime('%H:%M:%S')} {part.name}, wait: {wait}\n")
        seconds, code, error = run_command(args, log, env, running)
        with lock:
            spent[part.name] += seconds
            if code in INTERRUPTED:
                stop.set()
            if error:
                errors[part.name] = error
            elif wait and part.name not in finished:
                finished.add(part.name)
                tqdm.write(f"{part.name}: ok")

    def written(part: Experiment) -> bool:
        return RunDir(root / part.name).finished

    def worker(index: int) -> None:
        log_path = root / "logs" / f"{socket.gethostname()}-{os.getpid()}-{index}.log"
        with log_path.open("a", encoding="utf-8") as log:
            for wait in (False, True):
                for part in parts:
                    if stop.is_set():
                        return
                    if not (wait and part.name in finished):  # else another worker saw it done
                        run(part, log, wait)
            # The worker that finished a part's last trial may have died writing its folder.
            for part in parts:
                if part.name in finished and not written(part) and not stop.is_set():
                    run(part, log, wait=True)

    (root / "logs").mkdir(exist_ok=True)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        stop.set()
        # The parts' processes had the Ctrl-C too, from the terminal, and save their trials; a
        # part that did not (only this process was signalled) is stopped after a while.
        deadline = time.monotonic() + STOP_SECONDS
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for proc in list(running):
            proc.terminate()
        for t in threads:
            t.join()
        raise
    outcomes = []
    for part in parts:
        done = part.name in finished and written(part)
        error = "" if done else errors.get(part.name, "unfinished")
        command = ["dlclassics", *command_line(part, root / part.name, config, corpus)]
        outcomes.append(Outcome(part, root / part.name, spent[part.name], error, command))
        if error:
            tqdm.write(f"{part.name}: FAILED: {error}")
    return outcomes
