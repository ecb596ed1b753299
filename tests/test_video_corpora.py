"""Real video-corpus layouts: the Kinetics and HMDB51 importers, and the recipe run end to end
on each supported layout (UCF101, CSV, MMAction, Kinetics, HMDB51) with clips rendered by the
embedded generator, one bad item per tree."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from data_prep.importers.corpus import detect_video_format, import_video_corpus
from data_prep.importers.video import (
    VideoImportError,
    find_hmdb51_split_dir,
    import_hmdb51,
    import_kinetics,
    index_kinetics_clips,
    is_kinetics_csv,
)
from data_prep.manifest import read_manifest
from data_prep.validate import DropList, EmptySplitError, read_dropped_report, reason_category
from data_prep.video_io import write_video
from pipeline.cli import main as cli_main
from recipes.video_activity.run import main as recipe_main
from recipes.video_activity.stages import DEFAULT_CONFIG

TINY = DEFAULT_CONFIG.parent / "tiny.yaml"
# Three actions whose single frames already differ (arms up, body low, one arm moving).
CLASSES = ("raise_arms", "squat", "wave")
TRAIN_PER_CLASS, TEST_PER_CLASS = 4, 2
KINETICS_HEADER = "label,youtube_id,time_start,time_end,split,is_cc"

# ----------------------------------------------------------------------------- clips


@functools.cache
def _frames(label: str, k: int) -> tuple[tuple[np.ndarray, ...], float]:
    """Clip ``k`` of ``label`` from the embedded generator: 32x32, 10 frames, no nuisance."""
    from data_prep.corpora.video_corpus import CLASSES as ALL
    from data_prep.corpora.video_corpus import VideoCorpusConfig, render_clip

    cfg = VideoCorpusConfig(frame_size=32, min_frames=10, max_frames=10, min_fps=10, max_fps=10, nuisance=0.0)
    frames, fps = render_clip(label, 1000 * ALL.index(label) + k, cfg)
    return tuple(frames), fps


def _clip(path: Path, label: str, k: int) -> Path:
    """Writes clip ``k`` of ``label`` to ``path`` (MJPG for .avi, mp4v otherwise)."""
    frames, fps = _frames(label, k)
    return write_video(path, list(frames), fps, fourcc="MJPG" if path.suffix == ".avi" else "mp4v")


def _plan(per_class: int, offset: int = 0) -> list[tuple[str, int]]:
    return [(label, offset + k) for label in CLASSES for k in range(per_class)]


TRAIN, TEST = _plan(TRAIN_PER_CLASS), _plan(TEST_PER_CLASS, offset=100)

# ----------------------------------------------------------------------------- layouts
# Each builder writes a corpus with one bad training item and returns
# (root, {split: clips expected in exp/manifests}, reason category of the bad item).


def _ucf101_tree(root: Path) -> tuple[Path, dict[str, int], str]:
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES, 1)))
    train, test = [], []
    for label, k in TRAIN:
        _clip(root / "UCF-101" / label / f"v_{label}_g{k:02d}_c01.avi", label, k)
        train.append(f"{label}/v_{label}_g{k:02d}_c01.avi {CLASSES.index(label) + 1}")
    for label, k in TEST:
        _clip(root / "UCF-101" / label / f"v_{label}_g{k:02d}_c01.avi", label, k)
        test.append(f"{label}/v_{label}_g{k:02d}_c01.avi")
    train.append("wave/v_wave_g77_c01.avi 3")  # listed, never written
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return root, {"train": 9, "dev": 3, "test": 6}, "missing file"


def _csv_tree(root: Path) -> tuple[Path, dict[str, int], str]:
    rows = {"train": [], "test": []}
    for split, plan in (("train", TRAIN), ("test", TEST)):
        for label, k in plan:
            _clip(root / "clips" / label / f"{label}{k}.mp4", label, k)
            rows[split].append(f"clips/{label}/{label}{k}.mp4,{label}")
    (root / "clips" / "broken.mp4").write_bytes(b"\x00" * 64)
    rows["train"].append("clips/broken.mp4,wave")  # exists, does not decode
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("path,label\n" + "\n".join(lines) + "\n")
    return root, {"train": 9, "dev": 3, "test": 6}, "unreadable video"


def _mmaction_tree(root: Path) -> tuple[Path, dict[str, int], str]:
    root.mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for split, plan in (("train", TRAIN), ("test", TEST)):
        lines = []
        for label, k in plan:
            _clip(root / "videos" / f"{label}_{k}.mp4", label, k)
            lines.append(f"videos/{label}_{k}.mp4 {CLASSES.index(label)}")
        if split == "train":
            lines.append("videos/raise_arms_0.mp4 7")  # no class 7 in classes.txt
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root, {"train": 9, "dev": 3, "test": 6}, "bad record"


def _kinetics_tree(root: Path) -> tuple[Path, dict[str, int], str]:
    """train.csv (4 per class, one row's times disagree with its file), validate.csv (the
    first training-plan clip of each class moved to dev), test.csv; clips in train/<label>/,
    val/ and test/ (flat)."""
    plans = {"train": TRAIN, "validate": _plan(1, offset=50), "test": TEST}
    folders = {"train": "train/{label}", "validate": "val", "test": "test"}
    for split, plan in plans.items():
        rows = [KINETICS_HEADER]
        for label, k in plan:
            yid = f"yt-{label[:3]}_{k:03d}"  # YouTube ids may hold '-' and '_'
            start = 10 * k
            rows.append(f'"{label}",{yid},{start},{start + 10},{split},0')
            _clip(root / folders[split].format(label=label) / f"{yid}_{start:06d}_{start + 10:06d}.mp4", label, k)
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    # The row of one more training clip says 2..12 while its file says 0..10.
    _clip(root / "train" / "wave" / "yt-odd_000000_000010.mp4", "wave", 99)
    with open(root / "train.csv", "a") as f:
        f.write("wave,yt-odd,2,12,train,0\n")
    return root, {"train": 12, "dev": 3, "test": 6}, "name mismatch"


def _hmdb51_tree(root: Path) -> tuple[Path, dict[str, int], str]:
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for label in CLASSES:
        lines = []
        for k in range(TRAIN_PER_CLASS):
            _clip(root / "hmdb51_org" / label / f"{label}_clip_{k}.avi", label, k)
            lines.append(f"{label}_clip_{k}.avi 1 ")
        for k in range(100, 100 + TEST_PER_CLASS):
            _clip(root / "hmdb51_org" / label / f"{label}_clip_{k}.avi", label, k)
            lines.append(f"{label}_clip_{k}.avi 2 ")
        _clip(root / "hmdb51_org" / label / f"{label}_unused.avi", label, 200)
        lines.append(f"{label}_unused.avi 0 ")
        if label == "wave":
            lines.append("wave_clip_gone.avi 1 ")  # named by the split file, not on disk
        (splits / f"{label}_test_split1.txt").write_text("\n".join(lines) + "\n")
        (splits / f"{label}_test_split2.txt").write_text("")  # other splits are not read
    return root, {"train": 9, "dev": 3, "test": 6}, "missing file"


LAYOUTS: dict[str, Callable[[Path], tuple[Path, dict[str, int], str]]] = {
    "ucf101": _ucf101_tree, "csv": _csv_tree, "mmaction": _mmaction_tree,
    "kinetics": _kinetics_tree, "hmdb51": _hmdb51_tree,
}  # fmt: skip

# Small settings that still fit a backbone and train both classifiers.
FAST = [
    "data.format=auto", "data.dev_fraction=0.25", "backbone.num_segments=4", "backbone_fit.frames_per_clip=2",
    "train_views=0", "model.encoder.hidden_size=16", "train.max_epochs=2", "ablation_train.max_epochs=2",
]  # fmt: skip


def _run(root: Path, exp: Path, *overrides: str, stop_stage: int = 100) -> dict:
    """The recipe from stage 0 to ``stop_stage`` on ``root`` with :data:`FAST` settings."""
    args = ["--config", str(TINY), "--exp-dir", str(exp), "--stop-stage", str(stop_stage)]
    return recipe_main([*args, f"data.corpus={root}", *FAST, *overrides])


# ----------------------------------------------------------------------------- Kinetics


def _small(path: Path) -> Path:
    """A tiny 4-frame video (the importers only probe it)."""
    frames = [np.full((32, 32, 3), 40 * i, np.uint8) for i in range(4)]
    return write_video(path, frames, 10.0, fourcc="MJPG" if path.suffix == ".avi" else "mp4v")


def test_kinetics_rows_find_their_clips_anywhere_and_bad_rows_are_dropped(tmp_path: Path):
    root = tmp_path / "k400"
    _small(root / "train" / "abseiling" / "aaa_000010_000020.mp4")
    _small(root / "train" / "air drumming" / "b-b_c_000000_000010.mp4")
    _small(root / "val" / "vvv_000003_000013.avi")  # another folder, another extension
    _small(root / "train" / "abseiling" / "mis_000010_000020.mp4")  # its row says 12..22
    _small(root / "two_000000_000010.mp4")  # flat; its youtube id has a second, missing segment
    (root / "train" / "abseiling" / "bad_000001_000011.mp4").write_bytes(b"\x00" * 64)
    (root / "train.csv").write_text(
        "youtube_id,label,time_start,time_end,split,is_cc\n"  # read by name, in any order
        "aaa,abseiling,10,20,train,0\n"
        'b-b_c,"air drumming",0.0,10.0,train,1\n'
        "vvv,abseiling,3,13,train,0\n"
        "mis,abseiling,12,22,train,0\n"
        "two,abseiling,0,10,train,0\n"
        "two,abseiling,20,30,train,0\n"
        "xyz,abseiling,ten,20,train,0\n"
        "bad,abseiling,1,11,train,0\n"
    )
    drops = DropList()
    recs = import_kinetics(root / "train.csv", tmp_path / "out" / "train.jsonl", clips=index_kinetics_clips(root), drops=drops)
    assert [(r["id"], r["label"]) for r in recs] == [
        ("aaa_000010_000020", "abseiling"), ("b-b_c_000000_000010", "air drumming"),
        ("vvv_000003_000013", "abseiling"), ("two_000000_000010", "abseiling"),
    ]  # fmt: skip
    assert all(r["num_frames"] == 4 for r in recs)
    reasons = dict(drops)
    assert [reason_category(r) for _, r in drops] == ["bad record", "name mismatch", "missing file", "unreadable video"]
    assert "ten" in reasons[f"{root / 'train.csv'}:8"]  # a bad row is named by its file and line
    mismatch = reasons["mis_000012_000022"]
    assert "mis_000012_000022.mp4" in mismatch and str(root / "train" / "abseiling" / "mis_000010_000020.mp4") in mismatch
    assert "train.csv:5" in mismatch
    # two_000000_000010 belongs to another row, so the 20..30 row is missing, not mismatched
    assert reasons["two_000020_000030"].startswith("missing file") and "train.csv:7" in reasons["two_000020_000030"]
    assert "bad_000001_000011.mp4" in reasons["bad_000001_000011"]
    assert len(read_manifest(tmp_path / "out" / "train.jsonl", "video")) == 4


def test_kinetics_csv_without_a_required_column_is_refused(tmp_path: Path):
    (tmp_path / "test.csv").write_text("youtube_id,time_start,time_end,split\naaa,0,10,test\n")
    with pytest.raises(VideoImportError, match=r"test.csv: header lacks label"):
        import_kinetics(tmp_path / "test.csv", tmp_path / "out.jsonl")


def test_kinetics_corpus_is_detected_before_a_plain_csv_and_validate_is_dev(tmp_path: Path):
    root = tmp_path / "kinetics"
    root.mkdir()
    (root / "train.csv").write_text("path,label\n")
    assert detect_video_format(root) == "csv" and not is_kinetics_csv(root / "train.csv")
    annotations = root / "annotations"  # the CVDF download keeps the CSVs here
    annotations.mkdir()
    for split, names in (("train", ("aaa", "bbb", "odd")), ("val", ("ccc",)), ("test", ("ddd",))):
        rows = [KINETICS_HEADER] + [f"{'wave' if n != 'bbb' else 'clap'},{n},0,10,{split},0" for n in names]
        (annotations / f"{split}.csv").write_text("\n".join(rows) + "\n")
        for n in names:
            _small(root / split / f"{n}_000000_{10 if n != 'odd' else 11:06d}.mp4")
    assert detect_video_format(root) == "kinetics"
    out = import_video_corpus(root, tmp_path / "out")
    ids = {s: [r["id"] for r in read_manifest(p, "video")] for s, p in out.items()}
    assert ids == {"train": ["aaa_000000_000010", "bbb_000000_000010"], "dev": ["ccc_000000_000010"], "test": ["ddd_000000_000010"]}
    [(item, reason)] = read_dropped_report(tmp_path / "out" / "train.dropped.tsv")
    assert item == "odd_000000_000010" and reason.startswith("name mismatch") and "odd_000000_000011.mp4" in reason
    assert read_dropped_report(tmp_path / "out" / "dev.dropped.tsv") == []


# ----------------------------------------------------------------------------- HMDB51


def _hmdb_tree(root: Path) -> Path:
    """brush_hair and climb_stairs, split files in testTrainMulti_7030_splits/."""
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for label in ("brush_hair", "climb_stairs"):
        for k in range(4):
            _small(root / label / f"{label}_v{k}.avi")
        (splits / f"{label}_test_split1.txt").write_text(
            f"{label}_v0.avi 1 \n{label}_v1.avi 1 \n{label}_v2.avi 2 \n{label}_v3.avi 0 \n"
        )
        (splits / f"{label}_test_split2.txt").write_text(f"{label}_v3.avi 1 \n{label}_v0.avi 2 \n")
    with open(splits / "climb_stairs_test_split1.txt", "a") as f:
        f.write("climb_stairs_gone.avi 1 \nclimb_stairs_gone2.avi 2 \nclimb_stairs_v1.avi x\n")
    return splits


def test_hmdb51_split_files_pick_train_and_test(tmp_path: Path):
    root = tmp_path / "hmdb51"
    splits = _hmdb_tree(root)
    assert find_hmdb51_split_dir(root) == splits
    drops: dict[str, DropList] = {}
    out = import_hmdb51(root, splits, tmp_path / "out", split=1, drops=drops)
    ids = {s: [(r["id"], r["label"]) for r in read_manifest(p, "video")] for s, p in out.items()}
    assert ids == {
        "train": [("brush_hair_v0", "brush_hair"), ("brush_hair_v1", "brush_hair"),
                  ("climb_stairs_v0", "climb_stairs"), ("climb_stairs_v1", "climb_stairs")],
        "test": [("brush_hair_v2", "brush_hair"), ("climb_stairs_v2", "climb_stairs")],
    }  # fmt: skip
    split_file = splits / "climb_stairs_test_split1.txt"
    train = dict(drops["train"])
    assert train["climb_stairs_gone"] == (
        f"missing file: {root / 'climb_stairs' / 'climb_stairs_gone.avi'} (listed in {split_file}:5)"
    )
    assert reason_category(train[f"{split_file}:7"]) == "bad record"
    assert [(i, reason_category(r)) for i, r in drops["test"]] == [("climb_stairs_gone2", "missing file")]
    other = import_hmdb51(root, splits, tmp_path / "out2", split=2)
    assert [r["id"] for r in read_manifest(other["test"], "video")] == ["brush_hair_v0", "climb_stairs_v0"]
    with pytest.raises(VideoImportError, match="split 3"):
        import_hmdb51(root, splits, tmp_path / "out3", split=3)


def test_hmdb51_corpus_is_detected_and_gets_a_dev_split(tmp_path: Path):
    root = tmp_path / "hmdb51"
    _hmdb_tree(root / "videos")  # class folders one level down, split files beside them
    (root / "videos" / "testTrainMulti_7030_splits").rename(root / "testTrainMulti_7030_splits")
    assert detect_video_format(root) == "hmdb51"
    out = import_video_corpus(root, tmp_path / "out", dev_fraction=0.5)
    counts = {s: len(read_manifest(p, "video")) for s, p in out.items()}
    assert counts == {"train": 2, "dev": 2, "test": 2}
    train_report = read_dropped_report(tmp_path / "out" / "train.dropped.tsv")
    assert sorted(reason_category(r) for _, r in train_report) == ["bad record", "missing file"]
    assert "climb_stairs_test_split1.txt:5" in dict(train_report)["climb_stairs_gone"]
    assert [i for i, _ in read_dropped_report(tmp_path / "out" / "test.dropped.tsv")] == ["climb_stairs_gone2"]


# ----------------------------------------------------------------------------- nothing usable


def test_a_corpus_of_only_bad_clips_stops_at_stage_1_in_one_line(tmp_path: Path, capsys):
    root = tmp_path / "broken"
    root.mkdir()
    for split in ("train", "test"):
        (root / f"{split}.mp4").write_bytes(b"\x00" * 64)
        (root / f"{split}.csv").write_text(f"path,label\n{split}.mp4,wave\nmissing-{split}.mp4,clap\n")
    exp = tmp_path / "exp"
    with pytest.raises(SystemExit) as stop:
        _run(root, exp)
    assert stop.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    report = exp / "manifests" / "train.dropped.tsv"
    assert len(errors) == 1 and f"train: nothing left to use: 2 item(s) dropped, reasons in {report}" in errors[0]
    assert sorted(reason_category(r) for _, r in read_dropped_report(report)) == ["missing file", "unreadable video"]
    assert not (exp / "backbone").exists()  # stage 2 never ran
    with pytest.raises(EmptySplitError, match="^train: nothing left"):  # --verbose keeps the error
        recipe_main(["--config", str(TINY), "--exp-dir", str(exp), "--verbose", f"data.corpus={root}", *FAST])


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_recipe_runs_end_to_end_on_each_layout(layout: str, tmp_path: Path, capsys):
    root, expected, bad_category = LAYOUTS[layout](tmp_path / layout)
    assert detect_video_format(root) == layout
    exp = tmp_path / "exp"
    results = _run(root, exp)
    counts = {s: len(read_manifest(exp / "manifests" / f"{s}.jsonl", "video")) for s in expected}
    assert counts == expected
    assert results["manifests"]["train"] == {"kept": expected["train"], "dropped": 0}
    dropped = read_dropped_report(exp / "manifests" / "train.dropped.tsv")
    assert [reason_category(r) for _, r in dropped] == [bad_category]
    assert read_dropped_report(exp / "manifests" / "test.dropped.tsv") == []
    assert results["labels"] == sorted(CLASSES)
    assert results["backbone"]["objective"] == "label"
    assert results["train"]["steps"] > 0 and results["train_ablation"]["steps"] > 0
    assert (exp / "model" / "log" / "dev.csv").read_text().count("\n") > 1  # one line per epoch
    assert results["metrics"]["test"]["num_clips"] == expected["test"]
    clip = read_manifest(exp / "manifests" / "test.jsonl", "video")[0]["video_filepath"]
    capsys.readouterr()
    assert cli_main(["label", "--model", str(exp / "bundle"), "--format", "json", clip]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert Path(row["path"]).name == Path(clip).name and row["labels"][0]["label"] in CLASSES


# ----------------------------------------------------------------------------- backbone fit

PATTERNS = ("bars_down", "bars_right", "circling_disk")


def _pattern_frames(kind: str, seed: int, n: int = 10, size: int = 32) -> list[np.ndarray]:
    """Grey frames of one moving pattern, with per-clip contrast, bar width, phase and noise
    (grey, so the backbone fit's colour-channel shuffling cannot hide the class)."""
    rng = np.random.default_rng(seed)
    low, high = int(rng.integers(0, 60)), int(rng.integers(170, 256))
    period, phase = int(rng.integers(6, 11)), int(rng.integers(0, 10))
    yy, xx = np.mgrid[:size, :size]
    frames = []
    for t in range(n):
        if kind == "bars_down":
            on = ((yy + phase + t) // (period // 2)) % 2 == 0
        elif kind == "bars_right":
            on = ((xx + phase + t) // (period // 2)) % 2 == 0
        else:
            cy, cx = size / 2 + 6 * np.sin(t / 2 + phase), size / 2 + 6 * np.cos(t / 2 + phase)
            on = (yy - cy) ** 2 + (xx - cx) ** 2 < (0.8 * period) ** 2
        grey = np.where(on, high, low) + rng.integers(-20, 21, on.shape)
        frames.append(np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2))
    return frames


def _pattern_corpus(root: Path) -> Path:
    """A CSV corpus of the three patterns: 4 train, 2 dev, 1 test clip per class."""
    for split, per_class, offset in (("train", 4, 0), ("dev", 2, 500), ("test", 1, 900)):
        rows = ["path,label"]
        for c, kind in enumerate(PATTERNS):
            for k in range(per_class):
                path = write_video(root / split / f"{kind}{k}.mp4", _pattern_frames(kind, 1000 * c + offset + k), 10.0)
                rows.append(f"{path.relative_to(root)},{kind}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.slow
def test_label_objective_backbone_fit_learns_on_imported_video(tmp_path: Path):
    """Without pose targets stage 2 fits the CNN to each frame's clip label; on an imported
    corpus whose classes differ frame by frame its dev accuracy rises above chance."""
    root = _pattern_corpus(tmp_path / "patterns")
    fit = ["backbone_fit.epochs=3", "backbone_fit.batch_size=8", "backbone_fit.frames_per_clip=4"]
    results = _run(root, tmp_path / "exp", *fit, stop_stage=2)
    backbone = results["backbone"]
    assert backbone["objective"] == "label"
    accuracy = [h["dev_frame_accuracy"] for h in backbone["fit_history"]]
    assert len(accuracy) == 3
    assert accuracy[-1] >= 0.6 > 1 / len(PATTERNS), accuracy
