"""Tests for data_prep.importers.video: UCF101 layout, CSV, MMAction lists, validation."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from data_prep.importers.video import (
    VideoImportError,
    import_csv,
    import_mmaction_list,
    import_ucf101,
    validate_video,
)
from data_prep.manifest import read_manifest
from data_prep.validate import DropList, reason_category
from data_prep.video_io import write_video


def _video(path: Path, n: int = 4, fps: float = 10.0) -> Path:
    """A tiny 32x32 video of n frames."""
    frames = [np.full((32, 32, 3), 30 * i, np.uint8) for i in range(n)]
    return write_video(path, frames, fps, fourcc="MJPG" if path.suffix == ".avi" else "mp4v")


def _ucf_tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "UCF-101"
    splits = tmp_path / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n")
    for cls, tag in (
        ("ApplyEyeMakeup", "ApplyEyeMakeup"),
        ("HandstandPushups", "HandStandPushups"),
    ):
        for g in (1, 2, 3):
            _video(root / cls / f"v_{tag}_g0{g}_c01.avi", n=3 + g)
    (root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g09_c01.avi").write_bytes(b"\x00" * 500)
    (splits / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\n"
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi 1\n"
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi 1\n"  # corrupt
        "HandstandPushups/v_HandStandPushups_g01_c01.avi 2\n"
        "HandstandPushups/v_HandStandPushups_g02_c01.avi 2\n"
        "HandstandPushups/v_HandStandPushups_g07_c01.avi 2\n"  # missing
    )
    # The official lists spell some folders in another case; no label column in test lists.
    (splits / "testlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi\r\n"
        "HandStandPushups/v_HandStandPushups_g03_c01.avi\r\n"
    )
    return root, splits


def test_import_ucf101(tmp_path: Path, caplog):
    root, splits = _ucf_tree(tmp_path)
    drops: dict[str, DropList] = {}
    with caplog.at_level(logging.WARNING, logger="data_prep.importers.video"):
        out = import_ucf101(root, splits, tmp_path / "data", split=1, drops=drops)
    assert set(out) == {"train", "test"}
    train = read_manifest(out["train"], "video")
    assert [r["id"] for r in train] == [
        "v_ApplyEyeMakeup_g01_c01", "v_ApplyEyeMakeup_g02_c01",
        "v_HandStandPushups_g01_c01", "v_HandStandPushups_g02_c01",
    ]  # fmt: skip
    assert [r["label"] for r in train] == ["ApplyEyeMakeup"] * 2 + ["HandstandPushups"] * 2
    assert [r["num_frames"] for r in train] == [4, 5, 4, 5]
    assert all(r["fps"] == pytest.approx(10.0) for r in train)
    assert all(Path(r["video_filepath"]).is_file() for r in train)
    test = read_manifest(out["test"], "video")
    assert [(r["label"], r["num_frames"]) for r in test] == [
        ("ApplyEyeMakeup", 6), ("HandstandPushups", 6),
    ]  # fmt: skip
    # Bad entries are logged with their file names and skipped.
    assert "v_ApplyEyeMakeup_g09_c01.avi" in caplog.text
    assert "v_HandStandPushups_g07_c01.avi" in caplog.text and "not found" in caplog.text
    # ... and recorded with their reasons, per split.
    assert [(item, reason_category(r)) for item, r in drops["train"]] == [
        ("v_ApplyEyeMakeup_g09_c01", "unreadable video"), ("v_HandStandPushups_g07_c01", "missing file"),
    ]  # fmt: skip
    assert drops["test"] == []


def test_import_ucf101_parallel_probe_and_missing_lists(tmp_path: Path):
    root, splits = _ucf_tree(tmp_path)
    serial = import_ucf101(root, splits, tmp_path / "a")
    threaded = import_ucf101(root, splits, tmp_path / "b", num_workers=3)
    assert serial["train"].read_text() == threaded["train"].read_text()
    with pytest.raises(VideoImportError, match="trainlist02.txt"):
        import_ucf101(root, splits, tmp_path / "c", split=2)
    (splits / "classInd.txt").write_text("one ApplyEyeMakeup\n")
    with pytest.raises(VideoImportError, match=r"classInd.txt:1"):
        import_ucf101(root, splits, tmp_path / "d")


@pytest.mark.parametrize("header", [True, False])
def test_import_csv(tmp_path: Path, header: bool, caplog):
    _video(tmp_path / "clips" / "a.mp4", n=5)
    _video(tmp_path / "clips" / "b.mp4", n=7, fps=12.0)
    other = _video(tmp_path / "elsewhere" / "c.mp4", n=3)
    lines = ["path,label"] if header else []
    lines += [
        "clips/a.mp4,wave",
        "clips/b.mp4,clap",
        f"{other},jump",
        "clips/missing.mp4,wave",
        "only-one-column",
    ]
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    drops = DropList()
    with caplog.at_level(logging.WARNING):
        recs = import_csv(csv_path, tmp_path / "out" / "all.jsonl", drops=drops)
    assert [(r["id"], r["label"], r["num_frames"]) for r in recs] == [
        ("a", "wave", 5), ("b", "clap", 7), ("c", "jump", 3),
    ]  # fmt: skip
    assert recs[1]["fps"] == pytest.approx(12.0)
    assert "missing.mp4" in caplog.text and "only-one-column" in caplog.text
    bad_line = 6 if header else 5
    assert [(item, reason_category(r)) for item, r in drops] == [
        (f"{csv_path}:{bad_line}", "bad record"), ("missing", "missing file"),
    ]  # fmt: skip
    back = read_manifest(tmp_path / "out" / "all.jsonl", "video")
    assert [str(Path(r["video_filepath"]).resolve()) for r in back] == [
        r["video_filepath"] for r in recs
    ]
    raw = json.loads((tmp_path / "out" / "all.jsonl").read_text().splitlines()[0])
    assert raw["video_filepath"] == "../clips/a.mp4"  # stored relative to the manifest


def test_import_mmaction_list(tmp_path: Path, caplog):
    data = tmp_path / "videos"
    _video(data / "x" / "one.mp4", n=4)
    _video(data / "y" / "two.mp4", n=6)
    _video(data / "y" / "with space.mp4", n=2)
    _video(data / "z" / "one.mp4", n=3)  # same stem in another folder
    lst = tmp_path / "lists" / "train_list_videos.txt"
    lst.parent.mkdir()
    lst.write_text(
        "x/one.mp4 0\ny/two.mp4 1\ny/with space.mp4 1\nz/one.mp4 0\ny/gone.mp4 1\nx/one.mp4 9\n"
    )
    drops = DropList()
    with caplog.at_level(logging.WARNING):
        recs = import_mmaction_list(lst, tmp_path / "m.jsonl", root=data, class_names=["a", "b"], drops=drops)
    assert [(r["id"], r["label"], r["num_frames"]) for r in recs] == [
        ("one", "a", 4), ("two", "b", 6), ("with space", "b", 2), ("one-1", "a", 3),
    ]  # fmt: skip
    assert "gone.mp4" in caplog.text and "outside class_names" in caplog.text
    assert [(item, reason_category(r)) for item, r in drops] == [
        (f"{lst}:6", "bad record"), ("gone", "missing file"),
    ]  # fmt: skip
    assert len(read_manifest(tmp_path / "m.jsonl", "video")) == 4

    named = tmp_path / "named.txt"  # paths relative to the list, names as labels
    named.write_text("videos/x/one.mp4 wave\n# comment\n\nvideos/y/two.mp4 3\n")
    recs = import_mmaction_list(named, tmp_path / "n.jsonl")
    assert [r["label"] for r in recs] == ["wave", "3"]


def test_validate_video(tmp_path: Path):
    good = _video(tmp_path / "good.mp4", n=5)
    corrupt = tmp_path / "bad.mp4"
    corrupt.write_text("not a video")
    records = [
        {"id": "g", "video_filepath": str(good), "label": "wave", "num_frames": 99, "fps": 1.0},
        {"id": "m", "video_filepath": str(tmp_path / "nope.mp4"), "label": "wave"},
        {"id": "c", "video_filepath": str(corrupt), "label": "clap"},
        {"id": "e", "video_filepath": str(good), "label": " "},
    ]
    kept, dropped = validate_video(records)
    assert [r["id"] for r in kept] == ["g"]
    assert kept[0]["num_frames"] == 5 and kept[0]["fps"] == pytest.approx(10.0)
    reasons = {rec["id"]: reason for rec, reason in dropped}
    assert set(reasons) == {"m", "c", "e"}
    assert "not found" in reasons["m"] and "text" in reasons["c"] and "label" in reasons["e"]
    categories = {rid: reason_category(reason) for rid, reason in reasons.items()}
    assert categories == {"m": "missing file", "c": "unreadable video", "e": "bad record"}
    assert records[0]["num_frames"] == 99  # the input records are not modified
