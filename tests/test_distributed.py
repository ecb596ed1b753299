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
    left = not torch.distributed.is_initialized()  # fit() left the group: nothing to abort at exit
    Path(sys.argv[1], f"rank{{rank}}.txt").write_text(
        f"{{trainer.dist.world_size}} {{result.steps}} {{len(trainer.sampler)}} {{left}}"
    )
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
    assert "terminate called" not in proc.stderr, proc.stderr[-3000:]  # no rank aborted at exit
    r0 = (exp / "rank0.txt").read_text().split()
    r1 = (exp / "rank1.txt").read_text().split()
    assert r0[0] == r1[0] == "2"
    # each rank takes half of the batches, and both take the same number of steps
    assert r0[1] == r1[1] and int(r0[1]) == 2 * int(r0[2])
    assert r0[3] == r1[3] == "True"  # each rank left the process group when training ended
    assert (exp / "checkpoints" / "best.pt").exists() and (exp / "checkpoints" / "averaged.pt").exists()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_training_learns(tmp_path, precision):
    from test_trainer import make_trainer

    result = make_trainer(tmp_path, epochs=6, device="cuda", precision=precision).fit()
    assert result.best_metric >= 0.9


RECIPE_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch

    import pipeline.training.trainer as trainer_module

    fit = trainer_module.Trainer.fit

    def fit_and_dump(self, **kwargs):
        result = fit(self, **kwargs)
        model = getattr(self.model, "module", self.model)
        out = Path(self.exp_dir, f"rank{{self.dist.rank}}")
        torch.save({{k: v.detach().cpu() for k, v in model.state_dict().items()}}, str(out) + ".pt")
        out.with_suffix(".txt").write_text(f"{{self.dist.world_size}} {{result.final_checkpoint}} {{result.steps}}")
        return result

    trainer_module.Trainer.fit = fit_and_dump
    sys.path.insert(0, {root!r})  # the checkout, where recipes/ is
    from recipes.speech_ctc.run import main

    main(["--config", {tiny!r}, "--exp-dir", sys.argv[1], "--stage", "3", "--stop-stage", "3", "train.max_epochs=2",
          "train.device=cpu"])
    """
)


@pytest.mark.slow
def test_the_speech_recipe_trains_under_torchrun(tmp_path: Path):
    """Stage 3 under torchrun: every rank ends with the same weights and the same final
    checkpoint, and rank 0 alone writes the marker, results and config."""
    import json
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from recipes.speech_ctc.run import main as recipe_main
    from recipes.speech_ctc.stages import DEFAULT_CONFIG

    tiny = str(DEFAULT_CONFIG.parent / "tiny.yaml")
    exp = tmp_path / "exp"
    recipe_main(["--config", tiny, "--exp-dir", str(exp), "--stop-stage", "2"])
    script = tmp_path / "ddp_recipe.py"
    script.write_text(RECIPE_SCRIPT.format(tiny=tiny, root=str(Path(__file__).resolve().parents[1])))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), str(exp)],
        capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0, w1 = torch.load(exp / "rank0.pt"), torch.load(exp / "rank1.pt")
    assert w0.keys() == w1.keys()
    for k in w0:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0, msg=k)  # DDP keeps the replicas equal
    r0, r1 = (exp / "rank0.txt").read_text().split(), (exp / "rank1.txt").read_text().split()
    assert r0 == r1 and r0[0] == "2"  # same world, same final checkpoint, same step count
    results = json.loads((exp / "results.json").read_text())
    assert results["train"]["steps"] == int(r0[2]) and Path(results["train"]["final_checkpoint"]).name == Path(r0[1]).name
    assert (exp / ".done" / "stage3-train").is_file() and (exp / "config.yaml").is_file()
    assert (exp / "log" / "run.log").read_text().count("Stage 3: train done") == 1  # rank 0's log only
