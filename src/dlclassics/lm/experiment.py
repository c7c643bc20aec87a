"""`lm train` and `lm study`: their trials, one trial's training, and their summaries.

`lm train` is one trial; `lm study` is the original study, four trials: 1 and 2 layers x forward
and reverse. Each trial trains one model in its own folder, resuming from the last training state
saved there, and saves it as `checkpoint.pt`; the study's sentences are drawn in `summarize`.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TypedDict, TypeVar

import torch

from dlclassics.core import distributed
from dlclassics.core.bounds import check_memory
from dlclassics.core.errors import InputError
from dlclassics.core.machine import Machine, seed_everything
from dlclassics.core.progress import status
from dlclassics.core.rundir import CHECKPOINT, RunDir
from dlclassics.core.tables import table
from dlclassics.lm.batches import encode
from dlclassics.lm.config import LmConfig, LmStudyConfig, LmTrainConfig
from dlclassics.lm.corpus import (
    Sentences,
    Vocabulary,
    default_corpus,
    read_corpus,
    split,
)
from dlclassics.lm.evaluate import perplexity
from dlclassics.lm.generate import generate, sentence_probability
from dlclassics.lm.model import LanguageModel, ModelConfig, load_language_model
from dlclassics.lm.train import LoopConfig, OnEval, fit
from dlclassics.lm.words import words
from dlclassics.protocol import Study, Summary
from dlclassics.study import trial_dir

SPLITS = ("train", "val", "test")
C = TypeVar("C", bound=LmConfig)

STUDY_TEMPERATURES = (0.1, 1.0, 10.0)


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


def train_trials(config: LmTrainConfig) -> list[LmTrial]:
    return [LmTrial(config.layers, config.direction)]


def study_trials(config: LmStudyConfig) -> list[LmTrial]:
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


def trial_model(config: LmConfig, trial: LmTrial, vocab_size: int) -> ModelConfig:
    return ModelConfig(
        vocab_size, trial.layers, trial.direction, config.embedding_size, config.hidden_size
    )


def check_cost(config: LmConfig, data: Data, trials: list[LmTrial]) -> None:
    """An InputError for a model of `trials` (ModelConfig checks its parameter count) or a
    training batch that cannot fit. A batch of the longest sentences keeps, per position, the
    embedding, the LSTM's gates and states of each layer, and the logits with their softmax and
    gradient."""
    longest = max(len(s) for s in data.sentences.train) + 1  # <START> or <EOS>
    for trial in trials:
        model = trial_model(config, trial, len(data.vocab))
        per_token = model.embedding_size + 10 * model.hidden_size * model.layers
        per_token += 3 * model.vocab_size
        nbytes = 4 * config.batch_size * longest * per_token  # float32
        check_memory(f"a batch of {config.batch_size:,} sentences of {longest:,} words", nbytes)


def run_trial(
    config: LmConfig,
    trial: LmTrial,
    directory: Path,
    quiet: bool = False,
    machine: Machine | None = None,
    on_eval: OnEval | None = None,
) -> LmResult:
    """Train this trial's model (on from the last state saved, if any; see `train.fit`), save it
    as `directory/checkpoint.pt` and measure its perplexity on every split. `on_eval` is for
    `tune`: it gets each epoch's number and validation perplexity.

    It computes on `machine` (None: this one's default). Ctrl-C saves the training state and
    raises Interrupted. Under torchrun every rank calls it;
    the model is trained and measured by all of them together.
    """
    data = load_data(config)
    check_cost(config, data, [trial])
    machine = machine or Machine.here()
    device = distributed.local(torch.device(machine.device))  # under torchrun, each its own GPU
    with status(trial.name, "encoding the corpus", quiet):
        rows = {
            name: encode(getattr(data.sentences, name), data.vocab, trial.direction)
            for name in SPLITS
        }
    seed_everything(config.seed)
    model = LanguageModel(trial_model(config, trial, len(data.vocab))).to(device)
    sampler = torch.Generator().manual_seed(config.seed)

    def samples() -> list[str]:
        # Sentences as the model ends them: the progress log shows what it has learnt.
        return [
            " ".join(generate(model, data.vocab, [], 20, 1.0, sampler, stop_at_eos=True))
            for _ in range(3)
        ]

    progress = fit(
        model,
        data.vocab,
        (rows["train"], rows["val"]),
        LoopConfig.of(config, machine.bf16),
        asdict(config),
        directory,
        device,
        quiet,
        desc=trial.name,
        samples=samples,
        on_eval=on_eval,
    )
    measured = {}
    for name in SPLITS:
        with status(trial.name, f"evaluating {name}", quiet):
            measured[name] = perplexity(model, rows[name], device, sharded=True)
    finite = {name: p if math.isfinite(p) else None for name, p in measured.items()}
    return LmResult(
        perplexity=Perplexities(**finite),
        steps=progress.step,
        epochs_completed=progress.epoch,
        train_tokens=progress.tokens,
        train_seconds=progress.seconds,
        train_tokens_per_second=progress.tokens_per_second,
    )


def prepared(config: C, trials: Callable[[C], list[LmTrial]]) -> C:
    """`config` on its corpus (the default one downloaded now), checked before the run directory
    exists: the corpus readable (for a resume, the same as before), and every model of `trials`
    and a batch of it within this machine's memory; with the corpus's sha256 recorded, which a
    resume must find again."""
    if config.corpus is None:
        config = replace(config, corpus=str(default_corpus().resolve()))
    data = load_data(config)
    check_cost(config, data, trials(config))
    return replace(config, corpus_sha256=data.sha256)


PERPLEXITY_COLUMNS = {"layers": "layers", "direction": "direction", **{s: s for s in SPLITS}}


def summarize_train(
    config: LmTrainConfig, results: list[LmResult], run: RunDir, machine: Machine | None = None
) -> Summary:
    """The model's perplexities and the corpus's sizes (`machine` is unused: nothing is
    computed again)."""
    result, data = results[0], load_data(config)
    sizes = {name: len(getattr(data.sentences, name)) for name in SPLITS}
    results = asdict(result) | {"vocab_size": len(data.vocab), "sentences": sizes}
    row = {"layers": config.layers, "direction": config.direction, **result.perplexity}
    md = "# LSTM language model\n\nPerplexity:\n\n" + table([row], PERPLEXITY_COLUMNS)
    md += f"\n{result.train_tokens_per_second:,.0f} training tokens/s.\n"
    from dlclassics.lm import plots  # TensorBoard's reader loads only when a summary is written

    plots.write_plots(run, train_trials(config), [result.perplexity])
    return Summary(results, md)


def summarize_study(
    config: LmStudyConfig, results: list[LmResult], run: RunDir, machine: Machine | None = None
) -> Summary:
    data = load_data(config)
    device = torch.device((machine or Machine.here()).device)
    # One stream of draws for the whole study, in grid order: a fresh generator per model would
    # give every model the same draws, and at temperature 10 (nearly uniform) the same sentence.
    sampler = torch.Generator().manual_seed(config.seed)
    models = []
    for trial, result in zip(study_trials(config), results, strict=True):
        checkpoint = trial_dir(run.path, trial) / CHECKPOINT
        model, vocab = load_language_model(checkpoint, device, root=run.path)
        entry = {"layers": trial.layers, "direction": trial.direction} | asdict(result)
        models.append(entry | _samples(model, vocab, config, sampler))
    from dlclassics.lm import plots  # TensorBoard's reader loads only when a summary is written

    plots.write_plots(run, study_trials(config), [r.perplexity for r in results])
    return Summary({"models": models, "vocab_size": len(data.vocab)}, _study_markdown(models))


def _samples(
    model: LanguageModel, vocab: Vocabulary, config: LmStudyConfig, sampler: torch.Generator
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
        "probability_with_eos": p.probability_with_eos,
        "log_probability_with_eos": p.log_probability_with_eos,
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
            "log probability": "log_probability",
        },
    )
    return md


def _perplexity_line(p: Perplexities) -> str:
    # None: a perplexity that overflowed (results.json holds null, not JSON's missing inf)
    shown = {split: "overflowed" if v is None else f"{v:.2f}" for split, v in p.items()}
    return f"train {shown['train']}, val {shown['val']}, test {shown['test']}"


def train_lines(config: LmTrainConfig, summary: Summary) -> list[str]:
    return [f"perplexity: {_perplexity_line(summary.results['perplexity'])}"]


def study_lines(config: LmStudyConfig, summary: Summary) -> list[str]:
    models = summary.results["models"]
    lines = [
        f"{trial.name}: perplexity {_perplexity_line(model['perplexity'])}"
        for trial, model in zip(study_trials(config), models, strict=True)
    ]
    return [*lines, summary.markdown]


TRAIN_STUDY = Study(
    train_trials,
    run_trial,
    LmResult,
    summarize_train,
    train_lines,
    prepare=functools.partial(prepared, trials=train_trials),
)
STUDY = Study(
    study_trials,
    run_trial,
    LmResult,
    summarize_study,
    study_lines,
    prepare=functools.partial(prepared, trials=study_trials),
)
