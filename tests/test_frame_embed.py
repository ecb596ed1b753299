"""Frame backbones: building, weights from none / local files / the local ImageNet cache."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file

from data_prep.frame_embed import (
    BackboneConfig,
    BackboneError,
    EmbedJob,
    FrameEmbedder,
    build_backbone,
    imagenet_cache_path,
    initial_weights,
)


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("mobilenet_v3_small", 576), ("efficientnet_b0", 1280)])
def test_backbones_lose_their_classifier(name, dim):
    model, d = build_backbone(name, "none")
    assert d == dim
    emb = FrameEmbedder(model, d).embed(np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8))
    assert emb.shape == (3, dim) and emb.dtype == np.float32


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(BackboneError, match="unknown backbone"):
        build_backbone("resnet9000", "none")


def _reference(name="mobilenet_v3_small"):
    torch.manual_seed(1)
    return torchvision.models.get_model(name, weights=None)


def test_local_weights_file_full_classifier_state_dict(tmp_path: Path):
    ref = _reference()
    pt = tmp_path / "w.pth"
    torch.save(ref.state_dict(), pt)
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(st))
    for path in (pt, st):
        model, _ = build_backbone("mobilenet_v3_small", str(path))
        torch.testing.assert_close(model.features[0][0].weight, ref.features[0][0].weight)


def test_wrong_or_unsafe_weights_are_refused(tmp_path: Path):
    torch.save(_reference("resnet18").state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(BackboneError, match="do not fit"):
        build_backbone("mobilenet_v3_small", str(tmp_path / "resnet.pth"))
    with pytest.raises(BackboneError, match="not found"):
        build_backbone("resnet18", str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneError, match="cannot load"):
        build_backbone("resnet18", str(tmp_path / "junk.pth"))


def test_imagenet_weights_come_from_the_local_cache_only(tmp_path: Path, monkeypatch):
    original = torch.hub.get_dir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.hub.set_dir(str(tmp_path / "torch" / "hub"))
    try:
        expected = imagenet_cache_path("mobilenet_v3_small")
        assert expected.parent == tmp_path / "torch" / "hub" / "checkpoints"
        with pytest.raises(BackboneError, match="not in the local cache"):
            build_backbone("mobilenet_v3_small", "imagenet")
        expected.parent.mkdir(parents=True)
        ref = _reference()
        torch.save(ref.state_dict(), expected)
        model, _ = build_backbone("mobilenet_v3_small", "imagenet")
        torch.testing.assert_close(model.features[0][0].weight, ref.features[0][0].weight)
        from pipeline.io_utils import file_sha256

        assert initial_weights("mobilenet_v3_small", "imagenet") == {
            "weights": "imagenet", "source": expected.name, "sha256": file_sha256(expected)}
    finally:
        torch.hub.set_dir(original)


def test_embed_job_on_a_clip(tmp_path: Path):
    from data_prep.video_io import write_video

    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(10)]
    path = write_video(tmp_path / "c.mp4", frames, 10.0)
    cfg = BackboneConfig(name="resnet18", weights="none", frame_size=32, short_side=32, num_segments=6)
    torch.manual_seed(0)
    eval_emb = EmbedJob(cfg, "")(str(path))
    assert eval_emb.shape == (6, 512)
    np.testing.assert_allclose(EmbedJob(cfg, "")(str(path)), eval_emb, rtol=1e-5, atol=1e-5)
    view = EmbedJob(cfg, "", train_view=0, seed=3)(str(path))
    assert view.shape == (6, 512)


def test_embedder_state_roundtrip_with_projection():
    from data_prep.frame_embed import embedder_from_state

    model, dim = build_backbone("resnet18", "none")
    emb = FrameEmbedder(model, dim, torch.nn.Linear(dim, 34)).eval()
    assert emb.dim == 34
    state = emb.export_state()
    again = embedder_from_state("resnet18", state, "test")
    frames = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(again.embed(frames), emb.embed(frames), rtol=1e-5, atol=1e-5)
    bad = {**state, "projection.weight": torch.zeros(34, 7)}
    with pytest.raises(BackboneError, match="projection"):
        embedder_from_state("resnet18", bad, "test")


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_inference_copy_folds_batchnorm_and_keeps_outputs(name):
    torch.manual_seed(0)
    model, dim = build_backbone(name, "none")
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():  # non-trivial statistics, so folding has something to fold
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    emb = FrameEmbedder(model, dim, torch.nn.Linear(dim, 8)).eval()
    fast = emb.for_inference()
    count = lambda mod: sum(isinstance(m, torch.nn.BatchNorm2d) for m in mod.modules())  # noqa: E731
    assert count(emb.backbone) > 0 and count(fast.backbone) == 0  # folded, original untouched
    # Folding is exact in fp32; under bf16 autocast (CPUs with AMX) both sides round to 8 bits.
    emb.precision = fast.precision = "fp32"
    frames = np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    ref = emb.embed(frames)
    np.testing.assert_allclose(fast.embed(frames), ref, rtol=1e-3, atol=1e-3 * float(np.abs(ref).max()))


def test_inference_copy_of_an_untraceable_backbone_stays_unfolded(monkeypatch):
    import torch.fx.experimental.optimization as fx_opt

    def refuse(*args, **kwargs):
        raise RuntimeError("cannot trace")

    monkeypatch.setattr(fx_opt, "fuse", refuse)
    model, dim = build_backbone("resnet18", "none")
    emb = FrameEmbedder(model, dim).eval()
    fast = emb.for_inference()
    frames = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(fast.embed(frames), emb.embed(frames), rtol=1e-6, atol=1e-6)


def test_initial_weights_name_what_a_bundle_started_from(tmp_path: Path):
    from data_prep.efficientnet_lite import SHA256
    from pipeline.io_utils import file_sha256

    assert initial_weights("resnet18", "none") == {"weights": "none"}
    lite = initial_weights("efficientnet_lite0", "imagenet")
    assert lite["sha256"] == SHA256 and lite["weights"] == "imagenet"
    torch.save(_reference().state_dict(), tmp_path / "w.pth")
    own = initial_weights("mobilenet_v3_small", str(tmp_path / "w.pth"))
    assert own == {"weights": str(tmp_path / "w.pth"), "source": "w.pth", "sha256": file_sha256(tmp_path / "w.pth")}
