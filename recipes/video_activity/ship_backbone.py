#!/usr/bin/env python3
"""Makes a video run's fitted pose backbone the one that ships inside the package (float16).

    python recipes/video_activity/run.py --config recipes/video_activity/conf/large.yaml --stop-stage 2
    python recipes/video_activity/ship_backbone.py --config recipes/video_activity/conf/large.yaml

It takes run.py's config and overrides, and ships only a backbone stage that is up to date
with them (its marker), so the card says truly what the backbone was fitted on. Runs whose
config says ``backbone.weights: pose`` (the demo) then start from it and fit nothing
(pipeline/pretrained/pose_backbone.py). Afterwards: `make test`, the demo, and the recipe's
RESULTS.md.
"""

import sys
from pathlib import Path

if not __package__:  # run as a script: the checkout, not this folder, goes first on sys.path
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from data_prep.corpora.video_corpus import RENDER_VERSION
from pipeline.config import to_dict
from pipeline.io_utils import marker_matches
from pipeline.pretrained.pose_backbone import POSE_BACKBONE, ship_pose_backbone
from pipeline.workflow.runner import (
    load_recipe_config,
    read_results,
    recipe_arg_parser,
    recipe_overrides,
)
from recipes.video_activity.run import STAGES
from recipes.video_activity.stages import DEFAULT_CONFIG, VideoRecipe, VideoRecipeConfig


def main(argv: list[str] | None = None) -> Path:
    """Ships the backbone of run.py's config and overrides; returns where it went."""
    parser = recipe_arg_parser(__doc__.splitlines()[0], DEFAULT_CONFIG)
    parser.add_argument("--out", type=Path, default=POSE_BACKBONE, help="destination (default: %(default)s)")
    args = parser.parse_args(argv)
    cfg = load_recipe_config(parser, args, VideoRecipeConfig)
    recipe = VideoRecipe(cfg)
    stage = next(s for s in STAGES if s.name == "backbone")
    if not marker_matches(recipe.exp / ".done" / f"stage{stage.number}-{stage.name}", recipe.hashes()[stage.node]):
        parser.exit(1, f"{recipe.exp}: its backbone stage is not done for this config; run run.py with it first\n")
    fit = read_results(recipe.exp)["backbone"]
    if cfg.data.corpus != "embedded" or fit.get("objective") != "pose" or not cfg.backbone_fit.pose_embeddings:
        parser.exit(1, f"{recipe.exp}: not a pose fit with pose embeddings on the embedded corpus\n")
    card = {
        "backbone": {"name": cfg.backbone.name, "frame_size": cfg.backbone.frame_size, "short_side": cfg.backbone.short_side},
        "init": fit["init"],
        "fitted_on": {"corpus": "embedded", "render_version": RENDER_VERSION,
                      **{k: v for k, v in to_dict(cfg.data).items() if k not in ("corpus", "format", "ucf101_split", "dev_fraction")}},
        "fit": {**to_dict(cfg.backbone_fit), "dev_pose_r2": round(fit["fit_history"][-1]["dev_pose_r2"], 4),
                "fit_seconds": fit["fit_seconds"]},
        "made_by": " ".join(["python recipes/video_activity/run.py", f"--config {_shown_path(args.config)}",
                             *(o for o in recipe_overrides(args) if not o.startswith("exp_dir="))]),
    }
    out = ship_pose_backbone(recipe.backbone_file, card, args.out)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"shipped {recipe.backbone_file} -> {out} ({size / 1e6:.1f} MB)")
    return out


def _shown_path(path: Path) -> str:
    """``path`` relative to the checkout when it lies inside it (the card is read anywhere)."""
    root = Path(__file__).resolve().parents[2]
    return str(path.resolve().relative_to(root)) if path.resolve().is_relative_to(root) else str(path)


if __name__ == "__main__":
    main()
