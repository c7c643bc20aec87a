"""`dlclassics lm generate|prob|next`: a trained language model, asked (`lm train` and
`lm study` are the registry's, in `dlclassics.experiments`).

The model and torch load when a command runs, not when the commands are listed.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from dlclassics.core.errors import InputError
from dlclassics.lm.config import MAX_TEXT, MAX_WORDS, Sampling
from dlclassics.lm.words import words
from dlclassics.options import config_option, device_option


@click.group()
def lm() -> None:
    """LSTM language models, forward and reverse: perplexity, generation, probabilities."""


def model_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--model",
        "model_path",
        required=True,
        type=click.Path(path_type=Path),
        help="A checkpoint, a trial folder (an `lm study` run's trials/*), or an `lm train` run.",
    )(f)


def text_words(text: str, what: str) -> list[str]:
    if len(text) > MAX_TEXT:
        raise InputError(f"{what} is over {MAX_TEXT:,} characters")
    return words(text)


def _unknown_note(unknown: list[str]) -> str:
    return f" (unknown, scored as <UNK>: {', '.join(unknown)})" if unknown else ""


def _load(model_path: Path, device: str) -> tuple[Any, Any]:
    from dlclassics.core.machine import resolve_device
    from dlclassics.lm.model import load_language_model

    return load_language_model(model_path, resolve_device(device))


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
def generate_cmd(model_path: Path, device: str, **settings: Any) -> None:
    """Sample sentences of --length words that contain the --start words."""
    import torch

    from dlclassics.lm.generate import generate

    sampling = Sampling(**settings)  # checked before the model is loaded
    model, vocab = _load(model_path, device)
    given = words(sampling.start)
    unknown = vocab.unknown(given)
    if unknown:
        click.echo(f"note: unknown, generated from as <UNK>: {', '.join(unknown)}", err=True)
    generator = torch.Generator().manual_seed(sampling.seed)
    options = {"stop_at_eos": sampling.stop_at_eos, "allow_unk": sampling.allow_unk}
    for _ in range(sampling.count):
        sentence = generate(
            model, vocab, given, sampling.length, sampling.temperature, generator, **options
        )
        click.echo(" ".join(sentence))


@lm.command()
@model_option
@click.argument("sentences", nargs=-1, required=True)
@device_option
def prob(model_path: Path, sentences: tuple[str, ...], device: str) -> None:
    """Probability of each sentence, from <START> through its last word, and with <EOS>."""
    from dlclassics.lm.generate import sentence_probability

    model, vocab = _load(model_path, device)
    for text in sentences:
        tokens = text_words(text, "a sentence")
        if not tokens:
            raise InputError(f"sentence {text!r} has no words")
        p = sentence_probability(model, vocab, tokens)
        click.echo(
            f"{p.sentence}: p = {p.probability:.6g} (log p = {p.log_probability:.4f}); "
            f"with <EOS>: p = {p.probability_with_eos:.6g} "
            f"(log p = {p.log_probability_with_eos:.4f})" + _unknown_note(p.unknown)
        )


@lm.command(name="next")
@model_option
@click.argument("text", required=False)
@click.option(
    "--top-k",
    type=click.IntRange(1, MAX_WORDS),  # more than the vocabulary lists it all
    default=10,
    show_default=True,
    help="How many words to list.",
)
@device_option
def next_cmd(model_path: Path, text: str | None, top_k: int, device: str) -> None:
    """The likeliest next words (for a reverse model: the word before), <EOS> included, with the
    model's probabilities (those `prob` multiplies). No TEXT: read lines, each answer after the
    line it is for."""
    from dlclassics.lm.generate import next_words

    model, vocab = _load(model_path, device)
    stdin = click.open_file("-")  # standard input (click 8.5 deprecates get_text_stream)
    for line, echo in [(text, False)] if text is not None else _lines(stdin):
        if echo:
            click.echo(f"> {line}")
        given = text_words(line, "TEXT")
        ranked = next_words(model, vocab, given, top_k)
        click.echo(
            ", ".join(f"{w} {p:.4f}" for w, p in ranked) + _unknown_note(vocab.unknown(given))
        )


def _lines(stdin: Any) -> Iterator[tuple[str, bool]]:
    """Each line of standard input, and whether to echo it: a terminal shows what was typed at
    its "> " prompt, piped input is echoed so that each answer says what it is for."""
    interactive = stdin.isatty()
    while True:
        if interactive:
            click.echo("> ", nl=False)
        try:
            line = stdin.readline(MAX_TEXT + 1)  # /dev/zero has no line end
        except UnicodeDecodeError:
            raise InputError("standard input is not UTF-8 text") from None
        if not line:
            return
        yield line.rstrip("\n"), not interactive
