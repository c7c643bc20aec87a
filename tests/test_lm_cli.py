"""`dlclassics lm ...` end to end, in subprocesses, on corpora the tests write."""

import os
import random
import signal
import subprocess
import sys

import pytest
from conftest import read_json, run_cli

TINY = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "16", "--no-bf16"]
WORDS = ["love", "i", "you", "cake", "tea", "the", "a", "dog", "cat", "runs", "eats", "big"]


def write_corpus(path, n=300, seed=0, words=WORDS):
    r = random.Random(seed)
    lines = [" ".join(r.choice(words) for _ in range(r.randint(2, 8))) for _ in range(n)]
    path.write_text("\n".join(f"{s.capitalize()}." for s in lines) + "\n")
    return path


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus.txt")


def without_timings(obj):
    if isinstance(obj, dict):
        return {
            k: without_timings(v)
            for k, v in obj.items()
            if "seconds" not in k and "per_second" not in k
        }
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def assert_one_line_error(result, out):
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    corpus = write_corpus(tmp / "corpus.txt")
    out = tmp / "run"
    result = run_cli(
        "lm", "train", "--corpus", str(corpus), *TINY, "--epochs", "2", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    return out


def test_train_writes_a_loadable_run(trained, cli):
    results = read_json(trained / "results.json")
    assert set(results["perplexity"]) == {"train", "val", "test"}
    assert results["train_tokens_per_second"] > 0
    assert results["sentences"] == {"train": 240, "val": 30, "test": 30}
    assert read_json(trained / "config.json")["direction"] == "forward"
    for name in ("model.pt", "vocab.json", "model.json"):
        assert (trained / name).is_file()
    assert list((trained / "tensorboard").iterdir())


def test_same_seed_same_results(trained, cli, tmp_path):
    out = tmp_path / "again"
    cli(
        "lm",
        "train",
        "--corpus",
        str(trained.parent / "corpus.txt"),
        *TINY,
        "--epochs",
        "2",
        "--out",
        str(out),
        "--quiet",
    )
    assert without_timings(read_json(out / "results.json")) == without_timings(
        read_json(trained / "results.json")
    )


def test_generate_greedy_is_deterministic_and_negative_temperature_exits_2(trained, cli):
    args = ["lm", "generate", "--model", str(trained), "--start", "love i", "--temperature", "0"]
    first, second = cli(*args, "--count", "2"), cli(*args, "--seed", "5")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == lines[1] == second.stdout.strip()
    assert lines[0].startswith("love i")
    bad = cli("lm", "generate", "--model", str(trained), "--temperature", "-1")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_prob_shows_both_probabilities_and_names_unknown_words(trained, cli):
    result = cli("lm", "prob", "--model", str(trained), "love i cupcakes", "i love you")
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert "with <EOS>" in first and "unknown, scored as <UNK>: cupcakes" in first
    assert "unknown" not in second


def test_next_answers_each_line_until_end_of_input(trained):
    command = ["lm", "next", "--model", str(trained), "--top-k", "3"]
    result = subprocess.run(
        [sys.executable, "-c", "from dlclassics.cli import main; main()", *command],
        input="love\ni love\n",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    answers = result.stdout.splitlines()
    assert len(answers) == 2 and all(len(a.split(", ")) == 3 for a in answers)


def test_next_refuses_input_that_is_not_utf8(trained):
    command = ["lm", "next", "--model", str(trained)]
    result = subprocess.run(
        [sys.executable, "-c", "from dlclassics.cli import main; main()", *command],
        input=b"caf\xe9 love\n",
        capture_output=True,
    )
    assert result.returncode == 2
    assert result.stderr.decode() == "error: standard input is not UTF-8 text\n"


def test_a_tiny_temperature_samples_the_greedy_sentence(cli, trained):
    args = ["lm", "generate", "--model", str(trained), "--start", "love"]
    greedy = cli(*args, "--temperature", "0")
    tiny = cli(*args, "--temperature", "1e-45")
    assert tiny.returncode == 0, tiny.stderr
    assert tiny.stdout == greedy.stdout
    assert_one_line_error(cli(*args, "--temperature", "nan"), trained / "never")


@pytest.mark.parametrize("command", ["generate", "prob", "next"])
def test_a_directory_that_is_not_an_lm_run_is_one_line_exit_2(cli, tmp_path, command):
    words = [] if command == "generate" else ["some words"]
    result = cli("lm", command, "--model", str(tmp_path), *words)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "not an lm run directory" in result.stderr


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


def test_offline_default_corpus_says_how_to_pass_a_file(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DLCLASSICS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DLCLASSICS_LM_CORPUS_URL", "http://127.0.0.1:9/wikisimple.txt")
    out = tmp_path / "run"
    result = cli("lm", "train", "--out", str(out))
    assert_one_line_error(result, out)
    assert "--corpus" in result.stderr


def test_the_default_corpus_is_read_from_the_cache(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DLCLASSICS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DLCLASSICS_LM_CORPUS_URL", "http://127.0.0.1:9/wikisimple.txt")
    write_corpus(
        (tmp_path / "data" / "lm").mkdir(parents=True) or tmp_path / "data/lm/wikisimple.txt"
    )
    out = tmp_path / "run"
    result = cli("lm", "train", *TINY, "--max-steps", "2", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert read_json(out / "config.json")["corpus"].endswith("wikisimple.txt")


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_no_direction_can_beat_chance_on_uniformly_random_words(cli, tmp_path, direction):
    # Keras' go_backwards reversed the inputs but not the targets: that model saw the word it had
    # to predict and would reach a perplexity near 1 here. Honest models stay near the 40 words.
    vocabulary = [f"w{i}" for i in range(40)]
    corpus = write_corpus(tmp_path / "random.txt", n=600, seed=1, words=vocabulary)
    out = tmp_path / "run"
    args = ["--embedding-size", "16", "--hidden-size", "32", "--lr", "0.01", "--epochs", "8"]
    result = cli(
        "lm",
        "train",
        "--corpus",
        str(corpus),
        "--direction",
        direction,
        *args,
        "--batch-size",
        "32",
        "--no-bf16",
        "--out",
        str(out),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    perplexity = read_json(out / "results.json")["perplexity"]
    assert perplexity["test"] > 0.7 * 40
    assert perplexity["train"] > 0.6 * 40


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes_the_same_training(tmp_path, corpus, cli):
    args = ["lm", "train", "--corpus", str(corpus), *TINY, "--batch-size", "4"]
    args += ["--epochs", "100", "--max-steps", "400"]
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from dlclassics.cli import main; main()", *args, "--out", f"{out}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    seen = b""
    while b"step" not in seen:  # the progress bar shows once Ctrl-C is handled
        chunk = proc.stderr.read1(4096)
        assert chunk, "training ended before it started"
        seen += chunk
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert b"--resume" in stderr
    assert (out / "train_state.pt").is_file() and not (out / "results.json").exists()

    resumed = cli("lm", "train", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    straight = tmp_path / "straight"
    assert cli(*args, "--out", str(straight), "--quiet").returncode == 0
    a, b = read_json(out / "results.json"), read_json(straight / "results.json")
    assert a["steps"] == b["steps"] == 400
    assert a["perplexity"] == pytest.approx(b["perplexity"], rel=1e-5)
    assert not (out / "train_state.pt").exists()


def test_study_four_models_with_generations_in_reading_order(cli, corpus, tmp_path):
    out = tmp_path / "study"
    result = cli("lm", "study", "--corpus", str(corpus), *TINY, "--epochs", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    models = read_json(out / "results.json")["models"]
    assert [(m["layers"], m["direction"]) for m in models] == [
        (1, "forward"),
        (1, "reverse"),
        (2, "forward"),
        (2, "reverse"),
    ]
    for m in models:
        assert set(m["perplexity"]) == {"train", "val", "test"}
        assert [g["temperature"] for g in m["generations"]] == [0.1, 1.0, 10.0]
        for g in m["generations"]:
            text = g["text"].split()
            assert len(text) <= 7
            assert (text[:2] if m["direction"] == "forward" else text[-2:]) == ["love", "i"]
        assert m["probabilities"][-1]["sentence"] == "love i cupcakes"
        assert all(0 < p["probability"] <= 1 for p in m["probabilities"])
    # Near-uniform sampling: models sharing one stream of draws would repeat each other's sentence.
    hot = [m["generations"][-1]["text"] for m in models]
    assert len(set(hot)) == len(hot)
    loaded = cli("lm", "prob", "--model", str(out / "models" / "layers2-reverse"), "love i")
    assert loaded.returncode == 0, loaded.stderr
    whole = cli("lm", "prob", "--model", str(out), "love i")
    assert whole.returncode == 2 and "models/layers1-forward" in whole.stderr
