"""The recurrent classifier learns actions from frame order on a tiny generated set.

Frame features are the generator's own 2-D joint positions (normalised per clip), so the
test isolates the sequence model and the shared trainer from the CNN. The time-reversed
pairs (sit_down/stand_up, raise_arms/lower_arms) can only be told apart through order: the
BiLSTM must separate them and the order-agnostic mean-pool ablation must not.
"""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_prep.corpora.video_corpus import CLASSES, SIZES, clip_keypoints, clip_seeds
from pipeline.data import FeatureDataset, collate_labels, length_sorted_batches
from pipeline.models import MeanPoolClassifier, MeanPoolConfig, bilstm_classifier
from pipeline.training import TrainConfig, Trainer
from pipeline.training.tasks import ClassificationTask

CFG = SIZES["tiny"].__class__(train_per_class=16, dev_per_class=0, test_per_class=6, heldout_per_class=0, heldout_motion_per_class=0, frame_size=64, min_frames=16, max_frames=24)


def keypoint_set(split):
    arrays, labels = [], []
    for label, seed in clip_seeds(CFG, split):
        xy = clip_keypoints(label, seed, CFG)  # (T, J, 2)
        xy = (xy - xy.reshape(-1, 2).mean(0)) / (xy.reshape(-1, 2).std(0) + 1e-6)
        arrays.append(xy.reshape(len(xy), -1).astype(np.float32))
        labels.append(CLASSES.index(label))
    return FeatureDataset([(arrays, i, y) for i, y in enumerate(labels)], [len(a) for a in arrays]), arrays[0].shape[1]


def train_and_score(model, tmp_path, train, test):
    loader = DataLoader(test, batch_sampler=length_sorted_batches(test.lengths, 4096), collate_fn=collate_labels)
    cfg = TrainConfig(max_epochs=25, lr=5e-3, warmup_steps=10, max_frames=800, max_batch_size=32, average_last=1, progress=False)
    return Trainer(model, ClassificationTask(), train, train.lengths, collate_labels, loader, cfg, tmp_path).fit()


@pytest.mark.slow
def test_bilstm_uses_order_and_mean_pool_cannot(tmp_path):
    train, dim = keypoint_set("train")
    test, _ = keypoint_set("test")
    torch.manual_seed(0)
    rnn = train_and_score(bilstm_classifier(input_dim=dim, num_classes=10, hidden_size=64), tmp_path / "rnn", train, test)
    torch.manual_seed(0)
    mean = train_and_score(MeanPoolClassifier(MeanPoolConfig(input_dim=dim, num_classes=10)), tmp_path / "mean", train, test)
    assert rnn.best_metric >= 0.9, rnn.history[-3:]
    # The reversed pairs share their frames, so the best a bag of frames can do is chance on them.
    assert mean.best_metric <= 0.85, mean.history[-3:]
