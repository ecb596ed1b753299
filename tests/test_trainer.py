"""The shared trainer: it learns, resumes exactly, skips faults, averages checkpoints."""

import csv
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.data import FeatureDataset, collate_labels, length_sorted_batches
from pipeline.models import bilstm_classifier
from pipeline.training import (
    TrainConfig,
    Trainer,
    TrainingDiverged,
    load_checkpoint,
    save_checkpoint,
)
from pipeline.training.tasks import ClassificationTask
from pipeline.training.trainer import CheckpointMismatch

D = 6


def order_dataset(n, seed):
    """Label 1 if marker A comes before marker B in the sequence, else 0: needs frame order."""
    rng = np.random.default_rng(seed)
    a, b = np.zeros(D, np.float32), np.zeros(D, np.float32)
    a[0], b[1] = 3.0, 3.0
    arrays, labels, lengths = [], [], []
    for _ in range(n):
        t = int(rng.integers(6, 12))
        x = rng.normal(0, 0.3, size=(t, D)).astype(np.float32)
        i, j = sorted(rng.choice(t, size=2, replace=False))
        label = int(rng.integers(0, 2))
        x[i] += a if label else b
        x[j] += b if label else a
        arrays.append(x)
        labels.append(label)
        lengths.append(t)
    return FeatureDataset([(arrays, k, labels[k]) for k in range(n)], lengths)


def make_trainer(tmp_path, *, epochs=6, task=None, lineage="", **overrides):
    torch.manual_seed(0)
    train, dev = order_dataset(192, 0), order_dataset(64, 1)
    dev_loader = DataLoader(dev, batch_sampler=length_sorted_batches(dev.lengths, 400), collate_fn=collate_labels)
    settings = dict(
        max_epochs=epochs, lr=1e-2, warmup_steps=5, max_frames=200, max_batch_size=16,
        average_last=2, progress=False, num_threads=1,
    )
    cfg = TrainConfig(**{**settings, **overrides})
    model = bilstm_classifier(input_dim=D, num_classes=2, hidden_size=16, dropout=0.0)
    return Trainer(model, task or ClassificationTask(), train, train.lengths, collate_labels, dev_loader, cfg, tmp_path, lineage=lineage)


def test_trainer_learns_an_order_task_and_writes_logs(tmp_path):
    result = make_trainer(tmp_path).fit()
    assert result.best_metric >= 0.9, result.history
    assert result.skipped_steps == 0
    ckpts = tmp_path / "checkpoints"
    assert (ckpts / "best.pt").exists() and (ckpts / "last.pt").exists() and (ckpts / "averaged.pt").exists()
    assert result.final_checkpoint.exists()
    rows = list(csv.DictReader((tmp_path / "log" / "dev.csv").read_text().splitlines()))
    assert len(rows) == 6 and float(rows[-1]["accuracy"]) > 0.8
    assert (tmp_path / "log" / "train.csv").exists()
    assert any((tmp_path / "log" / "tensorboard").iterdir())


class Interrupt(Exception):
    pass


class InterruptingTask(ClassificationTask):
    def __init__(self, at_call):
        super().__init__()
        self.calls, self.at_call = 0, at_call

    def loss(self, model, batch):
        self.calls += 1
        if self.calls == self.at_call:
            raise Interrupt
        return super().loss(model, batch)


def test_resume_mid_epoch_matches_uninterrupted_run(tmp_path):
    ref = make_trainer(tmp_path / "ref", epochs=2, save_every_steps=3, log_every=1)
    ref.fit()
    steps_per_epoch = len(ref.sampler)
    crashing = make_trainer(tmp_path / "run", epochs=2, save_every_steps=3, log_every=1,
                            task=InterruptingTask(steps_per_epoch + 5))
    with pytest.raises(Interrupt):
        crashing.fit()
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and state["batches_done"] == 3 and state["step"] == steps_per_epoch + 3
    assert state["bad_streak"] == 0
    # the crashed run logged steps past its last checkpoint; the resumed run logs them again
    logged = [int(r["step"]) for r in csv.DictReader((tmp_path / "run" / "log" / "train.csv").open())]
    assert max(logged) == steps_per_epoch + 4
    resumed = make_trainer(tmp_path / "run", epochs=2, save_every_steps=3, log_every=1)
    result = resumed.fit()
    assert result.steps == ref.step
    for name in ("train", "dev"):  # every step once, in order, as in the uninterrupted run
        rows = [int(r["step"]) for r in csv.DictReader((tmp_path / "run" / "log" / f"{name}.csv").open())]
        want = [int(r["step"]) for r in csv.DictReader((tmp_path / "ref" / "log" / f"{name}.csv").open())]
        assert rows == want, name
    for k, v in ref.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, msg=k)
    ref_opt = ref.optimizer.state_dict()["state"]
    new_opt = resumed.optimizer.state_dict()["state"]
    for k in ref_opt:
        torch.testing.assert_close(new_opt[k]["exp_avg"], ref_opt[k]["exp_avg"])


class FaultyTask(ClassificationTask):
    """Poisons chosen calls: NaN in the batch, or a huge gradient through a scaled loss."""

    def __init__(self, nan_calls=(), huge_calls=(), always_nan=False):
        super().__init__()
        self.calls, self.nan_calls, self.huge_calls, self.always_nan = 0, set(nan_calls), set(huge_calls), always_nan

    def loss(self, model, batch):
        self.calls += 1
        if self.always_nan or self.calls in self.nan_calls:
            batch = {**batch, "x": batch["x"].clone()}
            batch["x"][0, 0, 0] = float("nan")
        loss, n = super().loss(model, batch)
        if self.calls in self.huge_calls:
            loss = loss * 1e12
        return loss, n


def test_nan_batches_and_huge_gradients_are_skipped_and_logged(tmp_path, caplog):
    task = FaultyTask(nan_calls={2, 7}, huge_calls={4})
    result = make_trainer(tmp_path, epochs=3, task=task).fit()
    assert result.skipped_steps == 3
    assert "non-finite loss" in caplog.text and "gradient norm" in caplog.text
    rows = list(csv.DictReader((tmp_path / "log" / "skipped.csv").read_text().splitlines()))
    assert len(rows) == 3
    for v in load_checkpoint(tmp_path / "checkpoints" / "last.pt")["model"].values():
        assert torch.isfinite(v.float()).all()
    assert result.best_metric > 0.6 and math.isfinite(result.final_metric)


def test_training_stops_after_patience(tmp_path):
    with pytest.raises(TrainingDiverged, match="patience 4"):
        make_trainer(tmp_path, epochs=2, task=FaultyTask(always_nan=True), nonfinite_patience=4).fit()


def test_corrupt_last_checkpoint_falls_back_to_the_newest_epoch(tmp_path, caplog):
    make_trainer(tmp_path, epochs=2).fit()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"garbage")
    trainer = make_trainer(tmp_path, epochs=3)
    result = trainer.fit()
    assert "cannot resume from last.pt" in caplog.text
    assert [h["epoch"] for h in result.history] == [1, 2, 3]


def test_feature_noise_only_in_training():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x, x_lens):
            seen.append(x.clone())
            return torch.zeros(x.size(0), 2, requires_grad=True)

    task = ClassificationTask(feature_noise=0.5)
    batch = {"x": torch.ones(3, 4, 2), "x_lens": torch.tensor([4, 4, 4]), "labels": torch.tensor([0, 1, 0])}
    model = Probe()
    task.loss(model.train(), batch)
    task.loss(model.eval(), batch)
    assert 0.3 < float((seen[0] - 1).std()) < 0.7
    assert torch.equal(seen[1], batch["x"])


def test_checkpoints_of_a_run_with_other_settings_are_refused_and_kept(tmp_path):
    make_trainer(tmp_path, epochs=1).fit()
    ckpts = tmp_path / "checkpoints"
    before = {p.name: p.read_bytes() for p in ckpts.iterdir()}
    with pytest.raises(CheckpointMismatch, match=r"train\.lr: 0\.01 -> 0\.02.*another experiment directory"):
        make_trainer(tmp_path, epochs=2, lr=2e-2).fit()
    assert {p.name: p.read_bytes() for p in ckpts.iterdir()} == before  # nothing loaded, nothing rewritten


def test_another_lineage_is_refused_but_how_long_to_train_may_change(tmp_path):
    make_trainer(tmp_path, epochs=1, lineage="features-a").fit()
    with pytest.raises(CheckpointMismatch, match="other settings"):
        make_trainer(tmp_path, epochs=2, lineage="features-b").fit()
    # max_epochs and logging are not part of the identity: the run continues.
    result = make_trainer(tmp_path, epochs=2, lineage="features-a", log_every=5).fit()
    assert [h["epoch"] for h in result.history] == [1, 2]


def test_checkpoints_from_before_identities_still_resume(tmp_path):
    make_trainer(tmp_path, epochs=1).fit()
    last = tmp_path / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    del state["identity"], state["train_config"]
    save_checkpoint(last, state)
    result = make_trainer(tmp_path, epochs=2, lr=2e-2).fit()
    assert [h["epoch"] for h in result.history] == [1, 2]


def test_warmup_then_cosine_decay_to_the_final_ratio():
    from pipeline.training.schedule import adamw, warmup_cosine

    opt = adamw([torch.nn.Parameter(torch.zeros(3))], lr=1.0)
    sched = warmup_cosine(opt, warmup_steps=4, total_steps=14, final_ratio=0.1)
    lrs = []
    for _ in range(16):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # linear warmup
    assert lrs[4] == pytest.approx(1.0) and lrs[9] == pytest.approx(0.55)  # cosine halfway: (1 + 0.1) / 2
    assert all(a > b for a, b in zip(lrs[4:14], lrs[5:15], strict=True))  # decays
    assert lrs[14] == pytest.approx(0.1) and lrs[15] == pytest.approx(0.1)  # then holds the floor


@pytest.mark.parametrize(("final_model", "name"), [("averaged", "averaged.pt"), ("best", "best.pt")])
def test_final_model_choice(tmp_path, final_model, name):
    result = make_trainer(tmp_path, epochs=3, final_model=final_model).fit()
    assert result.final_checkpoint.name == name
    chosen = load_checkpoint(result.final_checkpoint)["model"]
    epoch = {n: load_checkpoint(tmp_path / "checkpoints" / f"epoch-{n}.pt")["model"] for n in (2, 3)}
    for k, v in chosen.items():
        if not v.is_floating_point():
            continue
        if final_model == "averaged":  # the mean of the last average_last=2 epochs
            torch.testing.assert_close(v, (epoch[2][k] + epoch[3][k]) / 2, msg=k)
        elif result.best_epoch in epoch:
            torch.testing.assert_close(v, epoch[result.best_epoch][k], msg=k)
    with pytest.raises(ValueError, match="final_model"):
        make_trainer(tmp_path / "bad", final_model="last")



# --------------------------------------------------------------------------- direct tests


class ScaledTask(ClassificationTask):
    """The classification loss times a large factor: raw gradient norms far above any clip."""

    def loss(self, model, batch):
        loss, n = super().loss(model, batch)
        return loss * 1e4, n


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_every_optimizer_step_sees_gradients_clipped_to_grad_clip(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1, task=ScaledTask(), grad_clip=0.25, grad_skip_threshold=0.0)
    norms = []
    real_step = trainer.optimizer.step

    def step(*args, **kwargs):
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        norms.append(float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads))))
        return real_step(*args, **kwargs)

    trainer.optimizer.step = step
    trainer.fit()
    assert len(norms) > 5
    assert max(norms) <= 0.25 * (1 + 1e-4)  # what the optimizer saw was clipped ...
    rows = list(csv.DictReader((tmp_path / "log" / "train.csv").read_text().splitlines()))
    assert max(float(r["grad_norm"]) for r in rows if r.get("grad_norm")) > 10  # ... from far larger norms


def test_early_stopping_ends_training_after_epochs_without_improvement(tmp_path):
    """lr 0 never improves on the first epoch's dev metric: 1 + early_stop_epochs epochs run."""
    result = make_trainer(tmp_path, epochs=10, lr=0.0, warmup_steps=0, early_stop_epochs=2).fit()
    assert result.best_epoch == 1
    epochs = {int(r["epoch"]) for r in csv.DictReader((tmp_path / "log" / "dev.csv").read_text().splitlines())}
    assert epochs == {1, 2, 3}
    assert make_trainer(tmp_path / "off", epochs=4, lr=0.0, warmup_steps=0).fit().best_epoch == 1
    assert len((tmp_path / "off" / "log" / "dev.csv").read_text().splitlines()) == 1 + 4


def test_classification_metrics_by_hand():
    from pipeline.metrics import classification_metrics

    scores = np.array([
        [0.9, 0.1, 0.0],  # truth 0, top-1 0
        [0.2, 0.5, 0.3],  # truth 2, top-1 1 (2 second)
        [0.1, 0.2, 0.7],  # truth 2, top-1 2
        [0.6, 0.3, 0.1],  # truth 1, top-1 0
    ])
    m = classification_metrics(scores, np.array([0, 2, 2, 1]), num_classes=3)
    assert m["top1"] == pytest.approx(2 / 4) and m["num_clips"] == 4
    assert m["top5"] == pytest.approx(1.0)  # top-min(5, 3): every truth is among 3 classes
    assert m["confusion"] == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
    assert m["mean_class_accuracy"] == pytest.approx((1.0 + 0.0 + 0.5) / 3)
    m7 = classification_metrics(np.eye(7)[[1, 2]], np.array([1, 3]), num_classes=7)
    assert m7["top1"] == 0.5 and m7["mean_class_accuracy"] == pytest.approx(0.5)  # absent classes ignored
    empty = classification_metrics(np.zeros((0, 2)), np.zeros(0), num_classes=2)
    assert empty["num_clips"] == 0 and empty["confusion"] == [[0, 0], [0, 0]]


def test_resume_keeps_the_non_finite_streak(tmp_path):
    """A run killed during a run of bad batches must not get a fresh allowance on resume."""
    first = make_trainer(tmp_path, epochs=1)
    first.bad_streak = 2
    first.save("last.pt")
    again = make_trainer(tmp_path, epochs=1)
    assert again.resume_latest() and again.bad_streak == 2
