"""`dlclassics lm train|study|generate|prob|next`."""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import torch

from dlclassics import distributed
from dlclassics.errors import InputError
from dlclassics.lm.corpus import default_corpus, words
from dlclassics.lm.experiment import (
    EXPERIMENT,
    TRAIN_EXPERIMENT,
    LmConfig,
    StudyConfig,
    TrainConfig,
    check_cost,
    load_data,
    trials,
)
from dlclassics.lm.generate import MAX_TEXT, Sampling, next_words, sentence_probability
from dlclassics.lm.generate import generate as generate_words
from dlclassics.lm.model import load_model
from dlclassics.lm.train import Interrupted
from dlclassics.options import (
    absolute,
    bf16_option,
    config_option,
    device_config_option,
    device_option,
    make_config,
    resume_option,
    resumed_config,
    run_options,
    scale_options,
)
from dlclassics.rundir import open_run
from dlclassics.runtime import resolve_bf16, resolve_device
from dlclassics.study import ONE_PROCESS, Experiment, Scale, Summary, run_study


@click.group()
def lm() -> None:
    """LSTM language models, forward and reverse: perplexity, generation, probabilities."""


def training_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        config_option(
            LmConfig,
            "corpus",
            type=click.Path(path_type=Path, dir_okay=False),
            help="UTF-8 text, one sentence per line (default: Simple English Wikipedia, "
            "downloaded once into $DLCLASSICS_DATA).",
        ),
        config_option(LmConfig, "vocab_size"),
        config_option(LmConfig, "max_length", help="Drop longer sentences (words)."),
        config_option(LmConfig, "embedding_size"),
        config_option(LmConfig, "hidden_size"),
        config_option(LmConfig, "epochs"),
        config_option(LmConfig, "batch_size"),
        config_option(LmConfig, "lr"),
        config_option(LmConfig, "max_steps", help="Stop after this many optimiser steps."),
        config_option(
            LmConfig,
            "checkpoint_every",
            help="Save the training state every this many steps (and after every epoch), so "
            "a killed run resumes from there.",
        ),
        bf16_option(LmConfig),
        resume_option,
        device_config_option(LmConfig),
        run_options(LmConfig),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _config(
    config_type: type[LmConfig], command: str, params: dict
) -> tuple[LmConfig, Path | None]:
    """The run's config and directory: the command line's, or for --resume the interrupted run's.
    Under torchrun, the process group is joined here (`distributed.start`)."""
    resume = params["resume"]
    if resume is not None:
        config = resumed_config(config_type, command, resume)
        distributed.start(config.device, config.batch_size)  # the machine may have changed since
        return config, resume
    device = distributed.start(params["device"], params["batch_size"])
    corpus = absolute(params["corpus"] or default_corpus())
    bf16 = resolve_bf16(params["bf16"], device)
    return make_config(config_type, params, corpus=corpus, device=str(device), bf16=bf16), params[
        "out"
    ]


def _run(
    experiment: Experiment,
    config: LmConfig,
    out: Path | None,
    quiet: bool,
    scale: Scale = ONE_PROCESS,
) -> tuple[Path, Summary] | None:
    """Run the trials and write the summary; a Ctrl-C exits 130 saying how to resume. Under
    torchrun, the ranks but 0 return None once the trials are trained: rank 0 summarises."""
    data = load_data(config)  # an edited corpus, for a resume, fails here too
    check_cost(config, data)  # bad data or sizes fail before a run directory
    config = replace(config, corpus_sha256=data.sha256)  # what a resume must train on
    command = experiment.command
    with open_run(out, command, config) as run:
        try:
            summary = run_study(experiment, config, run, quiet, scale)
        except Interrupted as e:
            if distributed.is_main():
                again = f"--resume {run.path}" if not scale.shared else "the same options"
                click.echo(
                    f"interrupted: training state saved to {e.path}; "
                    f"continue with: dlclassics {command} {again}",
                    err=True,
                )
            raise click.exceptions.Exit(130) from None
    return None if summary is None else (run.path, summary)


def _perplexity_line(p: dict) -> str:
    # None: a perplexity that overflowed (results.json holds null, not JSON's missing inf)
    shown = {split: "overflowed" if v is None else f"{v:.2f}" for split, v in p.items()}
    return f"train {shown['train']}, val {shown['val']}, test {shown['test']}"


@lm.command(name="train")
@config_option(TrainConfig, "layers")
@config_option(TrainConfig, "direction")
@training_options
def train_cmd(**params: Any) -> None:
    """Train one LSTM language model and report its perplexities."""
    config, out = _config(TrainConfig, "lm train", params)
    ran = _run(TRAIN_EXPERIMENT, config, out, params["quiet"])
    if ran is None:
        return
    path, summary = ran
    click.echo(f"perplexity: {_perplexity_line(summary.results['perplexity'])}")
    click.echo(f"wrote {path}")


@lm.command()
@config_option(StudyConfig, "start", help="Words to generate from.")
@config_option(StudyConfig, "length", help="Words in each sentence.")
@config_option(
    StudyConfig, "stop_at_eos", is_flag=True, help="End a sentence early where the model says so."
)
@config_option(StudyConfig, "sentence", help="Also scored.")
@training_options
@scale_options
def study(scale: Scale, **params: Any) -> None:
    """The original study: 1 and 2 layers x forward and reverse, perplexity and samples."""
    if scale.shared and params["resume"] is not None:
        raise click.UsageError(
            "--resume is for one-process runs; a shared study goes on when "
            "its workers are started again"
        )
    config, out = _config(StudyConfig, "lm study", params)
    ran = _run(EXPERIMENT, config, out, params["quiet"], scale)
    if ran is None:
        return
    path, summary = ran
    for trial, model in zip(trials(config), summary.results["models"], strict=True):
        click.echo(f"{trial.name}: perplexity {_perplexity_line(model['perplexity'])}")
    if not params["quiet"]:
        click.echo(summary.markdown)
    click.echo(f"wrote {path}")


def model_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--model",
        "model_path",
        required=True,
        type=click.Path(path_type=Path),
        help="A checkpoint, a trial folder (an `lm study` run's trials/*), or an `lm train` run.",
    )(f)


def _words(text: str, what: str) -> list[str]:
    if len(text) > MAX_TEXT:
        raise InputError(f"{what} is over {MAX_TEXT:,} characters")
    return words(text)


def _unknown_note(unknown: list[str]) -> str:
    return f" (unknown, scored as <UNK>: {', '.join(unknown)})" if unknown else ""


@lm.command(name="generate")
@model_option
@config_option(
    Sampling,
    "start",
    show_default=False,
    help="Given words; for a reverse model, the end of the sentence.",
)
@config_option(Sampling, "length", help="Words in all.")
@config_option(
    Sampling, "stop_at_eos", is_flag=True, help="End a sentence early where the model says <EOS>."
)
@config_option(Sampling, "allow_unk", is_flag=True, help="Let <UNK> (an unknown word) be drawn.")
@config_option(Sampling, "temperature", help="Sample from softmax(logits / T); 0 is greedy.")
@config_option(Sampling, "count", help="Sentences to sample.")
@config_option(Sampling, "seed", help="Random seed.")
@device_option
def generate_cmd(
    model_path: Path,
    start: str,
    length: int,
    temperature: float,
    count: int,
    seed: int,
    device: str,
    stop_at_eos: bool,
    allow_unk: bool,
) -> None:
    """Sample sentences of --length words that contain the --start words."""
    Sampling(start, length)  # checked before the model is loaded
    model, vocab = load_model(model_path, resolve_device(device))
    given = words(start)
    note = _unknown_note(vocab.unknown(given))
    if note:
        click.echo(f"note:{note}", err=True)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        options = {"stop_at_eos": stop_at_eos, "allow_unk": allow_unk}
        sentence = generate_words(model, vocab, given, length, temperature, generator, **options)
        click.echo(" ".join(sentence))


@lm.command()
@model_option
@click.argument("sentences", nargs=-1, required=True)
@device_option
def prob(model_path: Path, sentences: tuple[str, ...], device: str) -> None:
    """Probability of each sentence, from <START> through its last word, and with <EOS>."""
    model, vocab = load_model(model_path, resolve_device(device))
    for text in sentences:
        tokens = _words(text, "a sentence")
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
# More than the vocabulary lists it all.
@click.option(
    "--top-k", type=LmConfig.RULES["vocab_size"].click_type, default=10, show_default=True
)
@device_option
def next_cmd(model_path: Path, text: str | None, top_k: int, device: str) -> None:
    """The likeliest next words (for a reverse model: the word before), <EOS> included, with the
    model's probabilities (those `prob` multiplies). No TEXT: read lines."""
    model, vocab = load_model(model_path, resolve_device(device))

    def answer(line: str) -> None:
        given = _words(line, "TEXT")
        ranked = next_words(model, vocab, given, top_k)
        click.echo(
            ", ".join(f"{w} {p:.4f}" for w, p in ranked) + _unknown_note(vocab.unknown(given))
        )

    if text is not None:
        answer(text)
        return
    stdin = click.open_file("-")  # standard input (click 8.5 deprecates get_text_stream)
    interactive = stdin.isatty()
    while True:
        if interactive:
            click.echo("> ", nl=False)
        try:
            line = stdin.readline(MAX_TEXT + 1)  # /dev/zero has no line end
        except UnicodeDecodeError:
            raise InputError("standard input is not UTF-8 text") from None
        if not line:
            break
        answer(line.rstrip("\n"))
