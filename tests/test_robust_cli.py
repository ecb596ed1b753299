"""Bad input, end to end: every kind of broken or unusual file through `seqrec` and the API.

Two small but real bundles (untrained models, the exact config layout the recipes export) are
built once per module. Each bad-input kind is one parametrised case run through
``pipeline.cli.main``: it either gives a sane JSON row or exactly one
``seqrec: error: <path>: <reason>`` line, the exit code says whether anything failed, and no
traceback reaches the user unless ``--debug`` is given.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch
from bundles import run_cli, tiny_video_bundle

from pipeline.cli import main as cli_main

SR = 16000
HAS_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
LABELS = ["wave", "walk", "jump"]


# --------------------------------------------------------------------------- bundles


@pytest.fixture(scope="module")
def speech_bundle(tmp_path_factory) -> Path:
    """A tiny untrained BiGRU-CTC bundle with the layout of speech_ctc.stage_export."""
    from bundles import tiny_speech_bundle

    return tiny_speech_bundle(tmp_path_factory.mktemp("speech_bundle") / "bundle")


@pytest.fixture(scope="module")
def video_bundle(tmp_path_factory) -> Path:
    """A tiny untrained video bundle with the layout of video_activity.stage_export."""
    return tiny_video_bundle(tmp_path_factory.mktemp("video_bundle") / "bundle", LABELS, cell="lstm", hidden_size=16)


# --------------------------------------------------------------------------- file builders


def _signal(seconds: float, sr: int = SR, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    """Chirp plus a little noise; (N,) or (N, channels) float32."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = amp * np.sin(2 * np.pi * (200 * t + 800 * t**2)) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    x = x.astype(np.float32)
    return x if channels == 1 else np.stack([x * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1)


def _wav(path: Path, seconds: float = 0.5, sr: int = SR, subtype: str = "PCM_16", **kw) -> Path:
    sf.write(path, _signal(seconds, sr, **kw), sr, subtype=subtype)
    return path


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=60)


def _ramp(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    return [np.full((h, w, 3), (20 * i) % 256, np.uint8) for i in range(n)]


def _video(path: Path, frames: list[np.ndarray], fps: float = 10.0, fourcc: str = "mp4v") -> Path:
    from data_prep.video_io import write_video

    return write_video(path, frames, fps, fourcc=fourcc)


@dataclass(frozen=True)
class Case:
    """One bad-input kind: how to build it, which command reads it, what must come out.

    ``expect`` is ``"ok"`` (a row) or a fragment the one-line reason must contain.
    ``duration`` is the expected transcription duration in seconds (None: not checked).
    """

    command: str
    build: Callable[[Path], Path]
    expect: str = "ok"
    duration: float | None = None
    needs_ffmpeg: bool = False


def _empty(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def _text(p: Path) -> Path:
    p.write_text("this is a shopping list, not media\neggs\nmilk\n" * 5)
    return p


def _random_bytes(p: Path) -> Path:
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return p


def _zero_length_wav(p: Path) -> Path:
    sf.write(p, np.zeros(0, np.float32), SR)
    return p


def _truncated_wav(p: Path) -> Path:
    full = _wav(p.with_name("full.wav"), 1.0)
    raw = full.read_bytes()
    data_at = raw.index(b"data") + 8
    p.write_bytes(raw[: data_at + 2 * 6400])  # header still claims 16000 frames; 0.4 s remain
    return p


def _header_lies(size_field: int) -> Callable[[Path], Path]:
    def build(p: Path) -> Path:
        raw = bytearray(_wav(p.with_name("ref.wav"), 1.0).read_bytes())
        at = raw.index(b"data") + 4
        raw[at : at + 4] = struct.pack("<I", size_field)
        riff = struct.pack("<I", size_field)  # and the RIFF chunk size agrees with the lie
        raw[4:8] = riff
        p.write_bytes(bytes(raw))
        return p

    return build


def _nan_inf(p: Path) -> Path:
    x = _signal(0.5)
    x[::97] = np.nan
    x[5::89] = np.inf
    x[7::83] = -np.inf
    sf.write(p, x, SR, subtype="FLOAT")
    return p


def _silence(p: Path) -> Path:
    sf.write(p, np.zeros(SR // 2, np.float32), SR)
    return p


def _clipping_float(p: Path) -> Path:
    sf.write(p, _signal(0.5, amp=8.0), SR, subtype="FLOAT")
    return p


def _clipping_pcm(p: Path) -> Path:
    sf.write(p, np.clip(_signal(0.5, amp=8.0), -1, 1), SR, subtype="PCM_16")
    return p


def _tiny_audio(n: int) -> Callable[[Path], Path]:
    def build(p: Path) -> Path:
        sf.write(p, _signal(1.0)[:n], SR, subtype="PCM_16")
        return p

    return build


def _compressed(fmt: str) -> Callable[[Path], Path]:
    def build(p: Path) -> Path:
        if fmt not in sf.available_formats():
            pytest.skip(f"libsndfile lacks {fmt}")
        sf.write(p, _signal(1.0, 44100), 44100, format=fmt)
        return p

    return build


def _truncated_flac(p: Path) -> Path:
    good = p.with_name("good.flac")
    sf.write(good, _signal(1.0), SR, format="FLAC")
    p.write_bytes(good.read_bytes()[:100])  # header and a scrap of the first frame
    return p


def _m4a(p: Path) -> Path:
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=500:duration=1", "-c:a", "aac", str(p))
    return p


def _video_with_audio(p: Path) -> Path:
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=1000:duration=1", "-f", "lavfi",
            "-i", "testsrc=duration=1:size=64x48:rate=10", "-shortest", str(p))  # fmt: skip
    return p


def _video_no_audio(p: Path) -> Path:
    return _video(p, _ramp(10))


def _truncated_mp4(p: Path) -> Path:
    good = _video(p.with_name("good.mp4"), _ramp(10))
    p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # moov atom lost
    return p


def _bad_ftyp(p: Path) -> Path:
    p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 300)
    return p


def _zero_frames(p: Path) -> Path:
    writer = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 32))
    writer.release()
    return p


def _one_frame(p: Path) -> Path:
    return _video(p, _ramp(1))


def _lying_frame_count(claimed: int) -> Callable[[Path], Path]:
    def build(p: Path) -> Path:
        good = _video(p.with_name("real.avi"), _ramp(12), fourcc="MJPG")
        data = bytearray(good.read_bytes())
        avih, strh = data.find(b"avih"), data.find(b"strh")
        data[avih + 24 : avih + 28] = struct.pack("<I", claimed)  # dwTotalFrames
        data[strh + 40 : strh + 44] = struct.pack("<I", claimed)  # dwLength
        p.write_bytes(bytes(data))
        return p

    return build


def _uhd(p: Path) -> Path:
    return _video(p, [np.full((2160, 3840, 3), 60 * i, np.uint8) for i in range(2)])


def _gray(p: Path) -> Path:
    return _video(p, [np.full((40, 40), 50 * i, np.uint8) for i in range(5)], fourcc="MJPG")


def _vfr(p: Path) -> Path:
    _ffmpeg(
        "-f", "lavfi", "-i", "color=c=black:s=32x32:r=5:d=1",
        "-f", "lavfi", "-i", "color=c=white:s=32x32:r=25:d=1",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1,settb=1/25[v]", "-map", "[v]",
        "-fps_mode", "vfr", "-c:v", "mpeg4", str(p),
    )  # fmt: skip
    return p


def _missing(p: Path) -> Path:
    return p


def _directory_named_like_file(p: Path) -> Path:
    """A directory whose name ends in the extension, holding nothing usable."""
    p.mkdir()
    (p / "readme.txt").write_text("nothing here")
    return p


TRANSCRIBE_CASES: dict[str, Case] = {
    "empty_file": Case("transcribe", _empty, "empty file"),
    "zero_length_audio": Case("transcribe", _zero_length_wav, "zero-length"),
    "truncated_wav": Case("transcribe", _truncated_wav, duration=0.4),
    "header_claims_huge_length": Case("transcribe", _header_lies(0xFFFFFFFF), duration=1.0),
    "header_claims_zero_length": Case("transcribe", _header_lies(0), duration=1.0, needs_ffmpeg=True),
    "text_named_wav": Case("transcribe", _text, "cannot decode audio", needs_ffmpeg=True),
    "random_bytes_wav": Case("transcribe", _random_bytes, "cannot decode audio", needs_ffmpeg=True),
    "wav_8bit": Case("transcribe", lambda p: _wav(p, 0.5, 8000, "PCM_U8"), duration=0.5),
    "wav_24bit": Case("transcribe", lambda p: _wav(p, 0.5, subtype="PCM_24"), duration=0.5),
    "wav_float": Case("transcribe", lambda p: _wav(p, 0.5, subtype="FLOAT"), duration=0.5),
    "rate_8k": Case("transcribe", lambda p: _wav(p, 0.5, 8000), duration=0.5),
    "rate_44k1": Case("transcribe", lambda p: _wav(p, 0.5, 44100), duration=0.5),
    "rate_48k": Case("transcribe", lambda p: _wav(p, 0.5, 48000), duration=0.5),
    "stereo": Case("transcribe", lambda p: _wav(p, 0.5, channels=2), duration=0.5),
    "six_channel": Case("transcribe", lambda p: _wav(p, 0.5, 48000, channels=6), duration=0.5),
    "nan_inf_samples": Case("transcribe", _nan_inf, duration=0.5),
    "pure_silence": Case("transcribe", _silence, duration=0.5),
    "clipping_float": Case("transcribe", _clipping_float, duration=0.5),
    "clipping_pcm": Case("transcribe", _clipping_pcm, duration=0.5),
    "shorter_than_receptive_field": Case("transcribe", _tiny_audio(40), duration=40 / SR),
    "single_sample": Case("transcribe", _tiny_audio(1), duration=1 / SR),
    "mp3": Case("transcribe", _compressed("MP3"), duration=1.0),
    "flac": Case("transcribe", _compressed("FLAC"), duration=1.0),
    "ogg": Case("transcribe", _compressed("OGG"), duration=1.0),
    "truncated_flac": Case("transcribe", _truncated_flac, "cannot decode audio", needs_ffmpeg=True),
    "m4a_via_ffmpeg": Case("transcribe", _m4a, duration=1.0, needs_ffmpeg=True),
    "video_with_audio_to_transcribe": Case("transcribe", _video_with_audio, duration=1.0, needs_ffmpeg=True),
    "video_without_audio_to_transcribe": Case("transcribe", _video_no_audio, "no audio stream", needs_ffmpeg=True),
    "missing_audio_path": Case("transcribe", _missing, "file not found"),
    "directory_without_audio": Case("transcribe", _directory_named_like_file, "directory holds no audio files"),
}

LABEL_CASES: dict[str, Case] = {
    "empty_video": Case("label", _empty, "empty file"),
    "text_named_mp4": Case("label", _text, "text, not video"),
    "random_bytes_mp4": Case("label", _random_bytes, "cannot open as video"),
    "corrupt_mp4_truncated": Case("label", _truncated_mp4, "cannot open as video"),
    "corrupt_mp4_bad_atoms": Case("label", _bad_ftyp, "cannot open as video"),
    "zero_frame_video": Case("label", _zero_frames, "no decodable frames"),
    "one_frame_video": Case("label", _one_frame),
    "header_overstates_frames": Case("label", _lying_frame_count(100)),
    "header_understates_frames": Case("label", _lying_frame_count(3)),
    "frame_size_4k": Case("label", _uhd),
    "grayscale_video": Case("label", _gray),
    "variable_frame_rate": Case("label", _vfr, needs_ffmpeg=True),
    "audio_file_to_label": Case("label", lambda p: _wav(p, 0.5), "audio only, no video stream"),
    "missing_video_path": Case("label", _missing, "file not found"),
    "directory_without_videos": Case("label", _directory_named_like_file, "directory holds no video files"),
}

FILE_NAMES = {
    "transcribe": {
        "mp3": "a.mp3", "flac": "a.flac", "ogg": "a.ogg", "truncated_flac": "cut.flac",
        "m4a_via_ffmpeg": "a.m4a", "video_with_audio_to_transcribe": "clip.mp4",
        "video_without_audio_to_transcribe": "silent.mp4",
    },
    "label": {
        "zero_frame_video": "zero.avi", "header_overstates_frames": "liar.avi",
        "header_understates_frames": "liar.avi", "grayscale_video": "gray.avi",
        "audio_file_to_label": "speech.wav",
    },
}


def _make(case_id: str, case: Case, tmp_path: Path) -> Path:
    if case.needs_ffmpeg and not HAS_FFMPEG:
        pytest.skip("needs the ffmpeg command")
    default = "input.wav" if case.command == "transcribe" else "input.mp4"
    name = FILE_NAMES[case.command].get(case_id, default)
    work = tmp_path / "in"
    work.mkdir()
    return case.build(work / name)


# --------------------------------------------------------------------------- checks




def _check_transcription(row: dict, duration: float | None, tokens: set[str]) -> None:
    assert set(row) == {"path", "text", "duration", "words", "segments"}
    assert isinstance(row["text"], str) and set(row["text"]) <= tokens
    assert row["duration"] >= 0
    if duration is not None:
        assert row["duration"] == pytest.approx(duration, rel=0.1, abs=0.06)
    for w in row["words"]:
        assert w["word"] and 0 <= w["start"] <= w["end"] <= row["duration"] + 0.1
    assert " ".join(w["word"] for w in row["words"]) == row["text"]


def _check_labels(row: dict, top_k: int) -> None:
    assert set(row) == {"path", "labels"}
    labels = row["labels"]
    assert len(labels) == min(top_k, len(LABELS))
    assert len({x["label"] for x in labels}) == len(labels) and {x["label"] for x in labels} <= set(LABELS)
    scores = [x["score"] for x in labels]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    assert all(np.isfinite(scores))


ALL_CASES = {**TRANSCRIBE_CASES, **LABEL_CASES}


def test_at_least_25_distinct_kinds_of_bad_input(tmp_path: Path) -> None:
    """The cases build 25+ inputs that really differ (name, type or bytes), not one file 25 times;
    permissions, mixed directories, manifests and configs come on top."""
    built = set()
    for case_id, case in ALL_CASES.items():
        if case.needs_ffmpeg and not HAS_FFMPEG:
            continue
        (tmp_path / case_id).mkdir()
        path = _make(case_id, case, tmp_path / case_id)
        content = path.read_bytes() if path.is_file() else tuple(sorted(p.name for p in path.rglob("*")))
        built.add((case.command, path.suffix, path.is_dir(), content))
    assert len(built) >= 25


@pytest.mark.parametrize("case_id", sorted(ALL_CASES))
def test_bad_input_kind(case_id: str, tmp_path: Path, capsys, speech_bundle: Path, video_bundle: Path) -> None:
    case = ALL_CASES[case_id]
    path = _make(case_id, case, tmp_path)
    bundle = speech_bundle if case.command == "transcribe" else video_bundle
    extra = ["--top-k", "2"] if case.command == "label" else []
    code, rows, errors, err = run_cli(capsys, case.command, "--model", str(bundle), "--format", "json", *extra, str(path))
    assert "Traceback" not in err
    if case.expect == "ok":
        assert errors == [], err
        assert code == 0
        assert len(rows) == 1 and rows[0]["path"] == str(path)
        if case.command == "transcribe":
            from pipeline.tokenizer import CharTokenizer

            _check_transcription(rows[0], case.duration, set(CharTokenizer().tokens[1:]))
        else:
            _check_labels(rows[0], 2)
    else:
        assert rows == []
        assert code == 1
        assert len(errors) == 1, err
        assert errors[0].startswith(f"seqrec: error: {path}: "), errors[0]
        assert case.expect in errors[0]


@pytest.mark.parametrize("command", ["transcribe", "label"])
def test_unreadable_permissions(command: str, tmp_path: Path, capsys, monkeypatch, speech_bundle, video_bundle) -> None:
    if command == "transcribe":
        path, bundle = _wav(tmp_path / "locked.wav"), speech_bundle
    else:
        path, bundle = _video(tmp_path / "locked.mp4", _ramp(6)), video_bundle
    path.chmod(0)
    try:
        if os.geteuid() == 0:  # root reads anything: make the check see what a user would
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda p, m, **kw: False if Path(p) == path else real_access(p, m, **kw))
        code, rows, errors, err = run_cli(capsys, command, "--model", str(bundle), "--format", "json", str(path))
    finally:
        path.chmod(0o644)
    assert code == 1 and rows == [] and "Traceback" not in err
    assert errors == [f"seqrec: error: {path}: permission denied (file is not readable)"] or (
        len(errors) == 1 and errors[0].startswith(f"seqrec: error: {path}: permission denied")
    )


def _mixed_audio_dir(root: Path) -> tuple[list[Path], list[Path]]:
    root.mkdir()
    (root / "sub").mkdir()
    good = [
        _wav(root / "a.wav", 0.4),
        _wav(root / "sub" / "b.wav", 0.3, 44100, channels=2),
        _compressed("FLAC")(root / "c.flac"),
        _wav(root / "sub" / "c.wav", 0.2),  # same stem as c.flac: outputs must not collide
    ]
    bad = [_empty(root / "empty.wav"), _text(root / "notes.wav"), _zero_length_wav(root / "sub" / "zero.wav")]
    (root / "readme.txt").write_text("not an audio extension: ignored")
    return sorted(good), sorted(bad)


def _mixed_video_dir(root: Path) -> tuple[list[Path], list[Path]]:
    root.mkdir()
    good = [_video(root / "a.mp4", _ramp(8)), _gray(root / "b.avi"), _one_frame(root / "c.mp4")]
    bad = [_empty(root / "empty.mp4"), _truncated_mp4(root / "cut.mp4"), _zero_frames(root / "zero.avi")]
    (root / "good.mp4").unlink()  # the helper's intermediate file
    return sorted(good), sorted(bad)


@pytest.mark.parametrize("command", ["transcribe", "label"])
def test_directory_with_mixed_good_and_bad_files(command: str, tmp_path: Path, capsys, speech_bundle, video_bundle) -> None:
    if command == "transcribe" and not HAS_FFMPEG:
        pytest.skip("the text file is rejected through ffmpeg")
    root = tmp_path / "mixed"
    good, bad = (_mixed_audio_dir if command == "transcribe" else _mixed_video_dir)(root)
    bundle = speech_bundle if command == "transcribe" else video_bundle
    out_dir = tmp_path / "out"
    code, rows, errors, err = run_cli(
        capsys, command, "--model", str(bundle), "--format", "json", "--output-dir", str(out_dir), str(root)
    )
    assert code == 1 and "Traceback" not in err
    assert sorted(Path(r["path"]) for r in rows) == good  # every good file gets a row
    assert len(errors) == len(bad)
    for path in bad:
        assert sum(line.startswith(f"seqrec: error: {path}: ") for line in errors) == 1
    assert f"{len(bad)} of {len(good) + len(bad)} file(s) failed" in err
    written = sorted(out_dir.iterdir())
    assert len(written) == len(good)  # one output per good file, none overwritten
    back = {json.loads(p.read_text())["path"] for p in written}
    assert back == {str(p) for p in good}


def test_only_good_files_exit_zero(tmp_path: Path, capsys, speech_bundle) -> None:
    files = [_wav(tmp_path / "a.wav", 0.3), _wav(tmp_path / "b.wav", 0.6, 8000)]
    code, rows, errors, err = run_cli(capsys, "transcribe", "--model", str(speech_bundle), "--format", "json", *map(str, files))
    assert code == 0 and errors == [] and "failed" not in err
    assert [r["path"] for r in rows] == [str(f) for f in files]


def test_debug_shows_traceback_and_still_processes_the_rest(tmp_path: Path, capsys, speech_bundle) -> None:
    good, bad = _wav(tmp_path / "good.wav", 0.3), _empty(tmp_path / "bad.wav")
    code, rows, errors, err = run_cli(
        capsys, "transcribe", "--debug", "--model", str(speech_bundle), "--format", "json", str(bad), str(good)
    )
    assert code == 1
    assert [r["path"] for r in rows] == [str(good)]
    assert "Traceback" in err and "AudioError" in err and f"{bad}: empty file" in err
    assert errors[0] == f"seqrec: error: {bad}: empty file (0 bytes)"


def test_model_errors_exit_2_without_traceback(tmp_path: Path, capsys, speech_bundle, video_bundle) -> None:
    wav = _wav(tmp_path / "a.wav", 0.2)
    for bundle, command in ((video_bundle, "transcribe"), (speech_bundle, "label"), (tmp_path, "transcribe")):
        code = cli_main([command, "--model", str(bundle), str(wav)])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert len([ln for ln in err.splitlines() if ln.startswith("seqrec: error:")]) == 1


def test_python_api_reports_errors_per_file(tmp_path: Path, speech_bundle, video_bundle) -> None:
    from pipeline import ClipLabeler, Transcriber

    good = _wav(tmp_path / "good.wav", 0.3)
    results = Transcriber.from_pretrained(speech_bundle).transcribe([tmp_path / "nope.wav", good, _empty(tmp_path / "e.wav")])
    assert [r.error is None for r in results] == [False, True, False]
    assert results[0].error == f"{tmp_path / 'nope.wav'}: file not found"
    assert results[1].duration == pytest.approx(0.3, abs=0.01)
    assert results[0].to_dict() == {"path": str(tmp_path / "nope.wav"), "error": results[0].error}

    clip = _video(tmp_path / "clip.mp4", _ramp(6))
    labeled = ClipLabeler.from_pretrained(video_bundle).label([_empty(tmp_path / "e.mp4"), clip], top_k=1, window=0.3)
    assert labeled[0].error is not None and "empty file" in labeled[0].error
    assert labeled[1].error is None and len(labeled[1].labels) == 1 and labeled[1].segments
    with pytest.raises(Exception, match="empty file"):
        Transcriber.from_pretrained(speech_bundle).transcribe([tmp_path / "e.wav"], raise_errors=True)


def test_real_process_stderr_is_one_line_per_bad_file(tmp_path: Path, video_bundle: Path) -> None:
    """In a real process, native decoders (FFmpeg, OpenCV) must not add their own noise."""
    import sys

    good = _video(tmp_path / "good.mp4", _ramp(6))
    bad = [_truncated_mp4(tmp_path / "cut.mp4"), _bad_ftyp(tmp_path / "atoms.mp4"), _random_bytes(tmp_path / "junk.mp4")]
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "label", "--model", str(video_bundle), "--format", "json",
         str(good), *map(str, bad)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 1
    assert [json.loads(line)["path"] for line in proc.stdout.splitlines()] == [str(good)]
    lines = proc.stderr.splitlines()
    assert [ln.split(": ")[2] for ln in lines[:-1]] == [str(p) for p in bad], proc.stderr
    assert all(ln.startswith("seqrec: error: ") for ln in lines[:-1])
    assert lines[-1] == "seqrec: 3 of 4 file(s) failed"


# --------------------------------------------------------------------------- untrusted bundles


class Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _tamper(bundle: Path, tmp_path: Path, attack: str, marker: Path) -> Path:
    import pickle

    import yaml

    b = tmp_path / "shared_bundle"
    shutil.copytree(bundle, b)
    cfg = yaml.safe_load((b / "config.yaml").read_text())
    if attack == "pickle_in_safetensors_file":
        (b / "model.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    elif attack == "pickle_weights_file":
        torch.save({"w": Payload(marker)}, b / "model.pt")
        cfg["weights"] = "model.pt"
    elif attack == "yaml_object_tag":
        (b / "config.yaml").write_text(
            f"format_version: 1\nkind: !!python/object/apply:os.system ['touch {marker}']\n"
        )
        return b
    elif attack == "dotdot_weights_name":
        shutil.copy(b / "model.safetensors", tmp_path / "outside.safetensors")
        cfg["weights"] = "../outside.safetensors"
    elif attack == "absolute_weights_name":
        shutil.copy(b / "model.safetensors", tmp_path / "outside.safetensors")
        cfg["weights"] = str(tmp_path / "outside.safetensors")
    elif attack == "symlink_out_of_bundle":
        shutil.copy(b / "model.safetensors", tmp_path / "outside.safetensors")
        (b / "model.safetensors").unlink()
        (b / "model.safetensors").symlink_to(tmp_path / "outside.safetensors")
    elif attack == "weights_that_do_not_fit":
        cfg["model"]["encoder"]["hidden_size"] = 8
    elif attack == "tokens_not_a_list":
        cfg["tokens"] = "abc"
    else:
        raise AssertionError(attack)
    (b / "config.yaml").write_text(yaml.safe_dump(cfg))
    return b


ATTACKS = {
    "pickle_in_safetensors_file": "cannot read weights",
    "pickle_weights_file": "pickle is refused",
    "yaml_object_tag": "refused: not plain YAML data",
    "dotdot_weights_name": "escapes the bundle directory",
    "absolute_weights_name": "escapes the bundle directory",
    "symlink_out_of_bundle": "resolves outside the bundle",
    "weights_that_do_not_fit": "invalid speech bundle",
    "tokens_not_a_list": "'tokens' must be a list",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_untrusted_bundle_is_refused_and_runs_nothing(attack: str, tmp_path: Path, capsys, speech_bundle: Path) -> None:
    marker = tmp_path / "pwned"
    bundle = _tamper(speech_bundle, tmp_path, attack, marker)
    wav = _wav(tmp_path / "a.wav", 0.2)
    code = cli_main(["transcribe", "--model", str(bundle), "--format", "json", str(wav)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("seqrec: error:")]
    assert ATTACKS[attack] in line and str(bundle) in line
    assert not marker.exists()


# --------------------------------------------------------------------------- manifests and configs


def _speech_record(i: int, **over) -> dict:
    return {"id": f"u{i}", "audio_filepath": f"wavs/u{i}.wav", "duration": 1.0, "text": "hi", "speaker": "s", **over}


MANIFEST_CASES = {
    "broken_line": ('{"id": "u1", "audio_filepath": "x.wav", "dura', "invalid JSON"),
    "missing_fields": (json.dumps({"id": "u1", "audio_filepath": "x.wav"}), "missing field(s) duration, text, speaker"),
    "wrong_type": (json.dumps(_speech_record(1, duration="long")), "field 'duration' has wrong type"),
    "not_an_object": ("[1, 2, 3]", "expected a JSON object"),
    "nan_duration": ('{"id": "u1", "audio_filepath": "x.wav", "duration": NaN, "text": "a", "speaker": "s"}',
                     "field 'duration' must be a finite number >= 0"),
    "negative_duration": (json.dumps(_speech_record(1, duration=-2.0)), "must be a finite number >= 0"),
}


@pytest.mark.parametrize("kind", sorted(MANIFEST_CASES))
def test_manifest_bad_line(kind: str, tmp_path: Path, caplog) -> None:
    from data_prep.manifest import ManifestError, read_manifest

    line, reason = MANIFEST_CASES[kind]
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(_speech_record(0)) + "\n" + line + "\n" + json.dumps(_speech_record(2)) + "\n")
    with pytest.raises(ManifestError) as exc:
        read_manifest(path, "speech")
    assert str(exc.value).startswith(f"{path}:2: ") and reason in str(exc.value)
    assert "\n" not in str(exc.value)
    recs = read_manifest(path, "speech", strict=False)  # lenient: the line is skipped and logged
    assert [r["id"] for r in recs] == ["u0", "u2"]
    assert f"{path}:2" in caplog.text


def test_manifest_unknown_keys_are_kept(tmp_path: Path) -> None:
    from data_prep.manifest import read_manifest

    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(_speech_record(0, lang="en", offset=0.5)) + "\n")
    (rec,) = read_manifest(path, "speech")
    assert rec["lang"] == "en" and rec["offset"] == 0.5
    assert rec["audio_filepath"] == str(tmp_path / "wavs" / "u0.wav")


def test_manifest_not_utf8_and_missing(tmp_path: Path) -> None:
    from data_prep.manifest import ManifestError, read_manifest

    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(json.dumps(_speech_record(0, text="caf\u00e9"), ensure_ascii=False).encode("latin-1"))
    with pytest.raises(ManifestError, match="latin1.jsonl: not UTF-8"):
        read_manifest(bad, "speech")
    with pytest.raises(ManifestError, match="nope.jsonl: cannot read manifest"):
        read_manifest(tmp_path / "nope.jsonl", "speech")


CONFIG_CASES = {
    "unknown_key": ("train:\n  max_epoch: 3\n", [], "train.max_epoch"),
    "wrong_type": ("train:\n  max_epochs: three\n", [], "train.max_epochs: expected an integer"),
    "yaml_object_tag": ("train: !!python/object/apply:os.system ['touch {marker}']\n", [], "invalid or unsafe YAML"),
    "bad_override": ("", ["model.encoder.cell=transformer"], "model.encoder.cell"),
    "not_a_mapping": ("- 1\n- 2\n", [], "top level must be a mapping"),
}


@pytest.mark.parametrize("recipe", ["speech_ctc", "video_activity"])
@pytest.mark.parametrize("kind", sorted(CONFIG_CASES) + ["missing_file"])
def test_recipe_config_errors_are_one_line_exit_2(recipe: str, kind: str, tmp_path: Path, capsys) -> None:
    import importlib

    main = importlib.import_module(f"recipes.{recipe}.run").main
    marker = tmp_path / "pwned"
    conf = tmp_path / "bad.yaml"
    if kind == "missing_file":
        overrides, reason = [], "cannot read config"
    else:
        text, overrides, reason = CONFIG_CASES[kind]
        conf.write_text(text.format(marker=marker))
    with pytest.raises(SystemExit) as exc:
        main(["--config", str(conf), "--exp-dir", str(tmp_path / "exp"), *overrides])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1 and reason in lines[0] and str(conf) in lines[0], err
    assert not marker.exists()
    assert not (tmp_path / "exp").exists()  # nothing ran


def test_recipe_config_value_rejected_by_its_own_checks(tmp_path: Path, capsys) -> None:
    from recipes.speech_ctc.run import main

    with pytest.raises(SystemExit) as exc:
        main(["--exp-dir", str(tmp_path / "exp"), "features.f_max=9000.0"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert "with overrides features.f_max=9000.0" in line and "f_max <= sample_rate/2" in line
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("recipe", ["speech_ctc", "video_activity"])
def test_recipe_run_error_is_one_line_exit_1(recipe: str, tmp_path: Path, capsys) -> None:
    import importlib
    import logging

    main = importlib.import_module(f"recipes.{recipe}.run").main
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        with pytest.raises(SystemExit) as exc:
            # the video demo's shipped backbone reads only its own corpus: real videos name the ImageNet one
            real = ["backbone.weights=imagenet", "backbone_fit.epochs=6"] if recipe == "video_activity" else []
            main(["--data", str(tmp_path / "nope"), "--exp-dir", str(tmp_path / "exp"), "--stop-stage", "1", *real])
        err = capsys.readouterr().err
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
            if h not in saved[0]:
                h.close()
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    assert exc.value.code == 1 and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if "ERROR" in ln]
    assert f"{tmp_path / 'nope'}: corpus directory not found" in line
    assert "corpus directory not found" in (tmp_path / "exp" / "log" / "run.log").read_text()


# --------------------------------------------------------------------------- streaming, resume


@pytest.mark.slow
def test_sigkill_mid_directory_keeps_finished_outputs_and_skip_existing_finishes(tmp_path: Path, speech_bundle: Path):
    """Results are written as each group of files is decoded: a run killed as soon as the first
    output exists leaves only whole, loadable outputs, and --skip-existing transcribes the rest."""
    import signal
    import subprocess
    import sys
    import time

    audio = tmp_path / "audio"
    audio.mkdir()
    n = 200
    for i in range(n):  # 4 s each, 800 s in all: more than one group of 60000 log-mel frames
        _wav(audio / f"f{i:03d}.wav", seconds=4.0)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline.cli", "transcribe", "--model", str(speech_bundle), "--lm", "none",
           "--engine", "torch", "--format", "json", "--output-dir", str(out), str(audio)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    def first_output() -> bool:
        return out.is_dir() and any(p.suffix == ".json" and not p.name.startswith(".") for p in out.iterdir())

    while proc.poll() is None and time.monotonic() < deadline and not first_output():
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    finished = sorted(p for p in out.iterdir() if p.suffix == ".json")
    assert 0 < len(finished) < n
    for p in finished:
        assert json.loads(p.read_text())["path"].endswith(p.stem + ".wav")
    assert not [p for p in out.iterdir() if p.suffix != ".json" and not p.name.startswith(".")]  # temporaries hide
    res = subprocess.run([*cmd, "--skip-existing"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"skipped {len(finished)} file(s)" in res.stderr
    assert len(res.stdout.splitlines()) == n - len(finished)
    assert sorted(p.stem for p in out.glob("*.json")) == [f"f{i:03d}" for i in range(n)]
    assert sorted(p.name for p in out.iterdir()) == [f"f{i:03d}.json" for i in range(n)]  # the killed run's temporaries are gone


def _stdin(monkeypatch, data: bytes) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": io.BytesIO(data)})())


def test_transcribe_reads_standard_input(tmp_path: Path, speech_bundle: Path, capsys, monkeypatch):
    """`seqrec transcribe -`: a file piped in (any format), or raw 16 kHz s16le with --raw,
    gives the same result as the file itself; bad standard input is one error line."""
    wav = _wav(tmp_path / "a.wav", seconds=1.5)
    base = ["transcribe", "--model", str(speech_bundle), "--lm", "none", "--format", "json"]
    code, rows, _, _ = run_cli(capsys, *base, str(wav))
    assert code == 0
    expected = rows[0]
    sf.write(tmp_path / "a.flac", sf.read(wav)[0], SR, format="FLAC")
    pcm, sr = sf.read(wav, dtype="int16")
    assert sr == 16000
    for data, extra in (((tmp_path / "a.flac").read_bytes(), []), (pcm.tobytes(), ["--raw"])):
        _stdin(monkeypatch, data)
        code, rows, errors, err = run_cli(capsys, *base, *extra, "-")
        assert code == 0 and errors == [], err
        assert rows[0]["path"] == "-" and rows[0]["text"] == expected["text"]
        assert rows[0]["duration"] == pytest.approx(expected["duration"], abs=0.01)
    _stdin(monkeypatch, b"")
    code, rows, errors, err = run_cli(capsys, *base, "-")
    assert code == 1 and rows == [] and len(errors) == 1 and "standard input" in errors[0] and "Traceback" not in err
    _stdin(monkeypatch, b"\x01\x02\x03")
    code, _, _, err = run_cli(capsys, *base, "--raw", "-")
    assert code == 2 and "even number of bytes" in err
    out = tmp_path / "out"
    _stdin(monkeypatch, wav.read_bytes())
    assert run_cli(capsys, *base, "--output-dir", str(out), "-")[0] == 0
    assert json.loads((out / "stdin.json").read_text())["path"] == "-"


def test_video_decode_limits_stop_absurd_videos_with_one_line(tmp_path: Path, video_bundle: Path, capsys):
    """--max-frames, --max-duration and --max-pixels refuse a video past them (one error line,
    the other files go on); the defaults let ordinary clips through."""
    small = _video(tmp_path / "small.mp4", _ramp(8), fps=10.0)
    big = _video(tmp_path / "big.mp4", _ramp(40, h=96, w=128), fps=10.0)  # 40 frames, 4 s, 128 x 96
    base = ["label", "--model", str(video_bundle), "--format", "json", "--top-k", "1"]
    for flag, value, reason in (("--max-frames", "20", "more than 20 frames"),
                                ("--max-duration", "2", "longer than 2 s"),
                                ("--max-pixels", "10000", "exceed the limit of 10000 pixels")):  # fmt: skip
        code, rows, errors, err = run_cli(capsys, *base, flag, value, str(small), str(big))
        assert code == 1 and [r["path"] for r in rows] == [str(small)], err
        assert len(errors) == 1 and str(big) in errors[0] and reason in errors[0] and "Traceback" not in err
    code, rows, errors, _ = run_cli(capsys, *base, "--window", "1", str(big))
    assert code == 0 and errors == [] and len(rows[0]["segments"]) >= 3
    from data_prep.video_io import VideoLimits, probe_video, video_limits

    with video_limits(VideoLimits(max_frames=5)), pytest.raises(Exception, match="more than 5 frames"):
        probe_video(big)
    assert probe_video(big).num_frames == 40  # the limit applied inside the block only


@pytest.mark.skipif(not HAS_FFMPEG, reason="needs the ffmpeg command")
def test_playlists_disguised_as_media_never_read_the_files_they_name(tmp_path: Path, speech_bundle: Path,
                                                                    video_bundle: Path, capsys):  # fmt: skip
    """An HLS or concat playlist named .wav/.mp4 would make ffmpeg/OpenCV read another file
    (or a URL); the demuxer whitelist refuses it with one error line."""
    secret_audio = tmp_path / "secret.ts"
    _ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=1", "-c:a", "aac", "-f", "mpegts", str(secret_audio))
    secret_video = tmp_path / "secret_v.ts"
    _ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=32x32:r=5:d=1", "-c:v", "mpeg4", "-f", "mpegts", str(secret_video))
    hls = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{}\n#EXT-X-ENDLIST\n"
    concat = "ffconcat version 1.0\nfile '{}'\n"
    cases = [("transcribe", speech_bundle, "hls.wav", hls.format(secret_audio.name)),
             ("transcribe", speech_bundle, "concat.wav", concat.format(secret_audio.name)),
             ("label", video_bundle, "concat.mp4", concat.format(secret_video.name)),
             ("label", video_bundle, "hls.mp4", hls.format(secret_video.name))]  # fmt: skip
    for command, bundle, name, text in cases:
        (tmp_path / name).write_text(text)
        code, rows, errors, err = run_cli(capsys, command, "--model", str(bundle), "--format", "json", str(tmp_path / name))
        assert code == 1 and rows == [], (name, rows)
        assert len(errors) == 1 and name in errors[0] and "Traceback" not in err
    from data_prep.audio import load_audio

    assert load_audio(secret_audio).numel() > 8000  # the secret itself is ordinary, readable media


@pytest.mark.slow
def test_output_piped_into_head_ends_quietly(tmp_path: Path, speech_bundle: Path):
    """`seqrec transcribe DIR | head -1`: the closed pipe ends the run with exit 0, no error line."""
    import subprocess
    import sys

    for i in range(800):  # about 120 kB of output: more than a pipe holds, so writes must fail
        _wav(tmp_path / f"f{i:03d}.wav", seconds=0.5)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "transcribe", "--model", str(speech_bundle),
                             "--lm", "none", "--engine", "torch", "--format", "json", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    first = proc.stdout.readline()
    proc.stdout.close()  # what head does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0 and json.loads(first)["path"].startswith(str(tmp_path))
    assert "Broken pipe" not in err and "error" not in err, err


def test_a_row_is_printed_only_after_its_output_file_is_written(tmp_path: Path, capsys, speech_bundle) -> None:
    """stdout is the record of what is done: when --output-dir cannot take a file, that file's
    row is an error line, never a printed success."""
    wav = _wav(tmp_path / "a.wav", seconds=0.6)
    blocked = tmp_path / "blocked"
    (blocked / "a.json").mkdir(parents=True)  # a folder where the output file should go
    code, rows, errors, _ = run_cli(capsys, "transcribe", "--model", str(speech_bundle), "--lm", "none",
                                 "--format", "json", "--output-dir", str(blocked), str(wav))  # fmt: skip
    assert code == 1 and rows == []
    assert len(errors) == 1 and "cannot write" in errors[0] and str(wav) in errors[0]
    code, rows, errors, _ = run_cli(capsys, "transcribe", "--model", str(speech_bundle), "--lm", "none",
                                 "--format", "json", "--output-dir", str(tmp_path / "out"), str(wav))  # fmt: skip
    assert code == 0 and len(rows) == 1 and (tmp_path / "out" / "a.json").is_file()
