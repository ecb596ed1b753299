#!/usr/bin/env python3
"""The classifier on the generator's true poses: what a perfect frame CNN would give.

    python recipes/video_activity/run.py --stop-stage 1          # the corpus and its manifests
    python recipes/video_activity/pose_oracle.py                 # same config and overrides as run.py

The demo's frame CNN is fitted to predict each frame's pose (``pose_targets``) and the BiLSTM
classifies the sequence of predicted poses. This script swaps the CNN for the truth: it stores
the true pose of the very frames the CNN would see (the same TSN indices, training views
included), then trains and evaluates the same classifier and ablation on them. Comparing its
table with run.py's splits the error in two:

- what the oracle misses is the classifier's (for the held-out motion: how far the ways of
  acting seen in training carry to a new one);
- the rest is the pose the CNN gets wrong.

Embedded corpus only (other corpora have no true poses). Writes ``<exp_dir>/pose_oracle/``
(stores, checkpoints, results.json, confusion matrices); reads only the run's manifests.
"""

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: the checkout, not this folder, goes first on sys.path
    sys.path[0] = str(Path(__file__).resolve().parents[2])

import numpy as np

from data_prep.corpora.video_corpus import VideoCorpusConfig, clip_keypoints, pose_targets
from data_prep.frame_embed import stable_name_hash
from data_prep.store import build_store
from data_prep.video_io import sample_indices
from pipeline.config import config_hash, to_dict
from pipeline.training.backbone_fit import pose_standardisation
from pipeline.workflow.runner import (
    Inputs,
    StageDef,
    bind_stages,
    experiment_lock,
    load_recipe_config,
    recipe_arg_parser,
    report_user_errors,
    run_stages,
    setup_logging,
)
from recipes.video_activity.stages import (
    DEFAULT_CONFIG,
    VideoRecipe,
    VideoRecipeConfig,
    format_table,
)

#: The folder of an experiment that holds its oracle run.
ORACLE_DIR = "pose_oracle"


@dataclass(frozen=True)
class TruePoseJob:
    """Per-clip job for ``build_store``: ``(path, label, seed, style, way)`` -> (S, 4J - 1)
    true pose descriptors of the S frames that the frame CNN's embedding job samples,
    standardised as the pose head's targets are (``(pose - mean) / std`` with the statistics of
    the training clips' frames; a fit with free-pose clips also counts theirs, so its units
    differ slightly, which the classifier's own normalisation absorbs)."""

    corpus: VideoCorpusConfig
    num_segments: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_view: int = -1  # as EmbedJob: -1 segment centres, k >= 0 the k-th random-offset view
    seed: int = 0

    def __call__(self, payload: tuple[str, str, int, str, str]) -> np.ndarray:
        path, label, seed, style, way = payload
        pose = pose_targets(clip_keypoints(label, seed, self.corpus, style, way), self.corpus.frame_size)  # (T, 4J - 1)
        rng = None
        if self.train_view >= 0:  # the generator EmbedJob seeds, so the frames are the same
            rng = np.random.default_rng([self.seed, self.train_view, stable_name_hash(path)])
        frames = pose[sample_indices(len(pose), self.num_segments, train=self.train_view >= 0, rng=rng)]
        return ((frames - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)


class PoseOracleRecipe(VideoRecipe):
    """The video recipe with true poses in place of frame embeddings; reads the manifests of
    ``source`` (a run.py experiment) and writes under ``source/pose_oracle``."""

    def __init__(self, cfg: VideoRecipeConfig) -> None:
        self.source = Path(cfg.exp_dir)
        super().__init__(replace(cfg, exp_dir=str(self.source / ORACLE_DIR)))

    def manifest(self, split: str) -> Path:
        return self.source / "manifests" / f"{split}.jsonl"

    def labels(self) -> list[str]:
        return json.loads((self.source / "manifests" / "labels.json").read_text())

    def inputs(self) -> dict[str, Inputs]:
        """As the recipe's, but the stores depend on the corpus and the sampling, not a backbone."""
        graph = super().inputs()
        c = self.cfg
        graph["embed"] = Inputs(
            {"oracle": "true-pose", "units": "standardised", "data": to_dict(c.data), "segments": c.backbone.num_segments, "views": c.train_views}
        )
        return graph

    def stage_embed(self) -> dict[str, Any]:
        """True-pose stores of every split, plus the training views."""
        if self.cfg.data.corpus != "embedded":
            raise ValueError("pose_oracle: only the embedded corpus has true poses (data.corpus=embedded)")
        for split in ("train", "dev", "test"):
            if not self.manifest(split).is_file():
                raise FileNotFoundError(f"{self.manifest(split)}: missing; run run.py --stop-stage 1 with this config first")
        out = {}
        corpus = self.corpus_config()
        items = {
            split: [
                (r["id"], (r["video_filepath"], r["label"], int(r["seed"]), r.get("style", "stick"),
                           str(r.get("motion", "")).partition(".")[2]))
                for r in self.records(split)
            ]
            for split in ("train", "dev", "test")
        }  # fmt: skip
        # standardised as the pose head's targets are: by the training frames' statistics
        frames = [pose_targets(clip_keypoints(p[1], p[2], corpus, p[3], p[4]), corpus.frame_size) for _, p in items["train"]]
        mean, std = (tuple(float(v) for v in a) for a in pose_standardisation(np.concatenate(frames)))
        jobs = [(s, -1) for s in ("train", "dev", "test")] + [("train", v) for v in range(self.cfg.train_views)]
        for split, view in jobs:
            job = TruePoseJob(corpus, self.cfg.backbone.num_segments, mean, std, view, self.cfg.data.seed)
            h = config_hash({"oracle": "true-pose", "units": "standardised", "corpus": to_dict(corpus), "items": items[split], "view": view,
                             "segments": job.num_segments, "seed": job.seed})  # fmt: skip
            summary = build_store(self.store_dir(split, view), items[split], job, config_hash=h, num_workers=1, desc=f"true pose {split}")
            out[self.store_dir(split, view).name] = {"clips": summary.num_stored, "failed": summary.num_failed}
        return {"embeddings": out}


# number, name, the method that runs it, the node of the recipe's inputs() whose hash marks it done
STAGES = (
    StageDef(3, "embed", PoseOracleRecipe.stage_embed, "embed"),
    StageDef(4, "train", PoseOracleRecipe.stage_train, "train"),
    StageDef(5, "ablation", PoseOracleRecipe.stage_ablation, "ablation"),
    StageDef(6, "evaluate", PoseOracleRecipe.stage_evaluate, "evaluate"),
)


def main(argv: list[str] | None = None) -> dict:
    """Runs the oracle for run.py's config and overrides; returns its results.json content."""
    parser = recipe_arg_parser("seqrec video recipe on true poses (the pose oracle)", DEFAULT_CONFIG)
    args = parser.parse_args(argv)
    recipe = PoseOracleRecipe(load_recipe_config(parser, args, VideoRecipeConfig))
    setup_logging(recipe.exp / "log", verbose=args.verbose)
    with report_user_errors(parser.prog, verbose=args.verbose), experiment_lock(recipe.exp):
        results = run_stages(bind_stages(recipe, STAGES), recipe.exp, start=args.stage, stop=args.stop_stage, force=args.force)
    if results.get("metrics"):
        print(format_table(results))
    return results


if __name__ == "__main__":
    main()
