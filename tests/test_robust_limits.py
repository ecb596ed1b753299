"""Resource limits (issue #33): hostile word LMs, lexicons, bundle configs, model sizes and beams.

Every case here is refused before the expensive part (the read, the allocation, the KenLM load)
with one line naming the file and the problem, and quickly. The files are small: the limits are
lowered with :func:`pipeline.limits.use_limits` where a real attack would need gigabytes, so
the same code path is taken at a fraction of the size (the full-size probes are measured in the
issue). Every test also checks that an ordinary input still works.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from pipeline.bundle import BundleError, load_bundle, save_bundle
from pipeline.limits import LimitError, Limits, use_limits

SENTENCES = ["the cat sat on the mat", "the cat ran", "a cat sat", "the dog sat on a mat"] * 3


class Hung(BaseException):
    """Raised by the alarm: not an Exception, so no ``except Exception`` can swallow it."""


@contextlib.contextmanager
def deadline(seconds: int):
    """Fails the test (instead of hanging it) if the block runs past ``seconds``."""

    def hang(signum, frame):
        raise Hung(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def one_line(exc: BaseException, *names: str) -> str:
    """The message, checked to be one short line that names each of ``names``."""
    message = str(exc)
    assert "\n" not in message and len(message) < 600, message[:2000]
    for name in names:
        assert name in message, (name, message)
    return message


# --------------------------------------------------------------------------- fixtures


def _lm_files(out: Path) -> tuple[Path, Path]:
    from pipeline.decoding.lexicon import spell_words, write_lexicon
    from pipeline.decoding.ngram import build_kneser_ney
    from pipeline.tokenizer import CharTokenizer

    model = build_kneser_ney(SENTENCES, 3)
    model.write_arpa(out / "lm.arpa.gz")
    lexicon, _ = spell_words(model.vocabulary, CharTokenizer())
    write_lexicon(out / "lexicon.txt", lexicon)
    return out / "lm.arpa.gz", out / "lexicon.txt"


@pytest.fixture(scope="module")
def lm_bundle(tmp_path_factory) -> Path:
    """A tiny untrained speech bundle (log-mel, BiGRU of 16) with a word LM and its lexicon."""
    from bundles import tiny_speech_bundle

    from pipeline.io_utils import file_sha256

    arpa, lexicon = _lm_files(tmp_path_factory.mktemp("lm_src"))
    lm = {
        "arpa": "lm.arpa.gz", "lexicon": "lexicon.txt",
        "sha256": {"lm.arpa.gz": file_sha256(arpa), "lexicon.txt": file_sha256(lexicon)},
        "order": 3, "lm_weight": 1.0, "word_score": 0.0, "beam_size": 8, "beam_size_token": 8,
    }  # fmt: skip
    return tiny_speech_bundle(tmp_path_factory.mktemp("lm_bundle") / "bundle", extra={"lm": lm},
                              files={"lm.arpa.gz": arpa, "lexicon.txt": lexicon})  # fmt: skip


def _copy(bundle: Path, dst: Path) -> Path:
    return Path(shutil.copytree(bundle, dst))


def _edit_config(bundle: Path, **changes) -> None:
    """Changes top-level keys (a dict value is merged one level deep) of a bundle's config.yaml."""
    path = bundle / "config.yaml"
    config = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _replace_lm_file(bundle: Path, name: str, data: bytes | None = None) -> Path:
    """Replaces a bundle LM file (``data``: its new bytes; None: keep what is there) and records
    its new sha256, as a forger would."""
    from pipeline.io_utils import file_sha256

    path = bundle / name
    if data is not None:
        path.write_bytes(data)
    config = yaml.safe_load((bundle / "config.yaml").read_text())
    config["lm"]["sha256"][name] = file_sha256(path)
    (bundle / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _zeros_gzip(path: Path, size: int) -> Path:
    """A gzip file of ``size`` zero bytes, compressed on the fly (a few kB on disk)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    block = b"\0" * (1 << 20)
    with open(path, "wb") as fh:
        for _ in range(size >> 20):
            fh.write(comp.compress(block))
        fh.write(comp.flush())
    return path


def _wav(path: Path) -> Path:
    t = np.arange(8000) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return path


# --------------------------------------------------------------------------- 3: pipes, devices


def test_lm_paths_that_are_pipes_or_devices_are_refused_before_opening(tmp_path, lm_bundle, capsys):
    from pipeline.cli import main as cli_main
    from pipeline.decoding.word_lm import LMError, file_lm
    from pipeline.tokenizer import CharTokenizer

    fifo = tmp_path / "lm.fifo"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero"), tmp_path):
        with deadline(10), pytest.raises(LMError) as exc:
            file_lm(path, CharTokenizer())
        one_line(exc.value, str(path))
    wav = _wav(tmp_path / "a.wav")
    with deadline(20):
        rc = cli_main(["transcribe", "--model", str(lm_bundle), "--lm", str(fifo), str(wav)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(fifo) in err[0] and "not a regular file" in err[0], err
    # the bundle's own LM files are checked the same way (a FIFO as lexicon.txt)
    b = _copy(lm_bundle, tmp_path / "fifo_lexicon")
    (b / "lexicon.txt").unlink()
    os.mkfifo(b / "lexicon.txt")
    from pipeline.inference.transcriber import Transcriber

    with deadline(20), pytest.raises(BundleError) as exc:
        Transcriber.from_pretrained(b)
    one_line(exc.value, "lexicon.txt", "not a regular file")
    # and a normal LM file still works, from a path
    assert file_lm(lm_bundle / "lm.arpa.gz", CharTokenizer()).words


# --------------------------------------------------------------------------- 5: LM reads


def test_lm_reads_stop_at_the_line_and_byte_limits(tmp_path):
    from pipeline.decoding.ngram import check_arpa
    from pipeline.decoding.word_lm import file_lm
    from pipeline.tokenizer import CharTokenizer

    arpa, _ = _lm_files(tmp_path)
    text = gzip.decompress(arpa.read_bytes()).decode()
    small = Limits().raised(max_line_bytes=64 << 10, max_lm_bytes=4 << 20)
    bomb = _zeros_gzip(tmp_path / "bomb.arpa.gz", 16 << 20)  # 16 MB of zeros, no newline
    sparse = tmp_path / "sparse.arpa"  # under max_lm_bytes on disk: its first "line" is refused
    with open(sparse, "wb") as fh:
        fh.truncate(3 << 20)
    big = tmp_path / "big.arpa"  # over max_lm_bytes on disk: refused from its size
    with open(big, "wb") as fh:
        fh.truncate(16 << 20)
    long_line = tmp_path / "long.arpa"
    long_line.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\t" + "w" * (100 << 10) + "\n\n\\end\\\n")
    many = tmp_path / "many.arpa.gz"  # a valid header, then more text than max_lm_bytes
    with gzip.open(many, "wt") as fh:
        fh.write("\\data\\\nngram 1=2000000\n\n\\1-grams:\n")
        fh.write("-1.0\tw\n" * 2_000_000)
        fh.write("\n\\end\\\n")
    declared = tmp_path / "declared.arpa"  # the header alone claims a terabyte of n-grams
    declared.write_text(text.replace("ngram 2=", "ngram 2=100000000000", 1))
    digits = tmp_path / "digits.arpa"  # more digits than Python's int() takes
    digits.write_text(text.replace("ngram 2=", "ngram 2=" + "9" * 5000, 1))
    words = tmp_path / "words.arpa"
    words.write_text(text)
    cases = {
        bomb: ("--max-line-bytes", small),
        sparse: ("--max-line-bytes", small),
        big: ("--max-lm-bytes", small),
        long_line: ("--max-line-bytes", small),
        many: ("--max-lm-bytes", small),
        declared: ("--max-lm-bytes", Limits()),
        digits: ("--max-lm-bytes", Limits()),
        words: ("--max-lexicon-words", Limits().raised(max_lexicon_words=5)),
    }
    for path, (flag, limits) in cases.items():
        t0 = time.monotonic()
        with deadline(10), use_limits(limits), pytest.raises(LimitError) as exc:
            check_arpa(path)
        one_line(exc.value, str(path), flag)
        assert time.monotonic() - t0 < 3.0, path
        with deadline(10), use_limits(limits), pytest.raises(LimitError):
            file_lm(path, CharTokenizer())  # the limit error reaches the caller as it is
    with use_limits(small):
        assert check_arpa(arpa).counts[0] > 5  # the ordinary LM passes under the small limits
        assert check_arpa(words).order == 3


# --------------------------------------------------------------------------- 6: bundle LM files


def test_a_bundle_lm_bomb_or_giant_lexicon_is_refused_early(tmp_path, lm_bundle):
    from pipeline.inference.transcriber import Transcriber

    small = Limits().raised(max_line_bytes=64 << 10, max_lexicon_words=1000)
    bomb = _copy(lm_bundle, tmp_path / "bomb")
    _zeros_gzip(bomb / "lm.arpa.gz", 16 << 20)
    _replace_lm_file(bomb, "lm.arpa.gz")
    lexicon = _copy(lm_bundle, tmp_path / "lexicon")
    with open(lexicon / "lexicon.txt", "a") as fh:
        fh.write("cat\tc a t |\n" * 50_000)
    _replace_lm_file(lexicon, "lexicon.txt")
    long_entry = _copy(lm_bundle, tmp_path / "long_entry")
    _replace_lm_file(long_entry, "lexicon.txt", b"cat\t" + b"c " * (100 << 10) + b"|\n")
    cases = {
        bomb: ("lm.arpa.gz", "--max-line-bytes"),
        lexicon: ("lexicon.txt", "--max-lexicon-words"),
        long_entry: ("lexicon.txt", "--max-line-bytes"),
    }
    for bundle, (name, flag) in cases.items():
        t0 = time.monotonic()
        with deadline(20), use_limits(small), pytest.raises(LimitError) as exc:
            Transcriber.from_pretrained(bundle)
        one_line(exc.value, str(bundle / name), flag)
        assert time.monotonic() - t0 < 5.0, bundle
    with use_limits(small):
        assert Transcriber.from_pretrained(lm_bundle).lm is not None


# --------------------------------------------------------------------------- 7: YAML aliases


def _laughs(depth: int) -> str:
    """YAML anchors and aliases that expand to 10**depth strings from a few hundred bytes."""
    lines = ['l0: &l0 "lol"']
    for i in range(1, depth + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_bundle_configs_refuse_yaml_aliases_and_anchors(tmp_path, lm_bundle):
    from pipeline.inference.transcriber import Transcriber

    original = (lm_bundle / "config.yaml").read_text()
    places = {
        "format_version": lambda c: c.replace("format_version: 1", "format_version: *l6"),
        "hidden_size": lambda c: c.replace("hidden_size: 16", "hidden_size: *l6"),
        "lm_weight": lambda c: c.replace("lm_weight: 1.0", "lm_weight: *l6"),
        "merge key": lambda c: c.replace("lm:\n", "lm:\n  <<: *l0map\n", 1),
    }
    for name, edit in places.items():
        b = _copy(lm_bundle, tmp_path / name.replace(" ", "_"))
        extra = "l0map: &l0map {x: 1}\n" if name == "merge key" else _laughs(6)
        (b / "config.yaml").write_text(extra + edit(original))
        t0 = time.monotonic()
        with deadline(10), pytest.raises(BundleError) as exc:
            Transcriber.from_pretrained(b)
        one_line(exc.value, str(b / "config.yaml"), "alias")
        assert time.monotonic() - t0 < 2.0, name
    # an anchor alone is refused too: a seqrec config never needs one
    b = _copy(lm_bundle, tmp_path / "anchor")
    (b / "config.yaml").write_text(original.replace("kind: speech_ctc", "kind: &k speech_ctc"))
    with pytest.raises(BundleError) as exc:
        load_bundle(b)
    one_line(exc.value, "anchor")


def test_saved_bundles_never_use_aliases_and_load_back(tmp_path):
    shared = ["<blank>", " ", "a"]
    out = save_bundle(
        tmp_path / "b", {"kind": "speech_ctc", "weights": "w.safetensors", "tokens": shared, "copy": shared},
        {"w.safetensors": {"w": torch.zeros(2)}},
    )  # fmt: skip
    assert "&" not in (out / "config.yaml").read_text()
    assert load_bundle(out).config["copy"] == shared


def test_echoed_config_values_are_truncated(tmp_path, lm_bundle):
    from pipeline.inference.transcriber import Transcriber

    huge = "x" * 20_000
    edits = {
        "format_version": {"format_version": huge},
        "kind": {"kind": huge},
        "hidden_size": {"model": {"encoder": {"hidden_size": huge}}},
        "cell": {"model": {"encoder": {"cell": huge}}},
        "lm_weight": {"lm": {"lm_weight": huge}},
        "tokens": {"tokens": ["<blank>", " ", huge]},
        "features": {"features": {"upstream_layers": huge}},
    }
    for name, changes in edits.items():
        b = _copy(lm_bundle, tmp_path / name)
        config = yaml.safe_load((b / "config.yaml").read_text())
        for key, value in changes.items():
            if key == "model":
                config["model"]["encoder"].update(value["encoder"])
            elif isinstance(value, dict):
                config[key].update(value)
            else:
                config[key] = value
        (b / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, width=10**7))
        with deadline(10), pytest.raises((BundleError, ValueError)) as exc:
            Transcriber.from_pretrained(b)
        message = one_line(exc.value, str(b))
        assert "xxx" in message and huge[:1000] not in message, name


# --------------------------------------------------------------------------- 8: model size


def _speech_config(**encoder) -> dict:
    from pipeline.config import to_dict
    from pipeline.models.ctc_model import CTCModelConfig
    from pipeline.models.encoder import EncoderConfig

    return to_dict(CTCModelConfig(input_dim=80, vocab_size=29, encoder=EncoderConfig(**encoder)))


@pytest.mark.parametrize(
    "model",
    [
        {"encoder": {"cell": "lstm", "hidden_size": 12, "num_layers": 2, "subsampling": 4, "layer_norm": True}},
        {"encoder": {"cell": "gru", "hidden_size": 7, "num_layers": 3, "bidirectional": False}},
        {"encoder": {"cell": "rnn", "hidden_size": 5, "num_layers": 1, "subsampling": 8}, "ctc_upsample": 3},
        {"input_dim": 96, "input_layers": 3, "encoder": {"hidden_size": 6, "num_layers": 2}},
        {"input_dim": 64, "upstream_blocks": 2, "encoder": {"cell": "gru", "hidden_size": 4, "num_layers": 1}},
    ],
)
def test_the_parameter_count_of_a_speech_config_matches_the_built_model(model):
    from pipeline.config import from_dict
    from pipeline.models.ctc_model import CTCModel, CTCModelConfig
    from pipeline.models.params import ctc_model_params

    cfg = from_dict(CTCModelConfig, model, "model")
    assert ctc_model_params(cfg) == sum(p.numel() for p in CTCModel(cfg).parameters())


@pytest.mark.parametrize("pooling", ["attention", "mean", "last"])
@pytest.mark.parametrize("cell, bidirectional", [("lstm", True), ("gru", False)])
def test_the_parameter_count_of_a_video_config_matches_the_built_model(pooling, cell, bidirectional):
    from pipeline.models.classifier import ClassifierConfig, SequenceClassifier
    from pipeline.models.encoder import EncoderConfig
    from pipeline.models.params import classifier_params

    enc = EncoderConfig(cell=cell, hidden_size=9, num_layers=2, bidirectional=bidirectional, layer_norm=True)
    cfg = ClassifierConfig(input_dim=20, num_classes=4, pooling=pooling, encoder=enc)
    assert classifier_params(cfg) == sum(p.numel() for p in SequenceClassifier(cfg).parameters())


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_oversized_models_are_refused_before_anything_is_allocated(tmp_path):
    from pipeline.inference.labeler import ClipLabeler
    from pipeline.inference.transcriber import Transcriber

    def speech(name, **encoder):
        out = tmp_path / name
        out.mkdir()
        (out / "config.yaml").write_text(yaml.safe_dump({
            "format_version": 1, "kind": "speech_ctc", "model": _speech_config(**encoder), "features": {},
            "tokens": ["<blank>", " ", "'", *"abcdefghijklmnopqrstuvwxyz"], "weights": "model.safetensors",
        }))  # fmt: skip
        (out / "model.safetensors").write_bytes(b"")
        return out

    # 8.8 M parameters against a limit of 1 M (the allocation a lowered limit must prevent)
    b = speech("mid", hidden_size=512, num_layers=2)
    with use_limits(Limits().raised(max_params=1_000_000)), pytest.raises(LimitError) as exc:
        Transcriber.from_pretrained(b, lm="none")
    one_line(exc.value, str(b / "config.yaml"), "--max-params", "8,7")
    # what the old bounds admitted: 6.3 billion parameters (25 GB), refused from the config alone
    b = speech("giant", hidden_size=4096, num_layers=16)
    before = _peak_rss_mb()
    t0 = time.monotonic()
    with deadline(10), pytest.raises(LimitError) as exc:
        Transcriber.from_pretrained(b, lm="none")
    assert time.monotonic() - t0 < 2.0 and _peak_rss_mb() - before < 200
    one_line(exc.value, str(b / "config.yaml"), "--max-params")
    # a video classifier likewise
    video = _video_bundle(tmp_path / "video", hidden_size=16, num_layers=1)  # 58 k parameters
    with use_limits(Limits().raised(max_params=10_000)), pytest.raises(LimitError) as exc:
        ClipLabeler.from_pretrained(video)
    one_line(exc.value, str(video / "config.yaml"), "--max-params")
    assert ClipLabeler.from_pretrained(video).labels_ == ["a", "b"]


def _video_bundle(out: Path, **encoder) -> Path:
    from data_prep.frame_embed import BackboneConfig, build_backbone
    from pipeline.config import to_dict
    from pipeline.models.classifier import ClassifierConfig, SequenceClassifier
    from pipeline.models.encoder import EncoderConfig

    bb = BackboneConfig(name="mobilenet_v3_small", frame_size=32, short_side=32, num_segments=4)
    net, dim = build_backbone(bb.name, "none")
    cfg = ClassifierConfig(input_dim=dim, num_classes=2, encoder=EncoderConfig(cell="gru", **encoder))
    return save_bundle(out, {
        "kind": "video_classifier", "model": to_dict(cfg), "backbone": to_dict(bb), "labels": ["a", "b"],
        "weights": "model.safetensors", "backbone_weights": "backbone.safetensors",
    }, {"model.safetensors": SequenceClassifier(cfg).state_dict(), "backbone.safetensors": net.state_dict()})  # fmt: skip


# --------------------------------------------------------------------------- 9: beam width


def test_beam_widths_over_the_limit_are_refused(tmp_path, lm_bundle, capsys):
    from pipeline.cli import main as cli_main
    from pipeline.inference.transcriber import Transcriber

    with deadline(10), pytest.raises(LimitError) as exc:
        Transcriber.from_pretrained(lm_bundle, lm="none", beam_size=5000)
    one_line(exc.value, str(lm_bundle), "--max-beam", "5000")
    with deadline(10), pytest.raises(LimitError) as exc:
        Transcriber.from_pretrained(lm_bundle, beam_size=10**9)
    one_line(exc.value, "--max-beam")
    b = _copy(lm_bundle, tmp_path / "beam")
    _edit_config(b, lm={"beam_size": 5000})
    with deadline(10), pytest.raises(LimitError) as exc:
        Transcriber.from_pretrained(b)
    one_line(exc.value, str(b / "config.yaml"), "lm.beam_size", "--max-beam")
    tr = Transcriber.from_pretrained(lm_bundle, lm="none", beam_size=4)
    feats = [torch.zeros(20, 80)]
    with pytest.raises(LimitError):
        tr.decode_features(feats, beam_size=5000)
    assert len(tr.decode_features(feats, beam_size=2)) == 1
    wav = _wav(tmp_path / "a.wav")
    with deadline(20):
        rc = cli_main(["transcribe", "--model", str(lm_bundle), "--beam-size", "1000000000", str(wav)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--max-beam" in err[0], err


# --------------------------------------------------------------------------- errors with no path


def test_errors_that_named_no_file_now_name_the_bundle_file(tmp_path, lm_bundle, monkeypatch):
    from pipeline.inference.transcriber import Transcriber

    original = (lm_bundle / "config.yaml").read_text()
    deep = _copy(lm_bundle, tmp_path / "deep")
    (deep / "config.yaml").write_text(original + "nested: " + "[" * 50_000 + "]" * 50_000 + "\n")
    digits = _copy(lm_bundle, tmp_path / "digits")
    (digits / "config.yaml").write_text(original + "big: " + "7" * 5000 + "\n")
    for b in (deep, digits):
        with deadline(10), pytest.raises(BundleError) as exc:
            load_bundle(b)
        one_line(exc.value, str(b / "config.yaml"))

    import pipeline.models.ctc_model as ctc_model

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(ctc_model.CTCModel, "__init__", no_memory)
    with pytest.raises(BundleError) as exc:
        Transcriber.from_pretrained(lm_bundle)
    one_line(exc.value, str(lm_bundle), "memory")
    monkeypatch.undo()

    import pipeline.decoding.flashlight as flashlight

    def bad_alloc(*args, **kwargs):
        raise MemoryError("std::bad_alloc")

    monkeypatch.setattr(flashlight.FlashlightSearch, "__init__", bad_alloc)  # the search both engines build
    with pytest.raises(BundleError) as exc:
        Transcriber.from_pretrained(lm_bundle)
    one_line(exc.value, str(lm_bundle / "lm.arpa.gz"), "memory")
