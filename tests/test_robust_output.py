"""Output that cannot be forged: hostile file names, labels and texts through `seqrec`.

Linux allows every byte but ``/`` and NUL in a file name, tabs and newlines included. The line
formats (txt, tsv, srt, vtt, the ``seqrec: error:`` lines on stderr) must still give one row
per file with the columns it should have, and each path must come back exactly from its
escaped form (:func:`pipeline.escaping.unescape`). JSON escapes by itself and stays as it was.
Also: ``seqrec export`` to a place it cannot write is one line naming OUT, not a temporary.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.cli import main as cli_main
from pipeline.escaping import escape, unescape

SR = 16000

#: Names built to forge rows and error lines, and a few other troublemakers.
HOSTILE = [
    "y.wav\tforged transcript\nz.wav",
    "back\\nslash\\t.wav",  # backslashes that look like escapes must survive the round trip
    "esc\x1b[31mred\x1b[0m.wav",
    "carriage\rreturn.wav",
    "line\u2028sep\x85nel.wav",  # split by str.splitlines(), if not by "\n"
    "caf\u00e9 \u65e5\u672c.wav",  # printable non-ASCII stays as it is
]
#: A file that is not audio, named to print a forged error line under it.
BAD_NAME = "bad.wav\nseqrec: error: fake.wav: forged.wav"


def _tone(path: Path, seconds: float = 0.5) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    tmp = path.with_name("tmp-tone.wav")
    sf.write(tmp, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), SR)
    tmp.rename(path)  # libsndfile opens the plain name; the hostile one is only a rename away
    return path


def _lines(text: str) -> list[str]:
    """Lines as a reader that splits on newlines sees them (str.splitlines() splits on more)."""
    assert text.endswith("\n") or not text
    return text.split("\n")[:-1]


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("name", [*HOSTILE, BAD_NAME, "plain.wav", "", "\\", "\t\n\r\x00\x7f", "\U0001f600 \U000e0001"])
def test_escape_is_reversible_and_leaves_no_control_characters(name: str) -> None:
    out = escape(name)
    assert unescape(out) == name
    assert out.isprintable() and "\t" not in out and "\n" not in out
    assert out == name or "\\" in out


def test_escape_rule() -> None:
    assert escape("plain name.wav") == "plain name.wav"
    assert escape("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e"
    assert escape("\x00\x1b\x7f") == "\\x00\\x1b\\x7f"
    assert escape("\x85\u2028\u202e") == "\\u0085\\u2028\\u202e"  # C1 control, line separator, RLO
    assert escape("\U000e0001") == "\\U000e0001"
    assert escape("caf\u00e9") == "caf\u00e9"
    raw = os.fsdecode(b"caf\xe9.wav")  # not UTF-8: Python keeps the byte as a lone surrogate
    assert escape(raw) == "caf\\xe9.wav" and os.fsencode(unescape(escape(raw))) == b"caf\xe9.wav"


def test_log_messages_can_be_escaped() -> None:
    """For ``seqrec``'s log handler: a warning naming a hostile file stays one line."""
    import logging

    from pipeline.escaping import EscapingFormatter

    record = logging.LogRecord("seqrec", logging.WARNING, __file__, 1, "%s: clipping", (BAD_NAME,), None)
    line = EscapingFormatter("seqrec: %(levelname)s: %(message)s").format(record)
    assert line == f"seqrec: WARNING: {escape(BAD_NAME)}: clipping" and "\n" not in line


def test_text_fields_are_escaped_too() -> None:
    """A bundle's tokens or labels, or an LM's words, are data too: no control character of
    theirs reaches a line format."""
    from pipeline.cli import _render_transcription
    from pipeline.inference.subtitles import render

    words = [{"word": "a\nb", "start": 0.0, "end": 0.5}, {"word": "<c>&d\t", "start": 0.6, "end": 1.0}]
    row = {"path": "p\tq.wav", "text": "a\nb <c>&d\t", "duration": 1.0, "words": words}
    assert _render_transcription(row, "txt") == "p\\tq.wav\ta\\nb <c>&d\\t"
    assert render(row, "tsv") == "start\tend\ttext\n0\t1000\ta\\nb <c>&d\\t\n"
    assert render(row, "srt") == "1\n00:00:00,000 --> 00:00:01,000\na\\nb <c>&d\\t\n\n"
    # WebVTT cue text is markup: & and < are character references there
    assert render(row, "vtt") == "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\na\\nb &lt;c&gt;&amp;d\\t\n\n"


# --------------------------------------------------------------------------- transcribe


@pytest.fixture
def hostile_audio(tmp_path: Path) -> tuple[Path, list[Path], Path]:
    """(directory, good audio files with hostile names, a bad file with a forging name)."""
    root = tmp_path / "in"
    root.mkdir()
    good = [_tone(root / name) for name in ["a.wav", *HOSTILE]]
    bad = root / BAD_NAME
    bad.write_text("not audio at all\n")
    return root, good, bad


def _check_rows(out: str, expected: list[Path], columns: int) -> list[list[str]]:
    rows = [line.split("\t") for line in _lines(out)]
    assert len(rows) == len(expected), out
    assert all(len(r) == columns for r in rows), out
    assert [unescape(r[0]) for r in rows] == [str(p) for p in expected]
    return rows


def _check_errors(err: str, expected: list[Path], total: int) -> None:
    """Exactly one error line per bad file (naming it), and the summary; nothing forged."""
    lines = _lines(err)
    errors = [line for line in lines if line.startswith("seqrec: error:")]
    assert len(errors) == len(expected), err
    for line, path in zip(errors, expected, strict=True):
        assert line.startswith(f"seqrec: error: {escape(str(path))}: ")
    assert f"seqrec: {len(expected)} of {total} file(s) failed" in lines


@pytest.mark.parametrize("fmt", ["txt", "tsv"])
def test_transcribe_rows_cannot_be_forged_by_file_names(fmt: str, hostile_audio, capsys) -> None:
    """The shipped model on files named to forge rows and error lines (lite engine: fast)."""
    root, good, bad = hostile_audio
    files = [*good, bad]
    code = cli_main(["transcribe", "--lm", "none", "--format", fmt, *map(str, files)])
    out, err = capsys.readouterr()
    assert code == 1
    if fmt == "txt":
        _check_rows(out, good, columns=2)
    else:  # one header line and no row per silent tone; no line may have more than 3 columns
        assert all(len(line.split("\t")) == 3 for line in _lines(out)), out
    _check_errors(err, [bad], len(files))


def test_transcribe_directory_and_output_dir_with_hostile_names(hostile_audio, tmp_path: Path, capsys) -> None:
    """A directory is expanded into the hostile names; --format all writes each file, whose
    one-line formats still have one line per file, and the JSON keeps the real path."""
    root, good, bad = hostile_audio
    out_dir = tmp_path / "out"
    code = cli_main(["transcribe", "--lm", "none", "--format", "all", "--output-dir", str(out_dir), str(root)])
    out, err = capsys.readouterr()
    assert code == 1
    expected = sorted(good)  # a directory is read in sorted order
    _check_rows(out, expected, columns=2)
    _check_errors(err, [bad], len(good) + 1)
    txts = sorted(out_dir.glob("*.txt"))
    assert len(txts) == len(good)
    for txt in txts:
        (row,) = [line.split("\t") for line in _lines(txt.read_text())]
        stem = txt.name[: -len(".txt")]
        assert len(row) == 2 and Path(unescape(row[0])).stem == stem
        assert json.loads(txt.with_suffix(".json").read_text())["path"] == unescape(row[0])


def test_json_is_unchanged(hostile_audio, capsys) -> None:
    root, good, bad = hostile_audio
    code = cli_main(["transcribe", "--lm", "none", "--format", "json", *map(str, good)])
    out, _ = capsys.readouterr()
    assert code == 0
    rows = [json.loads(line) for line in _lines(out)]
    assert [r["path"] for r in rows] == [str(p) for p in good]
    assert out == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)  # the same bytes as before


def test_a_name_that_is_not_utf8_is_escaped_not_a_crash(tmp_path: Path, capsys) -> None:
    """A byte that is not UTF-8 in a name (kept by Python as a lone surrogate) cannot be
    printed as it is: each line format shows it as ``\\xNN``, JSON as ``\\udcNN``, and nothing
    stops the run."""
    root = tmp_path / "in"
    root.mkdir()
    raw = os.fsdecode(root / os.fsdecode(b"caf\xe9\n.wav"))
    Path(raw).write_bytes(b"not audio at all\n")  # an error row: reading such a name is not this test's concern
    good = _tone(root / "ok.wav")
    code = cli_main(["transcribe", "--lm", "none", "--format", "json", raw, str(good)])
    out, err = capsys.readouterr()
    assert code == 1
    assert [json.loads(line)["path"] for line in _lines(out)] == [str(good)]
    _check_errors(err, [Path(raw)], 2)
    assert escape(raw).endswith("caf\\xe9\\n.wav") and escape(raw) in err


# --------------------------------------------------------------------------- label

#: Class names of an untrusted bundle, built to forge rows and segment lines.
HOSTILE_LABELS = ["wave\nseqrec: error: fake.mp4: forged", "walk\tjump", "ju\x1bmp"]


@pytest.fixture(scope="module")
def hostile_video_bundle(tmp_path_factory) -> Path:
    """A tiny untrained video bundle (the layout video_activity.stage_export writes) whose
    class names hold control characters."""
    from data_prep.frame_embed import BackboneConfig, build_backbone
    from pipeline.bundle import save_bundle
    from pipeline.config import to_dict
    from pipeline.models.classifier import ClassifierConfig, SequenceClassifier
    from pipeline.models.encoder import EncoderConfig

    torch.manual_seed(0)
    bb = BackboneConfig(name="mobilenet_v3_small", frame_size=32, short_side=32, num_segments=4)
    backbone, dim = build_backbone(bb.name, "none")
    cfg = ClassifierConfig(
        input_dim=dim, num_classes=len(HOSTILE_LABELS), encoder=EncoderConfig(cell="gru", hidden_size=8, num_layers=1)
    )
    config = {
        "kind": "video_classifier", "model": to_dict(cfg), "labels": HOSTILE_LABELS,
        "backbone": {**to_dict(bb), "weights": "backbone.safetensors"},
        "weights": "model.safetensors", "backbone_weights": "backbone.safetensors", "metrics": {},
    }  # fmt: skip
    weights = {"model.safetensors": SequenceClassifier(cfg).state_dict(), "backbone.safetensors": backbone.state_dict()}
    return save_bundle(tmp_path_factory.mktemp("hostile_video") / "bundle", config, weights)


def test_label_rows_and_segments_cannot_be_forged(hostile_video_bundle: Path, tmp_path: Path, capsys) -> None:
    from data_prep.video_io import write_video

    root = tmp_path / "in"
    root.mkdir()
    frames = [np.full((24, 32, 3), 25 * i, np.uint8) for i in range(10)]  # 1 s at 10 fps
    good = []
    for name in ["a.mp4", "y.mp4\tforged\nz.mp4", "back\\slash.mp4"]:
        written = write_video(root / "tmp-clip.mp4", frames, 10.0)
        good.append(written.rename(root / (name if written.suffix == ".mp4" else name + ".avi")))
    bad = root / BAD_NAME.replace(".wav", ".mp4")
    bad.write_text("not a video\n")
    files = [*good, bad]
    argv = ["label", "--model", str(hostile_video_bundle), "--top-k", "3", "--window", "0.5", "--stride", "0.5"]
    code = cli_main([*argv, *map(str, files)])
    out, err = capsys.readouterr()
    assert code == 1
    lines = _lines(out)
    rows = [line.split("\t") for line in lines if not line.startswith("  ")]
    segs = [line.split("\t") for line in lines if line.startswith("  ")]
    assert [unescape(r[0]) for r in rows] == [str(p) for p in good], out
    assert all(len(r) == 2 for r in rows) and all(len(s) == 2 for s in segs), out
    assert len(segs) == 2 * len(good)  # two 0.5 s windows per 1 s clip
    label = "|".join(re.escape(escape(x)) for x in HOSTILE_LABELS)
    assert all(re.fullmatch(f"(?:(?:{label}):[01]\\.\\d{{3}})(?: (?:{label}):[01]\\.\\d{{3}}){{2}}", r[1]) for r in rows), out
    _check_errors(err, [bad], len(files))


# --------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def speech_bundle(tmp_path_factory) -> Path:
    """A tiny untrained speech bundle (the layout speech_ctc.stage_export writes)."""
    from data_prep.features import FeatureConfig
    from pipeline.bundle import save_bundle
    from pipeline.config import to_dict
    from pipeline.models.ctc_model import CTCModel, CTCModelConfig
    from pipeline.models.encoder import EncoderConfig
    from pipeline.tokenizer import CharTokenizer

    tokenizer = CharTokenizer()
    cfg = CTCModelConfig(
        input_dim=80, vocab_size=tokenizer.vocab_size,
        encoder=EncoderConfig(cell="gru", hidden_size=8, num_layers=1, subsampling=2),
    )  # fmt: skip
    config = {
        "kind": "speech_ctc", "model": to_dict(cfg), "features": to_dict(FeatureConfig()),
        "tokens": tokenizer.to_list(), "weights": "model.safetensors", "metrics": {},
    }  # fmt: skip
    out = tmp_path_factory.mktemp("speech_bundle") / "bundle"
    return save_bundle(out, config, {"model.safetensors": CTCModel(cfg).state_dict()})


def _stub_graph(monkeypatch) -> None:
    import pipeline.inference.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "speech_onnx", lambda model, *args, **kwargs: b"not really a graph")


@pytest.mark.parametrize("where", ["parent is a file", "out is a directory", "disk full"])
def test_export_write_error_is_one_line_naming_out(where: str, speech_bundle: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    _stub_graph(monkeypatch)  # the write is under test, not the (tested elsewhere) graph
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    out, reason = {
        "parent is a file": (tmp_path / "afile" / "model\n.onnx", f"File exists: {tmp_path / 'afile'}"),
        "out is a directory": (tmp_path / "adir", "Is a directory"),
        "disk full": (tmp_path / "model.onnx", "No space left on device"),
    }[where]
    if where == "disk full":  # a full disk shows at the latest when the data is flushed

        def full(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", full)
    code = cli_main(["export", "--model", str(speech_bundle), str(out)])
    stdout, err = capsys.readouterr()
    assert code == 1 and stdout == ""
    assert _lines(err) == [f"seqrec: error: {escape(str(out))}: cannot write: {reason}"]
    assert not [p for p in tmp_path.rglob("*") if "tmp" in p.name]  # no temporary left behind


def test_export_still_writes(speech_bundle: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    _stub_graph(monkeypatch)
    out = tmp_path / "m\t.onnx"
    assert cli_main(["export", "--model", str(speech_bundle), str(out)]) == 0
    stdout, _ = capsys.readouterr()
    assert out.read_bytes() == b"not really a graph"
    assert _lines(stdout) == [f"{escape(str(out))}\tspeech_ctc\t{len(b'not really a graph')} bytes"]
