"""What the recipes share: where things live under ``exp_dir``, and the corpus and manifest
steps that are the same for speech and video (stages 0 and 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from data_prep.manifest import read_manifest, write_manifest
from data_prep.validate import carry_report, finish_split

SPLITS = ("train", "dev", "test")


class Recipe:
    """Base of the recipes' stage classes; state lives on disk under ``cfg.exp_dir``.

    Subclasses set :attr:`kind` (the manifest kind) and implement the stages.
    """

    kind: Literal["speech", "video"]

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.exp = Path(cfg.exp_dir)

    def raw_manifest(self, split: str) -> Path:
        """The split as stage 0 generated or imported it."""
        return self.exp / "data" / f"{split}.jsonl"

    def manifest(self, split: str) -> Path:
        """The split as stage 1 kept it (its dropped items beside it, ``<split>.dropped.tsv``)."""
        return self.exp / "manifests" / f"{split}.jsonl"

    @property
    def bundle_dir(self) -> Path:
        return self.exp / "bundle"

    def adopt_corpus(self, manifests: dict[str, Path]) -> dict[str, list[dict[str, Any]]]:
        """Copies each split's manifest (and the report of what its import left out) to
        ``exp/data``; returns the records per split.

        Raises:
            FileNotFoundError: the corpus has no train, dev or test split.
        """

        out = {}
        for split in SPLITS:
            if split not in manifests:
                raise FileNotFoundError(f"{self.cfg.data.corpus}: no {split} split found")
            out[split] = read_manifest(manifests[split], self.kind)
            write_manifest(self.raw_manifest(split), out[split], self.kind)
            carry_report(manifests[split], self.raw_manifest(split))
        return out

    def keep_split(self, split: str, kept: list[dict[str, Any]], dropped: list[tuple[str, str]]) -> dict[str, int]:
        """Writes the split's manifest and its dropped-items report (with the import's drops);
        raises :class:`~data_prep.validate.EmptySplitError` when nothing is kept."""

        write_manifest(self.manifest(split), kept, self.kind)
        finish_split(split, self.manifest(split), kept, dropped, self.raw_manifest(split))
        return {"kept": len(kept), "dropped": len(dropped)}
