"""Video activity inference: ``ClipLabeler.from_pretrained(dir).label(paths)``."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_prep.frame_embed import BackboneConfig, embedder_from_state
from pipeline.bundle import BundleError, load_bundle
from pipeline.config import from_dict
from pipeline.errors import one_line
from pipeline.inference.common import (
    VIDEO_EXTENSIONS,
    bundle_section,
    check_media_path,
    expand_paths,
)
from pipeline.inference.progress import MediaProgress, ProgressCallback, video_seconds
from pipeline.limits import LimitError
from pipeline.models.classifier import ClassifierConfig, SequenceClassifier
from pipeline.models.params import check_params, classifier_params

log = logging.getLogger(__name__)


@dataclass
class ClipLabels:
    """Result for one file; ``error`` is set when the file failed."""

    path: str
    labels: list[dict[str, Any]] = field(default_factory=list)  # [{"label", "score"}], best first
    segments: list[dict[str, Any]] | None = None  # sliding windows: [{"start", "end", "labels"}]
    error: str | None = None
    #: The exception behind ``error`` (for tracebacks with ``seqrec --debug``); not serialised.
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        out: dict[str, Any] = {"path": self.path, "labels": self.labels}
        if self.segments is not None:
            out["segments"] = self.segments
        return out


class ClipLabeler:
    """Labels video clips with a ``video_classifier`` bundle (backbone + recurrent classifier).

    Args:
        embedder: :class:`data_prep.frame_embed.FrameEmbedder` (uint8 frames -> (N, D)).
        classifier: :class:`pipeline.models.SequenceClassifier` over (B, T, D).
        labels: Class names in index order.
        backbone_cfg: Frame sampling and size (``BackboneConfig``).
    """

    def __init__(self, embedder, classifier, labels: list[str], backbone_cfg, *, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.embedder = embedder.to(self.device).eval()
        self.classifier = classifier.to(self.device).eval()
        self.labels_ = list(labels)
        self.backbone_cfg = backbone_cfg

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, device: str = "cpu") -> ClipLabeler:
        """Loads a ``video_classifier`` bundle (no pickle, no code execution, no downloads)."""
        bundle = load_bundle(model_dir, kind="video_classifier")
        cfg = bundle.config
        cfg_path = bundle.path / "config.yaml"
        try:
            bb_cfg = from_dict(BackboneConfig, {**bundle_section(cfg, "backbone"), "weights": "none"}, "backbone")
            model_cfg = from_dict(ClassifierConfig, bundle_section(cfg, "model"), "model")
            check_params(cfg_path, classifier_params(model_cfg))  # before anything is built
            state = bundle.load_weights("backbone_weights")
            embedder = embedder_from_state(bb_cfg.name, state, str(bundle.path)).for_inference()
            classifier = SequenceClassifier(model_cfg)
            classifier.load_state_dict(bundle.load_weights())
            labels = bundle_section(cfg, "labels", list)
        except (BundleError, LimitError):
            raise
        except (ValueError, TypeError, RuntimeError) as exc:  # config values or weights that do not fit
            raise BundleError(f"{bundle.path}: invalid video bundle: {one_line(exc)}") from exc
        except MemoryError as exc:
            raise BundleError(f"{cfg_path}: out of memory building the model it describes") from exc
        if len(labels) != classifier.cfg.num_classes or not all(isinstance(x, str) for x in labels):
            raise BundleError(
                f"{bundle.path}: 'labels' must be {classifier.cfg.num_classes} class names, got {len(labels)} items"
            )
        return cls(embedder, classifier, labels, bb_cfg, device=device)

    @torch.inference_mode()
    def scores(self, clips: list[np.ndarray]) -> np.ndarray:
        """Class probabilities for clips of sampled frames.

        Args:
            clips: Each (T, S, S, 3) uint8 RGB.

        Returns:
            (B, C) softmax scores.
        """
        lengths = [len(c) for c in clips]
        emb = torch.from_numpy(self.embedder.embed(np.concatenate(clips)))  # (sum T, D)
        seqs = list(torch.split(emb, lengths))
        x = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True).to(self.device)  # (B, T, D)
        logits = self.classifier(x, torch.tensor(lengths, device=self.device))
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def _top(self, probs: np.ndarray, k: int) -> list[dict[str, Any]]:
        order = np.argsort(-probs, kind="stable")[:k]
        return [{"label": self.labels_[i], "score": round(float(probs[i]), 4)} for i in order]

    def label(self, paths: list[str | Path] | str | Path, **options: Any) -> list[ClipLabels]:
        """Labels each file (directories are searched for videos), in input order: the list form
        of :meth:`label_iter`, which documents ``options`` (top_k, window, stride, batch_size,
        raise_errors, limits, progress)."""
        return list(self.label_iter(paths, **options))

    def label_iter(
        self,
        paths: list[str | Path] | str | Path,
        *,
        top_k: int = 5,
        window: float | None = None,
        stride: float | None = None,
        batch_size: int = 16,
        raise_errors: bool = False,
        limits=None,
        progress: ProgressCallback | None = None,
    ) -> Iterator[ClipLabels]:
        """Yields each file's labels in input order, as soon as the batch holding it is scored.

        With ``window`` (seconds), each result also has ``segments``: labels of sliding
        windows of that length every ``stride`` seconds (default ``window / 2``); the windows
        are decoded and scored ``batch_size`` at a time, never all held at once.
        ``limits`` (a :class:`data_prep.video_io.VideoLimits`; default its defaults) stops
        absurd or hostile videos (too long, too many frames, too large) with one error line;
        so do a ``stride`` shorter than one frame interval and more windows than the run's
        ``max_windows`` (:mod:`pipeline.limits`), before any frame is decoded.
        A file that cannot be decoded gets a result with ``error`` set; the others go on.

        ``progress``: ``progress(seconds_done, seconds_total)`` in seconds of video, called as
        results are ready and, with ``window``, as each batch of windows is scored
        (:mod:`pipeline.inference.progress`; the total comes from the containers' frame
        counts and rates, 0 for a file without them).
        """
        # lazy: data_prep.video_io pulls in cv2; only file input needs it
        from data_prep.video_io import VideoLimits, iter_windows, load_clip, video_limits

        if isinstance(paths, (str, Path)):
            paths = [paths]
        b = self.backbone_cfg
        files = expand_paths(paths, VIDEO_EXTENSIONS)
        tracker = MediaProgress.of(progress, files, video_seconds)
        results: dict[int, ClipLabels] = {}
        pending: list[tuple[int, np.ndarray]] = []

        def fail(i: int, exc: Exception) -> None:
            if raise_errors:
                raise exc
            results[i].error, results[i].exception = one_line(exc), exc
            results[i].segments = None
            log.debug("failed %s: %s", files[i], results[i].error)

        def score(items: list[tuple[int, np.ndarray]]) -> None:
            try:
                probs = self.scores([c for _, c in items])
            except Exception as exc:  # find the clip that broke the batch; the others go on
                if len(items) == 1:
                    fail(items[0][0], exc)
                    return
                for item in items:
                    score([item])
                return
            for (j, _), p in zip(items, probs, strict=True):
                results[j].labels = self._top(p, top_k)

        def windows(path: Path, within) -> list[dict[str, Any]]:
            segments = []
            wins = iter_windows(path, window, stride or window / 2, num_segments=b.num_segments,
                                size=b.frame_size, short_side=b.short_side)  # fmt: skip
            while chunk := list(itertools.islice(wins, batch_size)):
                for w, probs in zip(chunk, self.scores([w.frames for w in chunk]), strict=True):
                    segments.append({"start": round(w.start_s, 3), "end": round(w.end_s, 3), "labels": self._top(probs, top_k)})
                if within is not None:
                    within(chunk[-1].end_s)
            return segments

        def load(path: Path) -> np.ndarray:
            check_media_path(path, VIDEO_EXTENSIONS, "video")  # before anything opens it
            with video_limits(limits or VideoLimits()):  # in the thread that decodes; no yield inside
                return load_clip(path, b.num_segments, size=b.frame_size, short_side=b.short_side)

        # Whole clips are decoded one batch ahead in a thread while the current batch goes
        # through the CNN: OpenCV and torch both release the GIL, so the two overlap.
        ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqrec-decode") if window is None else None
        futures: dict[int, Future] = {}
        done = 0  # results before this index have been yielded
        try:
            for i, path in enumerate(files):
                results[i] = ClipLabels(path=str(path))
                try:
                    if ahead is not None:
                        for j in range(i, min(i + batch_size + 1, len(files))):
                            if j not in futures:
                                futures[j] = ahead.submit(load, files[j])
                        clip = futures.pop(i).result()
                    else:
                        # The windows first: a stride or window count they refuse is found before any decoding.
                        check_media_path(path, VIDEO_EXTENSIONS, "video")
                        with video_limits(limits or VideoLimits()):
                            results[i].segments = windows(path, tracker.inside(i))
                        clip = load(path)
                    pending.append((i, clip))
                except Exception as exc:  # one bad file must not stop the others
                    fail(i, exc)
                if len(pending) >= batch_size or i == len(files) - 1:
                    if pending:
                        score(list(pending))
                        pending.clear()
                    for j in range(done, i + 1):
                        tracker.file_done(j)
                        yield results.pop(j)
                    done = i + 1
        finally:  # also when the caller stops early or an error is raised: no decoding left behind
            if ahead is not None:
                ahead.shutdown(wait=True, cancel_futures=True)
