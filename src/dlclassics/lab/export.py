"""`dlclassics export RUN [RUN...] --out SITE`: a static site of the models of run directories,
and of their studies (`xor sweep` runs, whose networks have no checkpoint of their own).

The site's format, which the page (`static/`) reads:

    SITE/index.html, SITE/...       every file of src/dlclassics/lab/static/, copied as it is
    SITE/models.json                {"version": <package version>, "models": [ENTRY, ...],
                                     "studies": [STUDY_ENTRY, ...]} (a site exported before
                                     studies were has no "studies")
        ENTRY = {"name": str, "kind": "lm" | "mnist" | "xor", "path": "models/<name>",
                 "run": <run folder name>, "command": <the run's command, "lm study">}
        STUDY_ENTRY = {"name": str, "kind": "xor-sweep", "path": "studies/<name>", "run",
                       "command": "xor sweep"}
    SITE/studies/<name>/study.json  an `xor sweep` run for the page's study explorer (STUDY below)
    SITE/models/<name>/weights.safetensors
                                    every tensor of the model's PyTorch state_dict, float32,
                                    little-endian, the same key names (LM: embedding.weight,
                                    lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0,
                                    lstm.bias_hh_l0, (_l1 ...), out.weight, out.bias); the header
                                    holds the tensors only, no __metadata__
    SITE/models/<name>/card.json    the model card (below)
    SITE/models/<name>/vocab.json   LM only: the vocabulary, a JSON list of words, index = token
                                    id (the 4 specials first: <PAD>, <START>, <UNK>, <EOS>)
    SITE/models/<name>/test.json    MNIST only, where the run's data could be read (else a note,
                                    and no test.json, test-mistakes.png nor samples.json): the
                                    model on the test split of the run's config.json (PyTorch,
                                    CPU, eval mode; TEST below)
    SITE/models/<name>/test-mistakes.png
                                    MNIST only, with test.json, where the model made a mistake:
                                    TEST's mistakes' 28x28 images as tiles, "sprite_columns" to a
                                    row, row-major (tile i at row i // columns, column
                                    i % columns), the last row padded with black tiles; grey
                                    levels as stored (0..255, white ink on black), an 8-bit
                                    greyscale PNG (one channel)
    SITE/models/<name>/samples.json MNIST only, with test.json: {"classes": the ten class names,
                                    "images": [[784 ints 0..255, row-major], ...], "labels":
                                    [int, ...]}: the first two test images of each class, class
                                    by class (0, 0, 1, 1, ...), each in test order

TEST = {"classes": the ten class names, "accuracy": float, "balanced_accuracy": float,
    "confusion": 10 rows of 10 ints (row: true class, column: predicted),
    "precision": [10 floats], "recall": [10 floats] (per class, 0 where undefined),
    "mistakes": [{"sprite": its tile in the sprite, "index": the test image's index, "true": int,
        "pred": int, "p_pred": the model's probability of pred, "p_true": of the true class},
        ...]: every misclassified test image, at most the first MISTAKES_PER_CELL (100) of each
        (true, pred) cell, in test order; "sprite": "test-mistakes.png", or null where there is
        no mistake (and no PNG), "sprite_columns": 40}

card.json: {"name", "kind", "command", "run",
    "architecture": the checkpoint's model_args (LM: vocab_size, layers, direction,
        embedding_size, hidden_size; MNIST: arch, and dropout for double_conv_dropout; XOR: k,
        bypass, temperature), plus "parameters" (the weights' count),
    "settings": the run's config.json without command, version, processes and machine,
    "machine": config.json's machine, or null,
    "results": this model's figures from results.json (lm train: all of it; lm study: its entry
        of "models"; mnist fc: its entry of "models"; mnist cnn: its entry of "runs", "best" (true
        for the run's chosen model) and, for that one, "best_test"; xor: its entry of
        "configs"); {} for a run not finished,
    "data": LM {"corpus": file name, "corpus_sha256", "vocab_size", "sentences": split sizes
        where results.json has them}; MNIST {"dataset", "data_sha256", "images": split sizes
        where results.json has them}; XOR {"dataset": "xor", "inputs", "targets"},
    "seed", "version": the package version that trained it (the checkpoint's),
    "normalization": MNIST only, {"mean", "std"}: the model sees (pixel - mean) / std for pixels
        in [0, 1],
    "classes": MNIST only, the ten class names,
    "test": MNIST only, "test.json" where the export wrote test.json (and samples.json),
    "text": a one-paragraph summary of all that}

STUDY = {"name", "kind", "command", "run", "run_path": the run's folder on the exporting machine,
    "version": the package version that ran it (config.json's),
    "protocol": {"grid": [{"lr", "hidden", "bypass"}, ...] (lr x hidden x bypass, then the extra
        configuration where "extra"), "extra", "max_runs", "successes", "max_epochs",
        "patience", "min_delta", "goal", "seed"},
    "seconds", "run_epochs": results.json's,
    "configs": per grid point, in its order: {"lr", "hidden", "bypass", "extra": whether it is
        the extra configuration, "runs", "successes", "failures", "epochs" (the solved runs'),
        "mean_epochs", "std_epochs", "mean_train_loss", "mean_val_loss" (results.json's),
        "outcomes": [every run the protocol made, in order: {"succeeded", "epochs", "train_loss",
            "val_loss"} (the trial's result.json), and for one hidden unit its "weight" [w1, w2]
            and "bias" (the trial's checkpoint) and "function", the Boolean function it computes
            where its output exceeds 1/2 (xor.analysis)]},
    "hidden_unit": per configuration of one hidden unit, results.json's analysis: {"config": its
        index in "configs", "lr", "bypass", "functions": {function: solved runs}},
    "hand_set": `xor solve`'s hidden unit of k=1 with bypass: {"weight", "bias", "function"}}
config.json, result.json, the checkpoint and results.json are checked against each other: a
sweep that does not add up is refused.

Model names are the trials' (`layers1-forward`, `logreg`, `single_conv_b50`, `k1-bypass`); a
name that more than one run given holds is prefixed by its run's folder name and "-". A study is
named by its run's folder (a reproduction's part: `xor-sweep`), numbered where shared. The site
is built in a temporary folder next to SITE and renamed into place at the end, so a failed export
leaves nothing, and a previous site at SITE is replaced only then.
"""

import contextlib
import io
import json
import math
import os
import re
import secrets
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from dlclassics import __version__
from dlclassics.core.bounds import conforms
from dlclassics.core.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    MAX_WEIGHT,
    check_weights,
    load_checkpoint,
)
from dlclassics.core.errors import InputError
from dlclassics.core.machine import data_root
from dlclassics.core.rundir import (
    CHECKPOINT,
    CONFIG,
    MAX_RECORD_BYTES,
    RECORDED,
    RESULT,
    RESULTS,
    TRIALS,
    RunDir,
    atomic_write_bytes,
    atomic_write_text,
    make_dir,
    parse_json,
    read_regular,
    read_run_file,
    write_json,
)
from dlclassics.lm.model import LanguageModel, load_vocabulary, model_config
from dlclassics.mnist.config import DROPOUT_ARCH, CnnConfig, FcConfig, MnistConfig
from dlclassics.mnist.data import FILES, SOURCES, Split, normalize
from dlclassics.mnist.evaluate import split_metrics
from dlclassics.mnist.experiment import load_data
from dlclassics.mnist.models import load_classifier
from dlclassics.options import make_config
from dlclassics.study import load_result
from dlclassics.xor.analysis import unit_function
from dlclassics.xor.batched import Weights
from dlclassics.xor.config import GridPoint, SweepConfig, grid
from dlclassics.xor.data import INPUTS, TARGETS
from dlclassics.xor.model import XorNet, net_name
from dlclassics.xor.solutions import HAND_WEIGHTS
from dlclassics.xor.sweep import StudyResult, StudyTrial, protocol_runs

STATIC = Path(__file__).parent / "static"
MODELS_JSON, MODELS, STUDIES = "models.json", "models", "studies"
WEIGHTS, CARD, VOCAB = "weights.safetensors", "card.json", "vocab.json"
TEST, SPRITE, SAMPLES = "test.json", "test-mistakes.png", "samples.json"
STUDY = "study.json"
MISTAKES_PER_CELL, SPRITE_COLUMNS, SAMPLES_PER_CLASS = 100, 40, 2
MNIST_CONFIGS: dict[str, type[MnistConfig]] = {"mnist fc": FcConfig, "mnist cnn": CnnConfig}
KINDS = {
    "lm train": "lm",
    "lm study": "lm",
    "mnist fc": "mnist",
    "mnist cnn": "mnist",
    "xor solve": "xor",
    "xor train": "xor",
}
# Batched: its networks are rows of one tensor, with no checkpoint of their own, so the run is
# exported as a study, every run's figures, for the page's explorer.
STUDY_KINDS = {"xor sweep": "xor-sweep"}
REPRODUCE = "reproduce"
# A name becomes a folder and a URL path of the site: nothing a browser or a shell reads apart.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Note = Callable[[str], None]


def _note(message: str) -> None:
    click.echo(f"note: {message}", err=True)


@dataclass
class Run:
    """A run directory of an experiment export knows; `label`: its folder name (a reproduction's
    part: `<reproduction>/<part>`)."""

    path: Path
    label: str
    command: str
    config: dict[str, Any]
    results: dict[str, Any]


@dataclass
class Model:
    """One model to export: its trial's checkpoint and what the card says of it."""

    trial: str
    kind: str
    run: Run
    weights: dict[str, torch.Tensor]
    card: dict[str, Any]
    vocab: list[str] | None = None
    classifier: nn.Module | None = None  # MNIST: the model, in eval mode on the CPU
    files: dict[str, bytes] | None = None  # more files of its folder (MNIST: test.json, ...)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_dir() or not (path / CONFIG).is_file():
        raise InputError(f"{path} is not a run directory (it holds no {CONFIG})")
    config = RunDir(path).read_json(CONFIG)
    if not isinstance(config, dict) or not isinstance(config.get("command"), str):
        raise InputError(f"{path / CONFIG} is damaged: it names no command")
    return config


def _read_results(path: Path) -> dict[str, Any]:
    if not (path / RESULTS).is_file():
        return {}  # a run not finished: its models' cards have no results
    results = RunDir(path).read_json(RESULTS)
    if not isinstance(results, dict):
        raise InputError(f"{path / RESULTS} is damaged: not a JSON object")
    return results


def _open_run(path: Path, label: str, config: dict[str, Any]) -> Run:
    return Run(path, label, config["command"], config, _read_results(path))


def find_runs(path: Path, note: Note = _note) -> list[Run]:
    """The run directories of `path`: itself, or a reproduction's parts (a study's part that
    saved no checkpoint, a failed one, skipped with a note)."""
    path = Path(path)
    config = _read_config(path)
    command = config["command"]
    if command in KINDS or command in STUDY_KINDS:
        return [_open_run(path, path.name, config)]
    if command != REPRODUCE:
        known = ", ".join([*KINDS, *STUDY_KINDS, REPRODUCE])
        raise InputError(f"{path} is a `dlclassics {command}` run: export takes {known} runs")
    runs = []
    for part in sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink()):
        if not (part / CONFIG).is_file():
            continue  # plots/, site/, ...: not a part
        part_config = _read_config(part)
        part_command = part_config["command"]
        if part_command in STUDY_KINDS and not _study_checkpoint(part).is_file():
            note(f"skipped {part}: its `{part_command}` saved no {CHECKPOINT}")
        elif part_command in KINDS or part_command in STUDY_KINDS:
            runs.append(_open_run(part, f"{path.name}/{part.name}", part_config))
    return runs


def _trials(run: Run) -> list[str]:
    """The run's trials that saved a model, by name."""
    folder = run.path / TRIALS
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / CHECKPOINT).is_file())


def _checkpoint(run: Run, trial: str) -> tuple[Path, bytes, dict[str, Any]]:
    path = RunDir(run.path).trial(trial) / CHECKPOINT
    # Read once, never through a link: the bytes checked are the bytes exported.
    data = read_run_file(run.path, path, MAX_CHECKPOINT_BYTES)
    return path, data, load_checkpoint(path, data=data)


def _bounded(path: Path, skeleton: nn.Module, weights: dict[str, torch.Tensor], what: str) -> None:
    # The bound the demo always set: within it no input overflows float32 in the page either.
    check_weights(path, skeleton, weights, what, bound=MAX_WEIGHT)


def _parameters(weights: dict[str, torch.Tensor]) -> int:
    return sum(w.numel() for w in weights.values())


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in RECORDED}


def _first(items: Any, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    return next((x for x in items if isinstance(x, dict) and match(x)), {})


def _figure(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "not measured"


def _base_card(run: Run, trial: str, kind: str, checkpoint: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": trial,
        "kind": kind,
        "command": run.command,
        "run": run.label,
        # Where the command line finds the model on the machine that exported it: the page's
        # "same distribution from the command line" names it.
        "model_path": str((run.path / TRIALS / trial).resolve()),
        "architecture": dict(checkpoint["model_args"]) | {"parameters": 0},
        "settings": _settings(run.config),
        "machine": run.config.get("machine"),
        "results": {},
        "data": {},
        "seed": run.config.get("seed"),
        "version": checkpoint["version"],
    }


def _provenance(card: dict[str, Any], data: str) -> str:
    return (
        f"Trained by `dlclassics {card['command']}` (run {card['run']}) on {data}, seed "
        f"{card['seed']}, with dlclassics {card['version']}."
    )


def _lm(run: Run, trial: str) -> Model:
    path, _, checkpoint = _checkpoint(run, trial)
    config = model_config(path, checkpoint)  # the loader's checks: arguments, shapes
    vocab = load_vocabulary(path, checkpoint, config.vocab_size)
    weights = checkpoint["model"]
    with torch.device("meta"):
        skeleton = LanguageModel(config)
    _bounded(path, skeleton, weights, "the language model")
    card = _base_card(run, trial, "lm", checkpoint)
    card["architecture"]["parameters"] = _parameters(weights)
    if run.command == "lm train":
        card["results"] = run.results
    else:
        card["results"] = _first(
            run.results.get("models"),
            lambda m: m.get("layers") == config.layers and m.get("direction") == config.direction,
        )
    corpus = run.config.get("corpus")
    card["data"] = {
        "corpus": Path(corpus).name if isinstance(corpus, str) else None,
        "corpus_sha256": run.config.get("corpus_sha256"),
        "vocab_size": config.vocab_size,
    }
    if isinstance(run.results.get("sentences"), dict):
        card["data"]["sentences"] = run.results["sentences"]
    perplexity = card["results"].get("perplexity") or {}
    layers = f"{config.layers} LSTM layer{'s' if config.layers > 1 else ''}"
    reads = (
        "forward: it predicts the next word"
        if config.direction == "forward"
        else "backwards: it predicts the word before"
    )
    card["text"] = (
        f"{trial}: a word-level language model reading sentences {reads}; "
        f"embeddings of {config.embedding_size}, {layers} of "
        f"{config.hidden_size} units, and a softmax over {config.vocab_size:,} words "
        f"({card['architecture']['parameters']:,} weights). "
        + _provenance(card, f"{card['data']['corpus']} (sha256 {card['data']['corpus_sha256']})")
        + f" Perplexity: train {_figure(perplexity.get('train'))}, validation "
        f"{_figure(perplexity.get('val'))}, test {_figure(perplexity.get('test'))}."
    )
    return Model(trial, "lm", run, weights, card, vocab.words)


def normalization() -> dict[str, float]:
    """The (mean, std) that `mnist.data.normalize` applies, read off it: for pixels p in [0, 1]
    the classifiers see (p - mean) / std."""
    low, high = normalize(torch.tensor([[[0, 255]]], dtype=torch.uint8)).flatten().tolist()
    std = 1 / (high - low)
    return {"mean": -low * std, "std": std}


def _mnist(run: Run, trial: str) -> Model:
    path, data, checkpoint = _checkpoint(run, trial)
    model = load_classifier(path, data=data)  # the loader's checks: arch, shapes, classes
    weights = checkpoint["model"]
    _bounded(path, model, weights, f"a {model.arch}")
    card = _base_card(run, trial, "mnist", checkpoint)
    if model.arch == DROPOUT_ARCH:
        card["architecture"]["dropout"] = checkpoint["config"].get("dropout")
    card["architecture"]["parameters"] = _parameters(weights)
    results = run.results
    if run.command == "mnist fc":
        card["results"] = _first(results.get("models"), lambda m: m.get("name") == trial)
        splits = card["results"].get("splits") or {}
        test = splits.get("test", {}).get("accuracy")
        images = {
            s: sum(m["support"])
            for s, m in splits.items()
            if isinstance(m, dict) and conforms(m.get("support"), list[int])
        }
    else:
        entry = _first(
            results.get("runs"),
            lambda r: f"{r.get('arch')}_b{r.get('batch_size')}" == trial,
        )
        best = results.get("best") or {}
        chosen = f"{best.get('arch')}_b{best.get('batch_size')}" == trial
        card["results"] = entry | {"best": chosen} if entry else {}
        test, images = None, {}
        if chosen and isinstance(results.get("best_test"), dict):
            card["results"]["best_test"] = results["best_test"]
            test = results["best_test"].get("accuracy")
            if conforms(results["best_test"].get("support"), list[int]):
                images = {"test": sum(results["best_test"]["support"])}
    dataset = run.config.get("dataset")
    card["data"] = {"dataset": dataset, "data_sha256": run.config.get("data_sha256")}
    if images:
        card["data"]["images"] = images
    card["normalization"] = normalization()
    card["classes"] = list(model.classes)
    mean, std = card["normalization"]["mean"], card["normalization"]["std"]
    card["text"] = (
        f"{trial}: a {model.arch} classifier of 28x28 images into {len(model.classes)} classes "
        f"({card['architecture']['parameters']:,} weights), seeing each pixel in [0, 1] as "
        f"(p - {mean:g}) / {std:g}. "
        + _provenance(card, f"{dataset} (sha256 {card['data']['data_sha256']})")
        + (f" Test accuracy {_figure(test)}." if test is not None else "")
    )
    return Model(trial, "mnist", run, weights, card, classifier=model)


def _on_this_machine(config: MnistConfig) -> bool:
    """Whether `data.locate` finds the config's files without downloading any: in its data_dir
    (a missing one is `locate`'s InputError), else all four in a system folder or the cache."""
    if config.data_dir:
        return True
    folders = [*map(Path, SOURCES[config.dataset].system_dirs), data_root() / config.dataset]
    return any(
        all((f / n).is_file() or (f / f"{n}.gz").is_file() for n in FILES.values()) for f in folders
    )


def read_test_split(run: Run) -> Split | str:
    """The test split of an MNIST run's config.json, checked against its data_sha256, or why it
    cannot be read; nothing is downloaded."""
    try:
        config = make_config(MNIST_CONFIGS[run.command], _settings(run.config))
        if config.data_dir and not Path(config.data_dir).is_dir():
            return f"its data folder {config.data_dir} is not there"
        if not _on_this_machine(config):
            return f"the {config.dataset} files are not on this machine (export downloads nothing)"
        return load_data(config, 1).test
    except InputError as e:
        return str(e)


@torch.inference_mode()
def _logits(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    model.eval()
    batches = range(0, len(images), batch_size)
    return torch.cat([model(normalize(images[i : i + batch_size])).float() for i in batches])


def _sprite(images: np.ndarray) -> bytes:
    """uint8 (n, 28, 28) images as one PNG of SPRITE_COLUMNS tiles a row, padded with black."""
    # Pillow, matplotlib's own PNG writer: an 8-bit grey PNG holds the bytes exactly (imsave's
    # colormap is off by one for some levels) in a quarter of an RGBA PNG's pixels.
    from PIL import Image

    rows = -(-len(images) // SPRITE_COLUMNS)
    tiles = np.zeros((rows * SPRITE_COLUMNS, 28, 28), np.uint8)
    tiles[: len(images)] = images
    sheet = tiles.reshape(rows, SPRITE_COLUMNS, 28, 28).transpose(0, 2, 1, 3)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(sheet.reshape(rows * 28, SPRITE_COLUMNS * 28)), "L").save(
        buffer, format="png"
    )
    return buffer.getvalue()


def _json_bytes(obj: Any) -> bytes:
    # One line: bytes the page loads.
    return (json.dumps(obj, allow_nan=False, separators=(",", ":")) + "\n").encode()


def mnist_test_files(model: nn.Module, test: Split, classes: list[str]) -> dict[str, bytes]:
    """TEST (test.json), its mistakes' sprite and samples.json of `model` on `test`."""
    logits = _logits(model, test.images)
    preds = logits.argmax(1)
    probabilities = logits.softmax(1)
    metrics = split_metrics(test.labels, preds)
    labels, predicted = test.labels.tolist(), preds.tolist()
    per_cell: Counter[tuple[int, int]] = Counter()
    mistakes: list[dict[str, Any]] = []
    for i, (true, pred) in enumerate(zip(labels, predicted, strict=True)):
        if true == pred or per_cell[true, pred] >= MISTAKES_PER_CELL:
            continue
        per_cell[true, pred] += 1
        p = probabilities[i]
        mistakes.append(
            {
                "sprite": len(mistakes),
                "index": i,
                "true": true,
                "pred": pred,
                "p_pred": p[pred].item(),
                "p_true": p[true].item(),
            }
        )
    files: dict[str, bytes] = {}
    if mistakes:
        wrong = torch.tensor([m["index"] for m in mistakes])
        files[SPRITE] = _sprite(test.images[wrong].numpy())
    files[TEST] = _json_bytes(
        {
            "classes": classes,
            "accuracy": metrics["accuracy"],
            "balanced_accuracy": metrics["balanced_accuracy"],
            "confusion": metrics["confusion_matrix"],
            "precision": metrics["precision"],
            "recall": metrics["recall"],
            "mistakes": mistakes,
            "sprite": SPRITE if mistakes else None,
            "sprite_columns": SPRITE_COLUMNS,
        }
    )
    picks = [
        i
        for c in range(len(classes))
        for i in (test.labels == c).nonzero().flatten()[:SAMPLES_PER_CLASS].tolist()
    ]
    files[SAMPLES] = _json_bytes(
        {
            "classes": classes,
            "images": [test.images[i].flatten().tolist() for i in picks],
            "labels": [labels[i] for i in picks],
        }
    )
    return files


def _add_test_files(run: Run, models: list[Model], note: Note) -> None:
    """Each MNIST model's test figures (its card naming them), or one note saying why not."""
    test = read_test_split(run)
    if isinstance(test, str):
        note(f"{run.path}: no test figures for its models ({test})")
        return
    for model in models:
        assert model.classifier is not None
        model.files = mnist_test_files(model.classifier, test, model.card["classes"])
        model.card["test"] = TEST


def _xor(run: Run, trial: str) -> Model:
    path, _, checkpoint = _checkpoint(run, trial)
    args = checkpoint["model_args"]
    valid = (
        args.keys() == {"k", "bypass", "temperature"}
        and conforms(args["k"], int)
        and conforms(args["bypass"], bool)
        and isinstance(args["temperature"], int | float)
        and math.isfinite(args["temperature"])
    )
    if not valid:
        raise InputError(f"{path} is not an XOR network (model arguments {args!r:.60})")
    weights = checkpoint["model"]
    # Its hidden weight's shape bounds k: a huge k in the arguments would fail here, not allocate.
    shape = weights.get("hidden.weight", torch.empty(0)).shape
    if shape != (args["k"], 2):
        raise InputError(f"{path}: its weights do not fit k={args['k']}")
    with torch.device("meta"):
        skeleton = XorNet(args["k"], args["bypass"], args["temperature"])
    _bounded(path, skeleton, weights, f"the network {net_name(args['k'], args['bypass'])}")
    card = _base_card(run, trial, "xor", checkpoint)
    card["architecture"]["parameters"] = _parameters(weights)
    card["results"] = _first(
        run.results.get("configs"),
        lambda c: c.get("k") == args["k"] and c.get("bypass") == args["bypass"],
    )
    card["data"] = {
        "dataset": "xor",
        "inputs": INPUTS.tolist(),
        "targets": TARGETS.flatten().tolist(),
    }
    loss = card["results"].get("loss", card["results"].get("final_loss"))
    how = "hand-set by" if run.command == "xor solve" else "trained by"
    units = f"{args['k']} hidden binary threshold unit{'s' if args['k'] > 1 else ''}"
    bypass = " and a bypass from the inputs to the output" if args["bypass"] else ""
    card["text"] = (
        f"{trial}: an XOR network of 2 inputs, {units}{bypass}, 1/(1+exp(-x/T)) at "
        f"T={args['temperature']:g}; its weights {how} "
        f"`dlclassics {run.command}` (run {run.label}), seed {card['seed']}, dlclassics "
        f"{card['version']}. Outputs on (0,0), (0,1), (1,0), (1,1): "
        f"{[round(o, 4) for o in card['results'].get('outputs', [])]}, loss {_figure(loss)}."
    )
    return Model(trial, "xor", run, weights, card)


READERS = {"lm": _lm, "mnist": _mnist, "xor": _xor}


def read_models(run: Run) -> list[Model]:
    """Every model of `run`, checked as the loaders check them."""
    kind = KINDS[run.command]
    models = []
    for trial in _trials(run):
        if not NAME.fullmatch(trial):
            raise InputError(f"{run.path}: trial {trial!r} is not a name a site can use")
        models.append(READERS[kind](run, trial))
    return models


# ---- a study: an `xor sweep`, every run the protocol made ------------------------------------

# Per configuration, its figures as results.json has them.
STATISTICS = (
    "runs",
    "successes",
    "failures",
    "epochs",
    "mean_epochs",
    "std_epochs",
    "mean_train_loss",
    "mean_val_loss",
)
HAND_SET = next(n for n in HAND_WEIGHTS if n["k"] == 1 and n["bypass"])


def _study_checkpoint(path: Path) -> Path:
    return RunDir(path).trial(StudyTrial().name) / CHECKPOINT


def _sweep_config(run: Run) -> SweepConfig:
    try:
        return make_config(SweepConfig, _settings(run.config))
    except InputError as e:
        raise InputError(f"{run.path / CONFIG}: {e}") from None


def _sweep_weights(run: Run, points: list[GridPoint], max_runs: int) -> Weights:
    """The final weights of every candidate run, checked: this grid's, finite, bounded."""
    path = _study_checkpoint(run.path)
    if not path.is_file():
        raise InputError(f"no model in {run.path}: it holds no {path.relative_to(run.path)}")
    _, _, checkpoint = _checkpoint(run, StudyTrial().name)
    if checkpoint["model_args"] != {"grid": [asdict(p) for p in points], "max_runs": max_runs}:
        raise InputError(f"{path} is not this run's: its grid is not the one of {CONFIG}")
    runs, width = len(points) * max_runs, max(p.hidden for p in points)
    with torch.device("meta"):
        skeleton = Weights(
            torch.empty(3, width, runs), torch.empty(width, runs), torch.empty(3, runs)
        )
    _bounded(path, skeleton, checkpoint["model"], "the xor sweep's networks")
    return Weights(**checkpoint["model"])


def _statistics(
    run: Run, point: GridPoint, entry: Any, result: StudyResult, used: list[int]
) -> dict[str, Any]:
    """The configuration's entry of results.json, checked against the runs it summarises."""
    ok = [i for i in used if result.succeeded[i]]
    counts = {
        "runs": len(used),
        "successes": len(ok),
        "failures": len(used) - len(ok),
        "epochs": [result.epochs[i] for i in ok],
    }
    means = STATISTICS[len(counts) :]
    valid = (
        isinstance(entry, dict)
        and entry.keys() >= {*asdict(point), *STATISTICS}
        and {k: entry[k] for k in [*asdict(point), *counts]} == asdict(point) | counts
        and all(conforms(entry[k], float | None) for k in means)
    )
    if not valid:
        at = f"lr {point.lr:g}, hidden {point.hidden}, bypass {point.bypass}"
        raise InputError(f"{run.path / RESULTS} does not match its trial's {RESULT} at {at}")
    return {k: entry[k] for k in STATISTICS}


def _outcome(result: StudyResult, weights: Weights, point: GridPoint, i: int) -> dict[str, Any]:
    """Run i's figures; for a lone hidden unit, its weights and the function it computes."""
    outcome = {
        "succeeded": result.succeeded[i],
        "epochs": result.epochs[i],
        "train_loss": result.train_loss[i],
        "val_loss": result.val_loss[i],
    }
    if point.hidden == 1:
        weight, bias = weights.hidden[:2, 0, i], float(weights.hidden[2, 0, i])
        outcome |= {
            "weight": weight.tolist(),
            "bias": bias,
            "function": unit_function(weight, bias),
        }
    return outcome


def read_study(run: Run, name: str) -> dict[str, Any]:
    """The study.json of an `xor sweep` run (see the module's docstring): its config.json, its
    trial's result.json and checkpoint and its results.json, checked against each other."""
    config = _sweep_config(run)
    points = grid(config)
    weights = _sweep_weights(run, points, config.max_runs)
    if not run.results:
        raise InputError(f"{run.path} is not finished (no {RESULTS}): run it again to finish it")
    trial = RunDir(run.path).trial(StudyTrial().name)
    result = load_result(config, StudyTrial(), trial, StudyResult, run.path)
    runs = len(points) * config.max_runs
    lengths = {len(v) for k, v in vars(result).items() if k != "seconds"} if result else set()
    if lengths != {runs}:
        raise InputError(f"{trial / RESULT} is missing, damaged or not of this run's settings")
    entries = run.results.get("configs")
    if not isinstance(entries, list) or len(entries) != len(points):
        raise InputError(f"{run.path / RESULTS} does not list the {len(points)} configurations")
    configs = []
    for n, (point, entry, used) in enumerate(
        zip(points, entries, protocol_runs(config, result), strict=True)
    ):
        configs.append(
            asdict(point)
            | {"extra": config.extra and n == len(points) - 1}
            | _statistics(run, point, entry, result, used)
            | {"outcomes": [_outcome(result, weights, point, i) for i in used]}
        )
    lone = [n for n, p in enumerate(points) if p.hidden == 1]
    analyses = run.results.get("hidden_unit")
    if not isinstance(analyses, list) or len(analyses) != len(lone):
        raise InputError(f"{run.path / RESULTS} has no lone hidden unit analysis of this grid")
    hidden_unit = []
    for n, analysis in zip(lone, analyses, strict=True):
        functions = Counter(o["function"] for o in configs[n]["outcomes"] if o["succeeded"])
        if not isinstance(analysis, dict) or analysis.get("functions") != functions:
            raise InputError(f"{run.path / RESULTS}: its lone hidden units are not its runs'")
        point = points[n]
        hidden_unit.append(
            {
                "config": n,
                "lr": point.lr,
                "bypass": point.bypass,
                "functions": analysis["functions"],
            }
        )
    weight, bias = HAND_SET["hidden_weight"][0], HAND_SET["hidden_bias"][0]
    return {
        "name": name,
        "kind": STUDY_KINDS[run.command],
        "command": run.command,
        "run": run.label,
        "run_path": str(run.path.resolve()),
        "version": run.config.get("version"),
        "protocol": {
            "grid": [asdict(p) for p in points],
            "extra": config.extra,
            "max_runs": config.max_runs,
            "successes": config.successes,
            "max_epochs": config.max_epochs,
            "patience": config.patience,
            "min_delta": config.min_delta,
            "goal": config.goal,
            "seed": config.seed,
        },
        "seconds": run.results.get("seconds"),
        "run_epochs": run.results.get("run_epochs"),
        "configs": configs,
        "hidden_unit": hidden_unit,
        "hand_set": {
            "weight": weight,
            "bias": bias,
            "function": unit_function(torch.tensor(weight), bias),
        },
    }


def _names(models: list[Model]) -> list[str]:
    """The models' names: a trial's, prefixed by its run's folder name where several runs hold
    it (then numbered, where even that is shared)."""
    counts = Counter(m.trial for m in models)
    names: list[str] = []
    for m in models:
        name = m.trial
        if counts[name] > 1:
            # A reproduction's part is named by the part alone: "xor-solve-k1-bypass".
            name = f"{m.run.label.rsplit('/', 1)[-1]}-{name}"
        base, n = name, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def _is_site(path: Path) -> bool:
    """Whether `path` holds a site an export wrote (its models.json), which may be replaced."""
    try:
        index = parse_json(read_regular(path / MODELS_JSON, MAX_RECORD_BYTES, follow=False))
    except (InputError, ValueError):
        return False
    return isinstance(index, dict) and index.keys() in (
        {"version", "models"},
        {"version", "models", STUDIES},
    )


def check_out(out: Path) -> None:
    """That `out` may receive a site: new, empty, or a previous site."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not _is_site(out):
        raise InputError(f"--out {out} is a non-empty folder that is not an exported site")


def _new_folder(out: Path) -> Path:
    """A new folder next to `out`, with the usual mode (mkdtemp's is 0700: a static host could
    not read the renamed site)."""
    make_dir(out.parent)
    while True:
        tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue
        except OSError as e:
            reason = (e.strerror or "").lower()
            raise InputError(f"cannot write into {out.parent}: {reason}") from None


def _write_model(folder: Path, model: Model) -> None:
    # Contiguous float32: the page reads each tensor as one row-major Float32Array.
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in model.weights.items()}
    atomic_write_bytes(folder / WEIGHTS, safetensors_bytes(tensors))
    write_json(folder / CARD, model.card)
    if model.vocab is not None:
        # One line, not indented: a 10,000-word vocabulary is bytes every visit loads.
        atomic_write_text(folder / VOCAB, json.dumps(model.vocab, ensure_ascii=False) + "\n")
    for name, data in (model.files or {}).items():
        atomic_write_bytes(folder / name, data)


def _copy_static(site: Path) -> None:
    try:
        shutil.copytree(STATIC, site, dirs_exist_ok=True, copy_function=shutil.copyfile)
    except (OSError, shutil.Error) as e:
        raise InputError(f"cannot copy the page into {site}: {e}") from None


def replace_folder(tmp: Path, out: Path, check: Callable[[Path], None] = check_out) -> None:
    """`tmp` renamed to `out`; a previous site there (as `check` accepts it) is moved aside
    first and removed after."""
    old = None
    if out.is_dir():
        check(out)  # again: it may have changed while the site was written
        old = out.with_name(f".{out.name}.{secrets.token_hex(4)}.old")
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError as e:
        if old is not None:
            os.rename(old, out)
        raise InputError(f"cannot write {out}: {(e.strerror or '').lower()}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _study_names(studies: list[Run]) -> list[str]:
    """The studies' names: their run's folder name as a NAME, numbered where shared."""
    names: list[str] = []
    for run in studies:
        folder = run.label.rsplit("/", 1)[-1]
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder).lstrip("._-") or "study"
        base, n = name, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def holds(index: dict[str, Any]) -> str:
    """What a site's models.json lists, for the commands' messages: "7 models and 1 study"."""
    text = f"{len(index['models'])} models"
    studies = len(index["studies"])
    return text + (f" and {studies} {'study' if studies == 1 else 'studies'}" if studies else "")


def export(runs: list[Path], out: Path, note: Note = _note) -> dict[str, Any]:
    """Write the site of the models and studies in `runs` (run directories, or reproductions)
    to `out`; its models.json (version, models, studies). Bad input (a path that is no run
    directory, a run holding no model, an `out` that cannot take a site) is an InputError, and
    leaves `out` as it was."""
    out = Path(out)
    check_out(out)
    # Said only once the site is written: a refused export says one line, its error.
    notes: list[str] = []
    seen: set[Path] = set()
    models: list[Model] = []
    study_runs: list[Run] = []
    for path in map(Path, runs):
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        found = []
        runs_here = find_runs(path, notes.append)
        for run in runs_here:
            if run.command in STUDY_KINDS:
                study_runs.append(run)
                continue
            models_of_run = read_models(run)
            if KINDS[run.command] == "mnist" and models_of_run:
                _add_test_files(run, models_of_run, notes.append)
            if models_of_run and not run.results:
                notes.append(f"{run.path} is not finished (no {RESULTS}): no results in its cards")
            found += models_of_run
        if not found and not any(run.command in STUDY_KINDS for run in runs_here):
            raise InputError(f"no model in {path}: none of its trials holds a {CHECKPOINT}")
        models += found
    study_names = _study_names(study_runs)
    studies = [read_study(run, name) for run, name in zip(study_runs, study_names, strict=True)]
    if not models and not studies:
        raise InputError(f"no models to export in the runs given ({'; '.join(notes)})")
    tmp = _new_folder(out)
    try:
        _copy_static(tmp)
        entries = []
        for name, model in zip(_names(models), models, strict=True):
            model.card["name"] = name
            _write_model(tmp / MODELS / name, model)
            entries.append(
                {
                    "name": name,
                    "kind": model.kind,
                    "path": f"{MODELS}/{name}",
                    "run": model.run.label,
                    "command": model.run.command,
                }
            )
        study_entries = []
        for study in studies:
            name = study["name"]
            atomic_write_bytes(tmp / STUDIES / name / STUDY, _json_bytes(study))
            study_entries.append(
                {
                    "name": name,
                    "kind": study["kind"],
                    "path": f"{STUDIES}/{name}",
                    "run": study["run"],
                    "command": study["command"],
                }
            )
        index = {"version": __version__, "models": entries, "studies": study_entries}
        write_json(tmp / MODELS_JSON, index)
        replace_folder(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise
    for message in notes:
        note(message)
    return index
