"""One plain PyTorch training loop for both tasks (CTC speech and clip classification).

What differs between tasks lives in a :class:`Task`: how a batch becomes a loss, and how the
dev set is scored. Everything else is shared: AdamW with warmup and cosine decay, gradient
clipping, mixed precision on GPU, skipping of non-finite losses and gradients with a patience,
atomic resumable checkpoints (model, optimizer, scheduler, scaler, sampler position, RNG, step),
best-checkpoint selection by the dev metric, checkpoint averaging, CSV/TensorBoard logs, tqdm
progress, and DDP when launched by ``torchrun``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pipeline.amp import autocast, resolve_precision
from pipeline.config import config_hash, to_dict
from pipeline.errors import SeqrecError
from pipeline.training.checkpoint import average_checkpoints, load_checkpoint, save_checkpoint
from pipeline.training.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    broadcast_from_main,
    init_distributed,
    shutdown_distributed,
)
from pipeline.training.logger import MetricLogger
from pipeline.training.sampler import BucketBatchSampler
from pipeline.training.schedule import adamw, param_groups, warmup_cosine

log = logging.getLogger(__name__)

Batch = dict[str, Any]


FinalModel = Literal["dev", "averaged", "best"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping settings shared by every recipe."""

    max_epochs: int = 20
    lr: float = 2e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 200
    final_lr_ratio: float = 0.05
    grad_clip: float = 5.0
    # Learning rate of the parameters a model lists in ``pretrained_parameters()`` (e.g. the
    # upstream blocks a speech model fine-tunes), as a multiple of ``lr``.
    pretrained_lr_scale: float = 0.1
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    nonfinite_patience: int = 20  # consecutive skipped steps before the run stops
    grad_skip_threshold: float = 1e5  # a gradient norm above this is a fault: skip (0 = off)
    max_frames: int = 20000  # padded frames per batch (length bucketing)
    max_batch_size: int = 64
    sortagrad_epochs: int = 0  # epochs that take batches shortest first (SortaGrad) before shuffling
    save_every_steps: int = 0  # 0: checkpoint at epoch ends only
    keep_last: int = 5
    average_last: int = 3
    # The checkpoint the run ends with: "dev" the better on dev of the best single epoch and the
    # average of the last ``average_last``; "averaged" the average (the best single one when
    # averaging is off); "best" the best single epoch.
    final_model: FinalModel = "dev"
    early_stop_epochs: int = 0  # 0: off; else stop after this many epochs without improvement
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    num_threads: int = 0  # 0: leave torch's default
    progress: bool = True


# TrainConfig fields that may change between a run and its resumption: they say how long,
# where and how verbosely to train, not what is trained. Any other change makes the
# checkpoints of the earlier run belong to another experiment (see Trainer.resume).
RESUMABLE_FIELDS = frozenset({
    "max_epochs", "early_stop_epochs", "save_every_steps", "keep_last", "average_last", "log_every",
    "device", "precision", "num_workers", "num_threads", "progress", "nonfinite_patience",
    "grad_skip_threshold", "final_model",
})


class Task(Protocol):
    """Task-specific parts of training."""

    metric: str  # name of the dev metric that selects the best checkpoint
    higher_is_better: bool

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, int]:
        """Returns the mean loss over the batch and the number of items it covers."""
        ...

    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
        """Scores the model on a dev loader; must include ``metric``."""
        ...


class TrainingDiverged(SeqrecError, RuntimeError):
    """Too many consecutive non-finite losses or gradients."""


class CheckpointMismatch(SeqrecError, RuntimeError):
    """The checkpoints to resume from were written by a run with other settings."""


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}{key}."))
    return out


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`."""

    best_metric: float
    best_epoch: int
    final_checkpoint: Path
    final_metric: float
    steps: int
    skipped_steps: int
    history: list[dict[str, Any]] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def move_batch(batch: Batch, device: torch.device) -> Batch:
    """Moves every tensor in a batch dict to ``device``."""
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
    }


class Trainer:
    """Trains ``model`` on ``task`` and keeps checkpoints under ``exp_dir/checkpoints``.

    Args:
        model: The network; its state dict is what checkpoints hold.
        task: Loss and dev scoring.
        train_set: Map-style dataset; ``lengths`` gives each item's length for bucketing.
        lengths: Length of every training item (frames), for the bucketing sampler.
        collate: Builds a batch dict from a list of items.
        dev_loader: Loader over the dev set.
        cfg: Optimisation settings.
        exp_dir: Experiment directory (checkpoints/ and log/ go below it).
        run_config: The resolved recipe config, stored in every checkpoint.
        lineage: What is trained on what, as a string that changes when it does (the recipes
            pass a hash of the upstream stages' settings and of the model). Together with the
            TrainConfig fields outside :data:`RESUMABLE_FIELDS` it forms the run's identity;
            checkpoints of a run with another identity are never resumed (see :meth:`resume`).
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        train_set: Dataset,
        lengths: list[int],
        collate: Any,
        dev_loader: DataLoader,
        cfg: TrainConfig,
        exp_dir: str | Path,
        run_config: Any = None,
        lineage: str = "",
    ) -> None:
        if cfg.final_model not in get_args(FinalModel):
            raise ValueError(f"train.final_model must be one of {get_args(FinalModel)}, got {cfg.final_model!r}")
        self.cfg = cfg
        self.identity = config_hash(
            {"lineage": lineage, "train": {k: v for k, v in to_dict(cfg).items() if k not in RESUMABLE_FIELDS}}
        )
        self.task = task
        self.exp_dir = Path(exp_dir)
        self.ckpt_dir = self.exp_dir / "checkpoints"
        self.device = resolve_device(cfg.device)
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.device.type == "cuda" and self.dist.world_size > 1:
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.amp_dtype = resolve_precision(cfg.precision, self.device)
        torch.manual_seed(cfg.seed)
        self.model = model.to(self.device)
        self.train_model: nn.Module = self.model
        if self.dist.world_size > 1:
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.sampler = BucketBatchSampler(
            lengths,
            max_frames=cfg.max_frames,
            max_batch_size=cfg.max_batch_size,
            seed=cfg.seed,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            sorted_epochs=cfg.sortagrad_epochs,
        )
        self.train_set = train_set
        self.collate = collate
        self.dev_loader = dev_loader
        self.total_steps = max(cfg.max_epochs * len(self.sampler), 1)
        self.optimizer = adamw(
            param_groups(self.model, cfg.lr, cfg.pretrained_lr_scale),
            lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
        )  # fmt: skip
        self.scheduler = warmup_cosine(
            self.optimizer,
            warmup_steps=cfg.warmup_steps,
            total_steps=self.total_steps,
            final_ratio=cfg.final_lr_ratio,
        )
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self.run_config = to_dict(run_config) if run_config is not None else {}
        self.logger = MetricLogger(self.exp_dir / "log", enabled=self.dist.is_main)
        # Run state, kept apart from the config and restored on resume.
        self.step = 0
        self.epoch = 0
        self.batches_done = 0  # of the current epoch
        self.best_metric: float | None = None
        self.best_epoch = -1
        self.bad_streak = 0
        self.skipped = 0
        self.epochs_since_best = 0
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": {"epoch": self.epoch, "consumed": self.batches_done, "seed": self.cfg.seed},
            "rng": torch.get_rng_state(),
            **({"cuda_rng": torch.cuda.get_rng_state_all()} if self.device.type == "cuda" else {}),
            "bad_streak": self.bad_streak,
            "step": self.step,
            "epoch": self.epoch,
            "batches_done": self.batches_done,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "skipped": self.skipped,
            "epochs_since_best": self.epochs_since_best,
            "history": self.history,
            "config": self.run_config,
            "train_config": to_dict(self.cfg),
            "identity": self.identity,
        }

    def save(self, name: str) -> Path:
        """Writes a full checkpoint (rank 0 only) and returns its path."""
        path = self.ckpt_dir / name
        if self.dist.is_main:
            save_checkpoint(path, self._state())
        return path

    def resume(self, path: str | Path) -> None:
        """Restores model, optimizer, scheduler, scaler, sampler position, RNG states (CPU, and
        CUDA when training there), the non-finite streak and step; log rows past that step go.

        Raises:
            CheckpointMismatch: the checkpoint belongs to a run with another identity (other
                data, model or optimisation settings); nothing is loaded and nothing on disk
                changes. Checkpoints from before identities were recorded resume as they are.
        """
        state = load_checkpoint(path, map_location=self.device)
        if state.get("identity", self.identity) != self.identity:
            raise CheckpointMismatch(self._mismatch_message(path, state))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"].cpu())
        cuda_rng = state.get("cuda_rng")
        if cuda_rng is not None and self.device.type == "cuda" and len(cuda_rng) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([t.cpu() for t in cuda_rng])  # dropout masks on the GPU
        self.bad_streak = int(state.get("bad_streak", 0))
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.batches_done = int(state["batches_done"])
        self.best_metric = state["best_metric"]
        self.best_epoch = int(state["best_epoch"])
        self.skipped = int(state["skipped"])
        self.epochs_since_best = int(state.get("epochs_since_best", 0))
        self.history = list(state["history"])
        self.logger.rewind(self.step, ("train", "dev", "skipped"))
        log.info(
            "resumed from %s: epoch %d, batch %d, step %d", path, self.epoch, self.batches_done, self.step
        )

    def _mismatch_message(self, path: str | Path, state: dict[str, Any]) -> str:
        def settings(config: Any, train: Any) -> dict[str, Any]:  # the recipe config, else TrainConfig
            flat = _flatten(config or {"train": train or {}})
            return {k: v for k, v in flat.items() if k.rsplit(".", 1)[-1] not in RESUMABLE_FIELDS}

        old = settings(state.get("config"), state.get("train_config"))
        new = settings(self.run_config, to_dict(self.cfg))
        changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
        what = "; ".join(changed[:6]) + ("; ..." if len(changed) > 6 else "") if changed else "upstream data or model changed"
        return (
            f"{path}: written by a run with other settings ({what}); it is left as it is. "
            f"To train anew, use another experiment directory (--exp-dir) or move {self.ckpt_dir} away; "
            "to continue that run, go back to its settings"
        )

    def resume_latest(self) -> bool:
        """Resumes from ``last.pt``; if it is unreadable, from the newest epoch checkpoint.

        Returns False when there is nothing to resume. Raises :class:`CheckpointMismatch` (see
        :meth:`resume`) before anything is loaded when the checkpoints belong to another run.
        """
        # lazy: import cycle: pipeline.training.checkpoint imports the trainer
        from pipeline.training.checkpoint import CheckpointError

        candidates = [self.ckpt_dir / "last.pt", *reversed(self._epoch_checkpoints())]
        for path in candidates:
            if not path.exists():
                continue
            try:
                self.resume(path)
                return True
            except CheckpointError as exc:
                log.warning("cannot resume from %s (%s); trying an older checkpoint", path.name, exc)
        if any(p.exists() for p in candidates):
            raise CheckpointError(f"{self.ckpt_dir}: no checkpoint could be loaded to resume from")
        return False

    # ------------------------------------------------------------------ training
    def _is_better(self, value: float) -> bool:
        if self.best_metric is None:
            return True
        return value > self.best_metric if self.task.higher_is_better else value < self.best_metric

    def _train_step(self, batch: Batch) -> dict[str, float] | None:
        """One optimisation step; returns None when the step was skipped as non-finite."""
        batch = move_batch(batch, self.device)
        with autocast(self.device, self.amp_dtype):
            loss, _ = self.task.loss(self.train_model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(all_reduce_mean(loss.detach())):
            return self._skip("non-finite loss")
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        norm = float(all_reduce_mean(grad_norm.detach().float()))
        if not math.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler.is_enabled():
                # Let the scaler see the overflow and lower its scale.
                self.scaler.step(self.optimizer)
                self.scaler.update()
            return self._skip("non-finite gradient")
        if self.cfg.grad_skip_threshold and norm > self.cfg.grad_skip_threshold:
            self.optimizer.zero_grad(set_to_none=True)
            return self._skip(f"gradient norm {norm:.3g} above {self.cfg.grad_skip_threshold:g}")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.bad_streak = 0
        return {"loss": float(loss.detach()), "grad_norm": norm, "lr": self.scheduler.get_last_lr()[0]}

    def _skip(self, why: str) -> None:
        self.skipped += 1
        self.bad_streak += 1
        log.warning("step %d: %s, batch skipped (%d in a row)", self.step, why, self.bad_streak)
        self.logger.log("skipped", self.step, {"reason": why, "streak": self.bad_streak})
        if self.bad_streak > self.cfg.nonfinite_patience:
            raise TrainingDiverged(
                f"training stopped: {self.bad_streak} consecutive batches had a {why} "
                f"(patience {self.cfg.nonfinite_patience}); lower the learning rate or check the data"
            )
        return None

    def _loader(self) -> DataLoader:
        return DataLoader(
            self.train_set,
            batch_sampler=self.sampler,
            collate_fn=self.collate,
            num_workers=self.cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            # Its own generator: creating the iterator must not draw from the global RNG,
            # or a resumed run's dropout/augmentation would drift from the original.
            generator=torch.Generator().manual_seed(self.cfg.seed + self.epoch),
        )

    def fit(self, *, resume: bool = True) -> TrainResult:
        """Trains until ``max_epochs`` (or early stopping), resuming from ``last.pt`` if present.

        Under ``torchrun``, a run that ends normally leaves the process group (every rank meets
        the others at a barrier first; see
        :func:`~pipeline.training.distributed.shutdown_distributed`), so each process exits
        cleanly; a later collective step (another Trainer, the next collective recipe stage)
        starts a new group. A rank that fails keeps the group as it is: destroying it while
        the other ranks are still inside a collective can block this rank until the
        collective's timeout, where exiting at once lets ``torchrun`` stop the others.
        """
        result = self._fit(resume)
        self.logger.close()
        shutdown_distributed()
        return result

    def _fit(self, resume: bool) -> TrainResult:
        if resume:
            self.resume_latest()

        while self.epoch < self.cfg.max_epochs:
            self.sampler.load_state_dict(
                {"epoch": self.epoch, "consumed": self.batches_done, "seed": self.cfg.seed}
            )
            self.train_model.train()
            t0 = time.perf_counter()
            bar = tqdm(
                total=len(self.sampler),
                initial=self.batches_done,
                desc=f"epoch {self.epoch + 1}/{self.cfg.max_epochs}",
                disable=not (self.cfg.progress and self.dist.is_main) or None,
                leave=False,
            )
            losses: list[float] = []
            for batch in self._loader():
                stats = self._train_step(batch)
                self.batches_done += 1
                bar.update(1)
                if stats is not None:
                    self.step += 1
                    losses.append(stats["loss"])
                    bar.set_postfix(loss=f"{stats['loss']:.3f}")
                    if self.step % self.cfg.log_every == 0:
                        self.logger.log("train", self.step, {"epoch": self.epoch, **stats})
                if self.cfg.save_every_steps and self.batches_done % self.cfg.save_every_steps == 0:
                    self.save("last.pt")
            bar.close()
            self._end_epoch(losses, time.perf_counter() - t0)
            if self.cfg.early_stop_epochs and self.epochs_since_best >= self.cfg.early_stop_epochs:
                log.info("early stop: %d epochs without dev improvement", self.epochs_since_best)
                break
        return self._finish()

    def _end_epoch(self, losses: list[float], seconds: float) -> None:
        metrics = self.task.evaluate(self.model, self.dev_loader, self.device)
        value = float(metrics[self.task.metric])
        train_loss = sum(losses) / len(losses) if losses else float("nan")
        row = {"epoch": self.epoch + 1, "train_loss": train_loss, "seconds": seconds, **metrics}
        self.history.append(row)
        self.logger.log("dev", self.step, row)
        log.info(
            "epoch %d: train loss %.4f, dev %s %.4f (%.1f s)",
            self.epoch + 1, train_loss, self.task.metric, value, seconds,
        )
        improved = self._is_better(value)
        if improved:
            self.best_metric, self.best_epoch = value, self.epoch + 1
            self.epochs_since_best = 0
        else:
            self.epochs_since_best += 1
        self.epoch += 1
        self.batches_done = 0
        self.save(f"epoch-{self.epoch}.pt")
        if improved:
            self.save("best.pt")
        self.save("last.pt")
        self._prune()
        barrier()

    def _epoch_checkpoints(self) -> list[Path]:
        found = []
        for p in self.ckpt_dir.glob("epoch-*.pt"):
            try:
                found.append((int(p.stem.split("-")[1]), p))
            except ValueError:
                continue
        return [p for _, p in sorted(found)]

    def _prune(self) -> None:
        if not self.dist.is_main:
            return
        keep = max(self.cfg.keep_last, self.cfg.average_last)
        for p in self._epoch_checkpoints()[:-keep]:
            p.unlink(missing_ok=True)

    def _finish(self) -> TrainResult:
        """Averages the last epochs, then picks the final checkpoint as ``final_model`` says."""
        best_path = self.ckpt_dir / "best.pt"
        final_path, final_metric = best_path, self.best_metric
        epochs = self._epoch_checkpoints()[-self.cfg.average_last :]
        if self.cfg.average_last > 1 and len(epochs) > 1 and self.dist.is_main:
            averaged = average_checkpoints(epochs)
            current = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(averaged)
            metric = float(self.task.evaluate(self.model, self.dev_loader, self.device)[self.task.metric])
            log.info("averaged last %d epochs: dev %s %.4f (best single %.4f)", len(epochs), self.task.metric, metric, self.best_metric)
            self.model.load_state_dict(current)
            avg_path = self.ckpt_dir / "averaged.pt"
            save_checkpoint(avg_path, {"model": averaged, "dev_metric": metric, "config": self.run_config, "epochs": [p.name for p in epochs]})
            tie = self.best_metric is not None and math.isclose(metric, self.best_metric)
            if self.cfg.final_model == "averaged" or (
                self.cfg.final_model == "dev" and (self._is_better(metric) or tie)
            ):
                final_path, final_metric = avg_path, metric
            log.info("final model: %s (train.final_model=%s)", final_path.name, self.cfg.final_model)
        # Only rank 0 evaluates the average: every rank takes its choice.
        final_path, final_metric = broadcast_from_main((final_path, final_metric))
        barrier()
        return TrainResult(
            best_metric=float(self.best_metric) if self.best_metric is not None else float("nan"),
            best_epoch=self.best_epoch,
            final_checkpoint=final_path,
            final_metric=float(final_metric) if final_metric is not None else float("nan"),
            steps=self.step,
            skipped_steps=self.skipped,
            history=self.history,
        )
