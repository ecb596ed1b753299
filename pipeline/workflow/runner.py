"""Stage runner shared by recipes: ``--stage N --stop-stage M``, markers, logs and results.json.

A recipe lists its stages in order as a table of :class:`StageDef` rows (number, name, the
method that runs it, the node whose hash marks it done); :func:`bind_stages` makes them
runnable for one config. A stage is skipped when its ``.done`` marker records the same config
hash; a changed config redoes it. The hashes are derived, never chained by hand: a recipe
declares for each node (a stage, or a checkpoint lineage) the config values it reads and the
nodes whose outputs it reads (:class:`Inputs`), and :func:`derive_hashes` does the chaining.
Wall time per stage and each stage's outputs are merged into ``<exp_dir>/results.json`` as
they finish.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, config_hash, load_config
from pipeline.errors import SeqrecError
from pipeline.io_utils import atomic_write_json, exclusive_lock, marker_matches, write_marker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One recipe stage: a name, a function of no arguments, and the hash of what it depends on.

    ``collective`` stages (training) run on every rank of a ``torchrun`` job; the others run on
    rank 0 alone.
    """

    number: int
    name: str
    run: Callable[[], dict[str, Any] | None]
    config_hash: str
    collective: bool = False


@dataclass(frozen=True)
class StageDef:
    """One row of a recipe's stage table.

    Attributes:
        number: What ``--stage`` and ``--stop-stage`` select it by; the table's order.
        name: Its name in logs, markers (``.done/stage<number>-<name>``) and results.json.
        method: The recipe class's method that runs it (called with the recipe object).
        node: The node of the recipe's ``inputs()`` whose hash marks the stage done.
        collective: Runs on every rank of a ``torchrun`` job (see :class:`Stage`).
    """

    number: int
    name: str
    method: Callable[[Any], dict[str, Any] | None]
    node: str
    collective: bool = False


def bind_stages(recipe: Any, table: Sequence[StageDef]) -> list[Stage]:
    """The stages of ``table`` bound to one ``recipe`` object, which has ``hashes()``.

    Raises:
        ValueError: the numbers do not increase, a name repeats, or a row names an unknown node.
    """
    hashes = recipe.hashes()
    names: set[str] = set()
    stages, last = [], -1
    for row in table:
        if row.number <= last or row.name in names:
            raise ValueError(f"stage {row.number} {row.name}: stage numbers must increase and names differ")
        if row.node not in hashes:
            raise ValueError(f"stage {row.number} {row.name}: unknown node {row.node!r}; nodes: {sorted(hashes)}")
        last = row.number
        names.add(row.name)
        stages.append(Stage(row.number, row.name, functools.partial(row.method, recipe), hashes[row.node], row.collective))
    return stages


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of a ``torchrun`` job from its environment; (0, 1) otherwise."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _sync_ranks() -> None:
    """Waits until every rank of the job is here (after rank 0 finished the stages before)."""
    # lazy: torch only for a multi-process run; the runner itself stays torch-free
    import torch

    from pipeline.training.distributed import barrier, init_distributed

    init_distributed("cuda" if torch.cuda.is_available() else "cpu")
    barrier()


@dataclass(frozen=True)
class Inputs:
    """What one node of a recipe depends on.

    Attributes:
        values: The config values the node reads (plain data, e.g. ``to_dict(cfg.train)``).
        after: Earlier nodes whose outputs it reads, as key in the hashed mapping -> node name.
    """

    values: Mapping[str, Any]
    after: Mapping[str, str] = field(default_factory=dict)


def derive_hashes(graph: Mapping[str, Inputs]) -> dict[str, str]:
    """Each node's hash: :func:`~pipeline.config.config_hash` of its values together with the
    hashes of the nodes it reads. A changed value thus changes the node declaring it and every
    node after it, and nothing upstream.

    Raises:
        ValueError: a node reads an unknown node, nodes form a cycle, or a key is both a value
            and a dependency.
    """

    hashes: dict[str, str] = {}
    visiting: set[str] = set()

    def visit(name: str, reader: str) -> str:
        if name in hashes:
            return hashes[name]
        if name not in graph:
            raise ValueError(f"recipe node {reader!r} reads an unknown node {name!r}")
        if name in visiting:
            raise ValueError(f"recipe nodes form a cycle through {name!r}")
        visiting.add(name)
        node = graph[name]
        clash = sorted(set(node.values) & set(node.after))
        if clash:
            raise ValueError(f"recipe node {name!r}: {clash[0]!r} is both a value and a dependency")
        data = {key: visit(dep, name) for key, dep in node.after.items()}
        hashes[name] = config_hash({**data, **node.values})
        visiting.discard(name)
        return hashes[name]

    for name in graph:
        visit(name, name)
    return hashes


def setup_logging(log_dir: Path | None, *, verbose: bool = False) -> None:
    """Logs to stderr and, when ``log_dir`` is given, to ``log_dir/run.log``."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_dir / "run.log"))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=handlers,
        force=True,
    )


def read_results(exp_dir: Path) -> dict[str, Any]:
    path = exp_dir / "results.json"
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def update_results(exp_dir: Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Merges ``updates`` into results.json (one level deep for dict values)."""
    data = read_results(exp_dir)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    atomic_write_json(exp_dir / "results.json", data)
    return data


def run_stages(stages: list[Stage], exp_dir: Path, *, start: int, stop: int, force: bool = False) -> dict[str, Any]:
    """Runs the stages numbered ``start..stop`` in order, skipping up-to-date ones.

    Under ``torchrun``, rank 0 runs every stage and alone writes markers and results; the other
    ranks run only the collective stages, each after waiting for rank 0 to get there.
    """
    marker_dir = exp_dir / ".done"
    rank, world = rank_and_world()
    for stage in stages:
        if not start <= stage.number <= stop:
            continue
        if world > 1:
            if not stage.collective and rank != 0:
                continue
            if stage.collective:
                _sync_ranks()
        marker = marker_dir / f"stage{stage.number}-{stage.name}"
        if not force and marker_matches(marker, stage.config_hash):
            log.info("Stage %d: %s (up to date, skipped)", stage.number, stage.name)
            continue
        log.info("Stage %d: %s", stage.number, stage.name)
        t0 = time.perf_counter()
        outputs = stage.run() or {}
        seconds = time.perf_counter() - t0
        if rank != 0:
            continue
        update_results(exp_dir, {"stage_seconds": {stage.name: round(seconds, 2)}, **outputs})
        write_marker(marker, stage.config_hash, seconds=round(seconds, 2))
        log.info("Stage %d: %s done in %.1f s", stage.number, stage.name, seconds)
    return read_results(exp_dir)


class ExperimentBusy(SeqrecError, RuntimeError):
    """Another run is using the experiment directory."""


def experiment_lock(exp_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Holds ``exp_dir/.lock`` for the whole run, so a second run on the same directory stops at
    once (:class:`ExperimentBusy`, naming the holder's pid and host) instead of interleaving
    checkpoints, markers and results. A lock left by a killed run is taken over (see
    :func:`~pipeline.io_utils.exclusive_lock`). Under ``torchrun`` only rank 0 holds it.
    """
    if os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()
    return exclusive_lock(
        Path(exp_dir) / ".lock",
        lambda holder: ExperimentBusy(
            f"{exp_dir}: another run is using this experiment directory ({holder}); "
            "wait for it to finish or choose another --exp-dir"
        ),
    )


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions whose one-line messages are written for users: seqrec's own, and OSError
    (a missing corpus directory, a full disk, permissions: the message names the path)."""
    return (SeqrecError, OSError)


@contextlib.contextmanager
def report_user_errors(prog: str, *, verbose: bool = False) -> Iterator[None]:
    """Ends a recipe run with one logged error line and exit code 1 instead of a traceback.

    Only the project's own errors (:func:`user_error_types`) are turned into one line; with
    ``verbose`` they keep their traceback, and anything else (a bug) always does. Ctrl-C
    exits with code 130 and says how to resume.
    """
    errors = user_error_types()
    try:
        yield
    except KeyboardInterrupt:
        log.error("interrupted; run the same command again to resume from the last finished step")
        raise SystemExit(130) from None
    except errors as exc:
        if verbose:
            raise
        log.error("%s: error: %s (--verbose shows the traceback)", prog, " ".join(str(exc).split()) or type(exc).__name__)
        raise SystemExit(1) from None


def recipe_arg_parser(description: str, default_config: Path) -> argparse.ArgumentParser:
    """The command line every recipe shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", type=Path, default=default_config, help="YAML config (default: %(default)s)")
    p.add_argument("--stage", type=int, default=0, help="first stage to run (default: 0)")
    p.add_argument("--stop-stage", type=int, default=100, help="last stage to run (default: all)")
    p.add_argument("--data", type=Path, default=None, help="a real corpus instead of the embedded default")
    p.add_argument("--exp-dir", type=Path, default=None, help="experiment directory (default from config)")
    p.add_argument("--force", action="store_true", help="rerun stages even when their markers match")
    p.add_argument("--verbose", action="store_true", help="debug logging")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.max_epochs=3")
    return p


def recipe_overrides(args: argparse.Namespace) -> list[str]:
    """The ``key=value`` overrides of a :func:`recipe_arg_parser` command line, with ``--data``
    and ``--exp-dir`` as the overrides they stand for."""
    overrides = list(args.overrides)
    if args.data is not None:
        overrides.append(f"data.corpus={args.data}")
    if args.exp_dir is not None:
        overrides.append(f"exp_dir={args.exp_dir}")
    return overrides


def load_recipe_config(parser: argparse.ArgumentParser, args: argparse.Namespace, config_cls: type) -> Any:
    """The config of a :func:`recipe_arg_parser` command line; a bad one ends the program as a
    usage error (one line, exit code 2)."""
    try:
        return load_config(config_cls, args.config, recipe_overrides(args))
    except ConfigError as exc:
        parser.exit(2, f"{parser.prog}: error: {' '.join(str(exc).split())}\n")


def stage_footer(results: dict[str, Any]) -> list[str]:
    """The lines every recipe prints under its metrics table: wall time per stage, bundle."""
    lines = []
    stages = results.get("stage_seconds", {})
    if stages:
        lines += ["", "wall time per stage (s): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items())]
    if results.get("bundle"):
        lines.append(f"bundle: {results['bundle']}")
    return lines


def run_recipe(
    argv: list[str] | None,
    *,
    description: str,
    default_config: Path,
    config_cls: type,
    build_stages: Callable[[Any], list[Stage]],
    format_table: Callable[[dict[str, Any]], str],
) -> dict[str, Any]:
    """The command line shared by the recipes: parse, load the config, run stages, print.

    A bad config is a usage error (one line, exit code 2); known run errors are one logged
    line (exit code 1, traceback with ``--verbose``). Returns results.json's content.
    """

    parser = recipe_arg_parser(description, default_config)
    args = parser.parse_args(argv)
    cfg = load_recipe_config(parser, args, config_cls)
    exp = Path(cfg.exp_dir)
    rank, _ = rank_and_world()
    setup_logging(exp / "log" if rank == 0 else None, verbose=args.verbose)  # one run.log, rank 0's
    # Known errors end in one line, no traceback; the lock is taken inside, so "busy" is one too.
    with report_user_errors(parser.prog, verbose=args.verbose), experiment_lock(exp):
        results = run_stages(build_stages(cfg), exp, start=args.stage, stop=args.stop_stage, force=args.force)
    if results.get("metrics") and rank == 0:
        print(format_table(results))
    return results
