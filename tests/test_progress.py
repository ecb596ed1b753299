"""Progress in seconds of media: the ``progress=`` callback of both speech engines and of the
video labeler, the counting behind it (:class:`pipeline.inference.progress.MediaProgress`) and
the CLI's ``--progress/--no-progress`` bar on stderr."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from bundles import run_cli, synthetic_speech, tiny_speech_bundle, tiny_video_bundle

from pipeline.inference.progress import (
    MediaProgress,
    ProgressBar,
    audio_seconds,
    video_seconds,
    wants_bar,
)

SR = 16000


def _speech(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    return synthetic_speech(seconds, sr, seed)


class Calls(list):
    """A progress callback that records its calls."""

    def __call__(self, done: float, total: float) -> None:
        self.append((done, total))


def _check_calls(calls: Calls, total: float) -> None:
    """Starts at (0, total), never goes down, keeps one total, ends exactly at it."""
    assert calls, "the callback was never called"
    assert calls[0] == (0.0, pytest.approx(total))
    assert {t for _, t in calls} == {calls[0][1]}
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert done[-1] == calls[0][1]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return tiny_speech_bundle(tmp_path_factory.mktemp("progress") / "bundle", graph=True)


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("progress_audio")
    sf.write(root / "a.wav", _speech(1.5), SR)
    sf.write(root / "b.wav", _speech(1.25, 8000, seed=1), 8000)
    (root / "bad.wav").write_text("not audio\n")
    # Over 60 s, nearly all silence (cheap to decode): the long, block-wise path.
    long = np.zeros(62 * SR, np.float32)
    long[SR : SR + int(1.5 * SR)] = _speech(1.5)
    sf.write(root / "long.wav", long, SR)
    return {
        "a": root / "a.wav",
        "b": root / "b.wav",
        "bad": root / "bad.wav",
        "long": root / "long.wav",
    }


@pytest.fixture(scope="module", params=["lite", "torch"])
def engine(request, bundle: Path):
    from pipeline.inference.engines import load_transcriber

    return load_transcriber(bundle, engine=request.param, lm="none")


# --------------------------------------------------------------------------- the counting


def test_media_progress_counts_each_input_once_and_holds_within_it_to_its_length() -> None:
    calls = Calls()
    tracker = MediaProgress(calls, [1.5, 0.0, 2.25])
    assert tracker.total == 3.75
    inside = tracker.inside(2)
    tracker.file_done(0)
    tracker.file_done(1)  # unknown length: counts nothing, moves nothing
    inside(1.0)
    inside(0.5)  # never back
    inside(99.0)  # past its header's length: held there
    inside(float("nan"))
    tracker.file_done(2)
    assert calls == [(0.0, 3.75), (1.5, 3.75), (2.5, 3.75), (3.75, 3.75)]
    quiet = MediaProgress(None, [1.0])
    assert quiet.inside(0) is None
    quiet.file_done(0)  # no callback: nothing to do


def test_media_progress_drops_a_failing_callback(caplog) -> None:
    def broken(done: float, total: float) -> None:
        if done > 0:
            raise RuntimeError("display gone")

    tracker = MediaProgress(broken, [1.0, 2.0])
    with caplog.at_level(logging.WARNING):
        tracker.file_done(0)
        tracker.file_done(1)
    assert [r.message for r in caplog.records if "progress callback failed" in r.message] != []
    assert tracker.callback is None


def test_lengths_come_from_headers_and_unreadable_ones_count_zero(audio, tmp_path: Path) -> None:
    assert audio_seconds(audio["a"]) == pytest.approx(1.5)
    assert audio_seconds(audio["b"]) == pytest.approx(1.25)
    assert audio_seconds(audio["bad"]) == 0.0
    assert audio_seconds(tmp_path / "missing.wav") == 0.0
    assert audio_seconds(tmp_path) == 0.0
    assert video_seconds(audio["bad"]) == 0.0


def test_wants_bar_only_on_a_terminal_unless_told() -> None:
    class Stream:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    assert wants_bar(None, Stream(True)) and not wants_bar(None, Stream(False))
    assert wants_bar(True, Stream(False)) and not wants_bar(False, Stream(True))
    assert not wants_bar(None, object())  # no isatty at all


def test_progress_bar_draws_seconds_and_files(tmp_path: Path) -> None:
    import io

    out = io.StringIO()
    with ProgressBar("transcribe", files=2, stream=out) as bar:
        bar(0.0, 4.0)
        bar(1.5, 4.0)
        bar.file_done()
        bar(4.0, 4.0)
        bar.file_done()
    text = out.getvalue()
    assert "transcribe: 100%" in text and "4.0/4.0 s" in text and "2/2 files" in text


# --------------------------------------------------------------------------- the engines


def test_callback_ends_at_the_total_and_bad_inputs_still_count(engine, audio) -> None:
    """Two good files, one unreadable (counts 0) and a bad array (counts its length)."""
    calls = Calls()
    nan = np.full(SR // 2, np.nan, np.float32)
    results = engine.transcribe([audio["a"], audio["bad"], nan, audio["b"]], progress=calls)
    assert [r.error is None for r in results] == [True, False, False, True]
    _check_calls(calls, 1.5 + 0.5 + 1.25)
    done = [d for d, _ in calls]
    assert (
        done[-1] == pytest.approx(3.25) and pytest.approx(2.0) in done
    )  # the bad array: its 0.5 s


def test_a_long_file_advances_more_than_once(engine, audio) -> None:
    calls = Calls()
    (result,) = engine.transcribe([audio["long"]], progress=calls)
    assert result.error is None and result.duration == pytest.approx(62.0)
    _check_calls(calls, 62.0)
    inside = [d for d, _ in calls if 0 < d < 62.0]
    assert len(inside) >= 10, calls  # every block read, not only the end


def test_no_callback_reads_no_header(engine, audio, monkeypatch) -> None:
    import pipeline.inference.progress as progress

    def refuse(path):
        raise AssertionError("header read without a progress callback")

    monkeypatch.setattr(progress, "audio_seconds", refuse)
    assert engine.transcribe([audio["a"]])[0].error is None


# --------------------------------------------------------------------------- the CLI


def test_cli_progress_draws_a_bar_on_stderr_only(bundle: Path, audio, capsys) -> None:
    files = [str(audio["a"]), str(audio["bad"]), str(audio["b"])]
    code, rows, errors, err = run_cli(capsys, "transcribe", "--model", str(bundle), "--format", "json",
                                      "--progress", *files)  # fmt: skip
    assert code == 1 and [r["path"] for r in rows] == [files[0], files[2]]  # stdout is rows only
    assert len(errors) == 1 and "bad.wav" in errors[0]
    assert "transcribe: 100%" in err and "2.8/2.8 s" in err and "3/3 files" in err


@pytest.mark.parametrize("flag", [[], ["--no-progress"]])
def test_cli_draws_no_bar_when_stderr_is_not_a_terminal(
    flag: list[str], bundle: Path, audio, capsys
) -> None:
    code, rows, errors, err = run_cli(capsys, "transcribe", "--model", str(bundle), "--format", "json", *flag,
                                      str(audio["a"]), str(audio["bad"]))  # fmt: skip
    assert code == 1 and len(rows) == 1 and len(errors) == 1
    assert "%|" not in err and "\r" not in err
    assert err.splitlines() == [errors[0], "seqrec: 1 of 2 file(s) failed"]


# --------------------------------------------------------------------------- label


@pytest.fixture(scope="module")
def video_bundle(tmp_path_factory) -> Path:
    """A tiny untrained video bundle (the layout video_activity.stage_export writes)."""
    return tiny_video_bundle(tmp_path_factory.mktemp("progress_video") / "bundle", ["walk", "jump"])


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """A 2 s and a 1 s clip at 10 fps, and a file that is not a video."""
    from data_prep.video_io import write_video

    root = tmp_path_factory.mktemp("progress_clips")
    out = []
    for name, n in [("two.mp4", 20), ("one.mp4", 10)]:
        out.append(
            write_video(
                root / name, [np.full((24, 32, 3), 10 * i, np.uint8) for i in range(n)], 10.0
            )
        )
    (root / "bad.mp4").write_text("not a video\n")
    return [out[0], root / "bad.mp4", out[1]]


def test_label_callback_counts_video_seconds_and_windows(
    video_bundle: Path, clips: list[Path]
) -> None:
    from pipeline.inference.labeler import ClipLabeler

    labeler = ClipLabeler.from_pretrained(video_bundle)
    assert video_seconds(clips[0]) == pytest.approx(2.0) and video_seconds(clips[1]) == 0.0
    calls = Calls()
    results = labeler.label(clips, window=0.5, stride=0.5, batch_size=1, progress=calls)
    assert [r.error is None for r in results] == [True, False, True]
    _check_calls(calls, 3.0)
    assert len([d for d, _ in calls if 0 < d < 2.0]) >= 2, (
        calls
    )  # inside the first clip, per batch of windows
    plain = Calls()
    labeler.label(clips, progress=plain)
    _check_calls(plain, 3.0)


def test_label_cli_progress(video_bundle: Path, clips: list[Path], capsys) -> None:
    code, rows, errors, err = run_cli(capsys, "label", "--model", str(video_bundle), "--format", "json",
                                      "--progress", *map(str, clips))  # fmt: skip
    assert code == 1 and len(rows) == 2 and len(errors) == 1
    assert "label: 100%" in err and "3.0/3.0 s" in err and "3/3 files" in err
