"""DDP through torchrun (gloo on CPU), and the CUDA paths when a GPU is present."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    sys.path.insert(0, {tests!r})
    from test_trainer import order_dataset
    from pipeline.data import collate_labels, length_sorted_batches
    from pipeline.models import bilstm_classifier
    from pipeline.training import TrainConfig, Trainer
    from pipeline.training.tasks import ClassificationTask

    torch.manual_seed(0)
    train, dev = order_dataset(128, 0), order_dataset(32, 1)
    loader = DataLoader(dev, batch_sampler=length_sorted_batches(dev.lengths, 400), collate_fn=collate_labels)
    cfg = TrainConfig(max_epochs=2, lr=1e-2, warmup_steps=2, max_frames=200, max_batch_size=16,
                      average_last=2, progress=False, num_threads=1, device="cpu")
    model = bilstm_classifier(input_dim=6, num_classes=2, hidden_size=8)
    trainer = Trainer(model, ClassificationTask(), train, train.lengths, collate_labels, loader, cfg, Path(sys.argv[1]))
    result = trainer.fit()
    rank = trainer.dist.rank
    Path(sys.argv[1], f"rank{{rank}}.txt").write_text(f"{{trainer.dist.world_size}} {{result.steps}} {{len(trainer.sampler)}}")
    """
)


@pytest.mark.slow
def test_torchrun_ddp_two_processes(tmp_path: Path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    exp = tmp_path / "exp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), str(exp)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = (exp / "rank0.txt").read_text().split()
    r1 = (exp / "rank1.txt").read_text().split()
    assert r0[0] == r1[0] == "2"
    # each rank takes half of the batches, and both take the same number of steps
    assert r0[1] == r1[1] and int(r0[1]) == 2 * int(r0[2])
    assert (exp / "checkpoints" / "best.pt").exists() and (exp / "checkpoints" / "averaged.pt").exists()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_training_learns(tmp_path, precision):
    from test_trainer import make_trainer

    result = make_trainer(tmp_path, epochs=6, device="cuda", precision=precision).fit()
    assert result.best_metric >= 0.9
