"""The backbone fit checkpoints every epoch: a killed fit resumes to the weights of an
uninterrupted one."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import pipeline.training.backbone_fit as backbone_fit
from data_prep.frame_embed import BackboneConfig, build_backbone
from data_prep.video_io import write_video
from pipeline.training.backbone_fit import BackboneFitConfig, FitClip, fit_backbone

BB = BackboneConfig(name="mobilenet_v3_small", frame_size=32, short_side=32, num_segments=4)
CFG = BackboneFitConfig(epochs=2, batch_size=8, frames_per_clip=2, precision="fp32")


def _clips(root: Path) -> list[FitClip]:
    clips = []
    for k in range(6):
        label = k % 2
        frames = [np.full((32, 32, 3), 40 + 150 * label + 5 * t, np.uint8) for t in range(8)]
        path = write_video(root / f"c{k}.avi", frames, 10.0, fourcc="MJPG")
        clips.append(FitClip(path=str(path), label=label))
    return clips


class Killed(Exception):
    pass


def _fit(clips, checkpoint=None, identity="a"):
    """Fits a fresh mobilenet (same initial weights every call); returns (weights, history)."""
    torch.manual_seed(0)
    model, dim = build_backbone(BB.name, "none")
    out = fit_backbone(model, dim, clips[:4], clips[4:], num_classes=2, backbone=BB, cfg=CFG, num_workers=1,
                       checkpoint=checkpoint, identity=identity)  # fmt: skip
    return out["embedder"].state_dict(), out["fit_history"]


@pytest.mark.slow
def test_a_killed_fit_resumes_to_the_same_weights(tmp_path: Path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="pipeline.training.backbone_fit")
    clips = _clips(tmp_path / "clips")
    ref, ref_history = _fit(clips)
    ckpt = tmp_path / "fit.pt"
    save = backbone_fit.save_checkpoint

    def save_then_die(path, state):
        save(path, state)
        if state["epoch"] == 1:
            raise Killed  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(backbone_fit, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        _fit(clips, ckpt)
    monkeypatch.setattr(backbone_fit, "save_checkpoint", save)
    got, history = _fit(clips, ckpt)
    assert "resumed after epoch 1" in caplog.text
    assert [h["epoch"] for h in history] == [1, 2]
    for mine, theirs in zip(history, ref_history, strict=True):
        assert mine == pytest.approx(theirs, rel=1e-5)
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v, msg=k)
    caplog.clear()
    _fit(clips, ckpt, identity="b")  # a checkpoint of another fit is not taken
    assert "belongs to another fit; starting over" in caplog.text


@pytest.mark.slow
def test_a_partial_fit_keeps_the_bottom_layers_and_their_statistics(tmp_path: Path):
    """tune_fraction < 1 trains only the top layers; the frozen ones, BatchNorm running
    statistics included, come out exactly as they went in."""
    from dataclasses import replace

    clips = _clips(tmp_path / "clips")
    torch.manual_seed(0)
    model, dim = build_backbone(BB.name, "none")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names = [n for n, _ in model.named_parameters()]
    out = fit_backbone(model, dim, clips[:4], clips[4:], num_classes=2, backbone=BB,
                       cfg=replace(CFG, tune_fraction=0.3), num_workers=1)  # fmt: skip
    after = out["embedder"].backbone.state_dict()
    keep = int(np.ceil(0.3 * len(names)))
    frozen, tuned = names[: len(names) - keep], names[len(names) - keep :]
    assert all(torch.equal(after[n], before[n]) for n in frozen)
    assert sum(not torch.equal(after[n], before[n]) for n in tuned) > 0.8 * len(tuned)
    first_bn = next(n for n in before if n.endswith("running_mean"))
    assert torch.equal(after[first_bn], before[first_bn])  # a frozen BatchNorm kept its statistics
    with pytest.raises(ValueError, match="tune_fraction"):
        backbone_fit.freeze_bottom(model, 0.0)
