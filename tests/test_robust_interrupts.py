"""Interrupted work loses nothing: SIGKILL during training and feature extraction, disk full.

Training and extraction run in real subprocesses that are killed with SIGKILL at a random
point; the rerun must continue exactly where the last atomic write left off. Disk-full
failures are simulated by making the write raise ENOSPC.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

TESTS_DIR = Path(__file__).resolve().parent
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL and /proc")


def _child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _spawn(script: str, *args: str) -> subprocess.Popen:
    code = f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r})\n{script}"
    return subprocess.Popen([sys.executable, "-c", code, *args], env=_child_env(), stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen, timeout: float = 120) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 60) -> None:
    """SIGKILLs ``proc`` once ``ready()`` is true; fails if it finished first."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


# --------------------------------------------------------------------------- training


class RecordingTask:
    """Classification task that logs each training batch (fingerprint, loss) and paces steps."""

    def __init__(self, log_path: str, delay: float) -> None:
        from pipeline.training.tasks import ClassificationTask

        self.inner = ClassificationTask()
        self.metric, self.higher_is_better = self.inner.metric, self.inner.higher_is_better
        self.log_path, self.delay = log_path, delay

    def loss(self, model, batch):
        loss, n = self.inner.loss(model, batch)
        digest = hashlib.sha1(batch["x"].numpy().tobytes() + batch["labels"].numpy().tobytes()).hexdigest()[:12]
        with open(self.log_path, "a") as fh:  # one line per batch, flushed at once
            fh.write(f"{digest} {float(loss)!r}\n")
        time.sleep(self.delay)
        return loss, n

    def evaluate(self, model, loader, device):
        return self.inner.evaluate(model, loader, device)


TRAIN_BATCHING = {"max_frames": 100, "max_batch_size": 12, "seed": 3}


def train_run(exp_dir: str, log_path: str, delay: float) -> None:
    """Entry point of the training subprocess: a tiny BiLSTM classifier with dropout."""
    from test_trainer import D, order_dataset
    from torch.utils.data import DataLoader

    from pipeline.data import collate_labels, length_sorted_batches
    from pipeline.models import bilstm_classifier
    from pipeline.training import TrainConfig, Trainer

    torch.manual_seed(0)
    train, dev = order_dataset(96, 0), order_dataset(24, 1)
    dev_loader = DataLoader(dev, batch_sampler=length_sorted_batches(dev.lengths, 400), collate_fn=collate_labels)
    cfg = TrainConfig(
        max_epochs=2, lr=1e-2, warmup_steps=3, average_last=2, save_every_steps=2, progress=False,
        num_threads=1, **TRAIN_BATCHING,
    )
    model = bilstm_classifier(input_dim=D, num_classes=2, hidden_size=16, dropout=0.3)
    trainer = Trainer(model, RecordingTask(log_path, delay), train, train.lengths, collate_labels, dev_loader, cfg, exp_dir)
    result = trainer.fit()
    torch.save({"steps": result.steps, "model": trainer.model.state_dict(),
                "optimizer": trainer.optimizer.state_dict()}, Path(exp_dir) / "final.pt")  # fmt: skip


def _batches_per_epoch() -> int:
    from test_trainer import order_dataset

    from pipeline.training.sampler import BucketBatchSampler

    return len(BucketBatchSampler(order_dataset(96, 0).lengths, **TRAIN_BATCHING))


TRAIN_SCRIPT = "from test_robust_interrupts import train_run\ntrain_run(sys.argv[1], sys.argv[2], float(sys.argv[3]))\n"


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_is_exact(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref_log, run_log = tmp_path / "ref.log", tmp_path / "run.log"
    ref = _spawn(TRAIN_SCRIPT, str(ref_dir), str(ref_log), "0")
    victim = _spawn(TRAIN_SCRIPT, str(run_dir), str(run_log), "0.04")
    per_epoch = _batches_per_epoch()
    assert per_epoch >= 6
    # Kill at a random point of the second epoch (a mid-epoch checkpoint exists by then),
    # a random fraction of a step after a random batch.
    kill_after = rng.randrange(per_epoch + 3, 2 * per_epoch - 1)
    _kill_when(victim, lambda: len(_lines(run_log)) >= kill_after and (time.sleep(rng.uniform(0, 0.04)) or True))
    _finish(ref)
    ref_batches = _lines(ref_log)
    total = len(ref_batches)
    assert total == 2 * per_epoch
    ckpts = run_dir / "checkpoints"
    assert not (run_dir / "final.pt").exists()
    # Every checkpoint file present is complete and loads; nothing half-written took a real name.
    names = sorted(p.name for p in ckpts.iterdir() if not p.name.startswith("."))
    assert "last.pt" in names and "epoch-1.pt" in names, names
    states = {n: load_checkpoint(ckpts / n) for n in names}
    last = states["last.pt"]
    assert last["epoch"] == 1 and 0 < last["batches_done"] < per_epoch, f"seed {seed}: {last['batches_done']}"
    assert last["step"] == per_epoch + last["batches_done"]
    killed_batches = _lines(run_log)
    assert len(killed_batches) >= last["step"]
    assert killed_batches[: last["step"]] == ref_batches[: last["step"]]

    run_log.unlink()
    _finish(_spawn(TRAIN_SCRIPT, str(run_dir), str(run_log), "0"))
    # Same data order, dropout draws and losses from the checkpoint on, bit for bit.
    assert _lines(run_log) == ref_batches[last["step"] :], f"seed {seed}"
    want = torch.load(ref_dir / "final.pt", weights_only=True)
    got = torch.load(run_dir / "final.pt", weights_only=True)
    assert got["steps"] == want["steps"] == total
    for k, v in want["model"].items():
        torch.testing.assert_close(got["model"][k], v, rtol=0, atol=0, msg=k)
    for k, s in want["optimizer"]["state"].items():
        for name in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(got["optimizer"]["state"][k][name], s[name], rtol=0, atol=0)
    # The temporaries a kill can leave behind are gone after the resumed run's first save.
    assert not [p.name for p in ckpts.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- feature extraction


def make_speech_manifest(root: Path, n: int = 14) -> Path:
    """n short WAVs plus one broken file, with their manifest."""
    from data_prep.manifest import write_manifest

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        path = root / f"u{i:02d}.wav"
        sf.write(path, (0.3 * rng.standard_normal(int(16000 * (0.2 + 0.05 * i)))).astype(np.float32), 16000)
        records.append({"id": f"u{i:02d}", "audio_filepath": str(path), "duration": 0.2 + 0.05 * i,
                        "text": "hello", "speaker": "s"})  # fmt: skip
    (root / "bad.wav").write_text("not audio")
    records.insert(5, {"id": "bad", "audio_filepath": str(root / "bad.wav"), "duration": 1.0, "text": "x", "speaker": "s"})
    return write_manifest(root / "train.jsonl", records, "speech")


def extract_run(manifest: str, store: str, delay: float) -> None:
    """Entry point of the extraction subprocess: the real stage, each file slowed by ``delay``."""
    import data_prep.features as features
    from data_prep.features import FeatureConfig, extract_features

    real = features.load_audio

    def slow_load(*args, **kwargs):
        time.sleep(delay)
        return real(*args, **kwargs)

    features.load_audio = slow_load  # the name LogMelJob calls, in this process (num_workers=1)
    extract_features(Path(manifest), Path(store), FeatureConfig(), num_workers=1, chunk_size=2)


EXTRACT_SCRIPT = "from test_robust_interrupts import extract_run\nextract_run(sys.argv[1], sys.argv[2], float(sys.argv[3]))\n"


def _store_files(store: Path) -> dict[str, bytes]:
    """Every file of the store (the top level and its current data folder), by relative path."""
    return {
        str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
        if p.is_file() and p.name != ".lock" and "parts" not in p.relative_to(store).parts
    }


@pytest.mark.slow
def test_sigkill_mid_extraction_then_rerun_is_byte_identical(tmp_path: Path) -> None:
    from data_prep.features import FeatureConfig, extract_features
    from data_prep.store import FeatureStore

    manifest = make_speech_manifest(tmp_path / "corpus")
    clean, store = tmp_path / "clean", tmp_path / "store"
    extract_features(manifest, clean, FeatureConfig(), num_workers=1, chunk_size=2)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    victim = _spawn(EXTRACT_SCRIPT, str(manifest), str(store), "0.1")  # slow enough to be caught mid-way under load
    kill_at = rng.randrange(1, 6)  # of 8 chunks

    def ready() -> bool:
        if len(list((store / "parts").glob("chunk-*.npz"))) < kill_at:
            return False
        time.sleep(rng.uniform(0, 0.06))
        return True

    _kill_when(victim, ready)
    assert not (store / ".done").exists()
    summary = extract_features(manifest, store, FeatureConfig(), num_workers=1, chunk_size=2)
    assert summary.chunks_reused >= kill_at and summary.num_failed == 1, f"seed {seed}"
    assert _store_files(store) == _store_files(clean), f"seed {seed}"
    assert len(FeatureStore(store)) == 14
    assert extract_features(manifest, store, FeatureConfig(), num_workers=1, chunk_size=2).skipped


@pytest.mark.slow
def test_a_second_extraction_into_a_busy_store_fails_clearly_and_harms_nothing(tmp_path: Path) -> None:
    """The second run starts while the first is provably mid-way (chunks written, still running)
    and ends before the first does: the runs overlap, so the store's lock is what is tested."""
    from data_prep.features import FeatureConfig, extract_features

    manifest = make_speech_manifest(tmp_path / "corpus", n=8)
    clean, store = tmp_path / "clean", tmp_path / "store"
    extract_features(manifest, clean, FeatureConfig(), num_workers=1, chunk_size=2)
    first = _spawn(EXTRACT_SCRIPT, str(manifest), str(store), "1.0")  # about 9 s: one file a second
    deadline = time.monotonic() + 120
    while not list((store / "parts").glob("chunk-*.npz")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first.poll() is None, "the first run ended before it wrote a chunk"
    second = _spawn(EXTRACT_SCRIPT, str(manifest), str(store), "0")
    _, err = second.communicate(timeout=120)
    assert first.poll() is None, "the first run ended before the second: they did not overlap"
    last = err.decode(errors="replace").strip().splitlines()[-1]
    assert second.returncode != 0, "a second writer was let into a store being written"
    assert "StoreError" in last and "being written by another process (pid" in last and str(store) in last
    _finish(first)
    assert _store_files(store) == _store_files(clean)


# --------------------------------------------------------------------------- disk full


def _enospc_after(real_write, budget: int):
    """A write that accepts ``budget`` bytes, then fails like a full disk."""
    written = 0

    def write(data) -> int:
        nonlocal written
        if written + len(data) > budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written += len(data)
        return real_write(data)

    return write


def test_disk_full_during_checkpoint_keeps_the_previous_one(tmp_path: Path, monkeypatch) -> None:
    import pipeline.io_utils as io_utils

    path = tmp_path / "checkpoints" / "last.pt"
    old_state = {"model": {"w": torch.arange(10.0)}, "step": 7}
    save_checkpoint(path, old_state)
    before = path.read_bytes()
    real_fdopen = os.fdopen

    def fdopen_full(fd, *args, **kwargs):  # every temporary the write opens fills up after 1 kB
        fh = real_fdopen(fd, *args, **kwargs)
        monkey = type("Full", (), {"write": staticmethod(_enospc_after(fh.write, 1024)),
                                   "__getattr__": lambda self, k: getattr(fh, k),
                                   "__enter__": lambda self: self,
                                   "__exit__": lambda self, *a: fh.__exit__(*a)})  # fmt: skip
        return monkey()

    monkeypatch.setattr(io_utils.os, "fdopen", fdopen_full)
    with pytest.raises(CheckpointError) as exc:
        save_checkpoint(path, {"model": {"w": torch.randn(10000)}, "step": 8})
    msg = str(exc.value)
    assert msg.startswith(f"{path}: cannot write checkpoint") and "No space left on device" in msg, msg
    assert "previous checkpoint is unchanged" in msg
    monkeypatch.undo()
    assert path.read_bytes() == before and load_checkpoint(path)["step"] == 7
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left behind


def test_disk_full_at_fsync_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    before = path.read_bytes()

    def fsync(fd: int) -> None:  # delayed allocation: the error only shows at fsync
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(CheckpointError, match="No space left on device"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def _bundle_files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.mark.parametrize("failing", ["weights", "config"])
def test_disk_full_during_save_bundle_keeps_the_previous_bundle(tmp_path: Path, monkeypatch, failing: str) -> None:
    import safetensors.torch

    from pipeline.bundle import BundleError, load_bundle, save_bundle

    out = tmp_path / "bundle"
    save_bundle(out, {"kind": "speech_ctc", "weights": "model.safetensors", "note": "old"},
                {"model.safetensors": {"w": torch.zeros(4)}})  # fmt: skip
    before = _bundle_files(out)
    if failing == "weights":
        real_save_file = safetensors.torch.save_file

        def save_file(tensors, filename, *args, **kwargs):
            real_save_file(tensors, filename, *args, **kwargs)
            with open(filename, "r+b") as fh:  # the disk filled up half way through
                fh.truncate(os.path.getsize(filename) // 2)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

        monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    else:
        real_open = open

        def full_open(file, mode="r", *args, **kwargs):
            fh = real_open(file, mode, *args, **kwargs)
            if str(file).endswith("config.yaml") and "w" in mode:
                fh.close()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
            return fh

        monkeypatch.setattr("builtins.open", full_open)
    with pytest.raises(BundleError) as exc:
        save_bundle(out, {"kind": "speech_ctc", "weights": "model.safetensors", "note": "new"},
                    {"model.safetensors": {"w": torch.ones(100000)}})  # fmt: skip
    monkeypatch.undo()
    msg = str(exc.value)
    assert msg.startswith(f"{out}: cannot write bundle") and "No space left on device" in msg
    assert "previous bundle is unchanged" in msg
    assert _bundle_files(out) == before and load_bundle(out).config["note"] == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary directory left


def test_bundle_temporaries_of_a_killed_save_are_cleared(tmp_path: Path) -> None:
    from pipeline.bundle import load_bundle, save_bundle
    from pipeline.io_utils import make_temp_dir

    out = tmp_path / "bundle"
    cfg, weights = {"kind": "speech_ctc", "weights": "model.safetensors"}, {"model.safetensors": {"w": torch.zeros(2)}}
    save_bundle(out, cfg, weights)
    # A save killed between its two renames: the old bundle is parked, the new one not yet in place.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    partial = make_temp_dir(out)
    (partial / "model.safetensors").write_bytes(b"partial")
    os.replace(partial, partial.with_name(partial.name.replace(str(os.getpid()), str(dead_pid), 1)))
    os.replace(out, tmp_path / ".bundle.old")
    from pipeline.bundle import BundleError

    with pytest.raises(BundleError, match="interrupted save left the previous bundle"):
        load_bundle(out)
    save_bundle(out, {**cfg, "note": "again"}, weights)
    assert load_bundle(out).config["note"] == "again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


# --------------------------------------------------------------------------- a whole recipe

RECIPE_SCRIPT = (
    f"sys.path.insert(0, {str(TESTS_DIR.parent)!r})\n"  # the checkout, where recipes/ is
    "from recipes.video_activity.run import DEFAULT_CONFIG, main\n"
    "main(['--config', str(DEFAULT_CONFIG.parent / 'tiny.yaml'), '--exp-dir', sys.argv[1]])\n"
)
VIDEO_STAGES = ("corpus", "manifests", "backbone", "embed", "train", "ablation", "evaluate", "export")


def _outcome(exp: Path) -> dict:
    """What a run computed: results.json without its wall times, and the bundle's weights."""
    results = json.loads((exp / "results.json").read_text())
    results.pop("stage_seconds")
    for key in [k for k in results if k.startswith(("backbone", "train"))]:
        results[key] = {k: v for k, v in results[key].items() if "seconds" not in k}
    return {"results": json.dumps(results, sort_keys=True).replace(str(exp), "EXP"),
            "weights": (exp / "bundle" / "model.safetensors").read_bytes()}  # fmt: skip


@pytest.mark.slow
def test_sigkill_at_a_random_stage_then_rerun_gives_the_same_results(tmp_path: Path) -> None:
    """The video recipe killed during a random stage, then run again: the same results.json
    (wall times aside) and the same bundle as a run never interrupted."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    ref, run = tmp_path / "ref", tmp_path / "run"
    _finish(_spawn(RECIPE_SCRIPT, str(ref)), timeout=600)
    victim_stage = rng.randrange(1, 6)  # killed while stage `victim_stage` runs

    def ready() -> bool:
        done = run / ".done" / f"stage{victim_stage - 1}-{VIDEO_STAGES[victim_stage - 1]}"
        if not done.exists():
            return False
        time.sleep(rng.uniform(0, 0.5))
        return True

    _kill_when(_spawn(RECIPE_SCRIPT, str(run)), ready, timeout=600)
    assert not (run / "bundle").exists(), f"seed {seed}"
    _finish(_spawn(RECIPE_SCRIPT, str(run)), timeout=600)
    assert _outcome(run) == _outcome(ref), f"seed {seed}, killed in stage {victim_stage}"
