"""What each part's results mean, in a sentence or two computed from its results.json: shown at
the top of its section of the reproduction's report, and above its results in the notebooks."""

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dlclassics.mnist.data import SOURCES
from dlclassics.xor.model import net_name

Record = Mapping[str, Any]


def _names(items: Sequence[str]) -> str:
    """a, b and c"""
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def _count(n: Any, word: str) -> str:
    """2 layers, 1 layer"""
    return f"{n} {word}" + ("" if n == 1 else "s")


def _of(part: int, whole: int) -> str:
    """All 3, 2 of the 3"""
    return f"All {whole}" if part == whole else f"{part} of the {whole}"


def _rate(successes: int, runs: int) -> str:
    return f"{successes}/{runs} ({successes / runs:.0%})" if runs else "0/0"


def xor_solve(results: Record, config: Record) -> str:
    configs = results["configs"]
    solved = [net_name(c["k"], c["bypass"]) for c in configs if c["solves_xor"]]
    failed = [net_name(c["k"], c["bypass"]) for c in configs if not c["solves_xor"]]
    md = f"{_of(len(solved), len(configs))} hand-set networks compute XOR"
    md += f" ({_names(solved)})" if solved else ""
    return md + (
        f"; {_names(failed)} {'does' if len(failed) == 1 else 'do'} not." if failed else "."
    )


def xor_train(results: Record, config: Record) -> str:
    configs = results["configs"]
    learned = [c for c in configs if c["learned_xor"]]
    md = f"{_of(len(learned), len(configs))} trained networks learned XOR"
    if learned:
        md += f" ({_names([net_name(c['k'], c['bypass']) for c in learned])})"
    failed = [net_name(c["k"], c["bypass"]) for c in configs if not c["learned_xor"]]
    md += f"; {_names(failed)} did not." if failed else "."
    best = min(configs, key=lambda c: c["final_loss"], default=None)
    if best:
        md += (
            f" The lowest final loss is {net_name(best['k'], best['bypass'])}'s, "
            f"{best['final_loss']:.4f}."
        )
    return md


def xor_sweep(results: Record, config: Record) -> str:
    """The success rate (runs that reached the goal) by learning rate and by hidden units."""

    def rates(key: str) -> dict[Any, list[int]]:
        """Successes and runs by the setting `key`."""
        counts: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
        for c in results["configs"]:
            counts[c[key]][0] += c["successes"]
            counts[c[key]][1] += c["runs"]
        return counts

    sentences = []
    for key, what, label in (
        ("lr", "by learning rate", lambda v: f"lr {v}"),
        ("hidden", "by hidden units", lambda v: _count(v, "hidden unit")),
    ):
        by = rates(key)
        share = {v: s / n if n else 0.0 for v, (s, n) in by.items()}
        if not share:
            continue
        listed = ", ".join(f"{v}: {_rate(*by[v])}" for v in by)
        worst = [label(v) for v in share if share[v] == min(share.values())]
        # A worst only where some setting does better.
        fails = f"; worst: {_names(worst)}" if min(share.values()) < max(share.values()) else ""
        sentences.append(f"Runs that learned XOR, {what}: {listed}{fails}.")
    learned = [c for c in results["configs"] if c.get("mean_epochs") is not None]
    if learned:
        fast = min(learned, key=lambda c: c["mean_epochs"])
        bypass = "with" if fast["bypass"] else "without"
        sentences.append(
            f"Fastest: lr {fast['lr']}, {_count(fast['hidden'], 'hidden unit')} {bypass} the "
            "bypass, "
            f"{fast['mean_epochs']:,.0f} epochs on average."
        )
    return " ".join(sentences)


def _confused(model: str, matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> str:
    """The two classes that `model` most often takes for each other on the test set, either way
    round, from its confusion matrix (rows: the true class)."""
    n = len(matrix)
    if n < 2:
        return ""
    i, j = max(
        ((i, j) for i in range(n) for j in range(i + 1, n)),
        key=lambda p: matrix[p[0]][p[1]] + matrix[p[1]][p[0]],
    )
    if matrix[i][j] + matrix[j][i] == 0:
        return f" {model} misclassifies no test image."
    a, b = (classes[k] if k < len(classes) else str(k) for k in (i, j))
    return (
        f" The classes {model} confuses most: {a} and {b} ({matrix[i][j]} test images of {a} "
        f"taken for {b}, {matrix[j][i]} of {b} for {a})."
    )


def _classes(config: Record) -> tuple[str, ...]:
    source = SOURCES.get(config.get("dataset", "mnist"))
    return source.classes if source else ()


def mnist_fc(results: Record, config: Record) -> str:
    models = results["models"]
    accuracy = [m["splits"]["test"]["accuracy"] for m in models]
    top = max(accuracy)
    best = models[accuracy.index(top)]
    tied = [m["name"] for m, a in zip(models, accuracy, strict=True) if a == top]
    if len(tied) > 1:
        md = f"{_names(tied)} tie on the test set, accuracy {top:.4f}"
    else:
        md = f"Best on the test set: {best['name']}, accuracy {top:.4f}"
    others = [f"{m['name']} {a:.4f}" for m, a in zip(models, accuracy, strict=True) if a != top]
    md += f" ({', '.join(others)})." if others else "."
    matrix = best["splits"]["test"].get("confusion_matrix")
    if matrix:
        md += _confused(best["name"], matrix, _classes(config))
    return md


def mnist_cnn(results: Record, config: Record) -> str:
    best = results["best"]
    md = (
        f"Best by balanced validation accuracy: {best['arch']} at batch {best['batch_size']}, "
        f"test accuracy {best['test_accuracy']:.4f}."
    )
    runs = results.get("runs", [])
    reached = [r for r in runs if r["reached_target"]]
    target = config.get("target_accuracy")
    goal = f"the target validation accuracy {target}" if target else "the target"
    if reached:
        fast = min(reached, key=lambda r: r["seconds"])
        md += (
            f" {len(reached)} of {len(runs)} runs reached {goal}; the fastest, {fast['arch']} "
            f"at batch {fast['batch_size']}, in {fast['iterations']:,} iterations "
            f"({fast['seconds']:.2f} seconds)."
        )
    elif runs:
        md += f" None of the {len(runs)} runs reached {goal}."
    matrix = results.get("best_test", {}).get("confusion_matrix")
    if matrix:
        md += _confused(best["arch"], matrix, _classes(config))
    return md


def lm_study(results: Record, config: Record) -> str:
    models = results["models"]

    def name(m: Record) -> str:
        return f"{_count(m['layers'], 'layer')}, {m['direction']}"

    best = min(models, key=lambda m: m["perplexity"]["test"])
    test = best["perplexity"]["test"]
    # As the perplexity table writes it: from 1,000 on, thousands without decimals.
    shown = f"{test:,.0f}" if test >= 1000 else f"{test:.2f}"
    md = f"Lowest test perplexity: {name(best)}, {shown}."
    by = {(m["layers"], m["direction"]): m["perplexity"]["test"] for m in models}
    gaps = [
        f"{(by[layers, 'reverse'] / by[layers, 'forward'] - 1):+.1%} with {_count(layers, 'layer')}"
        for layers in sorted({layers for layers, _ in by})
        if (layers, "forward") in by and (layers, "reverse") in by
    ]
    if gaps:
        md += f" The reverse models' test perplexity against the forward ones': {', '.join(gaps)}."
    scored = [p for m in models for p in m.get("probabilities", [])]
    unknown = list(dict.fromkeys(w for p in scored for w in p.get("unknown_words", [])))
    if unknown:
        holding = sum(1 for p in scored if p.get("unknown_words"))
        md += (
            f" Not in the vocabulary: {_names(unknown)}; every sentence probability scores each "
            f"of them as <UNK> ({holding} of the {len(scored)} sentences scored hold one)."
        )
    return md


INTERPRETERS: dict[str, Callable[[Record, Record], str]] = {
    "xor-solve": xor_solve,
    "xor-train": xor_train,
    "xor-sweep": xor_sweep,
    "mnist-fc": mnist_fc,
    "mnist-cnn": mnist_cnn,
    "lm-study": lm_study,
}


def interpret(part: str, results: Any, config: Any = None) -> str:
    """The paragraph on what part `part`'s results (its results.json, and its config.json) mean,
    or "" where there is nothing to say: no results (it failed), or not the shape expected."""
    interpreter = INTERPRETERS.get(part)
    if interpreter is None or not isinstance(results, Mapping):
        return ""
    try:
        text = interpreter(results, config if isinstance(config, Mapping) else {})
    # A results.json of another version, or edited by hand, must not stop the report.
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError):
        return ""
    return f"**In short:** {text}\n\n" if text else ""
