"""The study's networks: logistic regression, an MLP, and three small CNNs. All return logits."""

from pathlib import Path

import torch
from torch import nn

from dlclassics.core.bounds import conforms
from dlclassics.core.checkpoint import (
    check_weights,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from dlclassics.core.errors import InputError
from dlclassics.mnist.data import NUM_CLASSES


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


def build(arch: str, dropout: float | None = None) -> nn.Module:
    """The network `arch`; `dropout` replaces the rate of its dropout layers (`tune` searches
    `double_conv_dropout`'s). The weights are the same either way: a checkpoint loads by arch."""
    if arch not in ARCHS:
        raise InputError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHS)})")
    model = ARCHS[arch]()
    if dropout is not None:
        for layer in model.modules():
            if isinstance(layer, nn.Dropout):
                layer.p = dropout
    return model


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def to_device(model: nn.Module, device: torch.device | str) -> nn.Module:
    """On `device`; conv nets in channels-last, which oneDNN's CPU convolutions run fastest."""
    model = model.to(device)
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)
    return model


def save_model(path: Path, model: nn.Module, arch: str, config: dict, classes: list[str]) -> Path:
    """The weights plus what it takes to rebuild them: the architecture, the training config and
    the class names, in the one checkpoint format."""
    return save_checkpoint(path, model, {"arch": arch}, config, classes=list(classes))


def load_classifier(
    path: Path | str,
    device: str | torch.device = "cpu",
    root: Path | None = None,
    data: bytes | None = None,
) -> nn.Module:
    """A saved model in eval mode, with `.arch`, `.classes` and `.config`: from a checkpoint file,
    a trial's folder, or a run directory holding one (`mnist cnn`'s keeps its chosen model); with
    `root` or `data`, as `load_checkpoint` reads.

    The one place an MNIST model is rebuilt from a file: its architecture, weights and class
    names are checked first, and a bad one is an InputError naming the file."""
    path = find_checkpoint(Path(path))
    checkpoint = load_checkpoint(path, root=root, data=data)
    args = checkpoint["model_args"]
    arch = args.get("arch")
    if args.keys() != {"arch"} or not isinstance(arch, str) or arch not in ARCHS:
        raise InputError(f"{path} is not an MNIST model (model arguments {args!r:.60})")
    classes = checkpoint.get("classes")
    if not (conforms(classes, list[str]) and len(classes) == NUM_CLASSES):
        raise InputError(f"{path}: its class names are not {NUM_CLASSES} strings")
    with torch.device("meta"):
        skeleton = build(arch)
    check_weights(path, skeleton, checkpoint["model"], f"a {arch}")
    model = build(arch)
    model.load_state_dict(checkpoint["model"])
    model.arch = arch
    model.classes = classes
    model.config = checkpoint["config"]
    return to_device(model, device).eval()
