"""The shared trainer, its sampler, schedule, checkpoints and the two tasks."""

from pipeline.training.checkpoint import (
    CheckpointError,
    average_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from pipeline.training.sampler import BucketBatchSampler
from pipeline.training.trainer import Task, TrainConfig, Trainer, TrainingDiverged, TrainResult

__all__ = [
    "BucketBatchSampler",
    "CheckpointError",
    "Task",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "average_checkpoints",
    "load_checkpoint",
    "save_checkpoint",
]
