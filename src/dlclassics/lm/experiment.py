"""`lm train` and `lm study`: their configs, trials, one trial's training, and the summaries.

`lm train` is one trial; `lm study` is the original study, four trials: 1 and 2 layers x forward
and reverse. Each trial trains one model in its own folder, resuming from the last training state
saved there, and saves it as `checkpoint.pt`; the study's sentences are drawn in `summarize`.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, TypedDict

import torch

from dlclassics import distributed
from dlclassics.bounds import LR, SEED, Device, Int, Rules, check_memory, validate
from dlclassics.checkpoint import CHECKPOINT, check_weights, load_checkpoint
from dlclassics.errors import InputError
from dlclassics.lm.batches import encode
from dlclassics.lm.corpus import (
    MAX_SENTENCE_WORDS,
    Sentences,
    Vocabulary,
    default_corpus,
    read_corpus,
    split,
    words,
)
from dlclassics.lm.evaluate import perplexity
from dlclassics.lm.generate import Sampling, generate, sentence_probability
from dlclassics.lm.model import MAX_WORDS, LanguageModel, ModelConfig, load_model, save_model
from dlclassics.lm.train import Progress, check_finite, train
from dlclassics.report import table
from dlclassics.rundir import RunDir
from dlclassics.runtime import AUTO_DEVICE, resolve_bf16, resolve_device, seed_everything
from dlclassics.study import Experiment, Summary, tensorboard, trial_dir

SPLITS = ("train", "val", "test")
STATE = "train_state.pt"  # a trial's training state, saved as it goes, until it finishes
STUDY_TEMPERATURES = (0.1, 1.0, 10.0)


@dataclass(frozen=True)
class LmConfig:
    """The settings `lm train` and `lm study` share, and their defaults."""

    corpus: str | None = None  # None: Simple English Wikipedia, downloaded once
    vocab_size: int = 10_000
    max_length: int | None = None
    embedding_size: int = 300
    hidden_size: int = 256
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.001
    max_steps: int | None = None
    # The training state is saved at the end of every epoch and every this many steps, so a
    # killed run loses at most that much work.
    checkpoint_every: int = 500
    # The command stores the device it resolved, and whether bf16 is used there.
    bf16: bool | None = None
    device: str = AUTO_DEVICE
    seed: int = 0
    # The corpus's sha256, recorded by the command: a resume on an edited corpus is refused.
    corpus_sha256: str | None = None

    # Sizes have generous bounds here; `check_cost` then weighs the model and a batch.
    RULES: ClassVar[Rules] = {
        "vocab_size": Int(1, MAX_WORDS),
        "max_length": Int(1, MAX_SENTENCE_WORDS),  # longer sentences are dropped anyway
        "embedding_size": ModelConfig.RULES["embedding_size"],
        "hidden_size": ModelConfig.RULES["hidden_size"],
        "epochs": Int(1, 10_000),
        "batch_size": Int(1, 10**6),
        "lr": LR,
        "max_steps": Int(1, 10**9),
        "checkpoint_every": Int(1, 10**9),
        "device": Device(),
        "seed": SEED,
    }

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class TrainConfig(LmConfig):
    """`lm train`: one model."""

    layers: int = 1
    direction: str = "forward"

    RULES: ClassVar[Rules] = LmConfig.RULES | {
        "layers": ModelConfig.RULES["layers"],
        "direction": ModelConfig.RULES["direction"],
    }


@dataclass(frozen=True)
class StudyConfig(LmConfig):
    """`lm study`: the four models, and the words each generates from and scores."""

    start: str = "love i"
    length: int = Sampling.length  # words in each sentence, as in the original
    stop_at_eos: bool = False  # True: a sentence may end before `length` where the model says so
    sentence: str = "love i cupcakes"

    RULES: ClassVar[Rules] = LmConfig.RULES | {"length": Sampling.RULES["length"]}

    def __post_init__(self) -> None:
        super().__post_init__()
        Sampling(self.start, self.length)  # said before the models train, not after


@dataclass(frozen=True)
class LmTrial:
    layers: int
    direction: str

    @property
    def name(self) -> str:
        return f"layers{self.layers}-{self.direction}"


STUDY_TRIALS = [
    LmTrial(1, "forward"),
    LmTrial(1, "reverse"),
    LmTrial(2, "forward"),
    LmTrial(2, "reverse"),
]


class Perplexities(TypedDict):
    """Per split; None where it overflowed (a model that diverged)."""

    train: float | None
    val: float | None
    test: float | None


@dataclass(frozen=True)
class LmResult:
    perplexity: Perplexities
    steps: int
    epochs_completed: int
    train_tokens: int
    train_seconds: float
    train_tokens_per_second: float


@dataclass(frozen=True)
class Data:
    vocab: Vocabulary
    sentences: Sentences
    sha256: str  # of the corpus file


def trials(config: LmConfig) -> list[LmTrial]:
    if isinstance(config, TrainConfig):
        return [LmTrial(config.layers, config.direction)]
    return list(STUDY_TRIALS)


def load_data(config: LmConfig) -> Data:
    """The vocabulary of the whole corpus, as the original built it, and the 80/10/10 split.

    Every trial asks for it; it is read once per process (again if the file changes). A corpus
    other than the one `config.corpus_sha256` records is an InputError."""
    path = Path(config.corpus) if config.corpus is not None else default_corpus()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None  # read_corpus says what is wrong with the file
    data = _read_data(path, stamp, config.max_length, config.vocab_size, config.seed)
    if config.corpus_sha256 not in (None, data.sha256):
        raise InputError(
            f"corpus {path} is not the one this run was trained on (its sha256 was "
            f"{config.corpus_sha256[:12]}..., now {data.sha256[:12]}...): restore it, or start a "
            "new run"
        )
    return data


@functools.lru_cache(maxsize=1)
def _read_data(path: Path, stamp: int | None, max_length: int | None, size: int, seed: int) -> Data:
    sentences, sha256 = read_corpus(path, max_length)
    return Data(Vocabulary.build(sentences, size), split(sentences, seed), sha256)


def _trial_model(config: LmConfig, trial: LmTrial, vocab_size: int) -> ModelConfig:
    return ModelConfig(
        vocab_size, trial.layers, trial.direction, config.embedding_size, config.hidden_size
    )


def check_cost(config: LmConfig, data: Data) -> None:
    """An InputError for a model (ModelConfig checks its parameter count) or a training batch
    that cannot fit. A batch of the longest sentences keeps, per position, the embedding, the
    LSTM's gates and states of each layer, and the logits with their softmax and gradient."""
    longest = max(len(s) for s in data.sentences.train) + 1  # <START> or <EOS>
    for trial in trials(config):
        model = _trial_model(config, trial, len(data.vocab))
        per_token = model.embedding_size + 10 * model.hidden_size * model.layers
        per_token += 3 * model.vocab_size
        nbytes = 4 * config.batch_size * longest * per_token  # float32
        check_memory(f"a batch of {config.batch_size:,} sentences of {longest:,} words", nbytes)


def run_trial(
    config: LmConfig,
    trial: LmTrial,
    directory: Path,
    quiet: bool = False,
    on_epoch: Callable[[int, float], None] | None = None,
) -> LmResult:
    """Train this trial's model (on from the last state saved, if any), save it as
    `directory/checkpoint.pt` and measure its perplexity on every split. `on_epoch` is for
    `tune`: it gets each epoch's number and validation perplexity.

    The training state is kept in `directory/train_state.pt` as training goes (see
    `LmConfig.checkpoint_every`); Ctrl-C saves it too and raises Interrupted. Under
    torchrun every rank calls it; the model is trained and measured by all of them together.
    """
    data = load_data(config)
    check_cost(config, data)
    resolved = resolve_device(config.device)
    # A config made in code may leave the device and bf16 to decide here, as the command does.
    config = replace(config, device=str(resolved), bf16=resolve_bf16(config.bf16, resolved))
    device = distributed.local(resolved)  # under torchrun, each process its own GPU
    rows = {
        name: encode(getattr(data.sentences, name), data.vocab, trial.direction) for name in SPLITS
    }
    seed_everything(config.seed)
    model = LanguageModel(_trial_model(config, trial, len(data.vocab))).to(device)
    # The fused Adam kernel is the same update in one pass over the weights (about 5% faster).
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    state = directory / STATE
    progress = _resume(directory, model, optimizer, config)

    def save_state(progress: Progress) -> Path:
        return save_model(state, model, data.vocab, asdict(config), optimizer, **asdict(progress))

    sampler = torch.Generator().manual_seed(config.seed)

    def samples() -> list[str]:
        # Sentences as the model ends them: the progress log shows what it has learnt.
        return [
            " ".join(generate(model, data.vocab, [], 20, 1.0, sampler, stop_at_eos=True))
            for _ in range(3)
        ]

    with tensorboard(directory / "tensorboard") as log:
        args = (rows["train"], rows["val"], config, device, log, save_state)
        train(
            model,
            optimizer,
            progress,
            *args,
            quiet=quiet,
            samples=samples,
            desc=trial.name,
            on_epoch=on_epoch,
        )
    # The finished model keeps its progress counters: a run killed before its result.json is
    # written resumes from it without training again.
    check_finite(model, progress.step)
    save_model(directory / CHECKPOINT, model, data.vocab, asdict(config), **asdict(progress))
    state.unlink(missing_ok=True)
    measured = {name: perplexity(model, rows[name], device, sharded=True) for name in SPLITS}
    finite = {name: p if math.isfinite(p) else None for name, p in measured.items()}
    return LmResult(
        perplexity=Perplexities(**finite),
        steps=progress.step,
        epochs_completed=progress.epoch,
        train_tokens=progress.tokens,
        train_seconds=progress.seconds,
        train_tokens_per_second=progress.tokens_per_second,
    )


def _resume(
    directory: Path, model: LanguageModel, optimizer: torch.optim.Optimizer, config: LmConfig
) -> Progress:
    """The last progress saved in `directory`, loaded into `model` and `optimizer`: the training
    state, else a finished model; a fresh start when there is none, or when it was saved by a run
    with other settings. Under torchrun rank 0 reads it and sends it to the others."""

    def read() -> tuple[Path, dict] | None:
        for path in (directory / STATE, directory / CHECKPOINT):
            if path.is_file() or path.is_symlink():
                state = load_checkpoint(path, root=directory.parent.parent)
                if state["config"] == asdict(config) and "step" in state:
                    return path, state
        return None

    found = distributed.from_main(read)
    if found is None:
        return Progress()
    path, state = found
    if state["model_args"] != asdict(model.config):
        raise InputError(f"{path}: a model other than this run's settings make")
    check_weights(path, model, state["model"])
    model.load_state_dict(state["model"])
    if "optimizer" in state:  # a finished model has none, and takes no more steps
        _load_optimizer(path, optimizer, state["optimizer"])
    return _progress(path, state)


def _load_optimizer(path: Path, optimizer: torch.optim.Optimizer, state: Any) -> None:
    """The saved optimiser state, refused unless each of its tensors fits its parameter."""
    try:
        optimizer.load_state_dict(state)
    except (ValueError, TypeError, KeyError, AttributeError, RuntimeError) as e:
        raise InputError(f"{path}: its optimiser state does not fit the model ({e})") from None
    for group in optimizer.param_groups:
        for param in group["params"]:
            for value in optimizer.state[param].values():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                    raise InputError(f"{path}: its optimiser state does not fit the model")


def _progress(path: Path, state: dict) -> Progress:
    """The saved progress counters, each checked by `Progress.RULES`."""
    try:
        return Progress(**{f.name: state.get(f.name) for f in fields(Progress)})
    except InputError as e:
        raise InputError(f"{path}: its progress counter {e}") from None


def summarize(config: LmConfig, results: list[LmResult], run: RunDir) -> Summary:
    data = load_data(config)
    if isinstance(config, TrainConfig):
        return _train_summary(config, results[0], data)
    return _study_summary(config, results, data, run)


PERPLEXITY_COLUMNS = {"layers": "layers", "direction": "direction", **{s: s for s in SPLITS}}


def _train_summary(config: TrainConfig, result: LmResult, data: Data) -> Summary:
    sizes = {name: len(getattr(data.sentences, name)) for name in SPLITS}
    results = asdict(result) | {"vocab_size": len(data.vocab), "sentences": sizes}
    row = {"layers": config.layers, "direction": config.direction, **result.perplexity}
    md = "# LSTM language model\n\nPerplexity:\n\n" + table([row], PERPLEXITY_COLUMNS)
    md += f"\n{result.train_tokens_per_second:,.0f} training tokens/s.\n"
    return Summary(results, md)


def _study_summary(
    config: StudyConfig, results: list[LmResult], data: Data, run: RunDir
) -> Summary:
    # One stream of draws for the whole study, in grid order: a fresh generator per model would
    # give every model the same draws, and at temperature 10 (nearly uniform) the same sentence.
    sampler = torch.Generator().manual_seed(config.seed)
    models = []
    for trial, result in zip(trials(config), results, strict=True):
        checkpoint = trial_dir(run.path, trial) / CHECKPOINT
        model, vocab = load_model(checkpoint, resolve_device(config.device), root=run.path)
        entry = {"layers": trial.layers, "direction": trial.direction} | asdict(result)
        models.append(entry | _samples(model, vocab, config, sampler))
    return Summary({"models": models, "vocab_size": len(data.vocab)}, _study_markdown(models))


def _samples(
    model: LanguageModel, vocab: Vocabulary, config: StudyConfig, sampler: torch.Generator
) -> dict:
    start, stop_at_eos = words(config.start), config.stop_at_eos

    def sentence(t: float) -> str:
        return " ".join(
            generate(model, vocab, start, config.length, t, sampler, stop_at_eos=stop_at_eos)
        )

    generations = [{"temperature": t, "text": sentence(t)} for t in STUDY_TEMPERATURES]
    scored = [g["text"] for g in generations] + [config.sentence]
    return {
        "generations": generations,
        "probabilities": [_probability(model, vocab, text) for text in scored],
    }


def _probability(model: LanguageModel, vocab: Vocabulary, text: str) -> dict:
    p = sentence_probability(model, vocab, words(text))
    return {
        "sentence": text,
        "probability": p.probability,
        "log_probability": p.log_probability,
        "probability_with_eos": p.probability_eos,
        "log_probability_with_eos": p.log_probability_eos,
        "unknown_words": p.unknown,
    }


def _study_markdown(models: list[dict]) -> str:
    rows = [{"layers": m["layers"], "direction": m["direction"], **m["perplexity"]} for m in models]
    md = "# LSTM language-model study\n\nPerplexity:\n\n" + table(rows, PERPLEXITY_COLUMNS)
    generations = [m | g for m in models for g in m["generations"]]
    md += "\n## Generated sentences (natural reading order)\n\n"
    md += table(
        generations,
        {
            "layers": "layers",
            "direction": "direction",
            "temperature": "temperature",
            "sentence": "text",
        },
    )
    probabilities = [m | p for m in models for p in m["probabilities"]]
    md += "\n## Sentence probabilities (from <START> through the last word)\n\n"
    md += table(
        probabilities,
        {
            "layers": "layers",
            "direction": "direction",
            "sentence": "sentence",
            "probability": "probability",
            "log p": "log_probability",
        },
    )
    return md


TRAIN_EXPERIMENT = Experiment("lm train", TrainConfig, trials, run_trial, LmResult, summarize)
EXPERIMENT = Experiment("lm study", StudyConfig, trials, run_trial, LmResult, summarize)
