"""seqrec deletes only what it created itself (issue #33, data loss).

Temporaries of a killed run are cleared on the next one, but a user's files and folders that
merely look alike (a pid-like number, an ``@host`` part, a dot in front) are never touched:
not in ``--output-dir``, not beside a bundle, not beside checkpoints.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.io_utils import (
    TEMP_DIR_MARKER,
    _host_tag,
    make_temp_dir,
    remove_stale_temps,
    temp_prefix,
)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def _plant_user_lookalikes(folder: Path, dead: int) -> dict[Path, bytes | None]:
    """Files and folders a user might own whose names resemble temporaries; path -> content
    (None for a folder)."""
    host = _host_tag()
    planted: dict[Path, bytes | None] = {
        folder / f".notes.{dead}@{host}.bak": b"my notes",  # the issue's own example
        folder / f".x.txt.{dead}@{host}.abcdefgh.tmp": b"old-style name",
        folder / f".y.txt.seqrec-tmp-{dead}@{host}.abcdefgh.bak": b"token, wrong suffix",
        folder / f".y.txt.seqrec-tmp-{dead}@{host}.abc.tmp": b"token, short random part",
    }
    user_dir = folder / f".p.{dead}@{host}.d"  # the folder
    (user_dir / "sub").mkdir(parents=True)
    (user_dir / "sub" / "keep.txt").write_bytes(b"deep")
    planted[user_dir / "sub" / "keep.txt"] = b"deep"
    # Our exact directory name, but without the marker: not made by make_temp_dir.
    no_marker = folder / f".b.seqrec-tmp-{dead}@{host}.abcdefgh.tmpdir"
    no_marker.mkdir()
    (no_marker / "data.bin").write_bytes(b"user data")
    planted[no_marker / "data.bin"] = b"user data"
    # Our exact name and marker, but holding a folder: a flat temporary never does.
    nested = folder / f".c.seqrec-tmp-{dead}@{host}.abcdefgh.tmpdir"
    (nested / "inner").mkdir(parents=True)
    (nested / TEMP_DIR_MARKER).touch()
    planted[nested / TEMP_DIR_MARKER] = b""
    # A symlink with a temporary's name, pointing at a user's file.
    target = folder / "precious.txt"
    target.write_bytes(b"precious")
    planted[target] = b"precious"
    link = folder / f".d.seqrec-tmp-{dead}@{host}.abcdefgh.tmp"
    link.symlink_to(target)
    for path, content in planted.items():
        if content is not None and not path.exists():
            path.write_bytes(content)
    planted[link] = None
    return planted


def _plant_own_stale(folder: Path, dead: int) -> list[Path]:
    """What a killed seqrec left: one temporary file and one temporary directory."""
    me = str(os.getpid())
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(folder / "a.txt"), suffix=".tmp", dir=folder)
    os.close(fd)
    stale_file = Path(tmp).with_name(Path(tmp).name.replace(me, str(dead), 1))
    os.replace(tmp, stale_file)
    tmp_dir = make_temp_dir(folder / "bundle")
    (tmp_dir / "model.safetensors").write_bytes(b"partial")
    stale_dir = tmp_dir.with_name(tmp_dir.name.replace(me, str(dead), 1))
    os.replace(tmp_dir, stale_dir)
    return [stale_file, stale_dir]


def _assert_intact(planted: dict[Path, bytes | None]) -> None:
    for path, content in planted.items():
        assert path.exists() or path.is_symlink(), f"{path.name} was deleted"
        if content is not None:
            assert path.read_bytes() == content, f"{path.name} was changed"


def test_cleanup_removes_only_its_own_temporaries(tmp_path: Path) -> None:
    dead = _dead_pid()
    planted = _plant_user_lookalikes(tmp_path, dead)
    own = _plant_own_stale(tmp_path, dead)
    removed = remove_stale_temps(tmp_path / "x", whole_dir=True)
    assert sorted(removed) == sorted(own)
    assert not any(p.exists() for p in own)
    _assert_intact(planted)


@pytest.fixture(scope="module")
def tiny_speech_bundle(tmp_path_factory) -> Path:
    from bundles import tiny_speech_bundle

    return tiny_speech_bundle(tmp_path_factory.mktemp("bundle") / "bundle")


def test_transcribe_output_dir_keeps_user_files(tmp_path: Path, tiny_speech_bundle: Path) -> None:
    """The issue's probe: look-alike user files in --output-dir survive a transcribe run, and
    the temporaries of a killed earlier run are gone."""
    from pipeline.cli import main

    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    planted = _plant_user_lookalikes(out, dead)
    own = _plant_own_stale(out, dead)
    wav = tmp_path / "a.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32), 16000)
    code = main(["transcribe", "--model", str(tiny_speech_bundle), "--lm", "none", "--decode-silence",
                 "--format", "json", "--output-dir", str(out), str(wav)])  # fmt: skip
    assert code == 0
    assert (out / "a.json").is_file()
    assert not any(p.exists() for p in own)
    _assert_intact(planted)


def test_save_bundle_never_replaces_a_users_folder(tmp_path: Path, tiny_speech_bundle: Path) -> None:
    from pipeline.bundle import BundleError, load_bundle, save_bundle

    cfg = {"kind": "speech_ctc", "weights": "model.safetensors"}
    weights = {"model.safetensors": {"w": torch.zeros(2)}}
    mine = tmp_path / "results"
    (mine / "plots").mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="not a seqrec bundle"):
        save_bundle(mine, cfg, weights)
    assert (mine / "notes.txt").read_text() == "mine" and (mine / "plots").is_dir()
    # A folder of the user's where the previous bundle would be parked is refused too.
    out = tmp_path / "bundle"
    save_bundle(out, cfg, weights)
    parked = tmp_path / ".bundle.old"
    parked.mkdir()
    (parked / "diary.txt").write_text("mine")
    with pytest.raises(BundleError, match="not a seqrec bundle"):
        save_bundle(out, {**cfg, "note": "new"}, weights)
    assert (parked / "diary.txt").read_text() == "mine" and "note" not in load_bundle(out).config
    parked.joinpath("diary.txt").unlink()
    parked.rmdir()
    # Saving over a bundle works, and leaves nothing beside it.
    save_bundle(out, {**cfg, "note": "new"}, weights)
    assert load_bundle(out).config["note"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "results"]


def test_checkpoint_save_keeps_user_files(tmp_path: Path) -> None:
    from pipeline.training.checkpoint import save_checkpoint

    dead = _dead_pid()
    planted = _plant_user_lookalikes(tmp_path, dead)
    own = _plant_own_stale(tmp_path, dead)
    save_checkpoint(tmp_path / "last.pt", {"step": 1})
    assert (tmp_path / "last.pt").is_file()
    assert not any(p.exists() for p in own)
    _assert_intact(planted)
