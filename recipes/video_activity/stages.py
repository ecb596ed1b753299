"""The video activity recipe's config and stages; ``run.py`` lists the stages in order and runs them.

Everything a stage makes lives under ``exp_dir``; :meth:`VideoRecipe.inputs` declares what
each stage reads, from which the markers' config hashes are derived.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors
from torch.utils.data import DataLoader

from data_prep.corpora.video_corpus import (
    CLASSES,
    HELDOUT_MOTIONS,
    SIZES,
    clip_keypoints,
    free_pose_keypoints,
    generate_video_corpus,
    pose_flip_map,
    pose_layout,
    pose_targets,
    write_free_pose_clips,
)
from data_prep.frame_embed import (
    BackboneConfig,
    EmbedJob,
    build_embedder,
    initial_weights,
)
from data_prep.importers.corpus import VideoFormat, import_video_corpus
from data_prep.importers.video import validate_video
from data_prep.manifest import read_manifest
from data_prep.store import FeatureStore, build_store
from pipeline.bundle import save_bundle
from pipeline.config import config_hash, save_config, to_dict
from pipeline.data import FeatureDataset, build_entries, collate_labels, length_sorted_batches
from pipeline.io_utils import atomic_write_bytes, atomic_write_json, file_sha256
from pipeline.metrics import classification_metrics, save_confusion_png
from pipeline.models.classifier import ClassifierConfig, SequenceClassifier
from pipeline.models.encoder import EncoderConfig
from pipeline.models.mean_pool import MeanPoolClassifier, MeanPoolConfig
from pipeline.pretrained.pose_backbone import (
    POSE_WEIGHTS,
    PoseBackboneError,
    pose_backbone_card,
    pose_backbone_weights,
)
from pipeline.training.backbone_fit import BackboneFitConfig, FitClip, fit_backbone
from pipeline.training.checkpoint import load_checkpoint
from pipeline.training.frame_augment import PoseLayout
from pipeline.training.tasks import ClassificationTask
from pipeline.training.trainer import TrainConfig, Trainer
from pipeline.workflow.common import SPLITS, Recipe
from pipeline.workflow.runner import Inputs, derive_hashes, read_results, stage_footer

log = logging.getLogger(__name__)

#: The configuration ``run.py`` uses without ``--config`` (``make demo``).
DEFAULT_CONFIG = Path(__file__).resolve().parent / "conf" / "default.yaml"


@dataclass(frozen=True)
class VideoDataConfig:
    """Where the clips come from."""

    corpus: str = "embedded"  # "embedded", or a directory (see README)
    format: VideoFormat = "auto"  # the importers' layouts (data_prep.importers.corpus.VIDEO_FORMATS)
    size: str = "default"  # embedded corpus size preset: tiny, default, large
    train_per_class: int = 0  # embedded corpus: train clips per class; 0 = the preset's
    styles: tuple[str, ...] = ("stick", "outline", "silhouette", "blocky")  # embedded: train/dev/test looks
    heldout_styles: tuple[str, ...] = ("filled",)  # embedded: looks only the test split has
    heldout_motions: tuple[str, ...] = HELDOUT_MOTIONS  # embedded: ways of acting only the test split has (the headline)
    free_pose_clips: int = 0  # embedded: clips of no action (random poses) that only the backbone's pose fit sees
    seed: int = 0
    ucf101_split: int = 1  # official split (1-3) of UCF101 and of HMDB51
    dev_fraction: float = 0.1  # taken from train when a corpus has no dev split


@dataclass(frozen=True)
class VideoRecipeConfig:
    """Everything the video recipe needs; loaded from YAML plus overrides."""

    exp_dir: str = "exp/video_activity"
    num_workers: int = 2
    data: VideoDataConfig = field(default_factory=VideoDataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    backbone_fit: BackboneFitConfig = field(default_factory=BackboneFitConfig)
    train_views: int = 2  # random-offset TSN views per training clip (plus the centred one)
    train_speed: tuple[float, float] = (1.0, 1.0)  # playback speed range of the training views (log-uniform)
    feature_noise: float = 0.0  # std of Gaussian noise on training embeddings (see ClassificationTask)
    model: ClassifierConfig = field(
        default_factory=lambda: ClassifierConfig(encoder=EncoderConfig(cell="lstm", hidden_size=128, num_layers=1))
    )
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(max_epochs=30, lr=3e-3, warmup_steps=20, max_frames=2048, max_batch_size=32)
    )
    ablation_train: TrainConfig = field(
        default_factory=lambda: TrainConfig(max_epochs=30, lr=3e-3, warmup_steps=20, max_frames=2048, max_batch_size=32)
    )

    def __post_init__(self) -> None:
        lo, hi = self.train_speed
        if not 0.25 <= lo <= hi <= 4.0:
            raise ValueError(f"train_speed must be [low, high] with 0.25 <= low <= high <= 4, got {list(self.train_speed)}")


class VideoRecipe(Recipe):
    """Stage functions of the video recipe; state lives on disk under ``exp_dir``."""

    kind = "video"

    # ------------------------------------------------------------------ stages, in run order
    def stage_corpus(self) -> dict[str, Any]:
        """Renders the embedded corpus, or imports a real one, into ``exp/data/<split>.jsonl``."""
        d = self.cfg.data
        if d.corpus == "embedded":
            manifests = generate_video_corpus(self.exp / "corpus", self.corpus_config(), num_workers=self.cfg.num_workers)
        else:
            manifests = import_video_corpus(
                Path(d.corpus), self.exp / "corpus", fmt=d.format, ucf101_split=d.ucf101_split,
                dev_fraction=d.dev_fraction, seed=d.seed, num_workers=self.cfg.num_workers,
            )
        return {"corpus": {split: {"clips": len(recs)} for split, recs in self.adopt_corpus(manifests).items()}}

    def stage_manifests(self) -> dict[str, Any]:
        """Validates clips; fixes the label set (sorted names, or the embedded class order)."""
        out, seen = {}, set()
        for split in SPLITS:
            kept, dropped = validate_video(
                read_manifest(self.raw_manifest(split), "video"), num_workers=self.cfg.num_workers
            )
            out[split] = self.keep_split(split, kept, [(r.get("id", "?"), why) for r, why in dropped])
            seen.update(r["label"] for r in kept)
        if self.cfg.data.corpus == "embedded":
            labels = list(CLASSES)
        else:
            labels = sorted(seen)
        atomic_write_json(self.exp / "manifests" / "labels.json", labels)
        return {"manifests": out, "labels": labels}

    def stage_backbone(self) -> dict[str, Any]:
        """Fits the CNN to training frames (or keeps its initial weights) and saves it.

        ``backbone.weights: pose`` starts from the shipped pose backbone
        (:mod:`pipeline.pretrained.pose_backbone`), whose pose head is kept when nothing is fitted.
        """
        b = self.cfg.backbone
        torch.manual_seed(self.cfg.data.seed)  # a random-init backbone starts the same every run
        weights = self._weights_file()
        embedder = build_embedder(b.name, weights)  # keeps a fitted pose head when it has one
        # what the backbone starts from (weights, file, sha256), hashed once here for the bundle
        init = initial_weights(b.name, weights)
        if b.weights == POSE_WEIGHTS:
            init = {**init, "weights": POSE_WEIGHTS, "source": "seqrec pose backbone " + str(pose_backbone_card()["date"])}
        info: dict[str, Any] = {"name": b.name, "init": init, "dim": embedder.backbone_dim}
        if self.cfg.backbone_fit.epochs > 0:  # the fit makes its own head
            fitted = fit_backbone(
                embedder.backbone, embedder.backbone_dim, self.fit_clips("train"), self.fit_clips("dev"),
                num_classes=len(self.labels()),
                backbone=b, cfg=self.cfg.backbone_fit, num_workers=self.cfg.num_workers,
                num_threads=self.cfg.train.num_threads, flip_map=self._pose_flip_map(), pose_layout=self._pose_layout(),
                checkpoint=self.backbone_checkpoint, identity=self.hashes()["backbone"],
            )
            embedder = fitted.pop("embedder")
            info.update(fitted)
        info["embedding_dim"] = embedder.dim
        atomic_write_bytes(self.backbone_file, save_safetensors(embedder.export_state()))
        self.backbone_checkpoint.unlink(missing_ok=True)  # the fitted backbone is saved
        return {"backbone": info}

    def stage_embed(self) -> dict[str, Any]:
        """Frame-embedding stores: centred views of every split plus random training views."""
        out = {}
        jobs = [(s, -1) for s in SPLITS] + [("train", v) for v in range(self.cfg.train_views)]
        weights_digest = file_sha256(self.backbone_file)[:16]
        for split, view in jobs:
            items = [(r["id"], r["video_filepath"]) for r in self.records(split)]
            speed = self._speed_key() if view >= 0 else {}
            job = EmbedJob(self.cfg.backbone, str(self.backbone_file.resolve()), train_view=view, seed=self.cfg.data.seed,
                           speed=tuple(speed.get("speed", (1.0, 1.0))))
            h = config_hash(
                {"backbone": to_dict(self.cfg.backbone), "weights": weights_digest, "view": view, "items": items, **speed}
            )
            summary = build_store(
                self.store_dir(split, view), items, job, config_hash=h, num_workers=self.cfg.num_workers,
                chunk_size=32, desc=f"embed {split}{'' if view < 0 else f' view {view}'}",
            )
            out[self.store_dir(split, view).name] = {"clips": summary.num_stored, "failed": summary.num_failed}
        return {"embeddings": out}

    def stage_train(self) -> dict[str, Any]:
        """Trains the BiLSTM classifier on the stored embeddings."""
        torch.manual_seed(self.cfg.train.seed)  # the initial weights, whatever ran before in this process
        return {"train": self._train(self.build_model(), self.cfg.train, "model")}

    def stage_ablation(self) -> dict[str, Any]:
        """Trains the order-blind baseline (mean of the frames + linear) on the same embeddings."""
        torch.manual_seed(self.cfg.ablation_train.seed)
        return {"train_ablation": self._train(self.build_ablation(), self.cfg.ablation_train, "ablation")}

    def stage_evaluate(self) -> dict[str, Any]:
        """Top-1/top-5/mean-class accuracy for the model and the ablation on each evaluation
        set (:meth:`eval_sets`), confusion PNGs, and top-1 per rendering style."""
        labels = self.labels()
        metrics: dict[str, Any] = {}
        styles: dict[str, dict[str, Any]] = {}
        for name, model in (("model", self._load(self.build_model(), "train")),
                            ("ablation", self._load(self.build_ablation(), "train_ablation"))):
            for set_name, (split, ids) in self.eval_sets().items():
                scores, truth = self._scores(model, split, ids)
                m = classification_metrics(scores, truth, len(labels))
                confusion = m.pop("confusion")
                tag = f"{set_name}" if name == "model" else f"{set_name}-ablation"
                save_confusion_png(confusion, labels, self.exp / f"confusion-{tag}.png", title=f"{name}, {set_name}")
                atomic_write_json(self.exp / f"confusion-{tag}.json", {"labels": labels, "matrix": confusion})
                metrics[tag] = {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}
                log.info("%s %s: top-1 %.2f%%, top-5 %.2f%%, mean class %.2f%%", name, set_name,
                         100 * m["top1"], 100 * m["top5"], 100 * m["mean_class_accuracy"])
            for style, ids in self.style_sets().items():
                scores, truth = self._scores(model, "test", ids)
                row = styles.setdefault(style, {"clips": len(truth), "heldout": style in self.cfg.data.heldout_styles})
                row["top1" if name == "model" else "ablation_top1"] = round(float((scores.argmax(-1) == truth).mean()), 4)
        return {"metrics": metrics, "styles": styles}

    def stage_export(self) -> dict[str, Any]:
        """Bundle: classifier + fitted backbone + preprocessing, self-contained."""
        model = self._load(self.build_model(), "train")
        results = read_results(self.exp)
        config = {
            "kind": "video_classifier",
            "model": to_dict(model.cfg),
            "backbone": {**to_dict(self.cfg.backbone), "weights": "backbone.safetensors"},
            "backbone_init": results["backbone"]["init"],  # what the fitted backbone started from
            "labels": self.labels(),
            "weights": "model.safetensors",
            "backbone_weights": "backbone.safetensors",
            "metrics": results.get("metrics", {}),
        }
        save_bundle(self.bundle_dir, config, {
            "model.safetensors": model.state_dict(),
            "backbone.safetensors": load_file(str(self.backbone_file)),
        })
        return {"bundle": str(self.bundle_dir)}

    # ------------------------------------------------------------------ what each stage reads
    def inputs(self) -> dict[str, Inputs]:
        """What each stage reads; the ``lineage-*`` nodes say what each train stage trains on and
        what it trains (its checkpoints' identity). Manifests share the corpus's node, export the
        evaluation's."""
        c = self.cfg
        return {
            "data": Inputs({"data": {k: v for k, v in to_dict(c.data).items() if k != "free_pose_clips"}}),
            "backbone": Inputs(
                {"backbone": to_dict(c.backbone), "fit": to_dict(c.backbone_fit), **self._free_key(), **self._pose_key()},
                after={"d": "data"},
            ),
            "embed": Inputs({"views": c.train_views, **self._speed_key()}, after={"b": "backbone"}),
            "lineage-model": Inputs({"model": to_dict(c.model), "noise": c.feature_noise}, after={"e": "embed"}),
            "lineage-ablation": Inputs({"ablation": "mean-pool", "noise": c.feature_noise}, after={"e": "embed"}),
            "train": Inputs({"train": to_dict(c.train)}, after={"l": "lineage-model"}),
            "ablation": Inputs({"train": to_dict(c.ablation_train)}, after={"l": "lineage-ablation"}),
            "evaluate": Inputs({}, after={"t": "train", "a": "ablation"}),
        }

    def hashes(self) -> dict[str, str]:
        """Each node's config hash (see :meth:`inputs` and :func:`derive_hashes`)."""
        return derive_hashes(self.inputs())

    def _free_key(self) -> dict[str, int]:
        """``{"free_pose_clips": n}`` for the backbone's hash when the fit sees free-pose clips
        (only the fit reads them); empty without, so that earlier experiments keep their hashes."""
        n = self.cfg.data.free_pose_clips
        return {"free_pose_clips": n} if n else {}

    def _pose_key(self) -> dict[str, str]:
        """``{"pose_sha256": ...}`` with the shipped pose backbone: a reshipped one is another
        start, so the stages after it run again."""
        if self.cfg.backbone.weights != POSE_WEIGHTS:
            return {}
        self._refuse_pose_for_real_videos()  # here, as the stages are bound: before any stage runs
        return {"pose_sha256": str(pose_backbone_card().get("sha256"))}

    def _refuse_pose_for_real_videos(self) -> None:
        """The shipped pose backbone reads the embedded corpus's drawn figures only."""
        if self.cfg.data.corpus != "embedded":
            raise PoseBackboneError(
                f"backbone.weights={POSE_WEIGHTS} reads the embedded corpus's drawn figures, not {self.cfg.data.corpus}; "
                "for real videos add backbone.weights=imagenet backbone_fit.epochs=6"
            )

    def _weights_file(self) -> str:
        """``backbone.weights`` as :func:`build_embedder` takes it: the shipped pose backbone's
        file for ``pose`` (checked to fit this run: sizes, held-out sets, sha256), else as it is."""
        b, d = self.cfg.backbone, self.cfg.data
        if b.weights != POSE_WEIGHTS:
            return b.weights
        self._refuse_pose_for_real_videos()
        return str(pose_backbone_weights(
            b.name, b.frame_size, b.short_side, heldout_styles=tuple(d.heldout_styles), heldout_motions=tuple(d.heldout_motions)
        ))

    def _speed_key(self) -> dict[str, list[float]]:
        """``{"speed": [low, high]}`` for hashes when the training views change speed; empty at
        the default, so that experiments from before the option keep their hashes."""
        speed = [float(v) for v in self.cfg.train_speed]
        return {} if speed == [1.0, 1.0] else {"speed": speed}

    # ------------------------------------------------------------------ paths and data
    def store_dir(self, split: str, view: int = -1) -> Path:
        return self.exp / "embeddings" / (split if view < 0 else f"{split}-view{view}")

    @property
    def backbone_file(self) -> Path:
        return self.exp / "backbone" / "backbone.safetensors"

    @property
    def backbone_checkpoint(self) -> Path:
        """The backbone fit's state after its last finished epoch (a killed fit resumes there)."""
        return self.exp / "backbone" / "fit-checkpoint.pt"

    def labels(self) -> list[str]:
        return json.loads((self.exp / "manifests" / "labels.json").read_text())

    def records(self, split: str) -> list[dict]:
        return read_manifest(self.manifest(split), "video")

    def corpus_config(self):
        """The embedded corpus's ``VideoCorpusConfig``: the size preset with this config's seed
        and train size."""

        d = self.cfg.data
        if d.size not in SIZES:
            raise ValueError(f"data.size must be one of {sorted(SIZES)}, got {d.size!r}")
        preset = SIZES[d.size]
        return replace(
            preset, seed=d.seed, train_per_class=d.train_per_class or preset.train_per_class,
            styles=tuple(d.styles), heldout_styles=tuple(d.heldout_styles), heldout_motions=tuple(d.heldout_motions),
        )

    def _pose_flip_map(self):
        """How the embedded corpus's pose targets mirror (None for other corpora)."""
        if self.cfg.data.corpus != "embedded":
            return None

        return pose_flip_map()

    def _pose_layout(self) -> PoseLayout | None:
        """Which pose-target values are frame positions and sizes (None for other corpora)."""
        if self.cfg.data.corpus != "embedded":
            return None

        positions, sizes = pose_layout()
        return PoseLayout(positions, sizes)

    def fit_clips(self, split: str) -> list[FitClip]:
        """Clips for backbone fitting; the embedded corpus adds each frame's pose (from the
        generator's joint positions, see :func:`data_prep.corpora.video_corpus.pose_targets`) as targets."""
        labels = self.labels()
        corpus_cfg = self.corpus_config() if self.cfg.data.corpus == "embedded" else None
        clips = []
        for r in self.records(split):
            targets = None
            if corpus_cfg is not None and "seed" in r:  # the embedded corpus: its own module
                way = str(r.get("motion", "")).partition(".")[2]
                xy = clip_keypoints(r["label"], int(r["seed"]), corpus_cfg, r.get("style", "stick"), way)  # (T, J, 2)
                targets = pose_targets(xy, corpus_cfg.frame_size)  # (T, 2J + 1)
            clips.append(FitClip(r["video_filepath"], labels.index(r["label"]), targets))
        if corpus_cfg is not None and split == "train" and self.cfg.data.free_pose_clips > 0:
            # poses beyond the actions' teach the CNN to read a body, not this corpus's motions
            free = write_free_pose_clips(
                self.exp / "corpus" / "free", corpus_cfg, self.cfg.data.free_pose_clips, num_workers=self.cfg.num_workers
            )
            for path, style, seed in free:
                targets = pose_targets(free_pose_keypoints(seed, corpus_cfg, style), corpus_cfg.frame_size)
                clips.append(FitClip(str(path), -1, targets))  # no label: pose targets only
        return clips

    def dataset(self, split: str, views: tuple[int, ...] = (-1,), ids: set[str] | None = None) -> FeatureDataset:
        """The split's stored embeddings with label targets; only the clips in ``ids`` if given."""
        labels = self.labels()
        label_of = {r["id"]: labels.index(r["label"]) for r in self.records(split)}
        entries, lengths = [], []
        for view in views:
            store = FeatureStore(self.store_dir(split, view))
            e, n = build_entries(store, store.lengths, label_of.get)
            keep = [k for k, (st, i, _) in enumerate(e) if ids is None or st.ids[i] in ids]
            entries += [e[k] for k in keep]
            lengths += [n[k] for k in keep]
        return FeatureDataset(entries, lengths)

    def eval_sets(self) -> dict[str, tuple[str, set[str] | None]]:
        """What evaluation scores: ``name -> (split, clip ids or None for all)``.

        ``dev``, and ``test``. When the test split holds held-out clips (the embedded corpus),
        ``test`` is the clips in seen styles and seen ways of acting, ``heldout`` those in a
        held-out style and ``heldout_motion`` those performed in a held-out way.
        """
        test = self.records("test")
        embedded = self.cfg.data.corpus == "embedded"
        styles = set(self.cfg.data.heldout_styles) if embedded else set()
        motions = set(self.cfg.data.heldout_motions) if embedded else set()
        held = {"heldout": {r["id"] for r in test if r.get("style") in styles},
                "heldout_motion": {r["id"] for r in test if r.get("motion") in motions}}
        sets: dict[str, tuple[str, set[str] | None]] = {"dev": ("dev", None)}
        if not any(held.values()):
            return {**sets, "test": ("test", None)}
        sets["test"] = ("test", {r["id"] for r in test} - held["heldout"] - held["heldout_motion"])
        return {**sets, **{name: ("test", ids) for name, ids in held.items() if ids}}

    def style_sets(self) -> dict[str, set[str]]:
        """Test clip ids by rendering style, of the clips performed in a seen way (empty for
        corpora without styles)."""
        out: dict[str, set[str]] = {}
        for r in self.records("test"):
            if "style" in r and r.get("motion") not in self.cfg.data.heldout_motions:
                out.setdefault(str(r["style"]), set()).add(r["id"])
        return out

    def _loader(self, dataset: FeatureDataset) -> DataLoader:
        return DataLoader(dataset, batch_sampler=length_sorted_batches(dataset.lengths, 8192), collate_fn=collate_labels)

    def _embedding_dim(self) -> int:
        return FeatureStore(self.store_dir("train")).dim

    def build_model(self) -> SequenceClassifier:
        return SequenceClassifier(
            replace(self.cfg.model, input_dim=self._embedding_dim(), num_classes=len(self.labels()))
        )

    def build_ablation(self) -> MeanPoolClassifier:
        return MeanPoolClassifier(MeanPoolConfig(input_dim=self._embedding_dim(), num_classes=len(self.labels())))

    def _train(self, model, train_cfg: TrainConfig, subdir: str) -> dict[str, Any]:
        train = self.dataset("train", (-1, *range(self.cfg.train_views)))
        stats = FeatureStore(self.store_dir("train")).stats()
        if stats is not None:
            model.cmvn.set_stats(torch.from_numpy(stats[0]), torch.from_numpy(stats[1]))
        trainer = Trainer(
            model, ClassificationTask(feature_noise=self.cfg.feature_noise), train, train.lengths, collate_labels,
            self._loader(self.dataset("dev")), train_cfg, self.exp / subdir, run_config=self.cfg,
            lineage=self.hashes()[f"lineage-{subdir}"],
        )
        trainer.resume_latest()  # refuses another run's checkpoints before config.yaml is rewritten
        if subdir == "model" and trainer.dist.is_main:
            save_config(self.cfg, self.exp / "config.yaml")
        result = trainer.fit(resume=False)
        return {
            "best_dev_accuracy": result.best_metric, "best_epoch": result.best_epoch,
            "final_checkpoint": str(result.final_checkpoint), "final_dev_accuracy": result.final_metric,
            "steps": result.steps, "skipped_steps": result.skipped_steps,
            "parameters": sum(p.numel() for p in model.parameters()),
        }

    def _load(self, model, key: str):
        model.load_state_dict(load_checkpoint(read_results(self.exp)[key]["final_checkpoint"])["model"])
        return model.eval()

    @torch.inference_mode()
    def _scores(self, model, split: str, ids: set[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        scores, labels = [], []
        for batch in self._loader(self.dataset(split, ids=ids)):
            scores.append(torch.softmax(model(batch["x"], batch["x_lens"]).float(), -1).numpy())
            labels.append(batch["labels"].numpy())
        return np.concatenate(scores), np.concatenate(labels)


def format_table(results: dict[str, Any]) -> str:
    """The accuracy table printed at the end of a run (percent)."""
    lines = ["", "| split | model | clips | top-1 % | top-5 % | mean class % |", "|---|---|---:|---:|---:|---:|"]
    for tag, m in results.get("metrics", {}).items():
        split, _, abl = tag.partition("-")
        name = "mean-pool ablation" if abl else "BiLSTM"
        split = {"heldout": "test, held-out style", "heldout_motion": "test, held-out motion"}.get(split, split)
        lines.append(
            f"| {split} | {name} | {m['num_clips']} | {100 * m['top1']:.2f} | {100 * m['top5']:.2f} | "
            f"{100 * m['mean_class_accuracy']:.2f} |"
        )
    styles = results.get("styles", {})
    if styles:
        lines += ["", "| test style | clips | BiLSTM top-1 % | ablation top-1 % |", "|---|---:|---:|---:|"]
        for style, row in styles.items():
            label = f"{style} (held out)" if row.get("heldout") else style
            lines.append(f"| {label} | {row['clips']} | {100 * row['top1']:.2f} | {100 * row['ablation_top1']:.2f} |")
    return "\n".join(lines + stage_footer(results))
