import pytest
import torch
from torch import nn

from dlclassics.errors import InputError
from dlclassics.xor.analysis import unit_function
from dlclassics.xor.data import INPUTS, TARGETS, VAL_INPUTS, VAL_TARGETS
from dlclassics.xor.model import XorNet
from dlclassics.xor.solutions import HAND_WEIGHTS
from dlclassics.xor.study import run_study, runs_used
from dlclassics.xor.sweep import Config, Protocol, train_batched, xavier_init
from dlclassics.xor.train import sum_squared_error, train, truth_table


@pytest.mark.parametrize("spec", HAND_WEIGHTS, ids=lambda s: f"k{s['k']}")
def test_hand_weights_solve_xor(spec):
    net = XorNet(spec["k"], spec["bypass"], temperature=0.001)
    net.set_weights(
        spec["hidden_weight"], spec["hidden_bias"], spec["out_weight"], spec["out_bias"]
    )
    assert sum_squared_error(net) == 0.0
    assert truth_table(net) == [0.0, 1.0, 1.0, 0.0]


def test_hand_weights_need_a_low_temperature():
    spec = HAND_WEIGHTS[0]
    losses = []
    for temperature in (0.1, 1.0):
        net = XorNet(1, True, temperature=temperature)
        net.set_weights(
            spec["hidden_weight"], spec["hidden_bias"], spec["out_weight"], spec["out_bias"]
        )
        losses.append(sum_squared_error(net))
    assert 0 < losses[0] < losses[1]


@pytest.mark.parametrize(
    "k,bypass,kwargs",
    [
        (1, True, {"out_weight": [1.0, 1.0]}),
        (2, False, {"hidden_weight": [[1.0, 1.0]]}),
        (2, False, {"hidden_bias": [0.0]}),
    ],
)
def test_set_weights_checks_shapes(k, bypass, kwargs):
    net = XorNet(k, bypass)
    args = {
        "hidden_weight": [[0.0, 0.0]] * k,
        "hidden_bias": [0.0] * k,
        "out_weight": [0.0] * (k + 2 * bypass),
        "out_bias": 0.0,
    } | kwargs
    with pytest.raises(InputError, match="must have shape"):
        net.set_weights(**args)


def test_bad_network_arguments():
    with pytest.raises(InputError):
        XorNet(0, False)
    with pytest.raises(InputError):
        XorNet(2, False, temperature=0)


def test_training_learns_xor():
    torch.manual_seed(0)
    net = XorNet(2, False, temperature=0.5)
    losses = train(net, epochs=1000, lr=0.05)
    assert losses[-1] < losses[0] / 5
    assert [round(o) for o in truth_table(net)] == [0, 1, 1, 0]


def _one_run(config: Config, weights: dict, protocol: Protocol):
    """The original one-run loop (nn.Module, SGD, BCELoss), in float64."""
    hidden = nn.Linear(2, config.hidden).double()
    out = nn.Linear(config.hidden + 2 * config.bypass, 1).double()
    with torch.no_grad():
        hidden.weight.copy_(weights["hidden_weight"][: config.hidden])
        hidden.bias.copy_(weights["hidden_bias"][: config.hidden])
        keep = list(range(2)) if config.bypass else []
        keep += [2 + j for j in range(config.hidden)]
        out.weight.copy_(weights["out_weight"][keep].view(1, -1))
        out.bias.fill_(float(weights["out_bias"]))

    def net(x):
        h = torch.sigmoid(hidden(x))
        if config.bypass:
            h = torch.cat((x, h), 1)
        return torch.sigmoid(out(h))

    tx, ty, vx, vy = (t.double() for t in (INPUTS, TARGETS, VAL_INPUTS, VAL_TARGETS))
    opt = torch.optim.SGD([*hidden.parameters(), *out.parameters()], lr=config.lr)
    loss_fn = nn.BCELoss()
    best, bad = float("inf"), 0
    epoch = 0
    while epoch < protocol.max_epochs:
        epoch += 1
        loss = loss_fn(net(tx), ty)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            val = loss_fn(net(vx), vy).item()
        if val < best - protocol.min_delta:
            best, bad = val, 0
        else:
            bad += 1
        if bad >= protocol.patience and best < protocol.goal:
            break
    with torch.no_grad():
        return (
            bad >= protocol.patience and best < protocol.goal,
            epoch,
            (loss_fn(net(tx), ty).item(), val),
        )


def test_batched_trainer_matches_the_one_run_loop():
    configs = [
        Config(0.25, 1, True),
        Config(0.1, 2, False),
        Config(0.1, 4, True),
        Config(0.5, 2, True),
        Config(0.1, 1, False),
        Config(0.3, 4, False),
    ]
    protocol = Protocol(max_epochs=3000)
    init = xavier_init(configs, torch.Generator().manual_seed(3))
    batched = train_batched(configs, init, protocol, dtype=torch.float64)
    outcomes = set()
    for r, config in enumerate(configs):
        ok, epoch, (train_loss, val_loss) = _one_run(config, init.run(r), protocol)
        outcomes.add(ok)
        assert bool(batched.succeeded[r]) == ok
        assert int(batched.epochs[r]) == epoch
        assert float(batched.train_loss[r]) == pytest.approx(train_loss, rel=1e-5)
        assert float(batched.val_loss[r]) == pytest.approx(val_loss, rel=1e-5)
        final = batched.weights.run(r)
        assert torch.isfinite(final["out_weight"]).all()
    assert outcomes == {True, False}, "the test should cover runs that stop and runs that do not"


def test_padding_and_bypass_masks_keep_missing_weights_zero():
    configs = [Config(0.5, 1, False), Config(0.5, 4, True)]
    init = xavier_init(configs, torch.Generator().manual_seed(0))
    result = train_batched(configs, init, Protocol(max_epochs=200))
    w = result.weights
    assert (w.hidden[:, 1:, 0] == 0).all() and (w.out_hidden[1:, 0] == 0).all()
    assert (w.out_direct[:2, 0] == 0).all()
    assert (w.out_direct[:2, 1] != 0).all()


def test_runs_used_stops_at_the_nth_success():
    assert runs_used([True, False, True, True], successes=2) == 3
    assert runs_used([False, False, True], successes=2) == 3


def test_unit_function_names():
    assert unit_function(torch.tensor([1.0, 1.0]), -1.5) == "AND"
    assert unit_function(torch.tensor([-1.0, -1.0]), 1.5) == "NAND"
    assert unit_function(torch.tensor([1.0, 1.0]), -0.5) == "OR"


def test_small_study_counts_and_analysis():
    grid = [Config(0.5, 2, True), Config(0.5, 1, True)]
    protocol = Protocol(max_epochs=4000, successes=3, max_runs=5)
    study = run_study(grid, protocol, torch.Generator().manual_seed(1))
    for c in study.configs:
        assert c["successes"] + c["failures"] == c["runs"] <= 5
        assert c["successes"] == 3 or c["runs"] == 5
        assert len(c["epochs"]) == c["successes"]
    (analysis,) = study.hidden_units
    assert sum(analysis["functions"].values()) == study.configs[1]["successes"]
