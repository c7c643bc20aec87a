"""The exercises of notebooks/mnist_from_simple_networks_to_cnns.ipynb."""

import numbers
from collections.abc import Sequence

import torch

from dlclassics.exercises import missing, verdict
from dlclassics.mnist.models import ConvNet, mlp, parameter_count


def _is_int(answer: object) -> bool:
    """An integer, Python's or NumPy's (as `np.argmax` gives), but not a bool."""
    return isinstance(answer, numbers.Integral) and not isinstance(answer, bool)


def check_mlp_parameters(answer: object) -> bool:
    """Exercise 1: the MLP's (784-200-200-10) count of weights and biases."""
    hint = "each Linear(n_in, n_out) holds an n_in x n_out weight matrix and n_out biases"
    if missing(answer, "`parameters`, an integer", hint):
        return False
    if not _is_int(answer):
        return verdict([f"{answer!r} is not an integer"], hint)
    model = mlp()
    want = parameter_count(model)
    weights = sum(p.numel() for p in model.parameters() if p.dim() == 2)
    problems = []
    if answer == weights:
        problems.append(f"{answer:,} counts the weight matrices but not the biases")
    elif answer != want:
        problems.append(f"{answer:,} is {'more' if answer > want else 'fewer'} than the MLP holds")
    return verdict(problems, hint)


def check_features(answer: object, stages: int = 3) -> bool:
    """Exercise 2: how many values a `stages`-stage ConvNet hands its first fully connected
    layer, for one 28x28 image; the network itself is the answer key."""
    hint = (
        "a 5x5 convolution with padding 2 keeps the side; a 2x2 max-pool halves it, rounding "
        "down (an odd side loses its last row and column); then multiply by the channels"
    )
    if missing(answer, "`features`, an integer", hint):
        return False
    if not _is_int(answer):
        return verdict([f"{answer!r} is not an integer"], hint)
    # The answer key is the network's own forward: the shape its head receives.
    model, shapes = ConvNet(stages).eval(), []
    model.head.register_forward_hook(lambda module, inputs, output: shapes.append(inputs[0].shape))
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    channels, side = shapes[0][1], shapes[0][2]
    want = channels * side * side
    problems = []
    if answer != want:
        if answer == side * side:
            problems.append(f"{answer} is one channel's map: there are {channels} channels")
        elif answer == channels * round(28 / 2**stages) ** 2:
            problems.append(f"{answer} rounds a half up: pooling an odd side drops its last row")
        else:
            problems.append(f"{answer} is not what {stages} stages leave of a 28x28 image")
    return verdict(problems, hint)


def most_confused(confusion: Sequence[Sequence[int]]) -> tuple[set[frozenset[int]], int]:
    """The unordered class pairs {i, j} with the most test images taken for one another,
    either way round (rows: the true class), and that count."""
    n = len(confusion)
    counts = {
        frozenset((i, j)): confusion[i][j] + confusion[j][i]
        for i in range(n)
        for j in range(i + 1, n)
    }
    top = max(counts.values())
    return {pair for pair, c in counts.items() if c == top}, top


def check_most_confused(answer: object, confusion: Sequence[Sequence[int]]) -> bool:
    """Exercise 3: the pair of classes the chosen CNN confuses most on the test set, as two
    class indices in either order: the pair whose two off-diagonal cells add up the most."""
    hint = (
        "for every pair i < j add confusion[i][j] (i taken for j) and confusion[j][i] (j taken "
        "for i), and keep the largest"
    )
    if missing(answer, "`pair`, two class indices such as (4, 9)", hint):
        return False
    if not (
        isinstance(answer, Sequence | set | frozenset)
        and len(answer) == 2
        and all(_is_int(c) and 0 <= c < len(confusion) for c in answer)
    ):
        return verdict(
            [f"{answer!r} is not two class indices from 0 to {len(confusion) - 1}"], hint
        )
    pair = frozenset(int(c) for c in answer)
    if len(pair) == 1:
        return verdict(["a class on the diagonal is one it gets right, not a confusion"], hint)
    best, top = most_confused(confusion)
    i, j = sorted(pair)
    got = confusion[i][j] + confusion[j][i]
    problems = []
    if pair not in best:
        problems.append(f"{i} and {j} swap {got} test images; another pair swaps {top}")
    return verdict(problems, hint)
