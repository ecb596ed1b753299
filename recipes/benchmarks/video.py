"""Video benchmarks: the training loop, clip labelling against its two limits, memory."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from data_prep.manifest import read_manifest
from data_prep.video_io import load_clip, probe_video, read_frames, sample_indices
from pipeline.config import load_config
from recipes.benchmarks.speech import _train_comparison, seqrec_command
from recipes.benchmarks.timing import (
    BenchmarkError,
    RecipeExp,
    Stopwatch,
    interleave,
    median,
    run_measured,
    summarize,
)

log = logging.getLogger(__name__)


class VideoExp(RecipeExp):
    """A finished ``video_activity`` experiment directory."""

    recipe = "video_activity"
    store_files = ("manifests/labels.json", "embeddings/train/.done", "embeddings/dev/.done")


def clip_paths(exp: VideoExp, split: str = "test", limit: int | None = None) -> list[str]:
    """Video paths of a split's manifest (absolute), the first ``limit`` of them."""
    paths = [r["video_filepath"] for r in read_manifest(exp.manifest(split), "video")]
    return paths[:limit] if limit else paths


# --------------------------------------------------------------------------- 2. training
def bench_train_video(
    exp: VideoExp, tmp: Path, repeats: int, *, max_clips: int, device: str = "cpu", seed: int = 0
) -> dict[str, Any]:
    """The real training loop against in-memory compute, for the clip classifier.

    Same method as :func:`recipes.benchmarks.speech.bench_train_speech`, over ``max_clips``
    training items (all views the recipe trains on); figures are clips per second.
    """
    # lazy: torch, and the modules below that pull it in, load only inside the benchmarks that need them
    import torch
    from torch.utils.data import DataLoader

    from data_prep.store import FeatureStore
    from pipeline.data import FeatureDataset, collate_labels, length_sorted_batches
    from pipeline.training.tasks import ClassificationTask
    from recipes.video_activity.stages import VideoRecipe, VideoRecipeConfig

    exp.check(bundle=False, manifests=("train", "dev"), stores=True)
    cfg = load_config(VideoRecipeConfig, exp.config, [f"exp_dir={exp.root}"])
    recipe = VideoRecipe(cfg)
    full = recipe.dataset("train", (-1, *range(cfg.train_views)))
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(full), size=min(max_clips, len(full)), replace=False).tolist())
    train = FeatureDataset([full.entries[i] for i in pick], [full.lengths[i] for i in pick])
    dev_full = recipe.dataset("dev")
    dev = FeatureDataset(dev_full.entries[:16], dev_full.lengths[:16])
    dev_loader = DataLoader(dev, batch_sampler=length_sorted_batches(dev.lengths, 8192), collate_fn=collate_labels)
    model = recipe.build_model()
    stats = FeatureStore(recipe.store_dir("train")).stats()
    if stats is not None:
        model.cmvn.set_stats(torch.from_numpy(stats[0]), torch.from_numpy(stats[1]))
    train_cfg = replace(cfg.train, max_epochs=1, device=device, progress=False, save_every_steps=0)
    return _train_comparison(
        model, ClassificationTask(), train, collate_labels, dev_loader, train_cfg, tmp / "train_video",
        repeats, amount=float(len(train)), unit="clips / s",
    )


# --------------------------------------------------------------------------- 4. labelling
def decode_only(path: str, num_segments: int) -> int:
    """OpenCV decoding alone: grabs every frame, retrieves the ``num_segments`` sampled ones.

    This is the least OpenCV work that yields a clip's sampled frames (no resize, no colour
    conversion). Returns the number of frames decoded.
    """
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        hint = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        want = set(sample_indices(max(hint, 1), num_segments, train=False).tolist())
        count = 0
        while cap.grab():
            if count in want:
                ok, _ = cap.retrieve()
                if not ok:
                    break
            count += 1
    finally:
        cap.release()
    if count == 0:
        raise BenchmarkError(f"{path}: no frame decoded")
    return count


def bench_label(
    bundle: Path, paths: list[str], repeats: int, *, device: str = "cpu", batch_size: int = 16,
    with_decode: bool = True,
) -> dict[str, Any]:
    """Clips per second of ``ClipLabeler.label`` end to end, and of its two limits.

    Limits: OpenCV decoding alone (:func:`decode_only`), and the frame backbone alone on the
    clips' sampled frames already in memory, in batches of ``batch_size`` clips as the
    labeler groups them. ``ratio`` = labelling throughput / the lower limit, per round.
    """
    # lazy: torch, and the modules below that pull it in, load only inside the benchmarks that need them
    import torch

    from pipeline.inference.labeler import ClipLabeler

    labeler = ClipLabeler.from_pretrained(bundle, device=device)
    b = labeler.backbone_cfg
    clips = [load_clip(p, b.num_segments, size=b.frame_size, short_side=b.short_side) for p in paths]
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else None
    n = len(paths)

    def label() -> float:
        with Stopwatch(sync) as sw:
            results = labeler.label(paths, top_k=1)
        failed = [r for r in results if r.error is not None]
        if failed:
            raise BenchmarkError(f"labelling failed on {len(failed)} clips, e.g. {failed[0].path}: {failed[0].error}")
        return n / sw.seconds

    def decode() -> float:
        with Stopwatch() as sw:
            for p in paths:
                decode_only(p, b.num_segments)
        return n / sw.seconds

    def backbone() -> float:
        with Stopwatch(sync) as sw:
            for i in range(0, n, batch_size):
                labeler.embedder.embed(np.concatenate(clips[i : i + batch_size]))
        return n / sw.seconds

    sides = {"label": label, "backbone": backbone}
    if with_decode:
        sides["decode"] = decode
    runs = interleave(sides, repeats)
    out: dict[str, Any] = {
        "clips": n, "device": device, "unit": "clips / s", "threads": torch.get_num_threads(),
        "frames_per_clip": b.num_segments, "frame_size": b.frame_size, "backbone": b.name,
    }
    for name, values in runs.items():
        out[name] = summarize(values)
    if with_decode:
        lower = [min(d, k) for d, k in zip(runs["decode"], runs["backbone"], strict=True)]
        out["lower_limit"] = summarize(lower)
        out["ratio"] = median([lab / low for lab, low in zip(runs["label"], lower, strict=True)])
    return out


# --------------------------------------------------------------------------- 5. memory
def build_long_video(paths: list[str], out: Path, seconds: float = 300.0, *, fps: float = 25.0) -> Path:
    """Concatenates test clips (frames in turn, at ``fps``) into one ``seconds``-long mp4.

    Reuses ``out`` when it already has the expected number of frames. Frames are written as
    they are decoded, so memory stays at one clip.
    """
    want = int(round(seconds * fps))
    if out.is_file():
        try:
            if probe_video(out).num_frames == want:
                return out
        except Exception:  # a broken leftover: rebuild it
            log.info("%s: rebuilding", out)
    if not paths:
        raise BenchmarkError("no clips to build a long video from")
    first, _ = read_frames(paths[0])
    h, w = first.shape[1:3]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h), True)
    if not writer.isOpened():
        raise BenchmarkError(f"{out}: OpenCV cannot write mp4v video here")
    written, i = 0, 0
    try:
        while written < want:
            frames, _ = read_frames(paths[i % len(paths)])
            i += 1
            for frame in frames[: want - written]:
                if frame.shape[:2] != (h, w):
                    frame = cv2.resize(frame, (w, h))
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                written += 1
    finally:
        writer.release()
    tmp.replace(out)
    return out


def bench_memory_label(
    bundle: Path, videos: list[Path], *, window: float = 2.0, stride: float = 1.0
) -> dict[str, Any]:
    """Peak RSS and real-time factor of ``seqrec label --window`` on one video of each length.

    The labelling counterpart of :func:`recipes.benchmarks.speech.bench_memory_transcribe`:
    every video is labelled in a fresh process, so each peak is that run's alone and the wall
    time includes the start (torch, the backbone, the head).

    Returns:
        ``{"bundle", "window_s", "stride_s", "curve": [{"file", "video_s", "frames",
        "peak_rss_mib", "wall_s", "rtf"}, ...], "rss_ratio"}``: the curve in the order of
        ``videos``, and the last video's peak RSS over the first's.
    """
    if not videos:
        raise BenchmarkError("no video to label")
    curve = []
    for path in videos:
        cmd = [*seqrec_command(), "label", "--model", str(bundle), "--top-k", "1",
               "--window", str(window), "--stride", str(stride), str(path)]  # fmt: skip
        res = run_measured(cmd, timeout=3600)
        if res.returncode != 0:
            raise BenchmarkError(f"{' '.join(cmd)} exited with {res.returncode}: {res.stderr.strip()[-500:]}")
        info = probe_video(path)
        seconds = max(info.duration, 1e-9)
        curve.append({
            "file": str(path), "video_s": round(info.duration, 1), "frames": info.num_frames,
            "peak_rss_mib": round(res.max_rss_bytes / 2**20, 1), "wall_s": round(res.wall_s, 2),
            "rtf": round(res.wall_s / seconds, 4),
        })
    return {"bundle": str(bundle), "window_s": window, "stride_s": stride, "curve": curve,
            "rss_ratio": round(curve[-1]["peak_rss_mib"] / curve[0]["peak_rss_mib"], 3)}  # fmt: skip
