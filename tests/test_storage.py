"""`--storage` URLs that cannot hold a shared study, for every command that takes one: one line,
exit code 2, no password shown, nothing made; and `tune` kept to its own studies and settings.

No test needs a database server: the URLs name 127.0.0.1 only, on port 1 where a connection is
refused at once, or are refused before anything connects.
"""

import pytest
from conftest import TINY_LM, assert_one_line_error, invoke_cli, write_corpus, write_idx_set

optuna = pytest.importorskip("optuna")

SECRET = "s3cr3t-pw"
# A search of one tiny trial, on either command.
SEARCH = ["--epochs", "1", "--n-trials", "1", "--device", "cpu", "--quiet"]
LM_SEARCH = ["--embedding-sizes", "8", "--hidden-sizes", "8", "--batch-size", "16", *SEARCH]
CNN_SEARCH = ["--archs", "single_conv", "--batch-sizes", "50", "--eval-every", "5", *SEARCH]
CNN_GRID = ["--archs", "single_conv", "--batch-sizes", "50", "--max-epochs", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("data")
    idx = write_idx_set(root / "idx", n_train=500, n_test=100)
    return {"idx": str(idx), "corpus": str(write_corpus(root / "corpus.txt"))}


def command(name: str, data: dict[str, str]) -> list[str]:
    """The command `name` at tiny settings on local data: a URL that slipped through the checks
    ends soon, and no data is downloaded."""
    idx, corpus = ["--data-dir", data["idx"]], ["--corpus", data["corpus"]]
    return {
        "xor solve": ["xor", "solve", "--quiet"],
        "xor train": ["xor", "train", "--epochs", "300", "--quiet"],
        "xor sweep": [
            "xor", "sweep", "--lrs", "0.1", "--hidden", "2", "--no-extra", "--max-epochs", "200",
            "--successes", "1", "--max-runs", "1", "--quiet",
        ],
        "mnist fc": ["mnist", "fc", "--iterations", "3", *idx, "--quiet"],
        "mnist cnn": ["mnist", "cnn", *CNN_GRID, "--eval-every", "5", *idx, "--quiet"],
        "lm study": ["lm", "study", *corpus, *TINY_LM, "--epochs", "1", "--quiet"],
        "reproduce": [
            "reproduce", "--quick", "--only", "xor-solve", "--data-dir", data["idx"], *corpus,
            "--quiet",
        ],
        "tune mnist-cnn": ["tune", "mnist-cnn", *idx, *CNN_SEARCH],
        "tune lm": ["tune", "lm", *corpus, *LM_SEARCH],
        "study report": ["study", "report", "--study-name", "s"],
    }[name]  # fmt: skip


COMMANDS = [
    "xor solve", "xor train", "xor sweep", "mnist fc", "mnist cnn", "lm study", "reproduce",
    "tune mnist-cnn", "tune lm", "study report",
]  # fmt: skip

# (URL, what the error says); {tmp} is the test's folder, holding `folder/` and `text.db`.
BAD_URLS = {
    "memory": ("sqlite://", "an SQLite database in memory"),
    "memory, no file": ("sqlite:///", "an SQLite database in memory"),
    "memory by name": ("sqlite:///:memory:", "an SQLite database in memory"),
    "memory, URI": ("sqlite:///file::memory:?cache=shared&uri=true", "in memory"),
    "memory, URI mode": ("sqlite:///file:db?mode=memory&uri=true", "in memory"),
    "sqlite's name only": (":memory:", "is not a database URL"),
    "empty": ("", "--storage is empty"),
    "bad IPv6 host": (f"postgresql://alice:{SECRET}@[::1/db", "is not a database URL"),
    "no ':'": (f"postgresql//alice:{SECRET}@127.0.0.1/db", "is not a database URL"),
    "no '//'": (f"postgresql:alice:{SECRET}@127.0.0.1/db", "is not a database URL"),
    "port not a number": (f"postgresql://alice:{SECRET}@127.0.0.1:abc/db", "not a database URL"),
    "port too high": (f"postgresql://alice:{SECRET}@127.0.0.1:99999/db", "port 99999 is not"),
    "port 0": (f"postgresql://alice:{SECRET}@127.0.0.1:0/db", "port 0 is not between 1 and"),
    "mysql": (f"mysql://alice:{SECRET}@127.0.0.1/db", "mysql is not a database dlclassics"),
    "unknown driver": (f"foo://alice:{SECRET}@127.0.0.1/db", "foo is not a database dlclassics"),
    "no such folder": ("sqlite:///{tmp}/missing/study.db", "missing does not exist"),
    "a folder": ("sqlite:///{tmp}/folder", "folder is a folder, not a database file"),
    "not a database": ("sqlite:///{tmp}/text.db", "file is not a database"),
    "refused": (f"postgresql://alice:{SECRET}@127.0.0.1:1/db", "cannot open storage"),
    "password in the query": (
        f"postgresql://alice@127.0.0.1:1/db?password={SECRET}",
        "cannot open storage",
    ),
}


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
@pytest.mark.parametrize("name", COMMANDS)
def test_a_bad_storage_is_one_line_exit_2_with_no_password_and_nothing_made(
    tmp_path, data, name, url
):
    url, says = url
    (tmp_path / "folder").mkdir()
    (tmp_path / "text.db").write_text("not a database\n")
    before = sorted(tmp_path.rglob("*"))
    out = tmp_path / "run"
    result = invoke_cli(
        *command(name, data), "--storage", url.format(tmp=tmp_path), "--out", str(out)
    )
    assert_one_line_error(result)
    assert says in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert sorted(tmp_path.rglob("*")) == before  # no run directory, no database file
    assert (tmp_path / "text.db").read_text() == "not a database\n"


def trial_count(url: str, name: str) -> int:
    return len(optuna.load_study(study_name=name, storage=url).trials)


# Each pair: a grid command and the search of its trials.
PAIRS = [("mnist cnn", "tune mnist-cnn"), ("lm study", "tune lm")]


@pytest.mark.slow
@pytest.mark.parametrize("first", [0, 1], ids=["grid then tune", "tune then grid"])
@pytest.mark.parametrize("pair", PAIRS, ids=[tune for _, tune in PAIRS])
def test_a_study_name_of_the_other_kind_of_study_is_refused(tmp_path, data, pair, first):
    made, other = pair[first], pair[1 - first]
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    storage = ["--storage", url, "--study-name", "x"]
    result = invoke_cli(*command(made, data), *storage, "--out", str(tmp_path / "first"))
    assert result.returncode == 0, result.stderr
    trials = trial_count(url, "x")
    out = tmp_path / "second"
    result = invoke_cli(*command(other, data), *storage, "--out", str(out))
    assert_one_line_error(result, out)
    assert f"study 'x' is a `dlclassics {made}` study" in result.stderr
    assert trial_count(url, "x") == trials  # nothing written into the other command's study


@pytest.fixture(scope="module")
def lm_search(tmp_path_factory, data) -> str:
    """The SQLite URL of a finished `tune lm` study "s" of one trial."""
    root = tmp_path_factory.mktemp("search")
    url = f"sqlite:///{root / 'shared.db'}"
    result = invoke_cli(
        *command("tune lm", data), "--storage", url, "--study-name", "s", "--out", str(root / "r")
    )
    assert result.returncode == 0, result.stderr
    return url


@pytest.mark.parametrize(
    ("args", "differs"),
    [
        (["--epochs", "2"], "epochs"),
        (["--embedding-sizes", "8,16"], "embedding_sizes"),  # was a CategoricalDistribution error
        (["--corpus", "{other}"], "corpus"),
        (["--vocab-size", "50"], "vocab_size"),
        (["--lr", "0.001,0.1"], "lr"),
        (["--layers", "1", "--batch-size", "8"], "batch_size, layers"),
    ],
)
def test_tune_refuses_its_study_with_other_settings(tmp_path, data, lm_search, args, differs):
    other = str(write_corpus(tmp_path / "other.txt", seed=1))
    args = [a.format(other=other) for a in args]
    trials = trial_count(lm_search, "s")
    out = tmp_path / "run"
    storage = ["--storage", lm_search, "--study-name", "s"]
    result = invoke_cli(*command("tune lm", data), *args, *storage, "--out", str(out))
    assert_one_line_error(result, out)
    assert f"study 's' is this command's study with other settings ({differs})" in result.stderr
    assert trial_count(lm_search, "s") == trials


def test_tune_continues_its_study_with_another_processs_budget_seed_and_pruner(
    tmp_path, data, lm_search
):
    trials = trial_count(lm_search, "s")
    own = ["--n-trials", "1", "--timeout", "600", "--seed", "1", "--startup-trials", "0"]
    storage = ["--storage", lm_search, "--study-name", "s"]
    out = tmp_path / "run"
    result = invoke_cli(*command("tune lm", data), *own, *storage, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert trial_count(lm_search, "s") == trials + 1
