"""Model bundles: a self-contained directory of ``config.yaml`` plus safetensors weights.

A bundle is data, never code: the config is read with ``yaml.safe_load`` (object-constructing
tags are refused), weights are safetensors files (no pickle), and every file name the config
mentions must stay inside the bundle directory (no ``..``, no absolute paths, no symlinks out).

Reading and checking a bundle (:func:`load_bundle`, :func:`safe_member`,
:meth:`Bundle.weights_file`) does not import torch, so the torch-free lite engine uses them too;
only :meth:`Bundle.load_weights` and :func:`save_bundle` need it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipeline.errors import SeqrecError, one_line

if TYPE_CHECKING:  # torch is imported only where weights are read or written
    import torch

FORMAT_VERSION = 1
CONFIG_NAME = "config.yaml"
#: Largest ``config.yaml`` a bundle may have (seqrec's are about 2 kB).
MAX_CONFIG_BYTES = 1_000_000


class BundleError(SeqrecError, ValueError):
    """A bundle is missing, malformed or unsafe; the message names the path."""


class UnsupportedBundleError(BundleError):
    """A valid bundle that uses something the engine loading it does not implement.

    The torch-free lite engine raises it (``seqrec transcribe --engine auto`` then uses torch).
    """


@dataclass
class Bundle:
    """A loaded bundle: its directory and its parsed ``config.yaml``."""

    path: Path
    config: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.config.get("kind"))

    def file(self, name: str) -> Path:
        """Resolves a file named in the config, refusing names that escape the bundle."""
        return safe_member(self.path, name)

    def weights_file(self, key: str = "weights") -> Path:
        """The safetensors file named by ``config[key]``, checked to be inside the bundle.

        Raises:
            BundleError: the name is missing, escapes the bundle, or is not ``.safetensors``.
        """
        name = self.config.get(key)
        if not isinstance(name, str):
            raise BundleError(f"{self.path / CONFIG_NAME}: '{key}' must name a weights file")
        path = self.file(name)
        if path.suffix != ".safetensors":
            raise BundleError(f"{path}: weights must be a .safetensors file (pickle is refused)")
        return path

    def load_weights(self, key: str = "weights") -> dict[str, torch.Tensor]:
        """Loads the safetensors file named by ``config[key]`` as torch tensors."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.weights_file(key)
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise BundleError(f"{path}: cannot read weights: {exc}") from None


def safe_member(root: Path, name: str) -> Path:
    """Returns ``root/name`` if it is a plain relative path that stays inside ``root``."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise BundleError(f"{root}: invalid file name {name!r} in bundle")
    candidate = Path(name)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise BundleError(f"{root}: file name {name!r} escapes the bundle directory")
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise BundleError(f"{root}: file name {name!r} resolves outside the bundle ({resolved})")
    if not resolved.exists():
        raise BundleError(f"{root}: bundle file {name!r} is missing")
    if not resolved.is_file():
        raise BundleError(f"{root}: bundle file {name!r} is not a regular file")
    return resolved


def load_bundle(path: str | Path, *, kind: str | None = None) -> Bundle:
    """Reads and checks a bundle directory.

    Args:
        path: The bundle directory.
        kind: If given, the bundle must be of this kind (``speech_ctc`` or ``video_classifier``).

    Raises:
        BundleError: missing directory or config, unsafe YAML, wrong kind or version.
    """
    root = Path(path)
    if not root.is_dir():
        stranded = root.with_name(f".{root.name}.old")
        if (stranded / CONFIG_NAME).is_file():
            raise BundleError(
                f"{root}: model bundle directory not found; an interrupted save left the previous "
                f"bundle in {stranded} (rename it back, or save the bundle again)"
            )
        raise BundleError(f"{root}: model bundle directory not found")
    cfg_path = root / CONFIG_NAME
    if not cfg_path.exists() and not cfg_path.is_symlink():
        raise BundleError(f"{cfg_path}: missing (is {root} a seqrec bundle?)")
    # Confined like the weights: a regular file inside the bundle, and small (a symlink to
    # /dev/zero or a FIFO would otherwise mean an endless read or a hang).
    safe_member(root, CONFIG_NAME)
    if not stat.S_ISREG(cfg_path.stat().st_mode) or cfg_path.stat().st_size > MAX_CONFIG_BYTES:
        raise BundleError(f"{cfg_path}: must be a regular file of at most {MAX_CONFIG_BYTES} bytes")
    try:
        with open(cfg_path, "rb") as fh:
            config = yaml.safe_load(fh.read(MAX_CONFIG_BYTES + 1).decode("utf-8", "replace"))
    except FileNotFoundError:
        raise BundleError(f"{cfg_path}: missing (is {root} a seqrec bundle?)") from None
    except yaml.YAMLError as exc:
        first = one_line(exc)
        raise BundleError(f"{cfg_path}: refused: not plain YAML data ({first})") from None
    if not isinstance(config, dict):
        raise BundleError(f"{cfg_path}: expected a mapping at the top level")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(f"{cfg_path}: unsupported bundle format_version {version!r}")
    if kind is not None and config.get("kind") != kind:
        raise BundleError(f"{root}: is a {config.get('kind')!r} bundle, expected {kind!r}")
    return Bundle(path=root, config=config)


def save_bundle(
    out_dir: str | Path,
    config: dict[str, Any],
    weights: dict[str, dict[str, torch.Tensor]],
    files: dict[str, str | Path] | None = None,
) -> Path:
    """Writes a bundle atomically: built in a temporary sibling, then swapped into place.

    Every file is fsynced before the swap, so ``out_dir`` holds either the previous bundle or
    the complete new one, never a mix. Temporaries left by a killed earlier save are removed,
    and a previous bundle that a kill stranded mid-swap is put back first.

    Args:
        out_dir: Destination directory (replaced if it exists).
        config: Plain data for ``config.yaml``; ``format_version`` is added.
        weights: File name -> state dict, each saved as safetensors.
        files: File name in the bundle -> a data file copied in as it is (e.g. a language model).

    Raises:
        BundleError: an invalid file name, or the write failed (e.g. no space left); the
            previous bundle is then unchanged.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from pipeline.io_utils import (
        current_umask,
        fsync_dir,
        make_temp_dir,
        remove_stale_temps,
        seal_temp_dir,
    )

    out_dir = Path(out_dir)
    files = dict(files or {})
    for name in weights:
        if Path(name).name != name or not name.endswith(".safetensors") or name == CONFIG_NAME:
            raise BundleError(f"invalid weights file name {name!r}")
    for name in files:
        if Path(name).name != name or name in weights or name == CONFIG_NAME or name.startswith("."):
            raise BundleError(f"invalid bundle file name {name!r}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    old = out_dir.with_name(f".{out_dir.name}.old")
    if not out_dir.exists() and (old / CONFIG_NAME).is_file():
        os.replace(old, out_dir)  # a kill between the two renames below stranded it there
    for existing in (out_dir, old):
        _check_replaceable(existing)
    remove_stale_temps(out_dir)
    tmp = make_temp_dir(out_dir)
    try:
        for name, state in weights.items():
            tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
            save_file(tensors, str(tmp / name))
            _fsync_file(tmp / name)
        for name, src in files.items():
            shutil.copyfile(src, tmp / name)
            _fsync_file(tmp / name)
        full = {"format_version": FORMAT_VERSION, **config}
        with open(tmp / CONFIG_NAME, "w", encoding="utf-8") as fh:
            fh.write(yaml.safe_dump(full, sort_keys=False))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; give the usual permissions
        for name in [*weights, *files]:  # safetensors writes 0600
            os.chmod(tmp / name, 0o666 & ~current_umask())
        seal_temp_dir(tmp)
        fsync_dir(tmp)
        if out_dir.exists():
            _remove_bundle_dir(old)
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        fsync_dir(out_dir.parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (OSError, SafetensorError)):
            reason = getattr(exc, "strerror", None) or one_line(exc)
            kept = "the previous bundle is unchanged" if out_dir.exists() else "nothing was written"
            raise BundleError(f"{out_dir}: cannot write bundle: {reason} ({kept})") from exc
        raise
    _remove_bundle_dir(old)
    return out_dir


def _bundle_entries(path: Path) -> list[Path] | None:
    """The entries of a directory that is a seqrec bundle (flat, regular files, a config.yaml),
    or None when ``path`` is anything else."""
    try:
        if not stat.S_ISDIR(path.lstat().st_mode):
            return None
        entries = list(path.iterdir())
        if any(not stat.S_ISREG(e.lstat().st_mode) for e in entries):
            return None
    except OSError:
        return None
    return entries if any(e.name == CONFIG_NAME for e in entries) else None


def _check_replaceable(path: Path) -> None:
    """Refuses to save over ``path`` unless it is absent, empty or a bundle: a directory of the
    user's own (or a file) is never replaced or deleted."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return
    if _bundle_entries(path) is None:
        raise BundleError(
            f"{path}: exists and is not a seqrec bundle (a flat folder with {CONFIG_NAME}); "
            "refusing to replace it: move it away or choose another output"
        )


def _remove_bundle_dir(path: Path) -> None:
    """Deletes a previous bundle (its files, then the folder); anything else is left alone."""
    entries = _bundle_entries(path)
    if entries is None:
        with contextlib.suppress(OSError):
            path.rmdir()  # an empty folder
        return
    for entry in entries:
        entry.unlink(missing_ok=True)
    path.rmdir()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
