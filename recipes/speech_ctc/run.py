#!/usr/bin/env python3
"""Speech CTC recipe: a character CTC model from a corpus to a shipped bundle.

    python recipes/speech_ctc/run.py                          # everything, embedded corpus
    python recipes/speech_ctc/run.py --stage 3 --stop-stage 5 # train, LM and decode only
    python recipes/speech_ctc/run.py --data /corpora/LibriSpeech data.format=librispeech
    python recipes/speech_ctc/run.py train.max_epochs=30 model.encoder.cell=lstm

Stages (the numbers of --stage and --stop-stage; a stage whose marker matches is skipped):
    0 corpus     generate the embedded corpus, or import --data, into exp/data
    1 manifests  validate each split; what is dropped, and why, in manifests/<split>.dropped.tsv
    2 features   feature stores per split, plus speed-perturbed and augmented training copies
    3 train      the BiLSTM/BiGRU + CTC model (every rank under torchrun); resumes if interrupted
    4 lm         word n-gram LM and lexicon from the training text (lm.py)
    5 decode     greedy, beam and LM decoding of dev and test; WER/CER overall and per engine
    6 export     the self-contained bundle: weights, LM, ONNX graph

The stages are methods of SpeechRecipe (stages.py); configs in conf/, headline figures in RESULTS.md.
"""

import sys
from pathlib import Path

if not __package__:  # run as a script: the checkout, not this folder, goes first on sys.path
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from pipeline.workflow.runner import Stage, StageDef, bind_stages, run_recipe
from recipes.speech_ctc.stages import DEFAULT_CONFIG, SpeechRecipe, SpeechRecipeConfig, format_table

# number, name, the method that runs it, the node of SpeechRecipe.inputs() whose hash marks it done
STAGES = (
    StageDef(0, "corpus", SpeechRecipe.stage_corpus, "data"),
    StageDef(1, "manifests", SpeechRecipe.stage_manifests, "data"),
    StageDef(2, "features", SpeechRecipe.stage_features, "features"),
    StageDef(3, "train", SpeechRecipe.stage_train, "train", collective=True),
    StageDef(4, "lm", SpeechRecipe.stage_lm, "lm"),
    StageDef(5, "decode", SpeechRecipe.stage_decode, "decode"),
    StageDef(6, "export", SpeechRecipe.stage_export, "decode"),
)


def build_stages(cfg: SpeechRecipeConfig) -> list[Stage]:
    """The stages of one run, bound to its config."""
    return bind_stages(SpeechRecipe(cfg), STAGES)


def main(argv: list[str] | None = None) -> dict:
    """Runs the recipe's command line; returns results.json's content."""
    return run_recipe(
        argv, description="seqrec speech CTC recipe", default_config=DEFAULT_CONFIG, config_cls=SpeechRecipeConfig,
        build_stages=build_stages, format_table=format_table,
    )


if __name__ == "__main__":
    main()
