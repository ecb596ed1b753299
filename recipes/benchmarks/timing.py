"""Timing helpers: medians, pairwise ratios, interleaved runs, peak RSS, machine description."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pipeline.errors import SeqrecError

log = logging.getLogger(__name__)


class BenchmarkError(SeqrecError, RuntimeError):
    """A benchmark cannot run (missing bundle, corpus or tool); the message says what is missing."""


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence.

    Raises:
        ValueError: ``values`` is empty.
    """
    if len(values) == 0:
        raise ValueError("median of an empty sequence")
    return float(statistics.median(float(v) for v in values))


def pairwise_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """``numerators[i] / denominators[i]`` for each repeat ``i``.

    Pairing the two sides of one repeat (run back to back) cancels slow drifts of a shared
    machine that a ratio of two medians would keep.

    Raises:
        ValueError: the sequences differ in length, are empty, or a denominator is not > 0.
    """
    if len(numerators) != len(denominators):
        raise ValueError(f"{len(numerators)} numerators for {len(denominators)} denominators")
    if len(numerators) == 0:
        raise ValueError("no pairs to divide")
    out = []
    for a, b in zip(numerators, denominators, strict=True):
        if not b > 0:
            raise ValueError(f"denominator must be > 0, got {b}")
        out.append(float(a) / float(b))
    return out


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median of the pairwise ratios (see :func:`pairwise_ratios`)."""
    return median(pairwise_ratios(numerators, denominators))


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """``{"median", "min", "max", "values"}`` of a list of measurements (rounded for JSON)."""
    return {
        "median": _round(median(values)),
        "min": _round(min(values)),
        "max": _round(max(values)),
        "values": [_round(v) for v in values],
    }


def _round(x: float) -> float:
    """Four significant digits: enough for timings, short in JSON."""
    return float(f"{float(x):.4g}")


def interleave(
    sides: Mapping[str, Callable[[], float]], repeats: int, *, warmup: int = 1
) -> dict[str, list[float]]:
    """Runs each side in turn, ``repeats`` times, after ``warmup`` unrecorded rounds.

    Every callable does one measured run and returns its figure (seconds, or a rate); the
    sides of one round run back to back, so that ``result[a][i] / result[b][i]`` compares
    runs made under the same machine load.

    Returns:
        ``{name: [figure of round 0, figure of round 1, ...]}``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    out: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(warmup + repeats):
        for name, fn in sides.items():
            value = float(fn())
            if r >= warmup:
                out[name].append(value)
            log.debug("round %d %s: %.4g", r, name, value)
    return out


class Stopwatch:
    """``with Stopwatch(sync) as sw: ...; sw.seconds``; ``sync`` (e.g. CUDA sync) runs at both ends."""

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.sync = sync
        self.seconds = float("nan")

    def __enter__(self) -> Stopwatch:
        if self.sync is not None:
            self.sync()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sync is not None:
            self.sync()
        self.seconds = time.perf_counter() - self._t0


# --------------------------------------------------------------------------- child processes
@dataclass(frozen=True)
class ProcessRun:
    """One finished child process.

    Attributes:
        wall_s: Wall time from start to exit.
        max_rss_bytes: Peak resident set size of the child itself (``wait4``'s ``ru_maxrss``).
        returncode: Exit code (negative: killed by that signal).
        stdout: Its standard output.
        stderr: Its standard error.
    """

    wall_s: float
    max_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str


# Started by run_measured: a small process that starts the command, waits for it with wait4
# and writes its wall time and peak RSS to a file. The command is this launcher's child, not
# the benchmark process's: ru_maxrss keeps the memory of the image a child was forked from
# (Linux records the old mm's high-water mark at exec), so a child forked straight from a
# 1 GB benchmark process would report at least 1 GB.
_LAUNCHER = """
import json, os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
try:
    pid = os.posix_spawnp(cmd[0], cmd, os.environ)
except OSError as exc:
    with open(out, "w") as fh:
        json.dump({"error": str(exc)}, fh)
    sys.exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as fh:
    json.dump({"wall_s": wall, "max_rss_kb": usage.ru_maxrss,
               "returncode": os.waitstatus_to_exitcode(status)}, fh)
"""


def run_measured(
    cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 600.0,
    cwd: str | Path | None = None,
) -> ProcessRun:
    """Runs ``cmd`` in a fresh process and measures its wall time and peak RSS.

    A tiny launcher process starts ``cmd`` and measures it with ``os.wait4`` (per-child
    rusage, unlike ``getrusage(RUSAGE_CHILDREN)``, which is a maximum over every child ever
    waited for); the wall time covers the command alone, not the launcher's own start.
    Output goes to temporary files, not pipes, so a chatty child cannot block.

    Raises:
        BenchmarkError: the command cannot be started or runs past ``timeout`` (it is killed).
    """
    with tempfile.TemporaryDirectory() as tmp_dir:
        report = Path(tmp_dir) / "report.json"
        out_path, err_path = Path(tmp_dir) / "stdout", Path(tmp_dir) / "stderr"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(report), *cmd],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    env=None if env is None else dict(env), cwd=cwd, start_new_session=True,
                )
            except OSError as exc:
                raise BenchmarkError(f"cannot start {sys.executable}: {exc}") from None
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)  # the launcher and the command: its own session
                proc.wait()
                raise BenchmarkError(f"{' '.join(cmd)} ran past {timeout:g} s and was killed") from None
        try:
            info = json.loads(report.read_text())
        except (OSError, ValueError):
            raise BenchmarkError(
                f"{' '.join(cmd)}: the launcher reported nothing: {err_path.read_text(errors='replace')[-300:]}"
            ) from None
        if "error" in info:
            raise BenchmarkError(f"cannot run {cmd[0]}: {info['error']}")
        return ProcessRun(
            wall_s=float(info["wall_s"]),
            max_rss_bytes=int(info["max_rss_kb"]) * 1024,  # Linux reports kilobytes
            returncode=int(info["returncode"]),
            stdout=out_path.read_text(errors="replace"),
            stderr=err_path.read_text(errors="replace"),
        )


_COMPETITOR = """
import numpy as np
a = np.random.default_rng(0).random((384, 384), dtype=np.float32)
while True:
    a = (a @ a) / np.float32(384)
"""


@contextlib.contextmanager
def competing_job() -> Iterator[None]:
    """Runs a CPU-bound job beside the block: one process, one thread of float32 matrix
    products (the shape of a second user's numpy or torch job), stopped on the way out."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _COMPETITOR], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        time.sleep(0.5)  # running, and at full speed, before the measurement starts
        if proc.poll() is not None:
            raise BenchmarkError(f"the competing job exited with {proc.returncode}")
        yield
    finally:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- the machine
def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, Python/torch versions and the GPU (None without CUDA)."""
    # lazy: torch and numpy only when the machine is described
    import torch

    from pipeline.inference.common import usable_cores

    usable = usable_cores()
    mem_gib = None
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        mem_gib = round(pages * page / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
               "count": torch.cuda.device_count()}
    return {
        "cpu": cpu_model(),
        "cores": usable,
        "memory_gib": mem_gib,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "gpu": gpu,
    }


def today() -> str:
    """The current local date and time, ISO 8601 to the minute."""
    return _dt.datetime.now().astimezone().isoformat(timespec="minutes")


@dataclass(frozen=True)
class RecipeExp:
    """A finished recipe experiment directory (bundle, manifests, stores) to benchmark.

    Subclasses name the recipe and the store files that prove its data stages finished.
    """

    root: Path
    recipe: ClassVar[str] = ""  # e.g. "speech_ctc"
    store_files: ClassVar[tuple[str, ...]] = ()  # relative to root

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    def manifest(self, split: str) -> Path:
        return self.root / "manifests" / f"{split}.jsonl"

    def check(self, *, bundle: bool = True, manifests: tuple[str, ...] = (), stores: bool = False) -> None:
        """Raises BenchmarkError naming everything that is missing."""
        need = [self.manifest(s) for s in manifests]
        if bundle:
            need.append(self.bundle / "config.yaml")
        if stores:
            need += [self.config, *(self.root / f for f in self.store_files)]
        missing = [str(p) for p in need if not p.exists()]
        if missing:
            raise BenchmarkError(
                f"{self.root}: not a finished {self.recipe} experiment; missing {', '.join(missing)} "
                f"(run recipes/{self.recipe}/run.py, or pass --{self.recipe.split('_')[0]}-exp)"
            )
