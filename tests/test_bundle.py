"""Bundles and checkpoints are data, not code: no pickle, no YAML objects, no path escapes."""

import os
import pickle

import pytest
import torch
import yaml

from pipeline.bundle import BundleError, load_bundle, save_bundle
from pipeline.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


class Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bundle(tmp_path, **extra):
    weights = {"model.safetensors": {"w": torch.arange(6.0).view(2, 3)}}
    return save_bundle(tmp_path / "bundle", {"kind": "speech_ctc", "weights": "model.safetensors", **extra}, weights)


def test_roundtrip(tmp_path):
    b = load_bundle(_bundle(tmp_path, tokens=["<blank>", " "]), kind="speech_ctc")
    assert b.config["tokens"] == ["<blank>", " "]
    torch.testing.assert_close(b.load_weights()["w"], torch.arange(6.0).view(2, 3))
    with pytest.raises(BundleError, match="expected 'video_classifier'"):
        load_bundle(b.path, kind="video_classifier")


def test_save_replaces_atomically(tmp_path):
    _bundle(tmp_path, note="old")
    _bundle(tmp_path, note="new")
    assert load_bundle(tmp_path / "bundle").config["note"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_pickle_payload_in_weights_is_refused(tmp_path):
    path = _bundle(tmp_path)
    marker = tmp_path / "pwned"
    (path / "model.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(BundleError, match="cannot read weights"):
        load_bundle(path).load_weights()
    # and a config pointing at a pickle (.pt) file is refused before reading it
    torch.save({"x": Payload(marker)}, path / "evil.pt")
    cfg = yaml.safe_load((path / "config.yaml").read_text())
    cfg["weights"] = "evil.pt"
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(BundleError, match="safetensors"):
        load_bundle(path).load_weights()
    assert not marker.exists()


def test_pickle_payload_in_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    assert not marker.exists()
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"model": {"w": torch.ones(2)}, "step": 3})
    assert load_checkpoint(good)["step"] == 3
    good.write_bytes(good.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(good)


def test_yaml_tags_are_refused(tmp_path):
    path = _bundle(tmp_path)
    marker = tmp_path / "pwned"
    (path / "config.yaml").write_text(
        f"format_version: 1\nkind: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    with pytest.raises(BundleError, match="not plain YAML"):
        load_bundle(path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../outside.safetensors", "/etc/passwd", "sub/../../x.safetensors", "link.safetensors"])
def test_file_names_cannot_escape_the_bundle(tmp_path, name):
    path = _bundle(tmp_path)
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes((path / "model.safetensors").read_bytes())
    (path / "link.safetensors").symlink_to(outside)
    cfg = yaml.safe_load((path / "config.yaml").read_text())
    cfg["weights"] = name
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(BundleError, match="escapes|outside"):
        load_bundle(path).load_weights()


def test_missing_and_malformed(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="config.yaml"):
        load_bundle(tmp_path / "empty")
    path = _bundle(tmp_path)
    (path / "config.yaml").write_text("format_version: 99\n")
    with pytest.raises(BundleError, match="format_version"):
        load_bundle(path)


def _speech_bundle(tmp_path, **model_changes):
    from pipeline.config import to_dict
    from pipeline.models.ctc_model import CTCModelConfig
    from pipeline.tokenizer import CharTokenizer

    tok = CharTokenizer()
    cfg = to_dict(CTCModelConfig(vocab_size=tok.vocab_size))
    cfg["encoder"].update(model_changes)
    out = tmp_path / "b"
    out.mkdir(parents=True)
    (out / "config.yaml").write_text(yaml.safe_dump({
        "format_version": 1, "kind": "speech_ctc", "model": cfg, "features": {}, "tokens": tok.to_list(),
        "weights": "model.safetensors",
    }))  # fmt: skip
    (out / "model.safetensors").write_bytes(b"")
    return out


def test_untrusted_bundles_cannot_exhaust_resources(tmp_path):
    """config.yaml is confined like the weights (regular file in the bundle, at most 1 MB) and
    size fields are bounded before anything is built: each refusal is quick, with one line."""
    import os
    import signal

    from pipeline.inference.transcriber import Transcriber

    def hang(signum, frame):
        raise TimeoutError("loading the bundle hung")

    signal.signal(signal.SIGALRM, hang)

    cases = {}
    b = _speech_bundle(tmp_path / "zero")
    (b / "config.yaml").unlink()
    (b / "config.yaml").symlink_to("/dev/zero")
    cases["zero"] = (b, "outside the bundle")
    b = _speech_bundle(tmp_path / "fifo")
    (b / "config.yaml").unlink()
    os.mkfifo(b / "config.yaml")
    cases["fifo"] = (b, "not a regular file")
    b = _speech_bundle(tmp_path / "big")
    (b / "config.yaml").write_text("a: " + "x" * 1_100_000)
    cases["big"] = (b, "at most 1000000 bytes")
    cases["huge model"] = (_speech_bundle(tmp_path / "huge", hidden_size=10**7), "hidden_size must be")
    cases["deep model"] = (_speech_bundle(tmp_path / "deep", num_layers=10**4), "num_layers must be")
    for name, (bundle, reason) in cases.items():
        signal.alarm(30)  # a FIFO read or a giant allocation would hang here: fail instead
        try:
            with pytest.raises(BundleError) as exc:
                Transcriber.from_pretrained(bundle, lm="none")
        finally:
            signal.alarm(0)
        assert reason in str(exc.value) and "\n" not in str(exc.value), name


def _video_bundle(tmp_path, backbone=None, encoder=None, weights: dict | None = None):
    """A video bundle in the layout of video_activity.stage_export, with chosen config changes."""
    from data_prep.frame_embed import BackboneConfig, build_backbone
    from pipeline.config import to_dict
    from pipeline.models.classifier import ClassifierConfig, SequenceClassifier
    from pipeline.models.encoder import EncoderConfig

    bb = BackboneConfig(name="mobilenet_v3_small", frame_size=32, short_side=32, num_segments=4)
    net, dim = build_backbone(bb.name, "none")
    cfg = ClassifierConfig(input_dim=dim, num_classes=2, encoder=EncoderConfig(cell="gru", hidden_size=8, num_layers=1))
    model_cfg = to_dict(cfg)
    model_cfg["encoder"].update(encoder or {})
    tensors = weights or {"model.safetensors": SequenceClassifier(cfg).state_dict(), "backbone.safetensors": net.state_dict()}
    return save_bundle(tmp_path, {
        "kind": "video_classifier", "model": model_cfg, "backbone": {**to_dict(bb), **(backbone or {})},
        "labels": ["a", "b"], "weights": "model.safetensors", "backbone_weights": "backbone.safetensors",
    }, tensors)  # fmt: skip


def test_tampered_video_bundles_are_refused_quickly_in_one_line(tmp_path):
    """What the speech bundles face, for video: unknown or giant backbones, absurd sizes, swapped
    or pickled weights, config.yaml outside the bundle. Each refusal is one line, with nothing
    big built first."""
    import signal
    import time

    from pipeline.inference.labeler import ClipLabeler

    good = _video_bundle(tmp_path / "good")
    assert ClipLabeler.from_pretrained(good).labels_ == ["a", "b"]
    cases = {
        "giant backbone": (_video_bundle(tmp_path / "vit", backbone={"name": "vit_h_14"}), "is not one of"),
        "code name": (_video_bundle(tmp_path / "code", backbone={"name": "__import__('os')"}), "is not one of"),
        "huge frames": (_video_bundle(tmp_path / "frames", backbone={"frame_size": 100_000, "short_side": 100_000}),
                        "frame_size must be"),
        "many segments": (_video_bundle(tmp_path / "segs", backbone={"num_segments": 10**6}), "num_segments must be"),
        "huge classifier": (_video_bundle(tmp_path / "wide", encoder={"hidden_size": 10**7}), "hidden_size must be"),
    }
    swapped = tmp_path / "swapped"
    _video_bundle(swapped)
    (swapped / "backbone.safetensors").write_bytes((swapped / "model.safetensors").read_bytes())
    cases["weights of the wrong network"] = (swapped, "invalid video bundle")
    pickled = tmp_path / "pickled"
    _video_bundle(pickled)
    with open(pickled / "backbone.safetensors", "wb") as fh:
        pickle.dump(Payload(tmp_path / "pwned"), fh)
    cases["pickle as weights"] = (pickled, "backbone.safetensors")
    outside = tmp_path / "outside"
    _video_bundle(outside)
    (outside / "config.yaml").unlink()
    (outside / "config.yaml").symlink_to("/dev/zero")
    cases["config.yaml -> /dev/zero"] = (outside, "outside the bundle")

    def hang(signum, frame):
        raise TimeoutError("loading the bundle hung")

    signal.signal(signal.SIGALRM, hang)
    for name, (bundle, reason) in cases.items():
        signal.alarm(30)
        t0 = time.monotonic()
        try:
            with pytest.raises(BundleError) as exc:
                ClipLabeler.from_pretrained(bundle)
        finally:
            signal.alarm(0)
        message = str(exc.value)
        assert reason in message and "\n" not in message, (name, message)
        if name not in ("weights of the wrong network", "pickle as weights"):
            assert time.monotonic() - t0 < 2.0, name  # refused from the config, before building
    assert not (tmp_path / "pwned").exists()
