"""Model bundles: a self-contained directory of ``config.yaml`` plus safetensors weights.

A bundle is data, never code: the config is read with a ``yaml.SafeLoader`` (object-constructing
tags are refused) that also refuses anchors and aliases, deep nesting and giant integers (a
small file cannot expand into a huge value), weights are safetensors files (no pickle), and
every file name the config mentions must stay inside the bundle directory (no ``..``, no
absolute paths, no symlinks out) and be a regular file (a FIFO or device is never opened).

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

from pipeline.config import yaml_error_line
from pipeline.errors import InputError, SeqrecError, one_line, shown
from pipeline.io_utils import (
    current_umask,
    fsync_dir,
    make_temp_dir,
    remove_stale_temps,
    seal_temp_dir,
)
from pipeline.limits import check_regular_file

if TYPE_CHECKING:  # torch is imported only where weights are read or written
    import torch

FORMAT_VERSION = 1
CONFIG_NAME = "config.yaml"
#: Largest ``config.yaml`` a bundle may have (seqrec's are about 2 kB).
MAX_CONFIG_BYTES = 1_000_000
#: Deepest nesting of mappings and lists in ``config.yaml`` (seqrec's is 4).
MAX_CONFIG_DEPTH = 32
#: Longest integer in ``config.yaml``, in characters (Python refuses to parse 4300 digits).
MAX_INT_CHARS = 64


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
        # lazy: safetensors.torch pulls in torch; the torch-free engine loads bundles through this module
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
        raise BundleError(f"{root}: invalid file name {shown(name)} in bundle")
    candidate = Path(name)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise BundleError(f"{root}: file name {shown(name)} escapes the bundle directory")
    try:
        resolved = (root / candidate).resolve()
    except (OSError, RuntimeError) as exc:  # a name too long for the system, a symlink loop
        raise BundleError(f"{root}: file name {shown(name)} cannot be resolved ({exc})") from None
    if not resolved.is_relative_to(root.resolve()):
        raise BundleError(f"{root}: file name {shown(name)} resolves outside the bundle ({resolved})")
    if not resolved.exists():
        raise BundleError(f"{root}: bundle file {shown(name)} is missing")
    try:  # from its stat alone: a FIFO or device is never opened
        check_regular_file(resolved, "bundle file")
    except InputError as exc:
        raise BundleError(f"{root}: bundle file {shown(name)}: {exc.reason}") from None
    return resolved


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` for bundle configs: plain data of bounded size, nothing else.

    On top of safe_load's refusal of object tags, it refuses what makes a small file expand
    into a huge value or crash the parser, while composing (before anything is constructed):
    anchors and aliases (``&a``, ``*a``, ``<<: *a``; "billion laughs" expands ten aliases per
    level), nesting deeper than :data:`MAX_CONFIG_DEPTH` (the composer recurses), and integers
    longer than :data:`MAX_INT_CHARS` characters.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or event.anchor is not None:
            raise yaml.composer.ComposerError(
                None, None, "YAML anchors and aliases (&name, *name) are refused in a bundle config",
                event.start_mark,
            )  # fmt: skip
        self._depth += 1
        try:
            if self._depth > MAX_CONFIG_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_CONFIG_DEPTH} levels deep", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node):
        if len(node.value) > MAX_INT_CHARS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(node.value):,} characters", node.start_mark
            )
        return super().construct_yaml_int(node)


_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _ConfigLoader.construct_yaml_int)


class _NoAliasDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that writes a value used twice twice, never as ``&id001``/``*id001``
    (which :class:`_ConfigLoader` refuses)."""

    def ignore_aliases(self, data) -> bool:
        return True


def load_bundle(path: str | Path, *, kind: str | None = None) -> Bundle:
    """Reads and checks a bundle directory.

    Args:
        path: The bundle directory.
        kind: If given, the bundle must be of this kind (``speech_ctc`` or ``video_classifier``).

    Raises:
        BundleError: missing directory or config, unsafe YAML (object tags, anchors or aliases,
            nesting deeper than :data:`MAX_CONFIG_DEPTH`, giant integers), wrong kind or version.
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
            text = fh.read(MAX_CONFIG_BYTES + 1).decode("utf-8", "replace")
        config = yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 (a SafeLoader, bounded further)
    except FileNotFoundError:
        raise BundleError(f"{cfg_path}: missing (is {root} a seqrec bundle?)") from None
    except yaml.YAMLError as exc:
        raise BundleError(f"{cfg_path}: refused: not plain YAML data ({yaml_error_line(exc)})") from None
    except (RecursionError, MemoryError, ValueError) as exc:  # backstops of the loader's bounds
        reason = {RecursionError: "nested too deeply", MemoryError: "out of memory"}.get(type(exc))
        raise BundleError(f"{cfg_path}: refused: not plain YAML data ({reason or one_line(exc)})") from None
    if not isinstance(config, dict):
        raise BundleError(f"{cfg_path}: expected a mapping at the top level")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(f"{cfg_path}: unsupported bundle format_version {shown(version)}")
    if kind is not None and config.get("kind") != kind:
        raise BundleError(f"{root}: is a {shown(config.get('kind'))} bundle, expected {kind!r}")
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
    # lazy: safetensors.torch pulls in torch; the torch-free engine loads bundles through this module
    from safetensors import SafetensorError
    from safetensors.torch import save_file

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
            fh.write(yaml.dump(full, Dumper=_NoAliasDumper, sort_keys=False))
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
