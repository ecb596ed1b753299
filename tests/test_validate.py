"""Tests for data_prep.validate: every drop reason, the summary log and the report."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.validate import reason_category, validate_speech, write_dropped_report


def _wav(path: Path, seconds: float, sr: int = 16000) -> str:
    sf.write(path, np.full(int(sr * seconds), 0.1, dtype=np.float32), sr)
    return str(path)


def _rec(rid: str, path: str, text: str = "hello world", duration: float = 1.0) -> dict:
    return {"id": rid, "audio_filepath": path, "duration": duration, "text": text, "speaker": "s"}


@pytest.fixture
def records(tmp_path: Path) -> list[dict]:
    text_file = tmp_path / "notes.wav"
    text_file.write_text("not audio at all\n")
    return [
        _rec("good", _wav(tmp_path / "good.wav", 1.0)),
        _rec("missing", str(tmp_path / "nope.wav")),
        _rec("unreadable", str(text_file)),
        _rec("empty", _wav(tmp_path / "e.wav", 1.0), text=" ?! -- "),
        _rec("short", _wav(tmp_path / "short.wav", 0.05)),
        _rec("long", _wav(tmp_path / "long.wav", 3.0)),
        _rec("good", _wav(tmp_path / "dup.wav", 1.0)),
        {"id": "broken", "text": "no path"},
        _rec("good2", _wav(tmp_path / "good2.flac", 2.0), text="Twenty-3 it's"),
    ]


def test_every_reason(records: list[dict], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="data_prep.validate"):
        kept, dropped = validate_speech(records, min_duration=0.1, max_duration=2.5)
    assert [r["id"] for r in kept] == ["good", "good2"]
    assert kept[0] is records[0]  # records come back unchanged
    reasons = dict(dropped)
    assert reason_category(reasons["missing"]) == "missing file"
    assert "nope.wav" in reasons["missing"]
    assert reason_category(reasons["unreadable"]) == "unreadable audio"
    assert reasons["empty"] == "empty text"
    assert reasons["short"].startswith("duration out of range: 0.050 s")
    assert reasons["long"].startswith("duration out of range: 3.000 s")
    assert reasons["broken"].startswith("bad record")
    assert ("good", "duplicate id") in dropped
    assert len(dropped) == 7
    summary = [r.getMessage() for r in caplog.records if "validated" in r.getMessage()]
    assert summary and "kept 2, dropped 7" in summary[0]
    assert "2 duration out of range" in summary[0] and "1 missing file" in summary[0]


def test_check_audio_false_trusts_manifest(tmp_path: Path) -> None:
    path = _wav(tmp_path / "a.wav", 1.0)
    recs = [_rec("a", path, duration=1.0), _rec("b", path, duration=40.0)]
    recs.append({**_rec("c", path), "duration": "1.0"})
    kept, dropped = validate_speech(recs, check_audio=False)
    assert [r["id"] for r in kept] == ["a"]
    assert dict(dropped)["b"].startswith("duration out of range")
    assert dict(dropped)["c"].startswith("bad record")


def test_check_audio_uses_real_duration(tmp_path: Path) -> None:
    # the manifest claims 1 s; the file holds 40 s
    path = _wav(tmp_path / "a.wav", 40.0, sr=8000)
    kept, dropped = validate_speech([_rec("a", path, duration=1.0)])
    assert not kept and reason_category(dropped[0][1]) == "duration out of range"


def test_all_kept_logs_info(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _wav(tmp_path / "a.wav", 1.0)
    with caplog.at_level(logging.INFO, logger="data_prep.validate"):
        kept, dropped = validate_speech([_rec("a", path)])
    assert len(kept) == 1 and dropped == []
    assert any("all kept" in r.getMessage() for r in caplog.records)


def test_dropped_report(tmp_path: Path) -> None:
    dropped = [("u1", "missing file: /x/y.wav"), ("u2", "empty text"), ("u3", "empty text"),
               ("u\t4", "unreadable audio: bad\nheader")]  # fmt: skip
    path = write_dropped_report(tmp_path / "rep" / "dropped.tsv", dropped)
    lines = path.read_text().splitlines()
    assert "# 2\tempty text" in lines and "# 1\tmissing file" in lines
    body = lines[lines.index("id\treason") + 1 :]
    assert body[0] == "u1\tmissing file: /x/y.wav"
    assert body[3] == "u 4\tunreadable audio: bad header"  # one line, two columns
    assert len(body) == 4
