"""Real-image sanity check of a frame embedder: do its embeddings tell different things apart?

A handful of real photographs of different things (by default six from scikit-image's sample
data: a cat, a cup of coffee, a motorcycle, an astronaut, a rocket launch, a horse silhouette)
are each cut into a few randomly cropped and mirrored views at the embedder's frame size. A
backbone whose features mean something puts the views of one photograph next to each other:

- ``nn_accuracy``: leave-one-out nearest-neighbour accuracy, the share of views whose nearest
  other view (cosine similarity of the centred embeddings) comes from the same photograph;
- ``chance``: what a random neighbour would score, ``sum n_p (n_p - 1) / (N (N - 1))``;
- ``silhouette``: the mean silhouette of the views under cosine distance (about 0 for
  unstructured embeddings, 1 for tight, well separated photographs).

Run it from the command line::

    python -m data_prep.embed_check --backbone efficientnet_lite0 --weights imagenet --size 64

The photographs come from the scikit-image package when it is installed (``--photos`` takes
other image files instead); this module reads them with OpenCV and never imports scikit-image.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import SeqrecError

#: scikit-image sample photographs of six different things (file names in ``skimage/data``).
SKIMAGE_PHOTOS = ("chelsea.png", "coffee.png", "motorcycle_left.png", "astronaut.png", "rocket.jpg", "horse.png")


class PhotoError(SeqrecError, ValueError):
    """A photograph for the check cannot be found or read; the message says which."""


def read_photo(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; grey becomes three channels, alpha is laid on white."""
    # lazy: cv2 only to read the check's photographs (the module's --help stays fast)
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise PhotoError(f"{path}: not a readable image")
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:  # on white, so a black silhouette stays visible
        alpha = image[:, :, 3:].astype(np.float32) / 255.0
        image = (image[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(image[:, :, 2::-1])  # BGR -> RGB


def skimage_photos(names: Sequence[str] = SKIMAGE_PHOTOS) -> dict[str, np.ndarray]:
    """scikit-image's sample photographs by file name, located without importing the package."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise PhotoError("the sample photographs come from scikit-image: run `pip install scikit-image`")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise PhotoError(f"{folder}: scikit-image has no {', '.join(missing)}")
    return {Path(n).stem: read_photo(folder / n) for n in names}


def photo_views(
    photos: Mapping[str, np.ndarray], size: int, views: int = 3, seed: int = 0, min_side: float = 0.6
) -> tuple[np.ndarray, np.ndarray]:
    """``views`` random square crops of every photograph (side ``min_side``..1 of its short side,
    anywhere in it, mirrored half the time), resized to ``size``.

    Returns (frames (P * views, size, size, 3) uint8, photo index of each frame).
    """
    # lazy: cv2 only to read the check's photographs (the module's --help stays fast)
    import cv2

    rng = np.random.default_rng(seed)
    frames, labels = [], []
    for label, image in enumerate(photos.values()):
        h, w = image.shape[:2]
        for _ in range(views):
            side = max(1, int(round(min(h, w) * rng.uniform(min_side, 1.0))))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = image[y : y + side, x : x + side]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            frames.append(cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA))
            labels.append(label)
    return np.stack(frames), np.asarray(labels)


@dataclass(frozen=True)
class Separation:
    """How well embeddings group the views of each photograph (see the module docstring)."""

    nn_accuracy: float
    chance: float
    silhouette: float
    photos: int
    views: int

    def __str__(self) -> str:
        return (
            f"nearest-neighbour accuracy {self.nn_accuracy:.3f} (chance {self.chance:.3f}), "
            f"silhouette {self.silhouette:+.3f}; {self.photos} photos x {self.views} views"
        )


def separation(embeddings: np.ndarray, labels: np.ndarray) -> Separation:
    """Leave-one-out nearest-neighbour accuracy, its chance level and the mean silhouette
    (cosine distance after centring) of ``embeddings`` (N, D) grouped by ``labels`` (N,)."""
    x = np.asarray(embeddings, np.float64)
    labels = np.asarray(labels)
    n = len(x)
    if n < 2 or len(x) != len(labels):
        raise ValueError("separation needs at least two embeddings, one label each")
    x = x - x.mean(0)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    dist = 1.0 - x @ x.T
    np.fill_diagonal(dist, np.inf)
    same = labels[:, None] == labels[None, :]
    nn_accuracy = float(same[np.arange(n), dist.argmin(1)].mean())
    counts = np.bincount(np.unique(labels, return_inverse=True)[1])
    chance = float((counts * (counts - 1)).sum() / (n * (n - 1)))
    np.fill_diagonal(dist, 0.0)
    scores = []
    for i in range(n):
        own = same[i].copy()
        own[i] = False
        if not own.any():  # a lone view has no silhouette (0 by convention)
            scores.append(0.0)
            continue
        a = dist[i, own].mean()
        b = min(dist[i, labels == other].mean() for other in np.unique(labels) if other != labels[i])
        scores.append((b - a) / max(a, b, 1e-12))
    return Separation(nn_accuracy, chance, float(np.mean(scores)), len(counts), int(counts.max()))


def check_embedder(
    embedder, photos: Mapping[str, np.ndarray] | None = None, size: int = 64, views: int = 3, seed: int = 0
) -> Separation:
    """Embeds ``views`` crops of each photograph (scikit-image's by default) at ``size`` pixels
    with ``embedder`` (a :class:`data_prep.frame_embed.FrameEmbedder`) and scores the grouping."""
    photos = skimage_photos() if photos is None else photos
    frames, labels = photo_views(photos, size, views=views, seed=seed)
    return separation(embedder.embed(frames), labels)


def frames_per_second(embedder, size: int, frames: int = 128, batch_size: int = 64, repeats: int = 3) -> float:
    """Embedding throughput on random uint8 frames (best of ``repeats``, after one warm-up batch)."""
    data = np.random.default_rng(0).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    embedder.embed(data[:batch_size], batch_size=batch_size)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        embedder.embed(data, batch_size=batch_size)
        best = min(best, time.perf_counter() - start)
    return frames / best


def main(argv: Sequence[str] | None = None) -> int:
    # lazy: torch and the backbones load after the arguments are parsed (--help stays fast)
    import torch

    from data_prep.frame_embed import build_embedder

    parser = argparse.ArgumentParser(prog="python -m data_prep.embed_check", description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet",
                        help="imagenet | none | a local weights file (a fitted one keeps its head: the shipped pose backbone's "
                             "pipeline/pretrained/video_pose/backbone.safetensors embeds a frame as its pose)")
    parser.add_argument("--size", type=int, default=64, help="frame size in pixels (the video recipe's: 64)")
    parser.add_argument("--views", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", nargs="*", help="image files (default: scikit-image's sample photographs)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--speed", action="store_true", help="also measure frames/s at --size")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # a random-init backbone is the same every run
    try:
        embedder = build_embedder(args.backbone, args.weights).for_inference()  # a fitted head is kept
        photos = {Path(p).stem: read_photo(p) for p in args.photos} if args.photos else None
        result = check_embedder(embedder, photos, size=args.size, views=args.views, seed=args.seed)
    except SeqrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {"backbone": args.backbone, "weights": args.weights, "size": args.size, **asdict(result)}
    if args.speed:
        report["frames_per_s"] = round(frames_per_second(embedder, args.size), 1)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
