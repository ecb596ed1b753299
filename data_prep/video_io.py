"""Robust video decoding, TSN-style frame sampling and video writing through OpenCV.

Every read decodes sequentially with ``cv2.VideoCapture`` (FFmpeg backend) and counts the
frames that really decode: ``CAP_PROP_FRAME_COUNT`` comes from the container header, which
may lie (truncated or badly muxed files), so it is used only as a hint. Frames are returned
as RGB ``uint8``; grayscale and BGRA sources become 3 channels. Functions that sample or
window a video downscale each kept frame right after decoding, so a 4K file costs one
full-size frame of memory at a time.

Every failure is a :class:`VideoError` whose message is one line, ``"<path>: <reason>"``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from pipeline.errors import SeqrecError
from pipeline.limits import LimitError, current_limits

log = logging.getLogger(__name__)

#: Frame rate assumed when a file carries none and its timestamps do not give one.
DEFAULT_FPS = 25.0
#: A header frame count above this is treated as garbage rather than as a hint.
_MAX_HINT_FRAMES = 10_000_000


#: Containers OpenCV's FFmpeg backend may open, and local files only: a ".mp4" that is really a
#: concat or HLS playlist would otherwise make it read whatever file or URL it names. Set through
#: OpenCV's ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` (unless the environment already sets it).
VIDEO_DEMUXERS = "mov,matroska,avi,mpeg,mpegts,flv,asf,ogg,mjpeg"
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", f"format_whitelist;{VIDEO_DEMUXERS}|protocol_whitelist;file")


class VideoError(SeqrecError):
    """A video file cannot be used. ``str()`` is one line: ``"<path>: <reason>"``."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # keeps the two-argument constructor picklable across processes
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class VideoInfo:
    """What a full sequential decode found.

    Attributes:
        num_frames: Frames that really decode (not the header's count).
        fps: Frame rate from the container, or estimated from the timestamps.
        width: Frame width in pixels.
        height: Frame height in pixels.
        duration: Seconds, from the frame timestamps when they are usable, else
            ``num_frames / fps``.
    """

    num_frames: int
    fps: float
    width: int
    height: int
    duration: float


@dataclass(frozen=True)
class VideoLimits:
    """How much of one video the readers decode before refusing it as absurd or hostile.

    Attributes:
        max_duration_s: Longest content: decoded frames at the header's frame rate (default 6 hours).
        max_frames: Most frames decoded from one file (default 2 million: 18 hours at 30 fps).
        max_pixels: Largest frame, width x height (default 8192 x 8192).
    """

    max_duration_s: float = 6 * 3600.0
    max_frames: int = 2_000_000
    max_pixels: int = 8192 * 8192


_LIMITS: contextvars.ContextVar[VideoLimits | None] = contextvars.ContextVar("video_limits", default=None)


@contextlib.contextmanager
def video_limits(limits: VideoLimits) -> Iterator[None]:
    """Every video opened inside the ``with`` block (in this thread) is read under ``limits``."""
    token = _LIMITS.set(limits)
    try:
        yield
    finally:
        _LIMITS.reset(token)


class _LimitedCapture:
    """A ``cv2.VideoCapture`` that counts what it decodes and refuses past :class:`VideoLimits`."""

    def __init__(self, cap: cv2.VideoCapture, path: Path, limits: VideoLimits) -> None:
        self._cap, self._path, self._limits = cap, path, limits
        self._frames = 0
        self._fps = _header_fps(cap) or DEFAULT_FPS
        width, height = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        if math.isfinite(width * height) and width * height > limits.max_pixels:
            cap.release()
            raise VideoError(path, self._too_big(int(width), int(height)))

    def _too_big(self, width: int, height: int) -> str:
        return f"frames of {width} x {height} exceed the limit of {self._limits.max_pixels} pixels"

    def __getattr__(self, name: str):
        return getattr(self._cap, name)

    def _count(self) -> None:
        self._frames += 1
        lim = self._limits
        if self._frames > lim.max_frames:
            raise VideoError(self._path, f"more than {lim.max_frames} frames: over the decode limit")
        # Content duration: decoded frames at the header's rate. Timestamps would let one corrupt
        # jump (handled cheaply elsewhere) refuse a five-frame file.
        if self._frames / self._fps > lim.max_duration_s:
            raise VideoError(self._path, f"longer than {lim.max_duration_s:g} s: over the decode limit")

    def _check(self, frame: np.ndarray | None) -> None:
        if frame is not None and frame.shape[0] * frame.shape[1] > self._limits.max_pixels:
            raise VideoError(self._path, self._too_big(frame.shape[1], frame.shape[0]))

    def grab(self) -> bool:
        ok = self._cap.grab()
        if ok:
            self._count()
        return ok

    def read(self):
        ok, frame = self._cap.read()
        if ok:
            self._count()
            self._check(frame)
        return ok, frame

    def retrieve(self):
        ok, frame = self._cap.retrieve()
        if ok:
            self._check(frame)
        return ok, frame


class Window(NamedTuple):
    """One sliding window of :func:`iter_windows`; unpacks as ``(start_s, end_s, frames)``."""

    start_s: float
    end_s: float
    frames: np.ndarray


# --------------------------------------------------------------------------- opening


def _check_file(path: Path) -> None:
    """Raises VideoError for problems OpenCV would only report as 'cannot open'."""
    if not os.path.lexists(path):
        raise VideoError(path, "file not found")
    if path.is_dir():
        raise VideoError(path, "is a directory, not a video file")
    if not path.exists():
        raise VideoError(path, "broken symbolic link")
    if not path.is_file():
        raise VideoError(path, "not a regular file")
    if not os.access(path, os.R_OK):
        raise VideoError(path, "permission denied")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except PermissionError:
        raise VideoError(path, "permission denied") from None
    except OSError as exc:
        raise VideoError(path, f"cannot read: {exc.strerror or exc}") from None
    if path.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")


def _looks_like_text(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _looks_like_audio(path: Path) -> bool:
    """True for the signatures of common audio-only files (WAV, FLAC, AIFF, MP3)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return True
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return True
    if head[:4] == b"fLaC" or head[:3] == b"ID3":
        return True
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0  # MPEG audio frame sync


def _open_capture(path: str | Path) -> _LimitedCapture:
    """Opens ``path`` with the FFmpeg backend, under the current :class:`VideoLimits`.

    Raises:
        VideoError: naming the problem (unreadable, not video, frames over the pixel limit).
    """
    path = Path(path)
    _check_file(path)
    # The FFmpeg backend alone: CAP_ANY would read "%d" in a name as an image-sequence pattern.
    api = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
    cap = cv2.VideoCapture(str(path), api)
    if not cap.isOpened():
        cap.release()
        if _looks_like_text(path):
            raise VideoError(path, "cannot open as video: the file is text, not video data")
        if _looks_like_audio(path):
            raise VideoError(path, "cannot open as video: the file holds audio only, no video stream")
        raise VideoError(path, "cannot open as video (corrupt file or unsupported format)")
    return _LimitedCapture(cap, path, _LIMITS.get() or VideoLimits())


def _header_fps(cap: cv2.VideoCapture) -> float | None:
    fps = cap.get(cv2.CAP_PROP_FPS)
    if math.isfinite(fps) and 0.0 < fps <= 1000.0:
        return float(fps)
    return None


class _Clock:
    """Tracks decode timestamps (CAP_PROP_POS_MSEC) to give fps and duration robustly."""

    def __init__(self, header_fps: float | None) -> None:
        self.header_fps = header_fps
        self.count = 0
        self.first: float | None = None
        self.prev: float | None = None
        self.last_dt: float | None = None
        self.monotonic = True

    def tick(self, cap: cv2.VideoCapture) -> float:
        """Records one decoded frame; returns its time in seconds from the first frame.

        Falls back to ``previous + 1/fps`` where the container's timestamp is missing or
        goes backwards, so returned times always increase.
        """
        raw = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        step = 1.0 / (self.header_fps or DEFAULT_FPS)
        if self.count == 0:
            self.first = raw if math.isfinite(raw) else 0.0
            t = 0.0
        else:
            t = raw - self.first if math.isfinite(raw) else math.nan
            if not (t > self.prev):  # also catches nan
                self.monotonic = False
                t = self.prev + step
            self.last_dt = t - self.prev
        self.prev = t
        self.count += 1
        return t

    @property
    def fps(self) -> float:
        if self.header_fps is not None:
            return self.header_fps
        if self.monotonic and self.count >= 2 and self.prev > 0:
            return (self.count - 1) / self.prev
        log.warning("no frame rate in the file or its timestamps; assuming %.1f fps", DEFAULT_FPS)
        return DEFAULT_FPS

    @property
    def duration(self) -> float:
        if self.monotonic and self.count >= 2 and self.prev > 0:
            return self.prev + (self.last_dt or 1.0 / self.fps)
        return self.count / self.fps


# --------------------------------------------------------------------------- frames


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    """BGR/gray/BGRA uint8 or uint16 -> (H, W, 3) uint8 RGB."""
    if frame.dtype != np.uint8:
        frame = (frame.astype(np.float32) * (255.0 / np.iinfo(frame.dtype).max)).round()
        frame = frame.clip(0, 255).astype(np.uint8)
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _resize_crop(frame: np.ndarray, short_side: int, crop: int) -> np.ndarray:
    h, w = frame.shape[:2]
    scale = short_side / min(h, w)
    new_w = max(crop, round(w * scale))
    new_h = max(crop, round(h * scale))
    if (new_h, new_w) != (h, w):
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (new_w, new_h), interpolation=interp)
    top = (new_h - crop) // 2
    left = (new_w - crop) // 2
    return frame[top : top + crop, left : left + crop]


def resize_short_side_and_center_crop(frame: np.ndarray, short_side: int, crop: int) -> np.ndarray:
    """Scales a frame so its short side is ``short_side``, then takes the centre square.

    Args:
        frame: (H, W, 3) image (any channel order; it is kept).
        short_side: Target length of the shorter side after scaling.
        crop: Side of the square centre crop, ``crop <= short_side``.

    Returns:
        (crop, crop, 3) array of the same dtype.
    """
    if crop <= 0 or short_side < crop:
        raise ValueError(f"need 0 < crop <= short_side, got crop={crop}, short_side={short_side}")
    if frame.ndim != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"expected an (H, W, C) frame, got shape {frame.shape}")
    return np.ascontiguousarray(_resize_crop(frame, short_side, crop))


def _prepare(frame: np.ndarray, short_side: int, size: int) -> np.ndarray:
    # Resize before the colour conversion so a 4K frame is converted at the small size.
    return _to_rgb(np.ascontiguousarray(_resize_crop(frame, short_side, size)))


def probe_video(path: str | Path) -> VideoInfo:
    """Decodes a whole video once to find how many frames really decode.

    Raises:
        VideoError: missing/unreadable/corrupt file, or no decodable frame.
    """
    cap = _open_capture(path)
    try:
        clock = _Clock(_header_fps(cap))
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(path, "no decodable frames")
        height, width = frame.shape[:2]
        clock.tick(cap)
        while cap.grab():
            clock.tick(cap)
    finally:
        cap.release()
    return VideoInfo(clock.count, clock.fps, int(width), int(height), clock.duration)


def header_duration(path: str | Path) -> float | None:
    """Seconds of video by the container's header (frame count / frame rate), decoding no frame.

    Only an estimate, for progress bars: the header may lie (see the module docstring).

    Returns:
        The seconds, or None when the header gives no usable frame count or rate.

    Raises:
        VideoError: the file cannot be opened as video.
    """
    cap = _open_capture(path)
    try:
        fps = _header_fps(cap)
        frames = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0
    finally:
        cap.release()
    if fps is None or not (math.isfinite(frames) and 0 < frames < _MAX_HINT_FRAMES):
        return None
    return float(frames) / fps


def read_frames(path: str | Path) -> tuple[np.ndarray, float]:
    """Decodes every frame of a video.

    Holds the whole video in memory; use :func:`load_clip` or :func:`iter_windows` for long
    or large videos.

    Returns:
        frames: (T, H, W, 3) uint8 RGB, T = frames that really decode.
        fps: Frame rate.

    Raises:
        VideoError: missing/unreadable/corrupt file, or no decodable frame.
    """
    cap = _open_capture(path)
    frames: list[np.ndarray] = []
    try:
        clock = _Clock(_header_fps(cap))
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            frame = _to_rgb(frame)
            if frames and frame.shape != frames[0].shape:  # resolution change mid-stream
                frame = cv2.resize(frame, (frames[0].shape[1], frames[0].shape[0]))
            frames.append(frame)
            clock.tick(cap)
    finally:
        cap.release()
    if not frames:
        raise VideoError(path, "no decodable frames")
    return np.stack(frames), clock.fps


# --------------------------------------------------------------------------- sampling


def sample_indices(
    num_frames: int,
    num_segments: int,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    speed: float = 1.0,
) -> np.ndarray:
    """TSN sampling: one frame index per equal segment of ``[0, num_frames)``.

    Segment ``i`` covers ``[round(i * n / S), round((i + 1) * n / S))``. Training draws a
    uniform random frame inside each segment; evaluation takes the segment centre. With fewer
    frames than segments, indices repeat (still sorted).

    ``speed`` != 1 plays the clip that much faster or slower: the segments cover a window of
    ``n / speed`` frames instead of ``n``. A shorter window starts at a random frame (training)
    or is centred; a longer one is centred and its indices past either end hold the first or
    last frame.

    Args:
        num_frames: Frames in the video, > 0.
        num_segments: S, > 0.
        train: Random offsets (True) or centres (False).
        rng: Generator for the training offsets (a fresh unseeded one if None).
        speed: Playback speed factor, > 0.

    Returns:
        (S,) int64 non-decreasing indices in ``[0, num_frames)``.
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be > 0, got {num_frames}")
    if num_segments <= 0:
        raise ValueError(f"num_segments must be > 0, got {num_segments}")
    if not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if speed != 1.0:
        rng = rng if rng is not None else np.random.default_rng()
        span = num_frames / speed
        start = (num_frames - span) / 2
        if train and span < num_frames:
            start = rng.uniform(0.0, num_frames - span)
        inner = sample_indices(max(1, round(span)), num_segments, train=train, rng=rng)
        return np.clip(np.floor(start).astype(np.int64) + inner, 0, num_frames - 1)
    bounds = np.round(np.linspace(0, num_frames, num_segments + 1)).astype(np.int64)
    starts, ends = bounds[:-1], bounds[1:]
    lengths = ends - starts
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        offsets = np.floor(rng.random(num_segments) * np.maximum(lengths, 1)).astype(np.int64)
    else:
        offsets = lengths // 2
    return np.minimum(starts + offsets, num_frames - 1)


def _grab_indices(
    path: str | Path, wanted: Sequence[int], short_side: int, size: int
) -> dict[int, np.ndarray]:
    """Second pass: decodes up to the last wanted index and keeps only the wanted frames."""
    want = set(int(i) for i in wanted)
    last = max(want)
    got: dict[int, np.ndarray] = {}
    cap = _open_capture(path)
    try:
        i = 0
        while i <= last and cap.grab():
            if i in want:
                ok, frame = cap.retrieve()
                if not ok or frame is None:
                    break
                got[i] = _prepare(frame, short_side, size)
            i += 1
    finally:
        cap.release()
    if want - got.keys():
        raise VideoError(
            path, f"frame {min(want - got.keys())} did not decode again on a second pass"
        )
    return got


def load_clip(
    path: str | Path,
    num_segments: int,
    *,
    size: int,
    short_side: int | None = None,
    train: bool = False,
    rng: np.random.Generator | None = None,
    speed: float = 1.0,
) -> np.ndarray:
    """Samples ``num_segments`` frames (TSN) and returns them resized and centre-cropped.

    One sequential pass decodes the whole file, keeping only the frames the header's count
    asks for; if the real count differs, a second pass fetches the right ones. Only the
    sampled frames are kept, downscaled, so memory does not grow with resolution or length.

    Args:
        path: Video file.
        num_segments: T, frames to return.
        size: Side of the square output crop.
        short_side: Short side after scaling, before cropping (default ``size``).
        train: Random offsets within segments (True) or segment centres (False).
        rng: Generator for the training offsets.
        speed: Playback speed of the sampling (see :func:`sample_indices`).

    Returns:
        (T, size, size, 3) uint8 RGB.

    Raises:
        VideoError: missing/unreadable/corrupt file, or no decodable frame.
    """
    short_side = size if short_side is None else short_side
    if size <= 0 or short_side < size:
        raise ValueError(f"need 0 < size <= short_side, got size={size}, short_side={short_side}")
    cap = _open_capture(path)
    got: dict[int, np.ndarray] = {}
    try:
        hint = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        indices = None
        if 0 < hint < _MAX_HINT_FRAMES:
            indices = sample_indices(hint, num_segments, train=train, rng=rng, speed=speed)
        want = set() if indices is None else {int(i) for i in indices}
        count = 0
        while cap.grab():
            if count in want:
                ok, frame = cap.retrieve()
                if not ok or frame is None:
                    break  # treat an undecodable frame as the end of the video
                got[count] = _prepare(frame, short_side, size)
            count += 1
    finally:
        cap.release()
    if count == 0:
        raise VideoError(path, "no decodable frames")
    if indices is None or count != hint:
        if indices is not None:
            log.debug("%s: header says %d frames, %d decode", path, hint, count)
        indices = sample_indices(count, num_segments, train=train, rng=rng, speed=speed)
        missing = [int(i) for i in indices if int(i) not in got]
        if missing:
            got.update(_grab_indices(path, missing, short_side, size))
    return np.stack([got[int(i)] for i in indices])


def iter_windows(
    path: str | Path,
    window_s: float,
    stride_s: float,
    *,
    num_segments: int = 8,
    size: int = 112,
    short_side: int | None = None,
    max_windows: int | None = None,
) -> Iterator[Window]:
    """Slides a window over a (long) video and samples each window's frames.

    Windows start at ``k * stride_s`` seconds after the first frame and span ``window_s``;
    a frame belongs to a window by its presentation timestamp (``CAP_PROP_POS_MSEC``), so
    variable-frame-rate files are windowed by real time. A last, shorter window covers a
    tail that no full window reached (its ``end_s`` is the video's end); windows without
    frames (gaps in a variable-rate file) are skipped. Frames are read once, sequentially,
    and only the current window's frames are kept, downscaled.

    Args:
        path: Video file. The file is opened on the first ``next()``.
        window_s: Window length in seconds, > 0.
        stride_s: Hop between window starts in seconds, > 0.
        num_segments: T, frames sampled per window (segment centres).
        size: Side of the square output crop.
        short_side: Short side after scaling, before cropping (default ``size``).
        max_windows: The most windows to make (None: the run's ``max_windows``, see
            :mod:`pipeline.limits`).

    Yields:
        Window(start_s, end_s, frames) with frames (T, size, size, 3) uint8 RGB.

    Raises:
        VideoError: missing/unreadable/corrupt file, no decodable frame, or a stride shorter
            than one frame interval (by the header's frame rate): such windows would repeat the
            same frames, thousands of times for a tiny stride. Checked on opening the file.
        LimitError: more than ``max_windows`` windows: refused on opening the file when the
            header's frame count implies it, else when the window past the limit comes.
    """
    if window_s <= 0 or stride_s <= 0:
        raise ValueError(f"window_s and stride_s must be > 0, got {window_s}, {stride_s}")
    short_side = size if short_side is None else short_side
    if size <= 0 or short_side < size:
        raise ValueError(f"need 0 < size <= short_side, got size={size}, short_side={short_side}")

    def window(k: int, buf: deque, end: float) -> Window:
        frames = [f for _, f in buf]
        idx = sample_indices(len(frames), num_segments, train=False)
        return Window(k * stride_s, end, np.stack([frames[i] for i in idx]))

    most = current_limits().max_windows if max_windows is None else max_windows
    made = 0

    def count() -> None:
        nonlocal made
        made += 1
        if made > most:
            raise LimitError(path, f"more windows of {window_s:g} s every {stride_s:g} s than allowed", "max_windows", most)

    cap = _open_capture(path)
    try:
        header_fps = _header_fps(cap)
        _check_windows(path, cap, header_fps, window_s, stride_s, most)  # before any frame decodes
        clock = _Clock(header_fps)
        buf: deque[tuple[float, np.ndarray]] = deque()
        k = 0
        emitted_end: float | None = None
        while cap.grab():
            t = clock.tick(cap)
            while t >= k * stride_s + window_s:
                if not buf:
                    # Nothing pending: jump to the first window that can hold t, rather than
                    # stepping through a gap one stride at a time (a corrupt timestamp can put
                    # a frame 1e9 s later, which would take minutes).
                    k = max(k + 1, math.floor((t - window_s) / stride_s) + 1)
                    continue
                emitted_end = k * stride_s + window_s
                count()
                yield window(k, buf, emitted_end)
                k += 1
                while buf and buf[0][0] < k * stride_s:
                    buf.popleft()
            if t < k * stride_s:
                continue  # between windows (stride > window): never needed
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                break
            buf.append((t, _prepare(frame, short_side, size)))
        if clock.count == 0:
            raise VideoError(path, "no decodable frames")
        # The pending window holds the tail; emit it when it covers frames no window had.
        if buf and (emitted_end is None or buf[-1][0] >= emitted_end):
            end = min(k * stride_s + window_s, clock.duration)
            count()
            yield window(k, buf, end)
    finally:
        cap.release()


def _check_windows(path: str | Path, cap, header_fps: float | None, window_s: float, stride_s: float, most: int) -> None:
    """Refuses windowing that cannot be meant, from the header alone: a stride shorter than one
    frame interval, or more windows than ``most`` by the header's frame count (counted low,
    so that a file at the limit passes; ``iter_windows`` counts the windows it makes too)."""
    fps = header_fps or DEFAULT_FPS
    frame_s = 1.0 / fps
    if stride_s < frame_s * (1 - 1e-6):
        raise VideoError(
            path, f"a stride of {stride_s:g} s is shorter than one frame interval ({frame_s:.4g} s at {fps:g} fps): "
            f"its windows would repeat the same frames; use a stride of at least {frame_s:.4g} s",
        )  # fmt: skip
    frames = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0
    if not (math.isfinite(frames) and 0 < frames < _MAX_HINT_FRAMES):
        return  # no usable count: the windows are counted as they come
    last_frame_s = (frames - 1) * frame_s
    expected = 1 + max(0, math.floor((last_frame_s - window_s) / stride_s + 1e-9))
    if expected > most:
        raise LimitError(path, f"{expected:,} windows of {window_s:g} s every {stride_s:g} s", "max_windows", most)


# --------------------------------------------------------------------------- writing


def _write_with(
    path: Path, frames: Sequence[np.ndarray], fps: float, fourcc: str
) -> VideoInfo | None:
    h, w = frames[0].shape[:2]
    is_color = frames[0].ndim == 3
    # A temporary sibling with the real extension: OpenCV picks the container by extension.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    writer = cv2.VideoWriter(
        str(tmp), cv2.VideoWriter_fourcc(*fourcc), float(fps), (w, h), is_color
    )
    try:
        if not writer.isOpened():
            return None
        for frame in frames:
            writer.write(np.ascontiguousarray(frame))
    finally:
        writer.release()
    try:
        info = probe_video(tmp)
    except VideoError as exc:
        log.debug("%s", exc)
        info = None
    if info is None or info.num_frames != len(frames):
        tmp.unlink(missing_ok=True)
        return None
    os.replace(tmp, path)
    return info


def write_video_checked(
    path: str | Path, frames: Sequence[np.ndarray], fps: float, *, fourcc: str = "mp4v"
) -> tuple[Path, VideoInfo]:
    """Like :func:`write_video`, and also returns what the read-back check found."""
    path = Path(path)
    if len(frames) == 0:
        raise VideoError(path, "no frames to write")
    shape = frames[0].shape
    if any(f.shape != shape or f.dtype != np.uint8 for f in frames):
        raise VideoError(path, "frames must all be uint8 with the same shape")
    path.parent.mkdir(parents=True, exist_ok=True)
    info = _write_with(path, frames, fps, fourcc)
    if info is not None:
        return path, info
    fallback = path.with_suffix(".avi")
    log.warning("%s: %s writing failed; falling back to %s (MJPG)", path, fourcc, fallback.name)
    info = _write_with(fallback, frames, fps, "MJPG")
    if info is not None:
        return fallback, info
    raise VideoError(path, f"cannot write video with {fourcc} or MJPG")


def write_video(
    path: str | Path, frames: Sequence[np.ndarray], fps: float, *, fourcc: str = "mp4v"
) -> Path:
    """Writes frames to a video file atomically and checks that every frame reads back.

    If the container/codec cannot be written (or does not read back), falls back to
    ``.avi`` with MJPG next to ``path``.

    Args:
        path: Destination (``.mp4`` for the default ``mp4v`` codec).
        frames: Sequence of (H, W, 3) uint8 BGR (OpenCV order) or (H, W) grayscale frames,
            all the same size.
        fps: Frame rate stored in the container.
        fourcc: Four-character codec code.

    Returns:
        The path actually written (``path`` or its ``.avi`` fallback).

    Raises:
        VideoError: no frames, or neither the codec nor the fallback worked.
    """
    return write_video_checked(path, frames, fps, fourcc=fourcc)[0]
