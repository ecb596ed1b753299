"""Atomic checkpoints that load without unpickling arbitrary objects."""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import IO, Any

import torch

from pipeline.errors import SeqrecError, one_line
from pipeline.io_utils import atomic_save, fsync_dir, remove_stale_temps

log = logging.getLogger(__name__)


class CheckpointError(SeqrecError, RuntimeError):
    """A checkpoint cannot be read or written; the message names the file."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Writes ``state`` (tensors, numbers, strings, lists, dicts) atomically with torch.save.

    The file is written to a temporary sibling, fsynced and renamed over ``path``, so ``path``
    always holds a complete checkpoint: the previous one if the write fails (disk full) or the
    process is killed. Temporaries left by killed writers are removed first.

    Raises:
        CheckpointError: the write failed (e.g. no space left); ``path`` is unchanged.
    """
    path = Path(path)
    remove_stale_temps(path, whole_dir=True)
    recorder: _WriteErrors | None = None

    def write(fh: IO[bytes]) -> None:
        nonlocal recorder
        recorder = _WriteErrors(fh)
        torch.save(state, recorder)

    try:
        atomic_save(path, write)
    except (OSError, RuntimeError) as exc:
        # torch's zip writer reports a failed write as "unexpected pos ..."; the OSError
        # behind it (e.g. ENOSPC) says what really happened.
        cause = recorder.error if recorder is not None and recorder.error is not None else exc
        if isinstance(cause, OSError):
            reason = cause.strerror or str(cause)
        else:
            reason = one_line(cause)
        kept = "the previous checkpoint is unchanged" if path.exists() else "nothing was written"
        raise CheckpointError(f"{path}: cannot write checkpoint: {reason} ({kept})") from cause
    fsync_dir(path.parent)


class _WriteErrors:
    """A write-only file wrapper that remembers the first OSError its ``write`` raised."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.fh.flush()


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Loads a checkpoint with ``weights_only=True``: pickled code objects are refused.

    Raises:
        CheckpointError: for a missing, truncated, corrupt or unsafe file.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise CheckpointError(f"{path}: refused to load (not plain weights): {first}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        first = one_line(exc)
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint: {first}") from None


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of model state dicts (integer buffers are taken from the last one)."""
    if not states:
        raise ValueError("no checkpoints to average")
    keys = states[0].keys()
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        tensors = [s[key] for s in states]
        if tensors[0].is_floating_point():
            out[key] = torch.stack([t.float() for t in tensors]).mean(0).to(tensors[0].dtype)
        else:
            out[key] = tensors[-1].clone()
    return out


def average_checkpoints(paths: list[str | Path]) -> dict[str, torch.Tensor]:
    """Averages the ``model`` weights of several checkpoints."""
    log.info("averaging %d checkpoints: %s", len(paths), ", ".join(Path(p).name for p in paths))
    return average_state_dicts([load_checkpoint(p)["model"] for p in paths])
