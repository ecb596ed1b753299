"""Feature store: round trip, skipping, rebuilds, failures, locking, crash resumption."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data_prep.store import (
    FeatureStore,
    StoreError,
    build_store,
    compute_stats_exact,
    store_lock,
)

TESTS_DIR = Path(__file__).resolve().parent


# Module-level computations so that worker processes can unpickle them.
def rand_feats(payload: tuple[int, int, int]) -> np.ndarray:
    """(seed, T, D) -> deterministic (T, D) float32 values."""
    seed, length, dim = payload
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((length, dim)) * 3.0 + 1.0).astype(np.float32)


def flaky_feats(payload: tuple[int, int, int]) -> np.ndarray:
    seed, length, dim = payload
    if seed < 0:
        raise OSError(f"/data/utt{-seed}.wav: cannot decode")
    if length == 0:
        return np.zeros((3,), np.float32)  # wrong rank
    if dim == 99:
        return np.full((4, 5), np.nan, np.float32)
    return rand_feats(payload)


def slow_feats(payload: tuple[int, int, int]) -> np.ndarray:
    time.sleep(0.15)  # the build must still be running when the test kills it, even on a loaded machine
    return rand_feats(payload)


def with_extra(payload: tuple[int, int, int]) -> tuple[np.ndarray, dict]:
    return rand_feats(payload), {"seed": payload[0]}


def never_called(payload: object) -> np.ndarray:
    raise AssertionError("compute must not run for an up-to-date store")


@dataclasses.dataclass(frozen=True)
class CrashOn:
    """Simulates a kill: a BaseException (not caught as an item failure) for ``crash_id``."""

    crash_seed: int

    def __call__(self, payload: tuple[int, int, int]) -> np.ndarray:
        if payload[0] == self.crash_seed:
            raise SystemExit("simulated crash")
        return rand_feats(payload)


def make_items(n: int = 10, dim: int = 6) -> list[tuple[str, tuple[int, int, int]]]:
    return [(f"utt{i:03d}", (i, 3 + (7 * i) % 11, dim)) for i in range(n)]


def files(store_dir: Path) -> Path:
    """The folder of the store's current version."""
    return FeatureStore(store_dir).files_dir


def store_bytes(store_dir: Path) -> dict[str, bytes]:
    return {n: (files(store_dir) / n).read_bytes() for n in ("feats.f16", "index.json", "stats.json")}


def test_round_trip_memmap_and_stats(tmp_path: Path) -> None:
    items = make_items(10)
    summary = build_store(tmp_path / "s", items, rand_feats, config_hash="h1", num_workers=1,
                          chunk_size=3)
    assert (summary.num_items, summary.num_stored, summary.num_failed) == (10, 10, 0)
    assert not summary.skipped and summary.chunks_computed == 4
    store = FeatureStore(tmp_path / "s")
    assert len(store) == 10 and store.dim == 6 and store.config_hash == "h1"
    assert store.ids == [i for i, _ in items]
    expected = [rand_feats(p).astype(np.float16) for _, p in items]
    assert store.lengths.tolist() == [e.shape[0] for e in expected]
    assert isinstance(store.data, np.memmap) and store.data.mode == "r"
    for i, (id_, _) in enumerate(items):
        assert store[i].dtype == np.float16
        np.testing.assert_array_equal(store[i], expected[i])
        np.testing.assert_array_equal(store.get(id_), expected[i])
        assert store.index_of(id_) == i
    np.testing.assert_array_equal(store[-1], expected[-1])
    with pytest.raises(IndexError):
        store[10]
    with pytest.raises(KeyError, match="nope"):
        store.get("nope")
    # stats.json matches numpy on the stored float16 values
    allv = np.concatenate(expected).astype(np.float64)
    mean, std = store.stats()
    assert mean.dtype == np.float32 and mean.shape == (6,)
    np.testing.assert_allclose(mean, allv.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std, allv.std(0), rtol=1e-6)
    np.testing.assert_allclose(compute_stats_exact(store)[1], allv.std(0), rtol=1e-9)
    assert json.loads((files(tmp_path / "s") / "stats.json").read_text())["count"] == allv.shape[0]
    # layout: finished store has no parts, a marker and a complete index
    assert not (tmp_path / "s/parts").exists()
    assert json.loads((tmp_path / "s/.done").read_text())["config_hash"] == "h1"
    index = json.loads((files(tmp_path / "s") / "index.json").read_text())
    assert index["dtype"] == "float16" and index["entries"][1]["offset"] == expected[0].shape[0]
    assert (files(tmp_path / "s") / "failed.jsonl").read_text() == ""


def test_pool_build_equals_in_process_build(tmp_path: Path) -> None:
    items = make_items(12)
    build_store(tmp_path / "a", items, rand_feats, config_hash="h", num_workers=1, chunk_size=2)
    summary = build_store(tmp_path / "b", items, rand_feats, config_hash="h", num_workers=2,
                          chunk_size=2)
    assert summary.chunks_computed == 6
    assert store_bytes(tmp_path / "a") == store_bytes(tmp_path / "b")


def test_threaded_build_equals_in_process_build(tmp_path: Path) -> None:
    items = make_items(12)
    build_store(tmp_path / "a", items, rand_feats, config_hash="h", num_workers=1, chunk_size=2)
    summary = build_store(tmp_path / "b", items, rand_feats, config_hash="h", num_workers=1,
                          num_threads=2, chunk_size=2)
    assert summary.chunks_computed == 6
    assert store_bytes(tmp_path / "a") == store_bytes(tmp_path / "b")


def test_threaded_build_records_failures_and_keeps_the_others(tmp_path: Path) -> None:
    items = [("a", (1, 4, 5)), ("bad1", (-1, 4, 5)), ("b", (2, 6, 5)), ("nan", (4, 4, 99)),
             ("c", (5, 2, 5))]
    summary = build_store(tmp_path / "s", items, flaky_feats, config_hash="h", num_workers=1,
                          num_threads=2, chunk_size=1)
    assert (summary.num_stored, summary.num_failed) == (3, 2)
    store = FeatureStore(tmp_path / "s")
    assert store.ids == ["a", "b", "c"]
    assert [f["id"] for f in store.failed()] == ["bad1", "nan"]


def test_skip_when_marker_matches(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    items = make_items(4)
    build_store(tmp_path / "s", items, rand_feats, config_hash="h", num_workers=1)
    before = store_bytes(tmp_path / "s")
    with caplog.at_level(logging.INFO, logger="data_prep.store"):
        summary = build_store(tmp_path / "s", items, never_called, config_hash="h", num_workers=1)
    assert summary.skipped and summary.num_stored == 4
    assert "skipping, up to date" in caplog.text
    assert store_bytes(tmp_path / "s") == before


def test_rebuild_when_config_changes(tmp_path: Path) -> None:
    build_store(tmp_path / "s", make_items(4), rand_feats, config_hash="h1", num_workers=1)
    items2 = [(f"x{i}", (100 + i, 5, 3)) for i in range(3)]
    summary = build_store(tmp_path / "s", items2, rand_feats, config_hash="h2", num_workers=1)
    assert not summary.skipped
    store = FeatureStore(tmp_path / "s")
    assert store.config_hash == "h2" and store.ids == ["x0", "x1", "x2"] and store.dim == 3
    np.testing.assert_array_equal(store[2], rand_feats((102, 5, 3)).astype(np.float16))


def test_damaged_store_is_refused_and_rebuilt(tmp_path: Path) -> None:
    items = make_items(4)
    build_store(tmp_path / "s", items, rand_feats, config_hash="h", num_workers=1)
    feats = files(tmp_path / "s") / "feats.f16"
    good = feats.read_bytes()
    feats.write_bytes(good[:-10])
    with pytest.raises(StoreError, match="feats.f16 has .* bytes"):
        FeatureStore(tmp_path / "s")
    summary = build_store(tmp_path / "s", items, rand_feats, config_hash="h", num_workers=1)
    assert not summary.skipped and (files(tmp_path / "s") / "feats.f16").read_bytes() == good
    with pytest.raises(StoreError, match="no .done"):
        FeatureStore(tmp_path / "missing")


def test_failures_recorded_and_others_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = [("a", (1, 4, 5)), ("bad1", (-1, 4, 5)), ("b", (2, 6, 5)), ("rank", (3, 0, 5)),
             ("nan", (4, 4, 99)), ("c", (5, 2, 5))]
    with caplog.at_level(logging.WARNING, logger="data_prep.store"):
        summary = build_store(tmp_path / "s", items, flaky_feats, config_hash="h",
                              num_workers=1, chunk_size=2)
    assert (summary.num_stored, summary.num_failed) == (3, 3)
    store = FeatureStore(tmp_path / "s")
    assert store.ids == ["a", "b", "c"]
    np.testing.assert_array_equal(store.get("b"), rand_feats((2, 6, 5)).astype(np.float16))
    failed = store.failed()
    assert [f["id"] for f in failed] == ["bad1", "rank", "nan"]
    assert "utt1.wav: cannot decode" in failed[0]["reason"] and failed[0]["error"] == "OSError"
    assert "expected (T, D)" in failed[1]["reason"]
    assert "non-finite" in failed[2]["reason"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and "utt1.wav" in warnings[0].getMessage()


def test_all_failed_and_bad_items_raise(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="all 2 items failed"):
        build_store(tmp_path / "s", [("x", (-1, 1, 1)), ("y", (-2, 1, 1))], flaky_feats,
                    config_hash="h", num_workers=1)
    assert len((tmp_path / "s/failed.jsonl").read_text().splitlines()) == 2
    with pytest.raises(StoreError, match="duplicate item id 'a'"):
        build_store(tmp_path / "d", [("a", (1, 2, 2)), ("a", (2, 2, 2))], rand_feats,
                    config_hash="h", num_workers=1)


def test_extra_fields_and_pickling(tmp_path: Path) -> None:
    build_store(tmp_path / "s", make_items(3), with_extra, config_hash="h", num_workers=1)
    store = FeatureStore(tmp_path / "s")
    assert store.entry(2)["seed"] == 2 and store.entry(2)["length"] == store.lengths[2]
    _ = store[0]  # opens the memmap
    blob = pickle.dumps(store)
    assert len(blob) < 2000  # the memmap's data is not pickled
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone[1], store[1])


def test_lock_conflict_fails_at_once(tmp_path: Path) -> None:
    with store_lock(tmp_path / "s"):
        t0 = time.monotonic()
        with pytest.raises(StoreError, match=rf"being written by another process \(pid {os.getpid()} on "):
            build_store(tmp_path / "s", make_items(2), rand_feats, config_hash="h", num_workers=1)
        assert time.monotonic() - t0 < 5
    # released afterwards
    assert build_store(tmp_path / "s", make_items(2), rand_feats, config_hash="h",
                       num_workers=1).num_stored == 2


def test_resume_after_crash_is_byte_identical(tmp_path: Path) -> None:
    items = make_items(10)
    build_store(tmp_path / "clean", items, rand_feats, config_hash="h", num_workers=1,
                chunk_size=3)
    with pytest.raises(SystemExit):  # third chunk holds items 6..8
        build_store(tmp_path / "s", items, CrashOn(7), config_hash="h", num_workers=1,
                    chunk_size=3)
    parts = sorted(p.name for p in (tmp_path / "s/parts").iterdir())
    assert parts == ["chunk-00000.npz", "chunk-00001.npz"]
    with pytest.raises(StoreError, match="incomplete"):
        FeatureStore(tmp_path / "s")
    summary = build_store(tmp_path / "s", items, rand_feats, config_hash="h", num_workers=1,
                          chunk_size=3)
    assert (summary.chunks_reused, summary.chunks_computed) == (2, 2)
    assert store_bytes(tmp_path / "s") == store_bytes(tmp_path / "clean")


def test_resume_ignores_chunks_of_another_config(tmp_path: Path) -> None:
    items = make_items(6)
    with pytest.raises(SystemExit):
        build_store(tmp_path / "s", items, CrashOn(4), config_hash="old", num_workers=1,
                    chunk_size=2)
    summary = build_store(tmp_path / "s", items, rand_feats, config_hash="new", num_workers=1,
                          chunk_size=2)
    assert summary.chunks_reused == 0 and FeatureStore(tmp_path / "s").config_hash == "new"


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_sigkill_mid_build_then_resume(tmp_path: Path) -> None:
    items = make_items(24)
    store_dir = tmp_path / "s"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from test_store import make_items, slow_feats\n"
        "from data_prep.store import build_store\n"
        "build_store(sys.argv[2], make_items(24), slow_feats, config_hash='h', num_workers=2,"
        " chunk_size=2)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(TESTS_DIR), str(store_dir)])
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = _children(proc.pid) or workers
            done_chunks = list((store_dir / "parts").glob("chunk-*.npz"))
            if len(done_chunks) >= 3 or proc.poll() is not None:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "build finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (store_dir / ".done").exists()
    # worker processes die with their parent instead of lingering
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    lingering = [w for w in workers if _alive(w)]
    for w in lingering:  # do not leave them behind if the check fails
        os.kill(w, signal.SIGKILL)
    assert workers and not lingering

    summary = build_store(store_dir, items, rand_feats, config_hash="h", num_workers=1,
                          chunk_size=2)
    assert summary.chunks_reused >= 3
    build_store(tmp_path / "clean", items, rand_feats, config_hash="h", num_workers=1,
                chunk_size=2)
    assert store_bytes(store_dir) == store_bytes(tmp_path / "clean")


def _enospc_fsync(match: str):
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if match in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    return fsync


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
@pytest.mark.parametrize("failing_file", ["feats.f16", "chunk-", "index.json"])
def test_disk_full_leaves_finished_store_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_file: str
) -> None:
    store_dir = tmp_path / "s"
    build_store(store_dir, make_items(5), rand_feats, config_hash="old", num_workers=1)
    before = store_bytes(store_dir)
    monkeypatch.setattr(os, "fsync", _enospc_fsync(failing_file))
    with pytest.raises(StoreError, match="No space left on device"):
        build_store(store_dir, make_items(7), rand_feats, config_hash="new", num_workers=1,
                    chunk_size=2)
    store = FeatureStore(store_dir)
    assert store.config_hash == "old" and len(store) == 5
    assert store_bytes(store_dir) == before
    assert not list(store_dir.glob(".*.tmp")) and not (store_dir / ".staging").exists()
    monkeypatch.undo()
    summary = build_store(store_dir, make_items(7), rand_feats, config_hash="new",
                          num_workers=1, chunk_size=2)
    assert summary.num_stored == 7 and FeatureStore(store_dir).config_hash == "new"


KILL_IN_COMMIT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import data_prep.store as store
from test_store import make_items, rand_feats

point = sys.argv[2]
write_marker = store.write_marker

def killing_marker(*args, **kwargs):
    if point == "before":  # the new version is complete on disk, the marker still names the old
        os.kill(os.getpid(), signal.SIGKILL)
    write_marker(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # committed; the old version is not removed yet

store.write_marker = killing_marker
store.build_store(sys.argv[1], make_items(6, dim=5), rand_feats, config_hash="new", num_workers=1)
"""


@pytest.mark.parametrize("point,survivor", [("before", "old"), ("after", "new")])
def test_a_kill_inside_the_commit_leaves_a_complete_store(tmp_path: Path, point: str, survivor: str) -> None:
    """SIGKILL just before or just after the marker switch: the store opens, complete, as the old
    or the new version; a rerun finishes and leaves one version."""
    store_dir = tmp_path / "s"
    build_store(store_dir, make_items(4, dim=5), rand_feats, config_hash="old", num_workers=1)
    old = {k: v.copy() for k, v in _all(store_dir).items()}
    script = tmp_path / "kill.py"
    script.write_text(KILL_IN_COMMIT.format(tests=str(Path(__file__).parent)))
    proc = subprocess.run([sys.executable, str(script), str(store_dir), point], capture_output=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    store = FeatureStore(store_dir)
    assert store.config_hash == survivor
    want = old if survivor == "old" else {i: rand_feats(p) for i, p in make_items(6, dim=5)}
    got = _all(store_dir)
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(got[k].astype(np.float32), want[k], atol=0.02, rtol=0.01)
    build_store(store_dir, make_items(6, dim=5), rand_feats, config_hash="new", num_workers=1)
    assert FeatureStore(store_dir).config_hash == "new"
    assert len([p for p in store_dir.iterdir() if p.name.startswith("data-")]) == 1


def _all(store_dir: Path) -> dict[str, np.ndarray]:
    store = FeatureStore(store_dir)
    return {i: np.asarray(store.get(i)) for i in store.ids}
