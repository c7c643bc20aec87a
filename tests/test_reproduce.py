import random
import re

from conftest import read_json
from test_mnist_data import write_idx_set


def write_corpus(path, sentences=400):
    rng = random.Random(0)
    subjects, verbs, objects = (
        ["a cat", "the dog", "a man", "two birds"],
        ["sees", "eats"],
        [
            "a cake",
            "the ball",
            "some food",
        ],
    )
    lines = [
        f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}."
        for _ in range(sentences)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_quick_reproduction_on_generated_data(cli, tmp_path):
    idx = write_idx_set(tmp_path / "idx", n_train=400, n_test=100)
    corpus = write_corpus(tmp_path / "corpus.txt")
    out = tmp_path / "report"
    result = cli(
        "reproduce",
        "--quick",
        "--quiet",
        *("--mnist-dir", str(idx), "--corpus", str(corpus), "--out", str(out)),
    )
    assert result.returncode == 0, result.stderr
    parts = read_json(out / "results.json")["parts"]
    assert [p["name"] for p in parts] == [
        "xor-solve",
        "xor-train",
        "xor-sweep",
        "mnist-fc",
        "mnist-cnn",
        "lm-study",
    ]
    assert all(p["ok"] and p["seconds"] > 0 for p in parts)
    md = (out / "report.md").read_text()
    for title in ("XOR hyperparameter study", "MNIST: CNNs", "LSTM language model"):
        assert f"## {title}" in md
    html = (out / "report.html").read_text()
    assert "<table>" in html
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert md.count("![") == len(sources)
    assert (out / "lm-study" / "results.json").exists()


def test_a_failing_part_is_reported_and_the_others_run(cli, tmp_path):
    empty = tmp_path / "no-mnist-here"
    empty.mkdir()
    out = tmp_path / "report"
    result = cli(
        "reproduce",
        "--quick",
        "--quiet",
        *("--only", "mnist-fc,xor-solve", "--mnist-dir", str(empty), "--out", str(out)),
    )
    assert result.returncode == 1
    parts = {p["name"]: p for p in read_json(out / "results.json")["parts"]}
    assert parts["xor-solve"]["ok"]
    assert not parts["mnist-fc"]["ok"]
    error = parts["mnist-fc"]["error"]
    assert str(empty) in error and not error.startswith("error")
    assert f"FAILED: {error}" in (out / "report.md").read_text()
    assert f"Failed: {error}" in (out / "report.html").read_text()


def test_unknown_part_is_one_line_exit_2(cli, tmp_path):
    result = cli("reproduce", "--only", "nonsense", "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
