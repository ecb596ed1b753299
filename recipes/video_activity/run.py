#!/usr/bin/env python3
"""Video activity recipe: a BiLSTM clip classifier over frame embeddings, from clips to a bundle.

    python recipes/video_activity/run.py                           # everything, embedded corpus
    python recipes/video_activity/run.py --stage 4 --stop-stage 6  # retrain and evaluate
    python recipes/video_activity/run.py --data /corpora/UCF101 backbone.weights=imagenet backbone_fit.epochs=6
    python recipes/video_activity/run.py model.pooling=mean model.encoder.cell=gru

Stages (the numbers of --stage and --stop-stage; a stage whose marker matches is skipped):
    0 corpus     render the embedded corpus, or import --data, into exp/data
    1 manifests  validate the clips; fix the label set
    2 backbone   fit the frame CNN to the training frames (pose targets on the embedded corpus)
    3 embed      frame-embedding stores: every split, plus random training views
    4 train      the BiLSTM many-to-one classifier (every rank under torchrun)
    5 ablation   the order-blind baseline: mean of the frames + linear (every rank)
    6 evaluate   top-1/top-5/mean-class accuracy, per style, confusion matrices
    7 export     the self-contained bundle: classifier, fitted backbone, preprocessing

The stages are methods of VideoRecipe (stages.py); configs in conf/, headline figures in RESULTS.md.
"""

import sys
from pathlib import Path

if not __package__:  # run as a script: the checkout, not this folder, goes first on sys.path
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from pipeline.workflow.runner import Stage, StageDef, bind_stages, run_recipe
from recipes.video_activity.stages import (
    DEFAULT_CONFIG,
    VideoRecipe,
    VideoRecipeConfig,
    format_table,
)

# number, name, the method that runs it, the node of VideoRecipe.inputs() whose hash marks it done
STAGES = (
    StageDef(0, "corpus", VideoRecipe.stage_corpus, "data"),
    StageDef(1, "manifests", VideoRecipe.stage_manifests, "data"),
    StageDef(2, "backbone", VideoRecipe.stage_backbone, "backbone"),
    StageDef(3, "embed", VideoRecipe.stage_embed, "embed"),
    StageDef(4, "train", VideoRecipe.stage_train, "train", collective=True),
    StageDef(5, "ablation", VideoRecipe.stage_ablation, "ablation", collective=True),
    StageDef(6, "evaluate", VideoRecipe.stage_evaluate, "evaluate"),
    StageDef(7, "export", VideoRecipe.stage_export, "evaluate"),
)


def build_stages(cfg: VideoRecipeConfig) -> list[Stage]:
    """The stages of one run, bound to its config."""
    return bind_stages(VideoRecipe(cfg), STAGES)


def main(argv: list[str] | None = None) -> dict:
    """Runs the recipe's command line; returns results.json's content."""
    return run_recipe(
        argv, description="seqrec video activity recipe", default_config=DEFAULT_CONFIG, config_cls=VideoRecipeConfig,
        build_stages=build_stages, format_table=format_table,
    )


if __name__ == "__main__":
    main()
