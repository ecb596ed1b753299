"""The frame backbone that ships inside the package: EfficientNet-Lite0 fitted to body poses.

The video recipe's slowest stage fits its frame CNN (from ImageNet weights) to predict each
frame's 2-D pose, which the embedded corpus's generator knows exactly. A recipe run whose
config says ``backbone.weights: pose`` (the demo, ``recipes/video_activity/conf/default.yaml``)
skips that fit and starts from this one instead, as the speech demo starts from a frozen
Whisper encoder: it was fitted once, by the recipe's own stage on a larger corpus
(``conf/large.yaml``, at the demo's frame size; the card says which command), and shipped with
``recipes/video_activity/ship_backbone.py``.

The directory :data:`POSE_BACKBONE` is a bundle of kind ``pose_backbone``: ``config.yaml`` (the
card: backbone name, frame sizes, what the fit saw and held out, its dev pose R², the sha256
of the weights) and ``backbone.safetensors`` in float16 (the CNN and its pose head, the
``projection.*`` keys that :func:`data_prep.frame_embed.build_embedder` keeps). Its embeddings
are the predicted pose, in the fit's standardised units.
"""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path
from typing import Any

from data_prep.frame_embed import PROJECTION_PREFIX
from pipeline.errors import SeqrecError, shown
from pipeline.io_utils import file_sha256

#: The shipped pose backbone (a bundle directory).
POSE_BACKBONE = Path(__file__).resolve().parent / "video_pose"
#: The ``backbone.weights`` value that names it.
POSE_WEIGHTS = "pose"
KIND = "pose_backbone"
WEIGHTS_NAME = "backbone.safetensors"


class PoseBackboneError(SeqrecError, ValueError):
    """The shipped pose backbone is missing, altered, or does not fit the run; one line says why."""


def pose_backbone_card(root: Path = POSE_BACKBONE) -> dict[str, Any]:
    """The shipped pose backbone's ``config.yaml`` (see the module docstring).

    Raises:
        PoseBackboneError: not installed, or not a pose backbone bundle.
    """
    # lazy: pipeline.bundle pulls in yaml and torch's safetensors helpers
    from pipeline.bundle import BundleError, load_bundle

    try:
        return load_bundle(root, kind=KIND).config
    except BundleError as exc:
        raise PoseBackboneError(f"backbone.weights={POSE_WEIGHTS}: {exc}") from None


def pose_backbone_weights(
    name: str,
    frame_size: int,
    short_side: int,
    *,
    heldout_styles: tuple[str, ...] = (),
    heldout_motions: tuple[str, ...] = (),
    root: Path = POSE_BACKBONE,
) -> Path:
    """The shipped pose backbone's weights file, checked against the run that asks for it.

    Args:
        name, frame_size, short_side: The run's ``backbone`` config; they must be the ones the
            backbone was fitted with (a pose fitted at one scale is read badly at another).
        heldout_styles, heldout_motions: What the run holds out of training (the embedded
            corpus). Each must have been held out of the shipped fit too, or the run's
            held-out results would not be held out.

    Raises:
        PoseBackboneError: not installed, its weights altered (sha256), or it does not fit the run.
    """
    card = pose_backbone_card(root)
    want = {"name": name, "frame_size": frame_size, "short_side": short_side}
    have = {k: card.get("backbone", {}).get(k) for k in want}
    if have != want:
        diff = ", ".join(f"{k} {shown(have[k])}" for k in want if have[k] != want[k])
        raise PoseBackboneError(
            f"backbone.weights={POSE_WEIGHTS}: the shipped pose backbone was fitted with {diff}; "
            f"set backbone.name, frame_size and short_side to its values ({have}) or fit one (backbone.weights=imagenet)"
        )
    seen = card.get("fitted_on", {})
    for key, asked in (("heldout_styles", heldout_styles), ("heldout_motions", heldout_motions)):
        leaked = sorted(set(asked) - set(seen.get(key, ())))
        if leaked:
            raise PoseBackboneError(
                f"backbone.weights={POSE_WEIGHTS}: the shipped pose backbone was fitted on {', '.join(leaked)}, "
                f"which this run holds out ({key}); fit one instead (backbone.weights=imagenet)"
            )
    path = root / str(card.get("weights", WEIGHTS_NAME))
    if not path.is_file() or file_sha256(path) != card.get("sha256"):
        raise PoseBackboneError(f"{path}: missing, or not the file its card pins (sha256); reinstall seqrec")
    return path


def ship_pose_backbone(weights_file: str | Path, card: dict[str, Any], dst: Path = POSE_BACKBONE) -> Path:
    """Copies a run's fitted backbone (``<exp>/backbone/backbone.safetensors``, with its pose
    head) to ``dst`` in float16, with ``card`` (what :func:`pose_backbone_weights` checks:
    ``backbone`` and ``fitted_on``, plus how it was made) and the weights' sha256.

    Returns:
        ``dst`` (replaced atomically).
    """
    # lazy: torch and the bundle writer only to ship a backbone
    from safetensors.torch import load_file, save_file

    from pipeline.bundle import load_bundle, save_bundle

    state = load_file(str(weights_file))
    if not any(k.startswith(PROJECTION_PREFIX) for k in state):
        raise PoseBackboneError(f"{weights_file}: no pose head (projection.*): not a pose-fitted backbone")
    with tempfile.TemporaryDirectory(prefix="seqrec-ship-") as tmp:
        half = Path(tmp, WEIGHTS_NAME)
        save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}, str(half))
        config = {"kind": KIND, **card, "weights": WEIGHTS_NAME, "weights_dtype": "float16",
                  "sha256": file_sha256(half), "date": datetime.date.today().isoformat()}
        save_bundle(dst, config, {}, {WEIGHTS_NAME: half})
    load_bundle(dst, kind=KIND)
    return dst
