import warnings

import numpy as np
import pytest
import torch
from conftest import make_images
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score
from torch.nn import functional as F

from dlclassics.core.checkpoint import save_checkpoint
from dlclassics.core.errors import InputError
from dlclassics.core.machine import Machine
from dlclassics.mnist import experiment, fc
from dlclassics.mnist.config import FcConfig
from dlclassics.mnist.data import MnistData, Split, batch_generator
from dlclassics.mnist.evaluate import balanced_accuracy, predict, split_metrics
from dlclassics.mnist.models import (
    ConvNet,
    build,
    load_classifier,
    max_pool_2x2,
    parameter_count,
    save_model,
    to_device,
)
from dlclassics.mnist.train import TrainResult, train

FLOAT32_CPU = Machine("cpu", bf16=False)


@pytest.mark.parametrize("shape", [(3, 5, 28, 28), (2, 5, 7, 9), (1, 1, 2, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_2x2_matches_max_pool2d_without_autograd(shape, channels_last):
    torch.manual_seed(0)
    # Small integers: many ties, which the two must break alike in value.
    x = torch.randint(-3, 4, shape).float()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2))


def _notebook_forward(model: ConvNet, x: torch.Tensor) -> torch.Tensor:
    """The original order: conv, ReLU, then max-pool."""
    for conv in model.convs:
        x = F.max_pool2d(F.relu(conv(x)), 2)
    return model.head(x)


@pytest.mark.parametrize("arch", ["single_conv", "double_conv"])
def test_convnet_computes_the_notebooks_function_and_gradients(arch):
    torch.manual_seed(0)
    model = build(arch).to(memory_format=torch.channels_last)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    ours = model(x)
    ours.sum().backward()
    ours_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    theirs = _notebook_forward(model, x)
    theirs.sum().backward()
    assert torch.allclose(ours, theirs, atol=1e-6)
    for a, p in zip(ours_grads, model.parameters(), strict=True):
        assert torch.allclose(a, p.grad, atol=1e-5)
    with torch.inference_mode():
        assert torch.allclose(model(x), theirs.detach(), atol=1e-6)


def test_parameter_counts_match_the_architectures():
    # conv 1->5 (130) + FC 980->1024 (1,004,544) + FC 1024->10 (10,250)
    assert parameter_count(build("single_conv")) == 130 + 1_004_544 + 10_250
    # plus conv 5->5 (630), FC 245->1024 (251,904)
    assert parameter_count(build("double_conv")) == 130 + 630 + 251_904 + 10_250
    assert parameter_count(build("logreg")) == 7_850


def _noisy_data(seed: int = 0) -> MnistData:
    """Random images whose label is a noisy function of the mean of one quadrant: learnable,
    but noisy enough that validation accuracy goes up and down between checks."""
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> Split:
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
        signal = images[:, :14, :14].float().mean((1, 2))
        labels = ((signal - signal.mean()) / signal.std() * 2 + 5).round().clamp(0, 9).long()
        flip = torch.rand(n, generator=g) < 0.3
        labels[flip] = torch.randint(0, 10, (int(flip.sum()),), generator=g)
        return Split(images, labels)

    return MnistData(split(400), split(200), split(200), tuple(map(str, range(10))))


def _train(arch: str, data: MnistData, **options) -> tuple[torch.nn.Module, TrainResult]:
    """`arch` trained on `data` at batch 20 from seed 0."""
    torch.manual_seed(0)
    model = to_device(build(arch), "cpu")
    return model, train(model, data, batch_size=20, generator=batch_generator(0), **options)


@pytest.mark.parametrize("restore_best", [False, True])
def test_train_ends_with_the_last_or_the_best_checks_weights(restore_best):
    data = _noisy_data()
    options = {"lr": 0.01, "max_iterations": 200, "eval_every": 10}
    model, result = _train("mlp", data, restore_best=restore_best, **options)
    accuracies = [c.val_accuracy for c in result.checks]
    # The case worth testing: the best check is not the last one.
    assert max(accuracies) > accuracies[-1]
    preds, _ = predict(model, data.val)
    accuracy = (preds == data.val.labels).float().mean().item()
    assert accuracy == pytest.approx(result.kept_check.val_accuracy)
    if restore_best:
        assert result.kept_check.val_accuracy == result.best_val_accuracy
        assert result.kept == accuracies.index(max(accuracies))
        # The weights the last step left are kept aside: those a run without restore_best ends with.
        last, _ = _train("mlp", data, **options)
        assert result.last_weights.keys() == last.state_dict().keys()
        for name, weights in last.state_dict().items():
            assert torch.equal(result.last_weights[name], weights)
    else:
        assert result.kept_check is result.checks[-1]
        assert result.last_weights is None


def test_fc_reports_the_kept_weights_and_the_last_steps_test_accuracy(monkeypatch, tmp_path):
    data = _noisy_data()
    monkeypatch.setattr(experiment, "load_cached", lambda *args: data)
    config = FcConfig(iterations=200, batch_size=20, lr=0.01)
    result = fc.run_trial(config, fc.FcTrial("mlp"), tmp_path, quiet=True, machine=FLOAT32_CPU)
    # The same training, ending with its last weights: a check every epoch of 400 // 20 steps.
    last, run = _train("mlp", data, lr=0.01, max_iterations=200, eval_every=20)
    best = max(run.checks, key=lambda c: c.val_accuracy)
    assert result.kept_iteration == best.iteration < 200  # not the last step
    assert result.splits["val"]["accuracy"] == pytest.approx(best.val_accuracy)
    assert result.last_test_accuracy == pytest.approx(_test_accuracy(last, data))
    assert result.last_test_accuracy != pytest.approx(result.splits["test"]["accuracy"])
    preds, _ = predict(last, data.test)
    assert result.last_test_balanced_accuracy == pytest.approx(
        balanced_accuracy_score(data.test.labels, preds)
    )
    saved = load_classifier(tmp_path)  # the trial's checkpoint holds the kept weights
    assert _test_accuracy(saved, data) == pytest.approx(result.splits["test"]["accuracy"])


@pytest.mark.slow  # bf16 is emulated, and slow, on most CPUs
def test_train_in_bf16_learns_and_checks_at_the_training_precision():
    data = _noisy_data()

    def losses_of(bf16: bool) -> tuple[torch.nn.Module, list[tuple[float, float]]]:
        options = {"lr": 0.001, "max_iterations": 60, "eval_every": 20}
        model, result = _train("double_conv", data, bf16=bf16, **options)
        return model, [(c.train_loss, c.val_loss) for c in result.checks]

    model, losses = losses_of(bf16=True)
    _, float32_losses = losses_of(bf16=False)
    assert losses[-1][1] < losses[0][1]
    # Close to float32 in training and in the checks, but not equal in either: autocast changed
    # the arithmetic of both.
    for i in (0, 1):
        bf16_curve, float32_curve = ([x[i] for x in run] for run in (losses, float32_losses))
        assert bf16_curve == pytest.approx(float32_curve, rel=0.05)
        assert bf16_curve != float32_curve
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, check_loss = predict(model, data.val)
    assert check_loss == pytest.approx(losses[-1][1], rel=1e-6)


def _separable_data() -> MnistData:
    """Images whose class is the position of a bright block (as in test_mnist_data)."""
    rng = np.random.default_rng(1)

    def split(n: int) -> Split:
        labels = rng.permutation(np.arange(n) % 10)
        images = torch.from_numpy(make_images(labels, rng))
        return Split(images, torch.from_numpy(labels).long())

    return MnistData(split(500), split(100), split(200), tuple(map(str, range(10))))


def _test_accuracy(model: torch.nn.Module, data: MnistData) -> float:
    preds, _ = predict(model, data.test)
    return (preds == data.test.labels).float().mean().item()


@pytest.mark.parametrize("arch", ["mlp", "single_conv"])
def test_models_learn_separable_images(arch):
    data = _separable_data()
    torch.manual_seed(0)
    model = to_device(build(arch), "cpu")
    assert _test_accuracy(model, data) < 0.3  # untrained: about chance, 0.1
    options = {"lr": 0.001, "max_iterations": 60, "eval_every": 20}  # 3 epochs
    result = train(model, data, batch_size=25, generator=batch_generator(0), **options)
    assert result.iterations == 60
    assert _test_accuracy(model, data) >= 0.9  # on images it never saw


def test_save_and_load_model_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build("double_conv")
    classes = [f"c{i}" for i in range(10)]
    path = save_model(
        tmp_path / "trial" / "checkpoint.pt", model, "double_conv", {"lr": 0.1}, classes
    )
    for source in (path, path.parent):  # the file, or the folder holding it
        loaded = load_classifier(source)
        assert (loaded.arch, loaded.classes, loaded.config) == ("double_conv", classes, {"lr": 0.1})
        assert not loaded.training
        x = torch.rand(3, 1, 28, 28)
        with torch.inference_mode():
            assert torch.allclose(loaded(x), model.eval()(x), atol=1e-6)


def test_load_model_refuses_a_checkpoint_of_another_model(tmp_path):
    # The shape of a language model's checkpoint: the same format, other model arguments.
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, torch.nn.Linear(2, 2), {"direction": "forward"}, {}, vocab=["a"])
    with pytest.raises(InputError, match="not an MNIST model"):
        load_classifier(path)
    save_model(path, build("mlp"), "logreg", {}, [str(d) for d in range(10)])
    with pytest.raises(InputError, match="do not fit a logreg"):
        load_classifier(path)


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=300))
def test_balanced_accuracy_is_scikit_learns(pairs):
    # One definition serves the checks and the reports; it must be the one the reports name.
    labels, preds = (torch.tensor(column) for column in zip(*pairs, strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        expected = balanced_accuracy_score(labels.numpy(), preds.numpy())
    assert balanced_accuracy(labels, preds) == pytest.approx(expected, rel=1e-12)
    assert split_metrics(labels, preds)["balanced_accuracy"] == balanced_accuracy(labels, preds)
