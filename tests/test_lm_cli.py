"""`dlclassics lm ...` end to end, on corpora the tests write: in process, but in a subprocess
where the process is the point (Ctrl-C, standard input)."""

import os
import signal
import subprocess

import pytest
import torch
from conftest import (
    CORPUS_WORDS,
    MAIN,
    TINY_LM,
    assert_one_line_error,
    open_terminal,
    read_json,
    read_terminal,
    run_limited,
    train_tiny_lm,
    without_timings,
    write_corpus,
)

from dlclassics.core import download
from dlclassics.core.download import git_blob_sha1
from dlclassics.core.errors import InputError
from dlclassics.core.rundir import read_config
from dlclassics.lm import corpus as lm_corpus
from dlclassics.lm.batches import encode
from dlclassics.lm.config import MAX_TEXT, LmStudyConfig, LmTrainConfig
from dlclassics.lm.evaluate import perplexity
from dlclassics.lm.experiment import STUDY_TRIALS, load_data
from dlclassics.lm.generate import generate
from dlclassics.lm.model import load_language_model
from dlclassics.options import make_config

SPLITS = ("train", "val", "test")


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus.txt")


def measured(trial_dir, config):
    """The perplexity of the model saved in `trial_dir`, measured again on every split."""
    model, vocab = load_language_model(trial_dir)
    sentences = load_data(config).sentences
    rows = {
        name: encode(getattr(sentences, name), vocab, model.config.direction) for name in SPLITS
    }
    return {name: perplexity(model, rows[name], torch.device("cpu")) for name in SPLITS}


def interrupt(args, once: bytes):
    """Run `dlclassics ARGS` in a process, its stderr a terminal as a user's is (progress bars
    draw only on one), and press Ctrl-C once the terminal shows `once`."""
    terminal, child = open_terminal()
    proc = subprocess.Popen(
        [*MAIN, *args],
        stdout=subprocess.DEVNULL,
        stderr=child,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    os.close(child)
    seen = b""
    while once not in seen:
        chunk = read_terminal(terminal)
        assert chunk, f"the run ended before {once!r} showed: {seen.decode()}"
        seen += chunk
    proc.send_signal(signal.SIGINT)
    while chunk := read_terminal(terminal):
        seen += chunk
    proc.wait(timeout=120)
    os.close(terminal)
    return proc.returncode, seen.decode()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny_lm(tmp_path_factory.mktemp("lm"), epochs=2)[0]


def test_train_saves_the_model_it_measured(trained):
    results = read_json(trained / "results.json")
    config = make_config(LmTrainConfig, read_config(trained, "lm train"))
    assert (config.direction, config.layers) == ("forward", 1)
    assert read_json(trained / "config.json")["machine"]["device"] == "cpu"
    trial = trained / "trials" / "layers1-forward"
    assert (trial / "checkpoint.pt").is_file() and list((trial / "tensorboard").iterdir())
    assert read_json(trial / "result.json")["result"]["perplexity"] == results["perplexity"]
    assert results["perplexity"] == measured(trial, config)
    assert results["vocab_size"] == 4 + len(CORPUS_WORDS)
    assert results["sentences"] == {"train": 240, "val": 30, "test": 30}
    # Two epochs over the training sentences, each predicting its words and <EOS>.
    train = load_data(config).sentences.train
    assert results["train_tokens"] == 2 * sum(len(s) + 1 for s in train)
    assert results["steps"] == 2 * 15 and results["epochs_completed"] == 2
    speed = results["train_tokens"] / results["train_seconds"]
    assert results["train_tokens_per_second"] == pytest.approx(speed)


def test_same_seed_same_results_and_a_rerun_keeps_the_trained_model(trained, cli, tmp_path):
    args = [
        "lm",
        "train",
        "--corpus",
        str(trained.parent / "corpus.txt"),
        *TINY_LM,
        "--epochs",
        "2",
    ]
    out = tmp_path / "again"
    assert cli(*args, "--out", str(out), "--quiet").returncode == 0
    assert without_timings(read_json(out / "results.json")) == without_timings(
        read_json(trained / "results.json")
    )
    trial = out / "trials" / "layers1-forward"
    saved = {f: (trial / f).stat().st_mtime_ns for f in ("result.json", "checkpoint.pt")}
    results = read_json(out / "results.json")
    rerun = cli(*args, "--out", str(out), "--quiet")
    assert rerun.returncode == 0, rerun.stderr
    assert {f: (trial / f).stat().st_mtime_ns for f in saved} == saved
    assert read_json(out / "results.json") == results


def test_model_is_a_checkpoint_a_trial_folder_or_a_train_run(trained, cli):
    trial = trained / "trials" / "layers1-forward"
    answers = [
        cli("lm", "prob", "--model", str(where), "love i cake")
        for where in (trained, trial, trial / "checkpoint.pt")
    ]
    assert answers[0].returncode == 0, answers[0].stderr
    assert answers[0].stdout.startswith("love i cake: p = ")
    assert answers[0].stdout == answers[1].stdout == answers[2].stdout


def test_generate_greedy_is_deterministic_and_negative_temperature_exits_2(trained, cli):
    args = ["lm", "generate", "--model", str(trained), "--start", "love i", "--temperature", "0"]
    first, second = cli(*args, "--count", "2"), cli(*args, "--seed", "5")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == lines[1] == second.stdout.strip()
    model, vocab = load_language_model(trained)
    assert lines[0] == " ".join(generate(model, vocab, ["love", "i"], 7, 0.0))
    assert len(lines[0].split()) == 7
    bad = cli("lm", "generate", "--model", str(trained), "--temperature", "-1")
    assert_one_line_error(bad)


def test_generate_gives_the_length_asked_or_stops_where_the_model_does(trained, cli):
    args = ["lm", "generate", "--model", str(trained), "--start", "love", "--count", "20"]
    exact = cli(*args, "--length", "9", "--temperature", "2")
    assert exact.returncode == 0, exact.stderr
    assert [len(line.split()) for line in exact.stdout.splitlines()] == [9] * 20
    assert "<UNK>" not in exact.stdout and "<EOS>" not in exact.stdout
    # The corpus's sentences have 2 to 8 words: left to stop, some sentences end before 30.
    natural = cli(*args, "--length", "30", "--stop-at-eos")
    assert natural.returncode == 0, natural.stderr
    lengths = [len(line.split()) for line in natural.stdout.splitlines()]
    assert max(lengths) <= 30 and min(lengths) < 30
    too_long = cli("lm", "generate", "--model", str(trained), "--start", "a b c", "--length", "2")
    assert too_long.returncode == 2
    assert too_long.stderr == "error: start has 3 words, more than length (2)\n"


def test_prob_is_the_product_of_the_probabilities_next_shows(trained, cli):
    def shown(text: str) -> dict[str, float]:
        result = cli("lm", "next", "--model", str(trained), "--top-k", "100", text)
        assert result.returncode == 0, result.stderr
        pairs = [item.split() for item in result.stdout.strip().split(", ")]
        return {word: float(p) for word, p in pairs}

    first = shown("")
    assert {"<PAD>", "<START>", "<UNK>"}.isdisjoint(first) and "<EOS>" in first
    assert len(first) == 4 + len(CORPUS_WORDS) - 3
    product = first["the"] * shown("the")["dog"] * shown("the dog")["runs"]
    prob = cli("lm", "prob", "--model", str(trained), "the dog runs")
    p = float(prob.stdout.split("p = ")[1].split()[0])
    # `next` prints 4 decimals: the product of three of them is good to about 0.3%.
    assert p == pytest.approx(product, rel=5e-3)


def test_prob_shows_both_probabilities_and_names_unknown_words(trained, cli):
    result = cli("lm", "prob", "--model", str(trained), "love i cupcakes", "i love you")
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert "with <EOS>" in first and "unknown, scored as <UNK>: cupcakes" in first
    assert "unknown" not in second


def test_next_answers_each_line_until_end_of_input(trained, cli):
    command = ["lm", "next", "--model", str(trained), "--top-k", "3"]
    result = cli(*command, input="love\ni love\n")
    assert result.returncode == 0, result.stderr
    # Each answer after the line it is for, in the format of an answer to TEXT.
    lines = result.stdout.splitlines()
    assert lines[0::2] == ["> love", "> i love"]
    answers = lines[1::2]
    assert answers == [cli(*command, "love").stdout.strip(), cli(*command, "i love").stdout.strip()]
    assert all(len(a.split(", ")) == 3 for a in answers)


# In a process: what matters is how the real standard input decodes bytes.
def test_next_refuses_input_that_is_not_utf8(trained):
    command = ["lm", "next", "--model", str(trained)]
    result = subprocess.run([*MAIN, *command], input=b"caf\xe9 love\n", capture_output=True)
    assert result.returncode == 2
    assert result.stderr.decode() == "error: standard input is not UTF-8 text\n"


def test_next_refuses_a_line_without_end_from_dev_zero_in_bounded_memory(trained):
    with open("/dev/zero", "rb") as zeros:
        result = run_limited("lm", "next", "--model", str(trained), stdin=zeros, timeout=30)
    assert result.returncode == 2
    assert result.stderr == f"error: TEXT is over {MAX_TEXT:,} characters\n"


@pytest.mark.parametrize("command", ["next", "prob"])
def test_a_text_over_max_text_is_refused(trained, cli, command):
    result = cli("lm", command, "--model", str(trained), "love " * MAX_TEXT)
    assert_one_line_error(result)
    assert f"over {MAX_TEXT:,} characters" in result.stderr


def test_next_takes_a_line_of_max_text_characters(trained, cli):
    line = ("love i " * MAX_TEXT)[:MAX_TEXT]
    result = cli("lm", "next", "--model", str(trained), input=line + "\n" + line + "\n")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 4  # each line, and its answer


def test_a_tiny_temperature_samples_the_greedy_sentence(cli, trained):
    args = ["lm", "generate", "--model", str(trained), "--start", "love"]
    greedy = cli(*args, "--temperature", "0")
    tiny = cli(*args, "--temperature", "1e-45")
    assert tiny.returncode == 0, tiny.stderr
    assert tiny.stdout == greedy.stdout
    assert_one_line_error(cli(*args, "--temperature", "nan"), trained / "never")


@pytest.mark.parametrize("command", ["generate", "prob", "next"])
def test_a_directory_without_a_model_is_one_line_exit_2(cli, tmp_path, command):
    words = [] if command == "generate" else ["some words"]
    result = cli("lm", command, "--model", str(tmp_path), *words)
    assert result.returncode == 2
    assert result.stderr == f"error: no model in {tmp_path}: it holds no checkpoint.pt\n"


@pytest.mark.parametrize(
    "content",
    [b"", b"abc\x00\x01\x02", b"caf\xe9\n", b"?!\n...\n", b"a cat\nthe dog\n"],
    ids=["empty", "binary", "latin1", "nowords", "too-few-to-split"],
)
def test_bad_corpora_are_one_line_exit_2_and_no_run_directory(cli, tmp_path, content):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    out = tmp_path / "run"
    assert_one_line_error(cli("lm", "train", "--corpus", str(path), "--out", str(out)), out)


def test_a_study_start_longer_than_its_length_is_refused_before_training(cli, corpus, tmp_path):
    out = tmp_path / "run"
    args = ["--start", "love i you", "--length", "2", "--out", str(out)]
    result = cli("lm", "study", "--corpus", str(corpus), *args)
    assert_one_line_error(result, out)
    assert "start has 3 words, more than length (2)" in result.stderr


@pytest.mark.parametrize("lr", ["1e300", "0", "inf"])
def test_a_learning_rate_out_of_bounds_is_refused_before_a_run(cli, corpus, tmp_path, lr):
    out = tmp_path / "run"
    result = cli("lm", "train", "--corpus", str(corpus), "--lr", lr, "--out", str(out))
    assert_one_line_error(result, out)


def test_resume_needs_a_run_of_the_same_command(cli, trained, tmp_path):
    result = cli("lm", "study", "--resume", str(trained))
    assert result.returncode == 2
    assert result.stderr == f"error: {trained} is not a 'lm study' run directory\n"


def test_offline_default_corpus_says_how_to_pass_a_file(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DLCLASSICS_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(lm_corpus, "CORPUS_URLS", ("http://127.0.0.1:9/wikisimple.txt",))
    monkeypatch.setattr(download, "BACKOFF", 0.01)
    out = tmp_path / "run"
    result = cli("lm", "train", "--out", str(out))
    assert_one_line_error(result, out)
    assert "127.0.0.1:9: cannot connect after 4 tries" in result.stderr
    assert f"put a copy at {tmp_path / 'data' / 'lm' / 'wikisimple.txt'}" in result.stderr
    assert "--corpus" in result.stderr


def test_the_corpus_download_is_verified_by_its_git_blob_id(tmp_path, monkeypatch, faulty_server):
    monkeypatch.setenv("DLCLASSICS_DATA", str(tmp_path / "data"))
    write_corpus(tmp_path / "served.txt")
    text = (tmp_path / "served.txt").read_bytes()
    monkeypatch.setattr(lm_corpus, "CORPUS_URLS", (f"{faulty_server.url}/wikisimple.txt",))
    blob = git_blob_sha1(tmp_path / "served.txt")
    monkeypatch.setattr(lm_corpus, "CORPUS_HASH", f"gitblob:{blob}")
    monkeypatch.setattr(download, "BACKOFF", 0.01)
    cached = tmp_path / "data" / "lm" / "wikisimple.txt"
    # Cut short every time, then with wrong bytes: an error, and nothing cached.
    faulty_server.scripts["/wikisimple.txt"] = [("short", text)]
    with pytest.raises(InputError, match="connection closed before the end of the file"):
        lm_corpus.default_corpus()
    faulty_server.scripts["/wikisimple.txt"] = [("ok", text.replace(b"a", b"b"))]
    with pytest.raises(InputError, match="checksum mismatch"):
        lm_corpus.default_corpus()
    assert list(cached.parent.iterdir()) == []
    # Cut short once, then whole: verified and cached.
    faulty_server.scripts["/wikisimple.txt"] = [("short", text), ("ok", text)]
    faulty_server.requests.clear()
    assert lm_corpus.default_corpus() == cached and cached.read_bytes() == text
    assert faulty_server.requests["/wikisimple.txt"] == 2


def test_the_default_corpus_is_read_from_the_cache(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DLCLASSICS_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(lm_corpus, "CORPUS_URLS", ("http://127.0.0.1:9/wikisimple.txt",))
    cached = tmp_path / "data" / "lm" / "wikisimple.txt"
    cached.parent.mkdir(parents=True)
    write_corpus(cached)
    out = tmp_path / "run"
    result = cli("lm", "train", *TINY_LM, "--max-steps", "2", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert read_json(out / "config.json")["corpus"] == str(cached)


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_no_direction_can_beat_chance_on_uniformly_random_words(cli, tmp_path, direction):
    # Keras' go_backwards reversed the inputs but not the targets: that model saw the word it had
    # to predict and would reach a perplexity near 1 here. Honest models stay near the 40 words.
    vocabulary = [f"w{i}" for i in range(40)]
    corpus = write_corpus(tmp_path / "random.txt", n=600, seed=1, words=vocabulary)
    out = tmp_path / "run"
    args = ["--embedding-size", "16", "--hidden-size", "32", "--lr", "0.01", "--epochs", "8"]
    args += ["--batch-size", "32", "--no-bf16", "--direction", direction]
    result = cli("lm", "train", "--corpus", str(corpus), *args, "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    perplexity = read_json(out / "results.json")["perplexity"]
    assert perplexity["test"] > 0.7 * 40
    assert perplexity["train"] > 0.6 * 40


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_finishes_the_same_training(tmp_path, corpus, cli):
    args = ["lm", "train", "--corpus", str(corpus), *TINY_LM, "--batch-size", "4"]
    args += ["--epochs", "100", "--max-steps", "200"]
    out = tmp_path / "run"
    code, stderr = interrupt([*args, "--out", str(out)], once=b"step")
    assert code == 130, stderr
    assert f"continue with: dlclassics lm train --resume {out}" in stderr
    state = out / "trials" / "layers1-forward" / "train_state.pt"
    assert state.is_file() and not (out / "results.json").exists()
    assert not (state.parent / "checkpoint.pt").exists()

    resumed = cli("lm", "train", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    straight = tmp_path / "straight"
    assert cli(*args, "--out", str(straight), "--quiet").returncode == 0
    a, b = read_json(out / "results.json"), read_json(straight / "results.json")
    assert a["steps"] == b["steps"] == 200
    assert without_timings(a) == without_timings(b)
    assert not state.exists()


STUDY = [*TINY_LM, "--batch-size", "4", "--epochs", "100", "--max-steps", "150"]


@pytest.mark.slow
def test_study_four_models_with_generations_in_reading_order(cli, corpus, tmp_path):
    out = tmp_path / "study"
    result = cli("lm", "study", "--corpus", str(corpus), *STUDY, "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("layers1-forward: perplexity train ")
    results = read_json(out / "results.json")
    models = results["models"]
    assert [(m["layers"], m["direction"]) for m in models] == [
        (t.layers, t.direction) for t in STUDY_TRIALS
    ]
    config = make_config(LmStudyConfig, read_config(out, "lm study"))
    assert results["vocab_size"] == 4 + len(CORPUS_WORDS)
    # The sentences come from one stream of draws across the four saved models, in grid order.
    sampler = torch.Generator().manual_seed(0)
    for trial, m in zip(STUDY_TRIALS, models, strict=True):
        assert m["perplexity"] == measured(out / "trials" / trial.name, config)
        model, vocab = load_language_model(out / "trials" / trial.name)
        for g in m["generations"]:
            drawn = generate(model, vocab, ["love", "i"], 7, g["temperature"], sampler)
            assert g["text"] == " ".join(drawn)
            text = g["text"].split()
            assert len(text) == 7
            assert (text[:2] if m["direction"] == "forward" else text[-2:]) == ["love", "i"]
        scored = [p["sentence"] for p in m["probabilities"]]
        assert scored == [g["text"] for g in m["generations"]] + ["love i cupcakes"]
    # Near-uniform sampling: models sharing one stream of draws would repeat each other's sentence.
    hot = [m["generations"][-1]["text"] for m in models]
    assert len(set(hot)) == len(hot)
    whole = cli("lm", "prob", "--model", str(out), "love i")
    assert_one_line_error(whole)
    assert str(out / "trials" / "layers1-forward") in whole.stderr


@pytest.mark.slow
def test_a_study_interrupted_after_its_first_model_resumes_keeping_it(cli, corpus, tmp_path):
    args = ["lm", "study", "--corpus", str(corpus), *STUDY]
    out = tmp_path / "study"
    # The second model's progress bar shows once the first model is saved.
    code, stderr = interrupt([*args, "--out", str(out)], once=b"layers1-reverse")
    assert code == 130, stderr
    assert f"continue with: dlclassics lm study --resume {out}" in stderr
    first, second = (out / "trials" / t.name for t in STUDY_TRIALS[:2])
    assert (second / "train_state.pt").is_file() and not (second / "result.json").exists()
    assert not (out / "trials" / STUDY_TRIALS[2].name).exists()
    kept = {
        f: ((first / f).stat().st_mtime_ns, (first / f).read_bytes())
        for f in ("result.json", "checkpoint.pt")
    }

    resumed = cli(*args[:2], "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert {f: ((first / f).stat().st_mtime_ns, (first / f).read_bytes()) for f in kept} == kept
    assert not (second / "train_state.pt").exists()
    straight = tmp_path / "straight"
    assert cli(*args, "--out", str(straight), "--quiet").returncode == 0
    a, b = read_json(out / "results.json"), read_json(straight / "results.json")
    assert without_timings(a) == without_timings(b)
    # The first model's figures, timings included, are those of its one and only training: the
    # result it saved before the interruption, which the resumed study reused.
    saved = read_json(first / "result.json")["result"]
    assert {k: a["models"][0][k] for k in saved} == saved
