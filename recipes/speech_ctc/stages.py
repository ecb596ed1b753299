"""The speech CTC recipe's config and stages; ``run.py`` lists the stages in order and runs them.

Everything a stage makes lives under ``exp_dir``; :meth:`SpeechRecipe.inputs` declares what
each stage reads, from which the markers' config hashes are derived.
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from data_prep.augment_audio import AugmentConfig
from data_prep.features import (
    FeatureConfig,
    compute_cmvn,
    copy_suffix,
    extract_features,
    get_extractor,
    upstream_identity,
)
from data_prep.importers.corpus import SpeechFormat, import_speech_corpus
from data_prep.manifest import read_manifest
from data_prep.store import FeatureStore
from data_prep.validate import validate_speech
from data_prep.whisper_upstream import WhisperUpstream
from pipeline.bundle import save_bundle
from pipeline.config import save_config, to_dict
from pipeline.data import (
    FeatureDataset,
    build_entries,
    collate_ctc,
    length_sorted_batches,
    pad_features,
)
from pipeline.decoding.beam import BeamSearchDecoder
from pipeline.inference import onnx_export
from pipeline.io_utils import atomic_write_bytes, exclusive_lock
from pipeline.models.ctc_model import CTCModel, CTCModelConfig
from pipeline.scoring import error_rates, write_errs, write_recogs
from pipeline.tokenizer import CharTokenizer
from pipeline.training.augment import SpecAugmentConfig
from pipeline.training.checkpoint import load_checkpoint
from pipeline.training.tasks import CTCTask
from pipeline.training.trainer import TrainConfig, Trainer
from pipeline.workflow.common import SPLITS, Recipe
from pipeline.workflow.runner import Inputs, derive_hashes, read_results, stage_footer
from recipes.speech_ctc.lm import LMConfig, build_lm, bundle_record, decode_all, lm_sentences, tune

log = logging.getLogger(__name__)

#: The configuration ``run.py`` uses without ``--config`` (``make demo``).
DEFAULT_CONFIG = Path(__file__).resolve().parent / "conf" / "default.yaml"


@dataclass(frozen=True)
class SpeechDataConfig:
    """Where the corpus comes from."""

    corpus: str = "embedded"  # "embedded", or a directory holding train/dev/test (see README)
    format: SpeechFormat = "auto"  # the importers' layouts (data_prep.importers.corpus.FORMATS)
    size: str = "default"  # embedded corpus size preset: tiny, small, default
    seed: int = 0
    min_duration: float = 0.2
    max_duration: float = 30.0


@dataclass(frozen=True)
class DecodeConfig:
    """Decoding of the dev and test sets after training."""

    beam_size: int = 1  # 1 = greedy; > 1 also scores torchaudio beam search
    splits: tuple[str, ...] = ("dev", "test")
    max_batch_frames: int = 60000


@dataclass(frozen=True)
class SpeechRecipeConfig:
    """Everything the speech recipe needs; loaded from YAML plus overrides."""

    exp_dir: str = "exp/speech_ctc"
    num_workers: int = 2
    data: SpeechDataConfig = field(default_factory=SpeechDataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    speed_perturb: tuple[float, ...] = ()  # extra training copies, e.g. [0.9, 1.1]
    augment_copies: int = 0  # extra training copies through `augment` (noise, rooms, codecs)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # Library defaults; the recipe's own values are in conf/default.yaml.
    model: CTCModelConfig = field(default_factory=CTCModelConfig)
    specaugment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    lm: LMConfig = field(default_factory=LMConfig)


class SpeechRecipe(Recipe):
    """Stage functions of the speech recipe; state lives on disk under ``exp_dir``."""

    kind = "speech"

    def __init__(self, cfg: SpeechRecipeConfig) -> None:
        super().__init__(cfg)
        self.tokenizer = CharTokenizer()
        if cfg.model.vocab_size != self.tokenizer.vocab_size:
            raise ValueError(
                f"model.vocab_size is {cfg.model.vocab_size} but the tokenizer has {self.tokenizer.vocab_size} tokens"
            )
        if cfg.model.input_dim != cfg.features.dim:
            raise ValueError(
                f"model.input_dim {cfg.model.input_dim} != {cfg.features.dim}, the dim of "
                f"features.kind {cfg.features.kind}"
            )
        if cfg.model.input_layers != cfg.features.layers:
            raise ValueError(
                f"model.input_layers {cfg.model.input_layers} != {cfg.features.layers}, the layers "
                f"per frame of features.upstream_layers {cfg.features.upstream_layers}"
            )

        blocks = cfg.model.upstream_blocks
        top = cfg.features._upstream_spec().num_layers if cfg.features.is_upstream else 0
        if blocks and (top <= blocks or cfg.features.upstream_layers != top - blocks):
            want = f"features.upstream_layers={top - blocks}" if top > blocks else (
                f"an upstream features.kind of more than {blocks} blocks")  # fmt: skip
            raise ValueError(
                f"model.upstream_blocks={blocks} trains the top {blocks} upstream blocks, so "
                f"the features must be the hidden state below them: set {want}"
            )

    # ------------------------------------------------------------------ stages, in run order
    def stage_corpus(self) -> dict[str, Any]:
        """Generates the embedded corpus, or imports a real one, into ``exp/data/<split>.jsonl``."""
        d = self.cfg.data
        if d.corpus == "embedded":
            # lazy: only the embedded corpus needs the generators (an imported corpus runs without data_prep.corpora)
            from data_prep.corpora.speech_corpus import (
                SIZES,
                corpus_cache_dir,
                generate_speech_corpus,
            )

            if d.size not in SIZES:
                raise ValueError(f"data.size must be one of {sorted(SIZES)}, got {d.size!r}")
            corpus_cfg = replace(SIZES[d.size], seed=d.seed)
            where = self._corpus_dir(corpus_cache_dir(corpus_cfg))
            with exclusive_lock(where / ".lock", lambda holder: RuntimeError(
                    f"{where}: another run is generating this corpus ({holder}); wait for it")):  # fmt: skip
                manifests = generate_speech_corpus(where, corpus_cfg, num_workers=self.cfg.num_workers)
        else:
            manifests = import_speech_corpus(Path(d.corpus), self.exp / "corpus", fmt=d.format)
        return {"corpus": {
            split: {"utterances": len(recs), "hours": round(sum(r["duration"] for r in recs) / 3600, 3)}
            for split, recs in self.adopt_corpus(manifests).items()
        }}  # fmt: skip

    def _corpus_dir(self, cache: Path | None) -> Path:
        """Where the embedded corpus is generated: ``exp/corpus`` made a link to its cache entry
        (shared by every run of the same corpus config, kept across runs), or ``exp/corpus``
        itself when the cache is off or the experiment already holds a corpus of its own."""
        link = self.exp / "corpus"
        if cache is None or (link.exists() and not link.is_symlink()):
            return link
        cache.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            target = Path(os.readlink(link))
            if target.resolve() == cache.resolve():
                return link
            if target.parent.resolve() != cache.parent.resolve():  # not a link this recipe made
                raise RuntimeError(f"{link}: a link to {target}, not to a corpus cache entry; move it away")
            link.unlink()  # the entry of another config: point at this one
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(cache, target_is_directory=True)
        log.info("corpus cache: %s", cache)
        return link

    def stage_manifests(self) -> dict[str, Any]:
        """Validates each split; dropped entries and reasons go to ``manifests/<split>.dropped.tsv``."""
        out = {}
        for split in SPLITS:
            records = read_manifest(self.raw_manifest(split), "speech")
            kept, dropped = validate_speech(
                records, min_duration=self.cfg.data.min_duration, max_duration=self.cfg.data.max_duration
            )
            out[split] = self.keep_split(split, kept, dropped)
        return {"manifests": out}

    def stage_features(self, copies_only: bool = False) -> dict[str, Any]:
        """Feature stores per split (plus speed-perturbed and augmented training copies).

        ``copies_only``: only the training copies, not the clean stores of any split.
        """
        out = {}
        jobs = [(s, 1.0, 0) for s in ("dev", "test")] + [("train", sp, k) for sp, k in self.train_views()]
        if copies_only:
            jobs = [job for job in jobs if job[1:] != (1.0, 0)]
        babble = self._babble_pool() if self.cfg.augment_copies else ()
        for split, speed, copy in jobs:
            fcfg = replace(self.cfg.features, speed=speed)
            summary = extract_features(
                self.manifest(split), self.store_dir(split, speed, copy), fcfg, num_workers=self.cfg.num_workers,
                augment=self.cfg.augment if copy else None, copy=copy, babble=babble if copy else (),
            )
            out[self.store_dir(split, speed, copy).name] = {
                "entries": summary.num_stored, "failed": summary.num_failed, "frames": summary.num_rows,
            }
        return {"features": out}

    def stage_train(self) -> dict[str, Any]:
        """Trains the CTC model; resumes from ``checkpoints/last.pt`` if a run was interrupted."""
        train = self.dataset("train", self.train_views())
        dev = self.dataset("dev")
        torch.manual_seed(self.cfg.train.seed)  # the initial weights, whatever ran before in this process
        model = self.build_model()
        if model.upstream_top is None:
            mean, std = compute_cmvn(FeatureStore(self.store_dir("train")))
            model.cmvn.set_stats(torch.from_numpy(mean), torch.from_numpy(std))
        else:  # no CMVN (the blocks end in their own LayerNorm); start from the upstream's blocks
            model.upstream_top.load_pretrained(WhisperUpstream.from_name(self.cfg.features.kind).encoder)
        trainer = Trainer(
            model,
            CTCTask(self.tokenizer, self.cfg.specaugment),
            train,
            train.lengths,
            collate_ctc,
            self.eval_loader(dev),
            self.cfg.train,
            self.exp,
            run_config=self.cfg,
            lineage=self.hashes()["lineage"],
        )
        trainer.resume_latest()  # refuses another run's checkpoints before config.yaml is rewritten
        if trainer.dist.is_main:
            save_config(self.cfg, self.exp / "config.yaml")
        result = trainer.fit(resume=False)
        return {
            "train": {
                "best_dev_cer": result.best_metric,
                "best_epoch": result.best_epoch,
                "final_checkpoint": str(result.final_checkpoint),
                "final_dev_cer": result.final_metric,
                "steps": result.steps,
                "skipped_steps": result.skipped_steps,
                "parameters": sum(p.numel() for p in model.parameters()),
                "train_utterances": len(train),
            }
        }

    def stage_lm(self) -> dict[str, Any]:
        """Builds the word LM and lexicon from training text into ``exp/lm`` (see lm.py)."""
        if not self.cfg.lm.enabled:
            return {"lm": {"enabled": False}}
        exclude = {t for split in ("dev", "test") for t in self.texts(split).values()}
        train = read_manifest(self.manifest("train"), "speech")
        sentences = lm_sentences(self.cfg.lm, train, exclude)
        return {"lm": build_lm(self.cfg.lm, sentences, self.tokenizer, self.lm_dir)}

    def stage_decode(self) -> dict[str, Any]:
        """Decodes dev/test: greedy, beam, and with the word LM (its weights tuned on dev).

        Writes recogs-/errs- files per split and decoding, WER/CER overall and per engine.
        """
        model = self.final_model()
        tok = self.tokenizer
        splits = {split: self.log_probs(model, split) for split in self.cfg.decode.splits}
        decoders: dict[str, Any] = {"greedy": None}
        if self.cfg.decode.beam_size > 1:
            decoders[f"beam{self.cfg.decode.beam_size}"] = BeamSearchDecoder(tok.tokens, beam_size=self.cfg.decode.beam_size)
        outputs: dict[str, Any] = {}
        if self.cfg.lm.enabled:
            if "dev" not in splits:
                raise ValueError("decoding with the LM needs the dev split (its weights are tuned on it)")
            ids, lps = splits["dev"]
            refs = [self.texts("dev")[i] for i in ids]
            outputs["lm_decoding"], decoders["lm"] = tune(self.cfg.lm, self.lm_dir, tok, lps, refs)
        metrics: dict[str, Any] = {}
        groups: dict[str, Any] = {}
        seen_engines = set(self.engines("train").values())
        for split, (ids, lps) in splits.items():
            texts, engines = self.texts(split), self.engines(split)
            refs = [texts[i] for i in ids]
            for name, decoder in decoders.items():
                t0 = time.perf_counter()
                hyps = decode_all(decoder, lps, tok)
                seconds = time.perf_counter() - t0
                rates = error_rates(refs, hyps)
                tag = split if name == "greedy" else f"{split}-{name}"
                write_recogs(self.exp / f"recogs-{tag}.txt", ids, refs, hyps)
                write_errs(self.exp / f"errs-{tag}.txt", ids, refs, hyps, rates)
                metrics[tag] = {"wer": round(rates["wer"], 4), "cer": round(rates["cer"], 4), "utterances": len(ids),
                                "search_seconds": round(seconds, 3)}  # fmt: skip
                log.info("%s: WER %.2f%%  CER %.2f%%", tag, 100 * rates["wer"], 100 * rates["cer"])
                if engines:
                    groups[tag] = engine_group_rates(ids, refs, hyps, engines, seen_engines)
        return {"metrics": metrics, "engine_metrics": groups, **outputs}

    def stage_export(self) -> dict[str, Any]:
        """Writes the self-contained bundle to ``exp/<recipe>/bundle``."""
        model = self.final_model()
        results = read_results(self.exp)
        features = replace(self.cfg.features, speed=1.0)
        config = {
            "kind": "speech_ctc",
            "model": to_dict(self.cfg.model),
            "features": to_dict(features),
            "tokens": self.tokenizer.to_list(),
            "weights": "model.safetensors",
            "metrics": results.get("metrics", {}),
        }
        if features.is_upstream:  # named and hashed, never copied (the package provides it)
            config["upstream"] = upstream_identity(features)
        files = {}
        if self.cfg.lm.enabled:
            config["lm"], files = bundle_record(self.lm_dir, self.cfg.lm.order, results["lm_decoding"], self.tokenizer)
        upstream = get_extractor(features).upstream if features.is_upstream else None
        graph = onnx_export.speech_onnx(model, upstream)  # what the torch-free engine runs
        atomic_write_bytes(self.exp / onnx_export.BUNDLE_FILE, graph)
        files[onnx_export.BUNDLE_FILE] = self.exp / onnx_export.BUNDLE_FILE
        config["onnx"] = onnx_export.speech_record(model, graph, upstream)
        save_bundle(self.bundle_dir, config, {"model.safetensors": model.state_dict()}, files)
        log.info("bundle written to %s", self.bundle_dir)
        return {"bundle": str(self.bundle_dir)}

    # ------------------------------------------------------------------ what each stage reads
    def inputs(self) -> dict[str, Inputs]:
        """What each stage reads; ``lineage`` is what the train stage trains on and what it trains
        (its checkpoints' identity). Manifests share the corpus's node, export the decode's."""
        c = self.cfg
        features = {"features": to_dict(c.features), "sp": list(c.speed_perturb)}
        if c.augment_copies:
            features["aug"] = [c.augment_copies, to_dict(c.augment)]
        if c.features.is_upstream:
            features["upstream"] = upstream_identity(c.features)
        lm = to_dict(c.lm)
        if not c.lm.extra_sources:  # a later field: left out when off, so earlier lm markers hold
            del lm["extra_sources"]
        return {
            "data": Inputs({"data": to_dict(c.data)}),
            "features": Inputs(features, after={"data": "data"}),
            "lineage": Inputs({"model": to_dict(c.model), "sa": to_dict(c.specaugment)}, after={"f": "features"}),
            "train": Inputs({"train": to_dict(c.train)}, after={"l": "lineage"}),
            "lm": Inputs({"lm": lm}, after={"data": "data"}),
            "decode": Inputs({"decode": to_dict(c.decode)}, after={"t": "train", "lm": "lm"}),
        }

    def hashes(self) -> dict[str, str]:
        """Each node's config hash (see :meth:`inputs` and :func:`derive_hashes`)."""
        return derive_hashes(self.inputs())

    # ------------------------------------------------------------------ paths and data
    def store_dir(self, split: str, speed: float = 1.0, copy: int = 0) -> Path:
        return self.exp / "feats" / (split + copy_suffix(speed, copy))

    def train_views(self) -> list[tuple[float, int]]:
        """(speed, augmented copy) of every training store: clean, speed-perturbed, augmented."""
        speeds = [(sp, 0) for sp in self.cfg.speed_perturb if sp != 1.0]
        return [(1.0, 0), *speeds, *((1.0, k) for k in range(1, self.cfg.augment_copies + 1))]

    @property
    def lm_dir(self) -> Path:
        return self.exp / "lm"

    def _babble_pool(self, size: int = 64) -> tuple[str, ...]:
        """Training utterances whose voices make the babble noise of augmented copies."""
        paths = sorted(r["audio_filepath"] for r in read_manifest(self.manifest("train"), "speech"))
        return tuple(sorted(random.Random(self.cfg.train.seed).sample(paths, min(size, len(paths)))))

    def texts(self, split: str) -> dict[str, str]:
        """Utterance id -> its transcript, from the split's validated manifest."""
        return {r["id"]: r["text"] for r in read_manifest(self.manifest(split), "speech")}

    def engines(self, split: str) -> dict[str, str]:
        """Utterance id -> its ``engine`` field (the synthesizer family), where records have one."""
        return {r["id"]: r["engine"] for r in read_manifest(self.manifest(split), "speech") if "engine" in r}

    def dataset(self, split: str, views: list[tuple[float, int]] | None = None) -> FeatureDataset:
        """A :class:`pipeline.data.FeatureDataset` over the split's stores with token targets.

        ``views``: (speed, augmented copy) of each store to include; default the clean one.
        """
        texts = self.texts(split)
        entries, lengths = [], []
        for speed, copy in views or [(1.0, 0)]:
            store = FeatureStore(self.store_dir(split, speed, copy))
            suffix = copy_suffix(speed, copy)

            def target(item_id: str, suffix: str = suffix) -> list[int] | None:
                base = item_id[: -len(suffix)] if suffix and item_id.endswith(suffix) else item_id
                text = texts.get(base)
                if text is None:
                    return None
                ids = self.tokenizer.encode(text)
                return ids or None

            e, n = build_entries(store, store.lengths, target)
            entries += e
            lengths += n
        return FeatureDataset(entries, lengths)

    def build_model(self) -> CTCModel:
        return CTCModel(self.cfg.model)

    def eval_loader(self, dataset: FeatureDataset) -> DataLoader:
        batches = length_sorted_batches(dataset.lengths, self.cfg.decode.max_batch_frames)
        return DataLoader(dataset, batch_sampler=batches, collate_fn=collate_ctc)

    def final_model(self) -> CTCModel:
        """The model from the checkpoint chosen at the end of training."""
        ckpt = read_results(self.exp).get("train", {}).get("final_checkpoint")
        path = Path(ckpt) if ckpt else self.exp / "checkpoints" / "best.pt"
        model = self.build_model()
        model.load_state_dict(load_checkpoint(path)["model"])
        return model.eval()

    @torch.inference_mode()
    def log_probs(
        self, model: CTCModel, split: str, store_dir: Path | None = None, suffix: str = ""
    ) -> tuple[list[str], list[torch.Tensor]]:
        """Utterance ids of a split's store (those with a transcript) and their (T_i, V) log-probs.

        ``store_dir``, ``suffix``: another store of the split's utterances, whose ids are theirs
        plus ``suffix`` (an augmented copy: ``-aug1``); the returned ids are the utterances' own.
        """
        texts = self.texts(split)
        store = FeatureStore(store_dir or self.store_dir(split))
        utt = {i: i[: len(i) - len(suffix)] for i in store.ids if i.endswith(suffix)}
        keys = [i for i in utt if utt[i] in texts]
        ids = [utt[i] for i in keys]
        feats = [torch.from_numpy(store.get(i).astype("float32")) for i in keys]
        out: list[torch.Tensor] = [torch.empty(0)] * len(ids)
        for batch in length_sorted_batches([f.size(0) for f in feats], self.cfg.decode.max_batch_frames):
            x, x_lens = pad_features([feats[b] for b in batch])
            log_probs, out_lens = model(x, x_lens)
            for k, b in enumerate(batch):
                out[b] = log_probs[k, : int(out_lens[k])].float()
        return ids, out


#: Name of the group of utterances whose engine never occurs in training.
UNSEEN = "unseen-engines"


def engine_group_rates(
    ids: list[str], refs: list[str], hyps: list[str], engines: dict[str, str], seen: set[str]
) -> dict[str, dict[str, Any]]:
    """WER/CER per engine, plus :data:`UNSEEN` (engines absent from ``seen``) when there are any.

    Args:
        ids, refs, hyps: Parallel lists of one decoded split.
        engines: Utterance id -> engine; ids without one are left out of every group.
        seen: Engines of the training set.

    Returns:
        Group name -> {"wer", "cer", "utterances", "seen"}, sorted by name, unseen group last.
    """
    members: dict[str, list[int]] = {}
    for i, utt in enumerate(ids):
        if utt in engines:
            members.setdefault(engines[utt], []).append(i)
            if engines[utt] not in seen:
                members.setdefault(UNSEEN, []).append(i)
    out = {}
    for name in sorted(members, key=lambda n: (n == UNSEEN, n)):
        idx = members[name]
        rates = error_rates([refs[i] for i in idx], [hyps[i] for i in idx])
        out[name] = {
            "wer": round(rates["wer"], 4), "cer": round(rates["cer"], 4), "utterances": len(idx),
            "seen": name != UNSEEN and name in seen,
        }
    return out


def format_table(results: dict[str, Any]) -> str:
    """The WER/CER table printed at the end of a run (rates shown in percent)."""
    lines = ["", "| split | decoding | utterances | WER % | CER % |", "|---|---|---:|---:|---:|"]
    for tag, m in results.get("metrics", {}).items():
        split, _, beam = tag.partition("-")
        lines.append(
            f"| {split} | {beam or 'greedy'} | {m['utterances']} | {100 * m['wer']:.2f} | {100 * m['cer']:.2f} |"
        )
    for tag, groups in results.get("engine_metrics", {}).items():
        lines += ["", f"{tag}, per engine (unseen = never heard in training):",
                  "| engine | in training | utterances | WER % | CER % |", "|---|---|---:|---:|---:|"]
        for name, m in groups.items():
            lines.append(
                f"| {name} | {'yes' if m['seen'] else 'no'} | {m['utterances']} | "
                f"{100 * m['wer']:.2f} | {100 * m['cer']:.2f} |"
            )
    return "\n".join(lines + stage_footer(results))
