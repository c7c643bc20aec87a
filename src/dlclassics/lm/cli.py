"""`dlclassics lm train|study|generate|prob|next`."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import torch
from torch.utils.tensorboard import SummaryWriter

from dlclassics.errors import InputError
from dlclassics.lm.corpus import default_corpus, read_sentences, words
from dlclassics.lm.experiment import Data, fit, prepare
from dlclassics.lm.generate import generate as generate_words
from dlclassics.lm.generate import next_words, sentence_probability
from dlclassics.lm.model import LanguageModel, ModelConfig, load_model
from dlclassics.lm.train import Interrupted, TrainConfig
from dlclassics.options import (
    NONNEGATIVE_FLOAT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    bf16_option,
    device_option,
    run_options,
)
from dlclassics.report import markdown_table
from dlclassics.rundir import open_run
from dlclassics.runtime import resolve_bf16, resolve_device

# The settings `--resume` takes from the interrupted run rather than from the command line.
TRAINING_KEYS = (
    "corpus",
    "vocab_size",
    "max_length",
    "embedding_size",
    "hidden_size",
    "epochs",
    "batch_size",
    "lr",
    "max_steps",
    "bf16",
    "seed",
)


@click.group()
def lm() -> None:
    """LSTM language models, forward and reverse: perplexity, generation, probabilities."""


def training_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--corpus",
            type=click.Path(path_type=Path, dir_okay=False),
            help="UTF-8 text, one sentence per line (default: Simple English Wikipedia, "
            "downloaded once into $DLCLASSICS_DATA).",
        ),
        click.option("--vocab-size", type=POSITIVE_INT, default=10_000, show_default=True),
        click.option("--max-length", type=POSITIVE_INT, help="Drop longer sentences (words)."),
        click.option("--embedding-size", type=POSITIVE_INT, default=300, show_default=True),
        click.option("--hidden-size", type=POSITIVE_INT, default=256, show_default=True),
        click.option("--epochs", type=POSITIVE_INT, default=10, show_default=True),
        click.option("--batch-size", type=POSITIVE_INT, default=128, show_default=True),
        click.option("--lr", type=POSITIVE_FLOAT, default=0.001, show_default=True),
        click.option(
            "--max-steps", type=POSITIVE_INT, help="Stop after this many optimiser steps."
        ),
        bf16_option,
        click.option(
            "--resume",
            type=click.Path(path_type=Path, file_okay=False, exists=True),
            help="Continue the interrupted run in this directory, with its settings.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _settings(params: dict, command: str, keys: tuple[str, ...], device: torch.device) -> dict:
    """The run's settings: the command line's, or for --resume those of the interrupted run."""
    resume = params.pop("resume")
    if resume is not None:
        try:
            saved = json.loads((resume / "config.json").read_text())
            if saved.get("command") != command:
                raise ValueError
            return params | {key: saved[key] for key in keys} | {"out": resume}
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"--resume {resume} is not an '{command}' run directory") from e
    params["bf16"] = resolve_bf16(params["bf16"], device)
    params["corpus"] = str(params["corpus"] or default_corpus())
    return params


def _train_config(s: dict) -> TrainConfig:
    return TrainConfig(s["epochs"], s["batch_size"], s["lr"], s["max_steps"], s["bf16"], s["seed"])


def _shape(s: dict, data: Data, layers: int, direction: str) -> ModelConfig:
    return ModelConfig(len(data.vocab), layers, direction, s["embedding_size"], s["hidden_size"])


def _load_data(s: dict) -> Data:
    return prepare(read_sentences(Path(s["corpus"]), s["max_length"]), s["vocab_size"], s["seed"])


def _interrupted(e: Interrupted, command: str, run_path: Path) -> None:
    click.echo(
        f"interrupted: training state saved to {e.path}; "
        f"continue with: dlclassics {command} --resume {run_path}",
        err=True,
    )
    raise click.exceptions.Exit(130)


def _perplexity_line(p: dict) -> str:
    return f"train {p['train']:.2f}, val {p['val']:.2f}, test {p['test']:.2f}"


@lm.command(name="train")
@click.option("--layers", type=click.IntRange(1, 2), default=1, show_default=True)
@click.option(
    "--direction", type=click.Choice(["forward", "reverse"]), default="forward", show_default=True
)
@training_options
@device_option
@run_options
def train_cmd(device: str, **params) -> None:
    """Train one LSTM language model and report its perplexities."""
    dev = resolve_device(device)
    keys = ("layers", "direction", *TRAINING_KEYS)
    s = _settings(params, "lm train", keys, dev)
    data = _load_data(s)
    with open_run(s["out"], "lm train", {k: s[k] for k in keys} | {"device": str(dev)}) as run:
        shape = _shape(s, data, s["layers"], s["direction"])
        with SummaryWriter(run.tensorboard_dir) as tb:
            try:
                _, results = fit(data, shape, _train_config(s), dev, run.path, tb, s["quiet"])
            except Interrupted as e:
                _interrupted(e, "lm train", run.path)
        results |= {"vocab_size": len(data.vocab), "sentences": _sizes(data)}
        row = [s["layers"], s["direction"], *results["perplexity"].values()]
        md = "# LSTM language model\n\nPerplexity:\n\n"
        md += markdown_table(["layers", "direction", "train", "val", "test"], [row])
        md += f"\n{results['train_tokens_per_second']:,.0f} training tokens/s.\n"
        run.save_results(results, md)
    click.echo(f"perplexity: {_perplexity_line(results['perplexity'])}")
    click.echo(f"wrote {run.path}")


def _sizes(data: Data) -> dict:
    return {name: len(getattr(data.splits, name)) for name in ("train", "val", "test")}


STUDY_MODELS = [(1, "forward"), (1, "reverse"), (2, "forward"), (2, "reverse")]
STUDY_TEMPERATURES = (0.1, 1.0, 10.0)


@lm.command()
@click.option("--start", default="love i", show_default=True, help="Words to generate from.")
@click.option("--length", type=POSITIVE_INT, default=7, show_default=True)
@click.option("--sentence", default="love i cupcakes", show_default=True, help="Also scored.")
@training_options
@device_option
@run_options
def study(device: str, start: str, length: int, sentence: str, **params) -> None:
    """The original study: 1 and 2 layers x forward and reverse, perplexity and samples."""
    dev = resolve_device(device)
    keys = ("start", "length", "sentence", *TRAINING_KEYS)
    s = _settings(
        params | {"start": start, "length": length, "sentence": sentence}, "lm study", keys, dev
    )
    data = _load_data(s)
    with open_run(s["out"], "lm study", {k: s[k] for k in keys} | {"device": str(dev)}) as run:
        models = []
        # One stream of draws for the whole study: a fresh generator per model would give every
        # model the same draws, and at temperature 10 (nearly uniform) the same sentence.
        sampler = torch.Generator().manual_seed(s["seed"])
        with SummaryWriter(run.tensorboard_dir) as tb:
            for layers, direction in STUDY_MODELS:
                name = f"layers{layers}-{direction}"
                shape = _shape(s, data, layers, direction)
                try:
                    model, fitted = fit(
                        data,
                        shape,
                        _train_config(s),
                        dev,
                        run.path / "models" / name,
                        tb,
                        s["quiet"],
                        tag=f"{name}/",
                    )
                except Interrupted as e:
                    _interrupted(e, "lm study", run.path)
                entry = {"layers": layers, "direction": direction} | fitted
                models.append(entry | _samples(model, data, s, sampler))
                click.echo(f"{name}: perplexity {_perplexity_line(fitted['perplexity'])}")
        md = _study_markdown(models)
        run.save_results({"models": models, "vocab_size": len(data.vocab)}, md)
    click.echo(md if not s["quiet"] else "")
    click.echo(f"wrote {run.path}")


def _samples(model: LanguageModel, data: Data, s: dict, generator: torch.Generator) -> dict:
    generations = [
        {
            "temperature": t,
            "text": " ".join(
                generate_words(model, data.vocab, words(s["start"]), s["length"], t, generator)
            ),
        }
        for t in STUDY_TEMPERATURES
    ]
    scored = [g["text"] for g in generations] + [s["sentence"]]
    return {
        "generations": generations,
        "probabilities": [_probability(model, data, t) for t in scored],
    }


def _probability(model: LanguageModel, data: Data, text: str) -> dict:
    p = sentence_probability(model, data.vocab, words(text))
    return {
        "sentence": text,
        "probability": p.probability,
        "log_probability": p.log_probability,
        "probability_with_eos": p.probability_eos,
        "log_probability_with_eos": p.log_probability_eos,
        "unknown_words": p.unknown,
    }


def _study_markdown(models: list[dict]) -> str:
    rows = [[m["layers"], m["direction"], *m["perplexity"].values()] for m in models]
    md = "# LSTM language-model study\n\nPerplexity:\n\n"
    md += markdown_table(["layers", "direction", "train", "val", "test"], rows)
    gen = [
        [m["layers"], m["direction"], g["temperature"], g["text"]]
        for m in models
        for g in m["generations"]
    ]
    md += "\n## Generated sentences (natural reading order)\n\n"
    md += markdown_table(["layers", "direction", "temperature", "sentence"], gen)
    probs = [
        [m["layers"], m["direction"], p["sentence"], p["probability"], p["log_probability"]]
        for m in models
        for p in m["probabilities"]
    ]
    md += "\n## Sentence probabilities (from <START> through the last word)\n\n"
    md += markdown_table(["layers", "direction", "sentence", "probability", "log p"], probs)
    return md


def model_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--model",
        "model_dir",
        required=True,
        type=click.Path(path_type=Path, file_okay=False),
        help="An `lm train` run directory, or one of an `lm study` run's models/*.",
    )(f)


def _unknown_note(unknown: list[str]) -> str:
    return f" (unknown, scored as <UNK>: {', '.join(unknown)})" if unknown else ""


@lm.command(name="generate")
@model_option
@click.option(
    "--start", default="", help="Given words; for a reverse model, the end of the sentence."
)
@click.option("--length", type=POSITIVE_INT, default=7, show_default=True, help="Words in all.")
@click.option(
    "--temperature",
    type=NONNEGATIVE_FLOAT,
    default=1.0,
    show_default=True,
    help="Sample from softmax(logits / T); 0 is greedy.",
)
@click.option(
    "--count", type=POSITIVE_INT, default=1, show_default=True, help="Sentences to sample."
)
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
def generate_cmd(
    model_dir: Path,
    start: str,
    length: int,
    temperature: float,
    count: int,
    seed: int,
    device: str,
) -> None:
    """Sample sentences that contain the --start words."""
    model, vocab = load_model(model_dir, resolve_device(device))
    given = words(start)
    note = _unknown_note(vocab.unknown(given))
    if note:
        click.echo(f"note:{note}", err=True)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        click.echo(" ".join(generate_words(model, vocab, given, length, temperature, generator)))


@lm.command()
@model_option
@click.argument("sentences", nargs=-1, required=True)
@device_option
def prob(model_dir: Path, sentences: tuple[str, ...], device: str) -> None:
    """Probability of each sentence, from <START> through its last word, and with <EOS>."""
    model, vocab = load_model(model_dir, resolve_device(device))
    for text in sentences:
        tokens = words(text)
        if not tokens:
            raise InputError(f"sentence {text!r} has no words")
        p = sentence_probability(model, vocab, tokens)
        click.echo(
            f"{p.sentence}: p = {p.probability:.6g} (log p = {p.log_probability:.4f}); "
            f"with <EOS>: p = {p.probability_eos:.6g} (log p = {p.log_probability_eos:.4f})"
            + _unknown_note(p.unknown)
        )


@lm.command(name="next")
@model_option
@click.argument("text", required=False)
@click.option("--top-k", type=POSITIVE_INT, default=10, show_default=True)
@device_option
def next_cmd(model_dir: Path, text: str | None, top_k: int, device: str) -> None:
    """The likeliest next words (for a reverse model: the word before). No TEXT: read lines."""
    model, vocab = load_model(model_dir, resolve_device(device))

    def answer(line: str) -> None:
        given = words(line)
        ranked = next_words(model, vocab, given, top_k)
        click.echo(
            ", ".join(f"{w} {p:.4f}" for w, p in ranked) + _unknown_note(vocab.unknown(given))
        )

    if text is not None:
        answer(text)
        return
    stdin = click.get_text_stream("stdin")
    interactive = stdin.isatty()
    while True:
        if interactive:
            click.echo("> ", nl=False)
        try:
            line = stdin.readline()
        except UnicodeDecodeError:
            raise InputError("standard input is not UTF-8 text") from None
        if not line:
            break
        answer(line)
