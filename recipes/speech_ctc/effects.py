#!/usr/bin/env python3
"""Each training-data effect of the speech recipe on and off, at the same training budget.

A study over a finished speech run (its corpus, manifests, clean feature stores and model):

* **training conditions**: ``none`` is the finished run's model as it is. Each waveform
  effect of :data:`data_prep.augment_audio.EFFECTS` trains a model on the clean training set
  plus one copy through that effect alone (probability 1); ``speed`` adds 0.9x and 1.1x copies;
  ``no_specaug`` trains on the clean set with SpecAugment off; ``repeat`` is ``none`` trained
  again from another seed, the yardstick of run-to-run noise. Every model gets the same number
  of updates as the finished run: its epochs are divided by the number of training copies.
* **test conditions**: the clean test split, and one copy of it through each waveform effect
  alone, drawn from the test utterances' own seeds, with rooms from another RIR bank
  (``rir_bank_seed`` 1) and babble from test voices, so no test corruption is a training one.

Every model decodes every test condition greedily; the unseen-engine WER of each pair goes to
``<out>/effects.json`` and the table :func:`format_effects`.

    python recipes/speech_ctc/effects.py --base exp/demo --out exp/effects           # everything
    python recipes/speech_ctc/effects.py --base exp/demo --out exp/effects --only corrupt
    python recipes/speech_ctc/effects.py --base exp/demo --out exp/effects --only train --conditions reverb codec
    python recipes/speech_ctc/effects.py --base exp/demo --out exp/effects --only score

Steps: ``corrupt`` writes the test split through each effect, ``train`` trains one model per
condition (resumable; a finished one is skipped), ``score`` decodes every test copy with every
trained model and prints the table (also ``<out>/effects.json`` and ``<out>/effects.md``).
``--updates 2`` trains every condition twice as long as the base run (use its own ``--out``).
Run two ``--only train`` processes with different ``--conditions`` to use two cores
(``--threads 1`` each).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: the checkout, not this folder, goes first on sys.path
    sys.path[0] = str(Path(__file__).resolve().parents[2])

import torch

from data_prep.augment_audio import EFFECTS, AugmentConfig
from data_prep.features import copy_suffix, extract_features
from data_prep.manifest import read_manifest
from pipeline.config import load_config
from pipeline.io_utils import atomic_write_text
from pipeline.scoring import error_rates
from pipeline.workflow.runner import setup_logging
from recipes.speech_ctc.lm import decode_all
from recipes.speech_ctc.stages import UNSEEN, SpeechRecipe, SpeechRecipeConfig, engine_group_rates

log = logging.getLogger(__name__)

#: Seed of the test split's room bank: rooms that no training copy was convolved with.
TEST_RIR_BANK_SEED = 1
#: Speeds of the ``speed`` condition (the usual Kaldi/ESPnet triple, with the clean copy).
SPEEDS = (0.9, 1.1)


def conditions() -> tuple[str, ...]:
    """Every training condition, ``none`` first and ``repeat`` (its run-to-run noise) last."""
    return ("none", *EFFECTS, "speed", "no_specaug", "repeat")


def only_effect(base: AugmentConfig, effect: str, **changes: Any) -> AugmentConfig:
    """``base`` with ``effect`` at probability 1 and every other effect off."""
    if effect not in EFFECTS:
        raise ValueError(f"unknown effect {effect!r}; expected one of {EFFECTS}")
    probs = {f"{e}_prob": 1.0 if e == effect else 0.0 for e in EFFECTS}
    return replace(base, **probs, **changes)


def condition_config(
    base_cfg: SpeechRecipeConfig, name: str, exp_dir: Path, updates: float = 1.0
) -> SpeechRecipeConfig:
    """The recipe config of training condition ``name`` (not ``none``), in ``exp_dir``.

    The epochs are the base run's times ``updates``, divided by the number of training copies
    (rounded): at ``updates`` 1 every condition makes about as many updates as the base run.
    """
    epochs = base_cfg.train.max_epochs
    cfg = replace(base_cfg, exp_dir=str(exp_dir), speed_perturb=(), augment_copies=0)
    if name in EFFECTS:
        cfg = replace(cfg, augment_copies=1, augment=only_effect(base_cfg.augment, name))
        copies = 2
    elif name == "speed":
        cfg = replace(cfg, speed_perturb=SPEEDS)
        copies = 1 + len(SPEEDS)
    elif name == "no_specaug":
        cfg = replace(cfg, specaugment=replace(cfg.specaugment, freq_masks=0, time_masks=0))
        copies = 1
    elif name == "repeat":  # the base run again from another seed: how far apart two runs land
        cfg = replace(cfg, train=replace(cfg.train, seed=cfg.train.seed + 1))
        copies = 1
    else:
        raise ValueError(f"unknown training condition {name!r}; expected one of {conditions()[1:]}")
    return replace(cfg, train=replace(cfg.train, max_epochs=max(1, round(epochs * updates / copies))))


def base_config(base: Path) -> SpeechRecipeConfig:
    """The finished run's resolved config (``<base>/config.yaml``)."""
    path = Path(base) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config.yaml; is {base} a finished speech run?")
    return replace(load_config(SpeechRecipeConfig, path), exp_dir=str(base))


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target.resolve(), link.parent.resolve()))


def link_base(base: Path, child: Path) -> None:
    """Gives ``child`` the base run's corpus, manifests and clean stores (as links)."""
    for name in ("corpus", "data", "manifests"):
        if (base / name).exists():
            _link(base / name, child / name)
    for split in ("train", "dev", "test"):
        _link(base / "feats" / split, child / "feats" / split)


def train_condition(
    base: Path, out: Path, name: str, threads: int = 0, updates: float = 1.0
) -> dict[str, Any]:
    """Builds the condition's extra training stores and trains its model (resumable).

    ``threads``: torch threads and feature workers (0: the base run's); ``updates``: see
    :func:`condition_config`. Returns the feature and train stages' summaries, also written to
    ``<out>/<name>/results.json``.
    """
    child = Path(out) / name
    cfg = condition_config(base_config(base), name, child, updates)
    if threads:
        cfg = replace(cfg, num_workers=threads, train=replace(cfg.train, num_threads=threads))
    link_base(Path(base), child)
    recipe = SpeechRecipe(cfg)
    results_path = child / "results.json"
    if results_path.is_file():
        log.info("%s: trained already (%s)", name, results_path)
        return json.loads(results_path.read_text())
    features = recipe.stage_features(copies_only=True)  # the clean stores are the base run's
    summary = {**features, **recipe.stage_train()}
    atomic_write_text(results_path, json.dumps(summary, indent=2))
    return summary


def corrupt_test(
    base: Path, out: Path, effects: tuple[str, ...] = EFFECTS, workers: int = 0
) -> dict[str, Path]:
    """One feature store of the test split per effect, that effect alone at probability 1.

    ``workers``: feature workers (0: the base run's). Returns effect -> store directory
    (``<out>/test_feats/<effect>``; ids end in ``-aug1``).
    """
    cfg = base_config(base)
    recipe = SpeechRecipe(cfg)
    manifest = recipe.manifest("test")
    pool = tuple(sorted(r["audio_filepath"] for r in read_manifest(manifest, "speech")))
    stores = {}
    for effect in effects:
        aug = only_effect(cfg.augment, effect, rir_bank_seed=TEST_RIR_BANK_SEED)
        store = Path(out) / "test_feats" / effect
        summary = extract_features(manifest, store, replace(cfg.features, speed=1.0), num_workers=workers or cfg.num_workers,
                                   augment=aug, copy=1, babble=pool)
        if summary.num_failed:
            log.warning("test through %s: %d files failed (see %s)", effect, summary.num_failed, store)
        stores[effect] = store
    return stores


@torch.inference_mode()
def score_model(recipe: SpeechRecipe, stores: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Greedy WER/CER of the recipe's final model on each test store, per engine group.

    Returns test condition -> engine group -> {"wer", "cer", "utterances", "seen"}, plus
    ``"all"`` for the whole split.
    """
    model = recipe.final_model()
    texts, engines = recipe.texts("test"), recipe.engines("test")
    seen = set(recipe.engines("train").values())
    out = {}
    for condition, store in stores.items():
        ids, lps = recipe.log_probs(model, "test", store, "" if condition == "clean" else copy_suffix(1.0, 1))
        refs = [texts[i] for i in ids]
        hyps = decode_all(None, lps, recipe.tokenizer)
        groups = engine_group_rates(ids, refs, hyps, engines, seen)
        rates = error_rates(refs, hyps)
        groups["all"] = {"wer": round(rates["wer"], 4), "cer": round(rates["cer"], 4), "utterances": len(ids),
                         "seen": False}
        out[condition] = groups
    return out


def score_all(
    base: Path, out: Path, names: tuple[str, ...] | None = None, updates: float = 1.0
) -> dict[str, Any]:
    """Scores every trained condition on the clean and corrupted test stores; writes
    ``<out>/effects.json`` and returns its content: {"conditions": {train: {test: groups}}}."""
    base, out = Path(base), Path(out)
    base_cfg = base_config(base)
    stores = {"clean": SpeechRecipe(base_cfg).store_dir("test")}
    stores.update({e: out / "test_feats" / e for e in EFFECTS if (out / "test_feats" / e).is_dir()})
    results: dict[str, Any] = {"base": str(base), "epochs": {}, "conditions": {}}
    for name in names or conditions():
        if name == "none":
            cfg = base_cfg
        else:
            if not (out / name / "results.json").is_file():
                log.info("%s: not trained, skipped", name)
                continue
            cfg = condition_config(base_cfg, name, out / name, updates)
        results["epochs"][name] = cfg.train.max_epochs
        results["conditions"][name] = score_model(SpeechRecipe(cfg), stores)
        log.info("%s: unseen-engine WER %s", name, {
            t: g.get(UNSEEN, g["all"])["wer"] for t, g in results["conditions"][name].items()})
    atomic_write_text(out / "effects.json", json.dumps(results, indent=2))
    return results


def format_effects(results: dict[str, Any], group: str = UNSEEN) -> str:
    """Markdown table: training condition x test condition, ``group``'s WER % (CER %)."""
    rows = results["conditions"]
    if not rows:
        return "(no condition scored)"
    tests = list(next(iter(rows.values())))
    lines = [f"{group} WER % (CER %); rows: training, columns: test audio",
             "| training | epochs | " + " | ".join(tests) + " | mean corrupted |",
             "|---|---:|" + "---:|" * (len(tests) + 1)]
    for name, by_test in rows.items():
        cells, corrupted = [], []
        for t in tests:
            m = by_test[t].get(group, by_test[t]["all"])
            cells.append(f"{100 * m['wer']:.1f} ({100 * m['cer']:.1f})")
            if t != "clean":
                corrupted.append(m["wer"])
        mean = f"{100 * sum(corrupted) / len(corrupted):.1f}" if corrupted else "-"
        lines.append(f"| {name} | {results['epochs'][name]} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The study's command line (see the module docstring); returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, required=True, help="a finished speech recipe run (exp dir)")
    p.add_argument("--out", type=Path, required=True, help="where the study's models, stores and table go")
    p.add_argument("--only", choices=("corrupt", "train", "score"), action="append",
                   help="run these steps only (repeatable); default all three")
    p.add_argument("--conditions", nargs="+", choices=conditions(), default=list(conditions()),
                   help="training conditions (default all; 'none' is the base run's model)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the config's)")
    p.add_argument("--updates", type=float, default=1.0,
                   help="training updates per condition, as a multiple of the base run's (default 1)")
    args = p.parse_args(argv)
    steps = args.only or ["corrupt", "train", "score"]
    args.out.mkdir(parents=True, exist_ok=True)
    setup_logging(args.out / "log")
    if args.threads:
        torch.set_num_threads(args.threads)
    if "corrupt" in steps:
        corrupt_test(args.base, args.out, workers=args.threads)
    if "train" in steps:
        for name in args.conditions:
            if name != "none":
                train_condition(args.base, args.out, name, threads=args.threads, updates=args.updates)
    if "score" in steps:
        table = format_effects(score_all(args.base, args.out, tuple(args.conditions), args.updates))
        (args.out / "effects.md").write_text(table + "\n")
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
