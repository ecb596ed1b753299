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
