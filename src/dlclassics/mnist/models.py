"""The study's networks: logistic regression, an MLP, and three small CNNs. All return logits."""

import io
from pathlib import Path

import torch
from torch import nn

from dlclassics.errors import InputError
from dlclassics.rundir import atomic_write_bytes

MODEL_FILE = "best.pt"


def logreg() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 200),
        nn.ReLU(),
        nn.Linear(200, 200),
        nn.ReLU(),
        nn.Linear(200, 10),
    )


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pooling, stride 2, as `max_pool2d(x, 2)`.

    Without autograd it is two elementwise maxima of strided views: the same values, and on the
    CPU several times faster than max_pool2d's kernel on 5-channel maps (a quarter off an
    evaluation pass). With autograd, max_pool2d, whose backward beats that of the maxima.
    """
    if x.requires_grad:
        return nn.functional.max_pool2d(x, 2)
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
    rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


class ConvNet(nn.Module):
    """`stages` conv(5x5, padding 2)/ReLU/2x2-max-pool stages of 5 channels, then FC 1024, FC 10."""

    def __init__(self, stages: int, dropout: float = 0.0) -> None:
        super().__init__()
        convs = [nn.Conv2d(1, 5, 5, 1, 2)] + [nn.Conv2d(5, 5, 5, 1, 2) for _ in range(stages - 1)]
        self.convs = nn.ModuleList(convs)
        side = 28 // 2**stages
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(5 * side * side, 1024),
            nn.ReLU(),
            nn.Linear(1024, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            # Pool first: ReLU commutes with max-pooling, and runs on a quarter of the values.
            x = torch.relu(max_pool_2x2(conv(x)))
        return self.head(x)


ARCHS = {
    "logreg": logreg,
    "mlp": mlp,
    "single_conv": lambda: ConvNet(1),
    "double_conv": lambda: ConvNet(2),
    "double_conv_dropout": lambda: ConvNet(2, dropout=0.5),
}
CNN_ARCHS = ("single_conv", "double_conv", "double_conv_dropout")


def build(arch: str) -> nn.Module:
    if arch not in ARCHS:
        raise InputError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHS)})")
    return ARCHS[arch]()


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_model(model: nn.Module, arch: str, config: dict, path: Path) -> Path:
    """Weights plus what it takes to rebuild them: the architecture and the training config."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"arch": arch, "config": config, "state_dict": state}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_model(path: Path | str, device: str | torch.device = "cpu") -> nn.Module:
    """A saved model, in eval mode: a file from `save_model`, or a run directory holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / MODEL_FILE
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        model = build(saved["arch"])
        model.load_state_dict(saved["state_dict"])
    except Exception as e:  # a malformed file can fail anywhere inside the unpickler
        raise InputError(f"cannot load a model from {path}: {e}") from e
    model.arch = saved["arch"]
    model.config = saved["config"]
    return model.to(device).eval()
