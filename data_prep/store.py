"""On-disk feature store: float16 arrays memory-mapped on read, one store per split.

Layout of one store directory::

    data-<n>/      the files of the current version:
      feats.f16      all arrays concatenated row-major, float16, shape (sum T, D)
      index.json     {"dim", "dtype", "config_hash", "num_rows", "entries": [{"id", "offset",
                     "length", ...extra}]}; offset and length count rows
      stats.json     per-dim count/mean/std of the stored values (for global CMVN)
      failed.jsonl   one {"id", "path", "reason"} line per item that could not be computed
    .done          written last; records the config hash and names the current ``data-<n>``
    .lock          flock'ed by the process that writes the store

:func:`build_store` computes items in fixed chunks (in manifest order), each saved atomically
under ``parts/``; a rerun after a crash reuses the finished chunks. When all chunks exist they
are merged into a new ``data-<n>`` folder, and the atomic rename of ``.done`` that names it is
the commit: a build killed at any point leaves the previous store complete and readable, or the
new one, never a mix. Older versions are removed after the commit. The result is byte-identical
to that of an uninterrupted run. (Stores written before versions existed keep their files at
the top level; ``.done`` then names no folder, and they are read as they are.)
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import multiprocessing
import os
import re
import shutil
import signal
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.errors import SeqrecError
from pipeline.io_utils import (
    atomic_open,
    atomic_write_text,
    exclusive_lock,
    marker_matches,
    write_marker,
)

log = logging.getLogger(__name__)

FEATS_NAME = "feats.f16"
INDEX_NAME = "index.json"
STATS_NAME = "stats.json"
FAILED_NAME = "failed.jsonl"
DONE_NAME = ".done"
LOCK_NAME = ".lock"
PARTS_NAME = "parts"
STAGING_NAME = ".staging"  # the merge folder of builds before versions existed (removed on sight)
_VERSION = re.compile(r"data-(\d+)")
_CHUNK_FORMAT = 2  # 2: chunks carry their rows' moments
_STORE_FILES = (FEATS_NAME, INDEX_NAME, STATS_NAME, FAILED_NAME)

ComputeFn = Callable[[Any], "np.ndarray | tuple[np.ndarray, dict[str, Any]]"]


class StoreError(SeqrecError, RuntimeError):
    """A feature store is missing, incomplete, corrupt, locked or cannot be written."""


@dataclasses.dataclass(frozen=True)
class StoreSummary:
    """What :func:`build_store` did.

    Attributes:
        store_dir: The store directory.
        num_items: Items requested.
        num_stored: Items in the finished store.
        num_failed: Items recorded in ``failed.jsonl``.
        num_rows: Total stored rows (frames).
        skipped: True when an up-to-date store was found and nothing was done.
        chunks_reused: Chunk files from an earlier, interrupted run that were reused.
        chunks_computed: Chunks computed by this run.
        wall_s: Wall-clock seconds spent.
    """

    store_dir: Path
    num_items: int
    num_stored: int
    num_failed: int
    num_rows: int
    skipped: bool
    chunks_reused: int = 0
    chunks_computed: int = 0
    wall_s: float = 0.0


# --------------------------------------------------------------------------------------------
# Reading


class FeatureStore:
    """Read access to a finished store; arrays are float16 views of a read-only memmap.

    Attributes:
        store_dir: The store directory.
        ids: Entry ids in stored order.
        lengths: (N,) int64 rows per entry.
        offsets: (N,) int64 first row of each entry.
        dim: Feature dimension D.
        config_hash: Hash of the config that produced the store.

    Raises:
        StoreError: naming the directory when the store is unfinished (no ``.done``) or its
            files are missing, inconsistent or of the wrong size.
    """

    def __init__(self, store_dir: str | Path) -> None:
        self.store_dir = Path(store_dir)
        done = self.store_dir / DONE_NAME
        if not done.is_file():
            raise StoreError(f"{self.store_dir}: feature store is incomplete (no {DONE_NAME} marker)")
        try:
            marker = json.loads(done.read_text())
            done_hash = marker.get("config_hash")
            self.files_dir = _files_dir(self.store_dir, marker)
            index = json.loads((self.files_dir / INDEX_NAME).read_text())
        except (OSError, ValueError, AttributeError) as exc:
            raise StoreError(f"{self.store_dir}: cannot read store index: {exc}") from exc
        try:
            self.dim = int(index["dim"])
            self.config_hash = str(index["config_hash"])
            entries = index["entries"]
            if index.get("dtype", "float16") != "float16":
                raise ValueError(f"unsupported dtype {index['dtype']!r}")
            self.ids = [str(e["id"]) for e in entries]
            self.offsets = np.asarray([int(e["offset"]) for e in entries], dtype=np.int64)
            self.lengths = np.asarray([int(e["length"]) for e in entries], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{self.store_dir}: malformed {INDEX_NAME}: {exc}") from exc
        if done_hash != self.config_hash:
            raise StoreError(
                f"{self.store_dir}: {DONE_NAME} (hash {done_hash}) does not match "
                f"{INDEX_NAME} (hash {self.config_hash})"
            )
        self._entries = entries
        self.num_rows = int(self.lengths.sum()) if len(self.lengths) else 0
        ends = self.offsets + self.lengths
        if self.dim <= 0 or (len(ends) and (self.offsets.min() < 0 or ends.max() > self.num_rows)):
            raise StoreError(f"{self.store_dir}: {INDEX_NAME} has offsets outside the data")
        feats = self.files_dir / FEATS_NAME
        try:
            size = feats.stat().st_size
        except OSError as exc:
            raise StoreError(f"{self.store_dir}: missing {FEATS_NAME}: {exc}") from exc
        expected = self.num_rows * self.dim * 2
        if size != expected:
            raise StoreError(
                f"{self.store_dir}: {FEATS_NAME} has {size} bytes, index expects {expected} "
                f"({self.num_rows} rows x {self.dim} x float16)"
            )
        self._pos = {id_: i for i, id_ in enumerate(self.ids)}
        if len(self._pos) != len(self.ids):
            raise StoreError(f"{self.store_dir}: {INDEX_NAME} has duplicate ids")
        self._data: np.ndarray | None = None

    @property
    def data(self) -> np.ndarray:
        """(sum T, D) float16 read-only memmap of all rows (opened lazily)."""
        if self._data is None:
            if self.num_rows == 0:
                self._data = np.zeros((0, self.dim), dtype=np.float16)
            else:
                self._data = np.memmap(
                    self.files_dir / FEATS_NAME, dtype=np.float16, mode="r",
                    shape=(self.num_rows, self.dim),
                )
        return self._data

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> np.ndarray:
        """Returns entry ``i`` as a (T, D) float16 view (no copy)."""
        n = len(self.ids)
        if not -n <= i < n:
            raise IndexError(f"{self.store_dir}: index {i} out of range for {n} entries")
        i %= n
        start = int(self.offsets[i])
        return self.data[start : start + int(self.lengths[i])]

    def index_of(self, id_: str) -> int:
        """Position of entry ``id_``; raises KeyError naming the store if absent."""
        try:
            return self._pos[id_]
        except KeyError:
            raise KeyError(f"{self.store_dir}: no entry with id {id_!r}") from None

    def get(self, id_: str) -> np.ndarray:
        """Returns entry ``id_`` as a (T, D) float16 view."""
        return self[self.index_of(id_)]

    def entry(self, i: int) -> dict[str, Any]:
        """The index record of entry ``i`` (id, offset, length and any extra fields)."""
        return dict(self._entries[i])

    def stats(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-dim (mean (D,), std (D,)) float32 of all stored rows, or None without stats."""
        path = self.files_dir / STATS_NAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            mean = np.asarray(data["mean"], dtype=np.float32)
            std = np.asarray(data["std"], dtype=np.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise StoreError(f"{path}: malformed stats: {exc}") from exc
        if mean.shape != (self.dim,) or std.shape != (self.dim,):
            raise StoreError(f"{path}: stats have shape {mean.shape}, expected ({self.dim},)")
        return mean, std

    def failed(self) -> list[dict[str, Any]]:
        """Records of items that failed when the store was built."""
        path = self.files_dir / FAILED_NAME
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def __getstate__(self) -> dict[str, Any]:
        # Pickling a memmap copies its data; DataLoader workers reopen the file instead.
        state = self.__dict__.copy()
        state["_data"] = None
        return state

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.store_dir)!r}, entries={len(self)}, dim={self.dim})"


# --------------------------------------------------------------------------------------------
# Locking


def store_lock(store_dir: str | Path) -> contextlib.AbstractContextManager[None]:
    """Holds an exclusive, non-blocking flock on ``store_dir/.lock``.

    Raises:
        StoreError: at once when another process holds the lock (its pid and host are named).
    """
    store_dir = Path(store_dir)
    return exclusive_lock(
        store_dir / LOCK_NAME, lambda holder: StoreError(f"{store_dir} is being written by another process ({holder})")
    )


# --------------------------------------------------------------------------------------------
# Chunk computation (runs in worker processes)

_IN_WORKER = False


def _worker_init(parent_pid: int) -> None:
    """Pool initializer: one intra-op thread per worker, and die with the parent."""
    global _IN_WORKER
    _IN_WORKER = True
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if sys.platform.startswith("linux"):
        # A SIGKILLed parent must not leave idle workers behind.
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


def _limit_threads() -> None:
    if _IN_WORKER and "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)


def _payload_path(payload: Any) -> str | None:
    """Best guess at the file an item's payload refers to, for error records."""
    if isinstance(payload, (str, os.PathLike)):
        return os.fspath(payload)
    if isinstance(payload, dict):
        for key in ("audio_filepath", "video_filepath", "path"):
            if key in payload:
                return str(payload[key])
    path = getattr(payload, "path", None)
    return None if path is None else str(path)


def _compute_item(compute: ComputeFn, payload: Any, dim: int | None) -> tuple[np.ndarray, dict]:
    result = compute(payload)
    extra: dict[str, Any] = {}
    if isinstance(result, tuple):
        result, extra = result
        extra = dict(extra)
        reserved = {"id", "offset", "length"} & set(extra)
        if reserved:
            raise ValueError(f"compute returned reserved extra field(s) {sorted(reserved)}")
        try:
            json.dumps(extra)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"extra fields are not JSON values: {exc}") from None
    arr = np.asarray(result)
    if arr.ndim != 2:
        raise ValueError(f"compute returned shape {arr.shape}, expected (T, D)")
    if arr.shape[0] == 0:
        raise ValueError("empty feature array (0 frames)")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"feature dim {arr.shape[1]} differs from store dim {dim}")
    arr16 = np.ascontiguousarray(arr, dtype=np.float16)
    if not np.isfinite(arr16).all():
        raise ValueError("non-finite feature values (NaN/inf, or beyond float16 range)")
    return arr16, extra


def _run_chunk(
    chunk_path: str, chunk_idx: int, items: list[tuple[str, Any]], compute: ComputeFn,
    config_hash: str, dim: int | None,
) -> dict[str, Any]:
    """Computes one chunk and saves it atomically; returns its failures and counts."""
    _limit_threads()
    arrays: list[np.ndarray] = []
    entries: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    chunk_dim = dim
    for id_, payload in items:
        try:
            arr, extra = _compute_item(compute, payload, chunk_dim)
        except Exception as exc:  # one bad item never stops the others
            reason = str(exc) or type(exc).__name__
            failed.append({"id": id_, "path": _payload_path(payload), "reason": reason,
                           "error": type(exc).__name__})
            continue
        chunk_dim = arr.shape[1]
        arrays.append(arr)
        entries.append({"id": id_, "length": int(arr.shape[0]), **extra})
    feats = (np.concatenate(arrays) if arrays
             else np.zeros((0, chunk_dim or 0), dtype=np.float16))
    meta = {
        "format": _CHUNK_FORMAT, "config_hash": config_hash, "chunk": chunk_idx,
        "ids": [id_ for id_, _ in items], "dim": chunk_dim, "entries": entries, "failed": failed,
    }
    if arrays:  # float64 moments for stats.json; JSON floats round-trip exactly
        count, mean, m2 = _moments(feats)
        meta["moments"] = {"count": count, "mean": mean.tolist(), "m2": m2.tolist()}
    with atomic_open(chunk_path, "wb") as fh:
        np.savez(fh, feats=feats, meta=np.array(json.dumps(meta)))
    return {"chunk": chunk_idx, "failed": failed, "rows": int(feats.shape[0])}


def _read_chunk_meta(path: Path) -> dict[str, Any] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None


def _chunk_usable(path: Path, config_hash: str, ids: list[str]) -> bool:
    meta = _read_chunk_meta(path) if path.is_file() else None
    return (
        meta is not None
        and meta.get("format") == _CHUNK_FORMAT
        and meta.get("config_hash") == config_hash
        and meta.get("ids") == ids
    )


# --------------------------------------------------------------------------------------------
# Building


def build_store(
    store_dir: str | Path,
    items: Sequence[tuple[str, Any]],
    compute: ComputeFn,
    *,
    config_hash: str,
    num_workers: int = 2,
    num_threads: int = 1,
    chunk_size: int = 64,
    desc: str = "features",
    dim: int | None = None,
    compute_stats: bool = True,
) -> StoreSummary:
    """Computes ``compute(payload)`` for every item and writes a feature store.

    Args:
        store_dir: Destination directory (one per split).
        items: ``(id, payload)`` pairs in the order to store; ids must be unique.
        compute: Picklable callable (module-level function or frozen dataclass) mapping a
            payload to a (T, D) array, or to ``(array, extra)`` where ``extra`` is a dict of
            JSON values stored in the entry's index record. An exception records the item
            in ``failed.jsonl`` and the others go on.
        config_hash: Must cover everything that decides the items and their values; a
            finished store with the same hash is skipped, one with another hash is rebuilt
            (the old one stays readable until the new one replaces it).
        num_workers: Worker processes; ``<= 1`` computes in this process. Workers are
            started with ``spawn`` (safe with threads and torch), so a calling script needs
            the usual ``if __name__ == "__main__":`` guard.
        num_threads: With ``num_workers <= 1``, chunks computed by this many threads of this
            process (for a ``compute`` that spends its time in code that releases the GIL,
            such as libsndfile and torch ops; no process start-up cost).
        chunk_size: Items per chunk (the unit of resumption).
        desc: Progress-bar label.
        dim: Expected D; None takes it from the first stored item.
        compute_stats: Also write per-dim mean/std to ``stats.json``.

    Returns:
        A :class:`StoreSummary`.

    Raises:
        StoreError: another process is writing the store, a write failed (disk full), no
            item could be computed, or the items are invalid. A previously finished store is
            left intact in all these cases.
    """
    t0 = time.perf_counter()
    store_dir = Path(store_dir)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    items = [(str(id_), payload) for id_, payload in items]
    ids = [id_ for id_, _ in items]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        for id_ in ids:
            if id_ in seen:
                raise StoreError(f"{store_dir}: duplicate item id {id_!r}")
            seen.add(id_)

    with store_lock(store_dir):
        done = store_dir / DONE_NAME
        if marker_matches(done, config_hash):
            try:
                store = FeatureStore(store_dir)
            except StoreError as exc:
                log.warning("%s: finished store is damaged (%s); rebuilding", store_dir, exc)
            else:
                _remove_unused_versions(store_dir)  # a build killed after its commit left the old one
                log.info("%s: skipping, up to date (config %s)", store_dir, config_hash)
                return StoreSummary(
                    store_dir, len(items), len(store), len(store.failed()), store.num_rows,
                    skipped=True, wall_s=time.perf_counter() - t0,
                )
        elif done.exists():
            log.info("%s: config changed (now %s); rebuilding", store_dir, config_hash)
        if not items:
            raise StoreError(f"{store_dir}: nothing to store (0 items)")

        chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
        parts = store_dir / PARTS_NAME
        paths = [parts / f"chunk-{k:05d}.npz" for k in range(len(chunks))]
        try:
            parts.mkdir(parents=True, exist_ok=True)
            _remove_stray_parts(parts, {p.name for p in paths})
            todo = [
                k for k, chunk in enumerate(chunks)
                if not _chunk_usable(paths[k], config_hash, [i for i, _ in chunk])
            ]
            reused = len(chunks) - len(todo)
            if reused:
                log.info("%s: resuming, %d of %d chunks already done", store_dir, reused,
                         len(chunks))
            _compute_chunks(chunks, paths, todo, compute, config_hash, dim, num_workers, num_threads, desc)
            result = _merge_and_commit(store_dir, paths, ids, config_hash, dim, compute_stats)
        except OSError as exc:
            raise StoreError(f"{store_dir}: cannot write feature store: {exc}") from exc

    num_stored, num_failed, num_rows = result
    wall = time.perf_counter() - t0
    log.info("%s: stored %d items (%d rows), %d failed, in %.1f s", store_dir, num_stored,
             num_rows, num_failed, wall)
    return StoreSummary(store_dir, len(items), num_stored, num_failed, num_rows, skipped=False,
                        chunks_reused=reused, chunks_computed=len(todo), wall_s=wall)


def _remove_stray_parts(parts: Path, keep: set[str]) -> None:
    for path in parts.iterdir():
        if path.name not in keep:
            with contextlib.suppress(OSError):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def _log_failures(result: dict[str, Any]) -> None:
    for rec in result["failed"]:
        log.warning("failed %s (%s): %s", rec["path"] or rec["id"], rec["id"], rec["reason"])


def _compute_chunks(
    chunks: list[list[tuple[str, Any]]], paths: list[Path], todo: list[int], compute: ComputeFn,
    config_hash: str, dim: int | None, num_workers: int, num_threads: int, desc: str,
) -> None:
    bar = tqdm(total=len(chunks), initial=len(chunks) - len(todo), desc=desc, unit="chunk",
               disable=None, leave=False)
    def run(k: int) -> dict[str, Any]:
        return _run_chunk(str(paths[k]), k, chunks[k], compute, config_hash, dim)

    try:
        if len(todo) <= 1 or (num_workers <= 1 and num_threads <= 1):
            # Serially, a failure stops before the next chunk starts; a thread pool would
            # already have started the following ones (test_resume_after_crash_is_byte_identical).
            for k in todo:
                _log_failures(run(k))
                bar.update(1)
            return
        if num_workers <= 1:
            threads = ThreadPoolExecutor(max_workers=min(num_threads, len(todo)))
            try:
                for result in threads.map(run, todo):
                    _log_failures(result)
                    bar.update(1)
            finally:
                threads.shutdown(wait=True, cancel_futures=True)  # on error: no new chunks
            return
        ctx = multiprocessing.get_context("spawn")  # no inherited locks, threads or fds
        pool = ProcessPoolExecutor(
            max_workers=min(num_workers, len(todo)), mp_context=ctx,
            initializer=_worker_init, initargs=(os.getpid(),),
        )
        try:
            pending = {
                pool.submit(_run_chunk, str(paths[k]), k, chunks[k], compute, config_hash, dim)
                for k in todo
            }
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    try:
                        _log_failures(fut.result())
                    except BrokenProcessPool as exc:
                        raise StoreError(
                            f"a worker process died ({exc}); likely causes: out of memory, "
                            "or a main script without an `if __name__ == '__main__':` guard "
                            "(workers are spawned). Finished chunks are kept; rerun to resume"
                        ) from exc
                    bar.update(1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    finally:
        bar.close()


def _merge_and_commit(
    store_dir: Path, paths: list[Path], ids: list[str], config_hash: str, dim: int | None,
    compute_stats: bool,
) -> tuple[int, int, int]:
    """Merges chunk files into a new ``data-<n>`` folder, then commits it by rewriting ``.done``."""
    shutil.rmtree(store_dir / STAGING_NAME, ignore_errors=True)
    _remove_unused_versions(store_dir)  # left by a build killed before its commit
    taken = [int(m.group(1)) for p in store_dir.iterdir() if (m := _VERSION.fullmatch(p.name))]
    staging = store_dir / f"data-{max(taken, default=0) + 1}"
    staging.mkdir()
    committed = False
    order = {id_: i for i, id_ in enumerate(ids)}
    entries: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    offset = 0
    count, mean, m2 = 0, None, None
    try:
        with atomic_open(staging / FEATS_NAME, "wb") as fh:
            for path in paths:
                try:
                    with np.load(path, allow_pickle=False) as z:
                        meta = json.loads(str(z["meta"]))
                        feats = z["feats"]
                except (ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
                    path.unlink(missing_ok=True)
                    raise StoreError(
                        f"{path}: corrupt chunk file ({exc}); removed, rerun to recompute it"
                    ) from exc
                failed.extend(meta["failed"])
                if not meta["entries"]:
                    continue
                if dim is None:
                    dim = int(meta["dim"])
                if meta["dim"] != dim:
                    failed.extend(
                        {"id": e["id"], "path": None, "error": "ValueError",
                         "reason": f"feature dim {meta['dim']} differs from store dim {dim}"}
                        for e in meta["entries"]
                    )
                    continue
                fh.write(memoryview(np.ascontiguousarray(feats)).cast("B"))
                for e in meta["entries"]:
                    entries.append({"id": e["id"], "offset": offset, "length": e["length"],
                                    **{k: v for k, v in e.items() if k not in ("id", "length")}})
                    offset += int(e["length"])
                if compute_stats:
                    part = meta["moments"]  # computed with the chunk (in its worker or thread)
                    count, mean, m2 = _combine_stats(
                        count, mean, m2, (part["count"], np.asarray(part["mean"]), np.asarray(part["m2"]))
                    )
        failed.sort(key=lambda rec: order.get(rec["id"], len(order)))
        failed_text = "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in failed)
        if not entries:
            # Drop the parts so that a rerun retries the items instead of reusing failures.
            shutil.rmtree(store_dir / PARTS_NAME, ignore_errors=True)
            first = failed[0]["reason"] if failed else "no output"
            where = ""
            if not (store_dir / DONE_NAME).exists():  # never touch a finished store
                atomic_write_text(store_dir / FAILED_NAME, failed_text)
                where = f"; see {store_dir / FAILED_NAME}"
            raise StoreError(f"{store_dir}: all {len(ids)} items failed (first: {first}){where}")
        index = {"dim": dim, "dtype": "float16", "config_hash": config_hash,
                 "num_rows": offset, "entries": entries}
        atomic_write_text(staging / INDEX_NAME, json.dumps(index, separators=(",", ":")))
        atomic_write_text(staging / FAILED_NAME, failed_text)
        if compute_stats and mean is not None:
            std = np.sqrt(m2 / count)
            stats = {"count": count, "mean": mean.tolist(), "std": std.tolist()}
            atomic_write_text(staging / STATS_NAME, json.dumps(stats))

        # Commit: one atomic rename of the marker switches readers from the old version to
        # this one. Before it the old store is intact; after it the new one is complete.
        _fsync_dir(staging)
        _fsync_dir(store_dir)
        write_marker(store_dir / DONE_NAME, config_hash, data=staging.name, num_entries=len(entries),
                     num_failed=len(failed), num_rows=offset)
        committed = True
        _remove_unused_versions(store_dir)
        shutil.rmtree(store_dir / PARTS_NAME, ignore_errors=True)
    finally:
        if not committed:
            shutil.rmtree(staging, ignore_errors=True)
    return len(entries), len(failed), offset


def _files_dir(store_dir: Path, marker: dict[str, Any]) -> Path:
    """The folder holding the files of the version that ``.done`` names (the store itself for
    a store from before versions)."""
    name = marker.get("data")
    if name is None:
        return store_dir
    if not isinstance(name, str) or not _VERSION.fullmatch(name):
        raise ValueError(f"{DONE_NAME} names an invalid data folder {name!r}")
    return store_dir / name


def _remove_unused_versions(store_dir: Path) -> None:
    """Deletes ``data-<n>`` folders and top-level files of the old layout that ``.done`` does not
    name: the previous version after a commit, or what a killed build left."""
    try:
        current = _files_dir(store_dir, json.loads((store_dir / DONE_NAME).read_text()))
    except (OSError, ValueError, AttributeError):
        current = None
    for path in store_dir.iterdir():
        if _VERSION.fullmatch(path.name) and path != current:
            shutil.rmtree(path, ignore_errors=True)
    if current is not None and current != store_dir:
        for name in _STORE_FILES:
            (store_dir / name).unlink(missing_ok=True)


def _moments(feats: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, mean (D,), M2 (D,)) of (N, D) rows, in float64."""
    x = feats.astype(np.float64)
    mean = x.mean(axis=0)
    return x.shape[0], mean, np.square(x - mean).sum(axis=0)


def _combine_stats(
    count: int, mean: np.ndarray | None, m2: np.ndarray | None,
    part: tuple[int, np.ndarray, np.ndarray],
) -> tuple[int, np.ndarray, np.ndarray]:
    """Chan et al.'s pairwise update of (count, mean, M2) with another part's moments."""
    n_b, mean_b, m2_b = part
    if mean is None or m2 is None or count == 0:
        return n_b, mean_b, m2_b
    n = count + n_b
    delta = mean_b - mean
    return n, mean + delta * (n_b / n), m2 + m2_b + np.square(delta) * (count * n_b / n)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def compute_stats_exact(store: FeatureStore) -> tuple[np.ndarray, np.ndarray]:
    """Recomputes per-dim (mean, std) float64 over all rows of ``store`` (for checks)."""
    count, mean, m2 = 0, None, None
    step = max(1, 1_000_000 // max(store.dim, 1))
    for start in range(0, store.num_rows, step):
        count, mean, m2 = _combine_stats(count, mean, m2, _moments(store.data[start : start + step]))
    if mean is None or m2 is None:
        raise StoreError(f"{store.store_dir}: store is empty")
    return mean, np.sqrt(m2 / count)


__all__ = [
    "FeatureStore", "StoreError", "StoreSummary", "build_store", "compute_stats_exact",
    "store_lock",
]
