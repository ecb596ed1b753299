"""Tests for data_prep.video_io: decoding, robustness to broken files, sampling, windows."""

from __future__ import annotations

import os
import pickle
import shutil
import struct
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_prep import video_io
from data_prep.video_io import (
    VideoError,
    iter_windows,
    load_clip,
    probe_video,
    read_frames,
    resize_short_side_and_center_crop,
    sample_indices,
    write_video,
)


def _ramp(n: int, h: int = 32, w: int = 32, step: int = 10) -> list[np.ndarray]:
    """n uniform grey BGR frames whose value encodes the index: value = step * i."""
    return [np.full((h, w, 3), step * i, np.uint8) for i in range(n)]


def _values(frames: np.ndarray) -> np.ndarray:
    """Mean value per frame of (T, H, W, 3)."""
    return frames.reshape(len(frames), -1).mean(axis=1)


@pytest.fixture
def ramp_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "ramp.mp4", _ramp(20), 10.0)


# --------------------------------------------------------------------------- sampling


def test_sample_indices_eval_takes_segment_centres():
    assert sample_indices(16, 4, train=False).tolist() == [2, 6, 10, 14]
    idx = sample_indices(100, 8, train=False)
    bounds = np.round(np.linspace(0, 100, 9)).astype(int)
    assert idx.tolist() == [(a + b) // 2 for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    assert idx.dtype == np.int64


def test_sample_indices_train_offsets_stay_within_segments():
    n, s = 50, 7
    bounds = np.round(np.linspace(0, n, s + 1)).astype(int)
    rng = np.random.default_rng(0)
    draws = np.stack([sample_indices(n, s, train=True, rng=rng) for _ in range(300)])
    assert (draws >= bounds[:-1]).all() and (draws < bounds[1:]).all()
    # Every position in each segment is reachable, so offsets are really random.
    for i in range(s):
        assert set(draws[:, i].tolist()) == set(range(bounds[i], bounds[i + 1]))
    same = sample_indices(n, s, train=True, rng=np.random.default_rng(3))
    assert same.tolist() == sample_indices(n, s, train=True, rng=np.random.default_rng(3)).tolist()


def test_sample_indices_speed_stretches_the_sampled_window():
    rng = np.random.default_rng(0)
    fast = np.stack([sample_indices(96, 8, train=True, rng=rng, speed=1.5) for _ in range(200)])
    spans = fast[:, -1] - fast[:, 0]
    assert spans.max() < 64 and spans.mean() > 45  # the segments cover 96 / 1.5 = 64 frames
    assert fast[:, 0].min() <= 3 and fast[:, -1].max() >= 92  # the window moves over the clip
    assert (np.diff(fast, axis=1) >= 0).all() and fast.min() >= 0 and fast.max() < 96
    slow = sample_indices(96, 8, train=False, speed=0.5)  # 192 frames centred: ends held
    assert slow[0] == 0 and slow[-1] == 95 and slow[1] == 0 and slow[-2] == 95
    np.testing.assert_array_equal(sample_indices(96, 8, train=False, speed=1.0), sample_indices(96, 8, train=False))
    with pytest.raises(ValueError, match="speed"):
        sample_indices(96, 8, train=False, speed=0.0)


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("n", [1, 3, 7])
def test_sample_indices_short_videos_repeat_sorted(n: int, train: bool):
    idx = sample_indices(n, 8, train=train, rng=np.random.default_rng(1))
    assert idx.shape == (8,)
    assert (np.diff(idx) >= 0).all()
    assert idx.min() >= 0 and idx.max() < n
    if not train:
        assert set(idx.tolist()) == set(range(n))  # every real frame is used


def test_sample_indices_rejects_bad_arguments():
    with pytest.raises(ValueError):
        sample_indices(0, 4, train=False)
    with pytest.raises(ValueError):
        sample_indices(10, 0, train=False)


def test_resize_short_side_and_center_crop():
    frame = np.zeros((60, 120, 3), np.uint8)
    frame[:, :60] = (255, 0, 0)  # left half one colour, right half another
    frame[:, 60:] = (0, 0, 255)
    out = resize_short_side_and_center_crop(frame, 40, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out[:, :14, 0].min() > 200 and out[:, 18:, 2].min() > 200  # centre straddles the seam
    tall = resize_short_side_and_center_crop(np.zeros((200, 50, 3), np.uint8), 25, 20)
    assert tall.shape == (20, 20, 3)
    with pytest.raises(ValueError):
        resize_short_side_and_center_crop(frame, 16, 32)


# --------------------------------------------------------------------------- decoding


def test_probe_and_read_round_trip(tmp_path: Path):
    frames = _ramp(10, h=24, w=40)
    frames[3][:] = (255, 0, 0)  # pure blue in BGR
    path = write_video(tmp_path / "clip.mp4", frames, 15.0)
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height) == (10, 40, 24)
    assert info.fps == pytest.approx(15.0)
    assert info.duration == pytest.approx(10 / 15, abs=1e-3)
    video, fps = read_frames(path)
    assert video.shape == (10, 24, 40, 3) and video.dtype == np.uint8
    assert fps == pytest.approx(15.0)
    assert video[3, ..., 2].mean() > 200 and video[3, ..., 0].mean() < 50  # RGB order
    assert abs(_values(video)[5] - 50) < 6


def test_load_clip_eval_samples_segment_centres(ramp_video: Path):
    clip = load_clip(ramp_video, 4, size=16)
    assert clip.shape == (4, 16, 16, 3) and clip.dtype == np.uint8
    # 20 frames, 4 segments -> frames 2, 7, 12, 17 with values 20, 70, 120, 170.
    np.testing.assert_allclose(_values(clip), [20, 70, 120, 170], atol=6)


def test_load_clip_train_is_random_but_ordered(ramp_video: Path):
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(5):
        vals = _values(load_clip(ramp_video, 4, size=16, train=True, rng=rng))
        assert (np.diff(vals) > 0).all()
        seen.add(tuple(np.round(vals / 10).astype(int)))
    assert len(seen) > 1


def test_write_video_falls_back_to_avi(tmp_path: Path):
    path = write_video(tmp_path / "x.mp4", _ramp(3), 10.0, fourcc="ZZZZ")
    assert path.suffix == ".avi" and probe_video(path).num_frames == 3
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


def test_video_error_is_picklable_and_one_line(tmp_path: Path):
    err = VideoError(tmp_path / "a.mp4", "bad\nthing")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == f"{tmp_path / 'a.mp4'}: bad thing" and again.reason == "bad thing"


# --------------------------------------------------------------------------- broken files


def _broken(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """Builds one broken input; returns its path and a word the reason must contain."""
    if kind == "missing":
        return tmp_path / "nope.mp4", "not found"
    if kind == "directory":
        d = tmp_path / "dir.mp4"
        d.mkdir()
        return d, "directory"
    if kind == "empty":
        p = tmp_path / "empty.mp4"
        p.touch()
        return p, "empty"
    if kind == "text":
        p = tmp_path / "notes.mp4"
        p.write_text("this is not a video\n" * 20)
        return p, "text"
    if kind == "garbage":
        p = tmp_path / "garbage.mp4"
        p.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
        return p, "cannot open"
    if kind == "truncated_mp4":
        good = write_video(tmp_path / "good.mp4", _ramp(10), 10.0)
        p = tmp_path / "trunc.mp4"
        p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # moov atom lost
        return p, "cannot open"
    if kind == "zero_frames":
        p = tmp_path / "zero.avi"
        writer = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 32))
        writer.release()
        return p, "no decodable frames"
    raise AssertionError(kind)


BROKEN = ["missing", "directory", "empty", "text", "garbage", "truncated_mp4", "zero_frames"]


@pytest.mark.parametrize("kind", BROKEN)
@pytest.mark.parametrize("reader", ["probe", "read", "clip", "windows"])
def test_broken_files_raise_video_error_naming_file(tmp_path: Path, kind: str, reader: str):
    path, reason = _broken(tmp_path, kind)
    calls = {
        "probe": lambda: probe_video(path),
        "read": lambda: read_frames(path),
        "clip": lambda: load_clip(path, 4, size=16),
        "windows": lambda: list(iter_windows(path, 1.0, 1.0, size=16)),
    }
    with pytest.raises(VideoError) as exc_info:
        calls[reader]()
    msg = str(exc_info.value)
    assert msg.startswith(f"{path}: ")
    assert reason in msg
    assert "\n" not in msg


def test_unreadable_file_raises_permission_error(tmp_path: Path, ramp_video: Path, monkeypatch):
    ramp_video.chmod(0)
    try:
        if os.geteuid() == 0:  # root reads anything: make the check see what a user would
            real_access = os.access
            monkeypatch.setattr(
                video_io.os,
                "access",
                lambda p, m, **kw: False if Path(p) == ramp_video else real_access(p, m, **kw),
            )
        with pytest.raises(VideoError, match="permission denied") as exc_info:
            probe_video(ramp_video)
        assert str(ramp_video) in str(exc_info.value)
    finally:
        ramp_video.chmod(0o644)


def _avi_with_header_count(tmp_path: Path, real: int, claimed: int) -> Path:
    """An MJPG AVI of ``real`` ramp frames whose header claims ``claimed`` frames."""
    good = write_video(tmp_path / "real.avi", _ramp(real), 10.0, fourcc="MJPG")
    data = bytearray(good.read_bytes())
    avih = data.find(b"avih")
    strh = data.find(b"strh")
    data[avih + 24 : avih + 28] = struct.pack("<I", claimed)  # dwTotalFrames
    data[strh + 40 : strh + 44] = struct.pack("<I", claimed)  # dwLength
    path = tmp_path / "liar.avi"
    path.write_bytes(bytes(data))
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == claimed  # the header really lies
    cap.release()
    return path


@pytest.mark.parametrize("claimed", [100, 8])
def test_lying_header_frame_count(tmp_path: Path, claimed: int):
    path = _avi_with_header_count(tmp_path, 20, claimed)
    assert probe_video(path).num_frames == 20
    assert read_frames(path)[0].shape[0] == 20
    clip = load_clip(path, 4, size=16)
    np.testing.assert_allclose(_values(clip), [20, 70, 120, 170], atol=6)
    train = load_clip(path, 4, size=16, train=True, rng=np.random.default_rng(0))
    assert _values(train).max() < 200 and (np.diff(_values(train)) > 0).all()


def test_truncated_avi_uses_frames_that_decode(tmp_path: Path):
    good = write_video(tmp_path / "full.avi", _ramp(20, h=64, w=64), 10.0, fourcc="MJPG")
    path = tmp_path / "cut.avi"
    path.write_bytes(good.read_bytes()[: good.stat().st_size * 6 // 10])
    n = probe_video(path).num_frames
    assert 0 < n < 20
    clip = load_clip(path, 8, size=16)
    assert clip.shape == (8, 16, 16, 3)
    assert _values(clip).max() <= 10 * (n - 1) + 6  # only frames that exist were sampled


def test_grayscale_video_gives_three_channels(tmp_path: Path):
    gray = [np.full((24, 24), 40 * i, np.uint8) for i in range(4)]
    path = write_video(tmp_path / "gray.avi", gray, 8.0, fourcc="MJPG")
    video, _ = read_frames(path)
    assert video.shape == (4, 24, 24, 3)
    assert np.abs(video[..., 0].astype(int) - video[..., 2]).max() <= 2
    assert load_clip(path, 2, size=16).shape == (2, 16, 16, 3)
    # Sources that arrive 1- or 4-channel or 16-bit are converted too.
    assert video_io._to_rgb(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert video_io._to_rgb(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6, 3)
    assert video_io._to_rgb(np.full((5, 6, 3), 65535, np.uint16)).max() == 255


def test_one_frame_video_repeats(tmp_path: Path):
    frame = np.zeros((32, 32, 3), np.uint8)
    frame[:, :, 1] = 200
    path = write_video(tmp_path / "one.mp4", [frame], 25.0)
    for train in (False, True):
        clip = load_clip(path, 6, size=16, train=train, rng=np.random.default_rng(0))
        assert clip.shape == (6, 16, 16, 3)
        assert (clip == clip[0]).all() and clip[0, ..., 1].mean() > 180


def test_very_large_resolution(tmp_path: Path):
    frames = [np.full((2160, 3840, 3), 60 * i, np.uint8) for i in range(3)]
    path = write_video(tmp_path / "uhd.mp4", frames, 10.0)
    del frames
    info = probe_video(path)
    assert (info.width, info.height, info.num_frames) == (3840, 2160, 3)
    clip = load_clip(path, 3, size=32, short_side=36)
    assert clip.shape == (3, 32, 32, 3)
    np.testing.assert_allclose(_values(clip), [0, 60, 120], atol=6)
    windows = list(iter_windows(path, 1.0, 1.0, num_segments=2, size=32))
    assert len(windows) == 1 and windows[0].frames.shape == (2, 32, 32, 3)


# --------------------------------------------------------------------------- windows


def test_iter_windows_overlapping_and_tail(tmp_path: Path):
    path = write_video(tmp_path / "long.mp4", _ramp(30, step=8), 10.0)  # 3 s, value = 8 * i
    wins = list(iter_windows(path, 1.0, 0.5, num_segments=4, size=16))
    assert [(w.start_s, w.end_s) for w in wins] == [
        (0.0, 1.0), (0.5, 1.5), (1.0, 2.0), (1.5, 2.5), (2.0, pytest.approx(3.0)),
    ]  # fmt: skip
    for w in wins:
        assert w.frames.shape == (4, 16, 16, 3)
        vals = _values(w.frames) / 8  # frame index at 10 fps = 10 * time
        assert (vals >= 10 * w.start_s - 1).all() and (vals <= 10 * w.end_s).all()
    start_s, end_s, frames = wins[0]  # unpacks as a plain tuple
    assert frames.dtype == np.uint8


def test_iter_windows_with_gaps_and_short_video(tmp_path: Path):
    path = write_video(tmp_path / "long.mp4", _ramp(30, step=8), 10.0)
    wins = list(iter_windows(path, 0.5, 1.0, num_segments=2, size=16))
    assert [w.start_s for w in wins] == [0.0, 1.0, 2.0]
    for w in wins:  # frames between windows are never used
        vals = _values(w.frames) / 8
        assert (vals >= 10 * w.start_s - 1).all() and (vals < 10 * w.start_s + 5.5).all()
    short = write_video(tmp_path / "short.mp4", _ramp(5), 10.0)
    (only,) = list(iter_windows(short, 2.0, 1.0, num_segments=3, size=16))
    assert only.start_s == 0.0 and only.end_s == pytest.approx(0.5)
    with pytest.raises(ValueError):
        next(iter_windows(short, 0.0, 1.0))


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")
def test_variable_frame_rate_uses_timestamps(tmp_path: Path):
    # 1 s of black at 10 fps, then 2 s of white at 30 fps, timestamps kept as they are.
    path = tmp_path / "vfr.mp4"
    cmd = [
        "ffmpeg", "-y", "-loglevel", "error",
        "-f", "lavfi", "-i", "color=c=black:s=32x32:r=10:d=1",
        "-f", "lavfi", "-i", "color=c=white:s=32x32:r=30:d=2",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1,settb=1/30[v]", "-map", "[v]",
        "-fps_mode", "vfr", "-c:v", "mpeg4", "-q:v", "2", str(path),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, timeout=60)
    info = probe_video(path)
    assert info.num_frames == 70
    assert info.duration == pytest.approx(3.0, abs=0.05)
    wins = list(iter_windows(path, 1.0, 1.0, num_segments=4, size=16))
    assert [w.start_s for w in wins] == [0.0, 1.0, 2.0]
    assert _values(wins[0].frames).max() < 30  # all of the first second is black
    assert _values(wins[1].frames).min() > 220 and _values(wins[2].frames).min() > 220
