"""The torch-free lite engine (numpy features, the bundle's ONNX graph on onnxruntime) against
the torch path it mirrors, and the CLI's engine choice. The graph itself is tested against the
torch model in tests/test_onnx_export.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.inference import lite
from pipeline.inference.lite import (
    LiteBundleError,
    LiteFeatureConfig,
    LiteTranscriber,
    LogMel,
    UnsupportedBundleError,
)

REPO = Path(__file__).resolve().parents[1]
SR = 16000
#: Heavy modules the lite path must never load.
FORBIDDEN = ("torch", "torchaudio", "librosa", "scipy")


# --------------------------------------------------------------------------- helpers


def _speech(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A speech-like test signal: gliding harmonics in syllable-like bursts, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 0.5
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def speech_bundle(tmp_path_factory) -> Path:
    """A small untrained BiLSTM-CTC bundle in the layout of speech_ctc.stage_export."""
    from data_prep.features import FeatureConfig
    from pipeline.bundle import save_bundle
    from pipeline.config import to_dict
    from pipeline.models.ctc_model import CTCModel, CTCModelConfig
    from pipeline.models.encoder import EncoderConfig
    from pipeline.tokenizer import CharTokenizer

    torch.manual_seed(2)  # a seed whose untrained model emits several different words
    tokenizer = CharTokenizer()
    cfg = CTCModelConfig(
        input_dim=80, vocab_size=tokenizer.vocab_size, ctc_upsample=2, utterance_cmn=True,
        encoder=EncoderConfig(cell="lstm", hidden_size=24, num_layers=2, subsampling=4),
    )
    model = CTCModel(cfg)
    model.cmvn.set_stats(torch.full((80,), -6.0), torch.full((80,), 3.0))
    with torch.no_grad():
        model.head.proj.weight.mul_(8.0)  # sharper outputs: many different tokens, several words
        model.head.proj.bias[1 :: tokenizer.vocab_size] += 1.0  # more spaces (id 1) -> more words
    from pipeline.inference import onnx_export

    root = tmp_path_factory.mktemp("lite")
    graph = onnx_export.speech_onnx(model.eval())
    (root / "model.onnx").write_bytes(graph)
    config = {
        "kind": "speech_ctc", "model": to_dict(cfg), "features": to_dict(FeatureConfig()),
        "tokens": tokenizer.to_list(), "weights": "model.safetensors", "metrics": {},
        "onnx": onnx_export.speech_record(model, graph),
    }
    files = {"model.onnx": root / "model.onnx"}
    return save_bundle(root / "bundle", config, {"model.safetensors": model.state_dict()}, files)


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("audio")
    mono = root / "mono16k.wav"
    sf.write(mono, _speech(1.7, SR), SR, subtype="PCM_16")
    stereo = root / "stereo22k.wav"
    left = _speech(1.3, 22050, seed=1)
    sf.write(stereo, np.stack([left, 0.6 * left[::-1]], axis=1), 22050, subtype="PCM_16")
    corrupt = root / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    empty = root / "empty.wav"
    empty.write_bytes(b"")
    return {"mono": mono, "stereo": stereo, "corrupt": corrupt, "empty": empty, "missing": root / "nope.wav"}


# --------------------------------------------------------------------------- (a) features, audio


def test_log_mel_matches_torch_extractor(monkeypatch) -> None:
    from data_prep.features import FeatureConfig, LogMelExtractor
    from pipeline.config import to_dict

    for cfg in (FeatureConfig(), FeatureConfig(sample_rate=8000, n_mels=40, n_fft=256, win_length=200,
                                               hop_length=80, f_min=0.0, f_max=4000.0)):
        torch_ex = LogMelExtractor(cfg)
        numpy_ex = LogMel(LiteFeatureConfig.from_config(to_dict(cfg)))
        np.testing.assert_allclose(numpy_ex.fbank, torch_ex.fbank.numpy(), atol=1e-6)
        monkeypatch.setattr(LogMel, "block_frames", 7)  # several blocks, one of them partial
        for n in (cfg.n_fft // 2 + 1, cfg.win_length, 3 * cfg.sample_rate // 2 + 37):
            wave = _speech(n / cfg.sample_rate + 1e-9, cfg.sample_rate)[:n]
            wave[: n // 3] = 0.0  # silence reaches the log floor, where errors would show most
            ref = torch_ex(torch.from_numpy(wave)).numpy()
            got = numpy_ex(wave)
            assert got.shape == ref.shape == (1 + n // cfg.hop_length, cfg.n_mels)
            # float32 FFTs of two libraries: stated tolerance 1e-4 (natural-log units)
            np.testing.assert_allclose(got, ref, atol=1e-4)
        monkeypatch.undo()


def test_numpy_resampler_matches_torchaudio() -> None:
    from data_prep.audio import resample, resample_sinc

    x = _speech(0.9, 44100)
    for orig, new in ((22050, 16000), (44100, 16000), (8000, 16000), (48000, 16000), (44101, 16000), (3, 2)):
        ref = resample(torch.from_numpy(x), orig, new).numpy()  # a tensor: torchaudio
        got = resample(x, orig, new)  # a numpy array: the numpy port
        assert isinstance(got, np.ndarray) and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-6)  # same kernel, float32 rounding only
    np.testing.assert_allclose(resample_sinc(x, 3, 1, block_frames=5), resample(torch.from_numpy(x), 3, 1).numpy(), atol=1e-6)


def test_numpy_audio_backend_matches_torch(audio_files) -> None:
    from data_prep.audio import load_audio, load_waveform

    for key in ("mono", "stereo"):  # stereo22k.wav is downmixed and resampled
        ref = load_audio(audio_files[key], target_sr=SR).numpy()
        got = load_waveform(audio_files[key], target_sr=SR, backend="numpy")
        assert got.dtype == np.float32 and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-6)
    with pytest.raises(ValueError, match="backend"):
        load_waveform(audio_files["mono"], backend="scipy")


# --------------------------------------------------------------------------- (b) decoding


def test_greedy_path_matches_batched_greedy_decode() -> None:
    """The numpy rule lite calls on one utterance, against the torch batch front end and a
    reference collapse (merge runs, drop blanks) written independently here."""
    from pipeline.decoding.greedy import greedy_decode, greedy_path

    rng = np.random.default_rng(0)
    for trial in range(10):
        lens = rng.integers(0, 60, size=3)
        batch = np.full((3, int(lens.max()), 7), -np.inf, np.float32)  # padding: -inf
        for b, n in enumerate(lens):
            # Mostly blanks, spaces and a few letters, with runs, so merging and word breaks happen.
            ids = np.repeat(rng.choice([0, 0, 0, 1, 3, 4, 5], size=n), rng.integers(1, 3, size=n))[:n]
            logits = rng.standard_normal((n, 7)).astype(np.float32)
            logits[np.arange(n), ids] += 6.0
            batch[b, :n] = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        hyps = greedy_decode(torch.from_numpy(batch), torch.from_numpy(lens))
        for b, n in enumerate(lens.tolist()):
            got = greedy_path(batch[b, :n])
            assert (got.token_ids, got.frames) == (hyps[b].token_ids, hyps[b].frames), trial
            assert got.score == pytest.approx(hyps[b].score, abs=1e-3) and np.isfinite(got.score)
            best = batch[b, :n].argmax(-1).tolist()
            want = [(t, f) for f, t in enumerate(best) if t != 0 and (f == 0 or best[f - 1] != t)]
            assert list(zip(got.token_ids, got.frames, strict=True)) == want, trial


# --------------------------------------------------------------------------- (c) end to end


def test_transcriber_parity(speech_bundle, audio_files) -> None:
    from pipeline.inference.transcriber import Transcriber

    order = [audio_files[k] for k in ("mono", "corrupt", "stereo", "empty", "missing")]
    want = [r.to_dict() for r in Transcriber.from_pretrained(speech_bundle).transcribe(order)]
    got = [r.to_dict() for r in LiteTranscriber.from_pretrained(speech_bundle).transcribe(order)]
    assert got == want
    assert [("error" in r) for r in got] == [False, True, False, True, True]
    assert sum(len(r["words"]) for r in got if "words" in r) >= 3  # a real comparison, not two empties
    assert "cannot decode audio" in got[1]["error"] and got[3]["error"].endswith("empty file (0 bytes)")
    # the directory form, and raise_errors
    by_dir = LiteTranscriber.from_pretrained(speech_bundle).transcribe(audio_files["mono"].parent)
    assert [Path(r.path).name for r in by_dir] == ["corrupt.wav", "empty.wav", "mono16k.wav", "stereo22k.wav"]
    from data_prep.audio import AudioError  # the one class both engines raise

    assert lite.AudioError is AudioError
    with pytest.raises(AudioError, match="empty file"):
        LiteTranscriber.from_pretrained(speech_bundle).transcribe(audio_files["empty"], raise_errors=True)


def test_bundle_errors_match_torch(speech_bundle, tmp_path) -> None:
    import yaml

    from pipeline.bundle import BundleError
    from pipeline.inference.transcriber import Transcriber

    video = tmp_path / "video"
    video.mkdir()
    (video / "config.yaml").write_text(yaml.safe_dump({"format_version": 1, "kind": "video_classifier"}))
    for bad in (tmp_path / "absent", tmp_path, video):
        with pytest.raises(BundleError) as torch_err:
            Transcriber.from_pretrained(bad)
        with pytest.raises(LiteBundleError) as lite_err:
            LiteTranscriber.from_pretrained(bad)
        assert str(lite_err.value) == str(torch_err.value)
    odd = _copy_bundle(speech_bundle, tmp_path / "odd")
    config = yaml.safe_load((odd / "config.yaml").read_text())
    del config["onnx"]  # a bundle from before ONNX export: torch runs it, lite cannot
    (odd / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(UnsupportedBundleError, match=r"odd: the bundle has no ONNX graph"):
        LiteTranscriber.from_pretrained(odd)
    assert Transcriber.from_pretrained(odd).transcribe(tmp_path / "none.wav")[0].error  # torch loads it
    altered = _copy_bundle(speech_bundle, tmp_path / "altered")
    graph = bytearray((altered / "model.onnx").read_bytes())
    graph[len(graph) // 2] ^= 0xFF
    (altered / "model.onnx").write_bytes(bytes(graph))
    with pytest.raises(LiteBundleError, match=r"altered/model.onnx: sha256 does not match"):
        LiteTranscriber.from_pretrained(altered)
    (altered / "model.onnx").write_bytes(b"\x08\x07garbage")  # fits a forged sha256, not onnxruntime
    import hashlib

    config = yaml.safe_load((altered / "config.yaml").read_text())
    config["onnx"]["sha256"] = hashlib.sha256(b"\x08\x07garbage").hexdigest()
    (altered / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(LiteBundleError, match=r"model.onnx: onnxruntime cannot load the graph"):
        LiteTranscriber.from_pretrained(altered)


def _copy_bundle(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


# --------------------------------------------------------------------------- (d) CLI


def _run_cli(argv: list[str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        f"rc = main({argv!r})\n"
        f"loaded = sorted(m for m in {FORBIDDEN!r} if m in sys.modules)\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_cli_lite_never_imports_torch(speech_bundle, audio_files) -> None:
    from pipeline.inference.transcriber import Transcriber

    files = [str(audio_files["mono"]), str(audio_files["stereo"])]
    proc = _run_cli(["transcribe", "--engine", "lite", "--threads", "1", "--model", str(speech_bundle),
                     "--format", "json", *files])
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    want = [r.to_dict() for r in Transcriber.from_pretrained(speech_bundle).transcribe(files)]
    assert rows == want


def test_cli_auto_runs_lite_for_a_short_file(speech_bundle, audio_files) -> None:
    proc = _run_cli(["transcribe", "--debug", "--model", str(speech_bundle), str(audio_files["stereo"])])
    assert proc.returncode == 0, proc.stderr
    assert "engine: lite" in proc.stderr and "LOADED []" in proc.stderr  # torch never imported
    assert proc.stdout.startswith(f"{audio_files['stereo']}\t")


def test_cli_import_is_light() -> None:
    code = (
        "import sys, pipeline.cli as c; c.build_parser(); print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))\n"
        f"from pipeline import LiteTranscriber; print(sorted(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.split("\n")[:2] == ["[]", "[]"], out.stderr


def test_load_transcriber_picks_the_engine(speech_bundle, audio_files, tmp_path) -> None:
    """auto: the lite engine on CPU, for short files and long ones alike (a file over 60 s is
    read block-wise and decoded in chunks, as on torch, with the same text); torch on a GPU."""
    from pipeline.inference.engines import load_transcriber
    from pipeline.inference.lite import LiteTranscriber
    from pipeline.inference.transcriber import Transcriber

    auto = load_transcriber(speech_bundle, lm="none")
    assert isinstance(auto, LiteTranscriber) and auto.engine == "lite"
    assert load_transcriber(speech_bundle, engine="torch").engine == "torch"
    with pytest.raises(ValueError, match="unknown engine"):
        load_transcriber(speech_bundle, engine="fast")
    with pytest.raises(ValueError, match="cpu only"):
        load_transcriber(speech_bundle, engine="lite", device="cuda")
    files = [audio_files["mono"], audio_files["stereo"]]
    if shutil.which("espeak-ng"):  # a 61 s recording of speech and pauses: chunks cut at pauses
        import subprocess

        said = tmp_path / "said.wav"
        subprocess.run(["espeak-ng", "-w", str(said), "the cat sat on the mat near the door"], check=True)
        speech, rate = sf.read(said, dtype="float32")
        unit = np.concatenate([speech, np.zeros(rate // 2, np.float32)])
        sf.write(tmp_path / "long.wav", np.tile(unit, 61 * rate // unit.size + 1)[: 61 * rate], rate)
        files.append(tmp_path / "long.wav")
    torch_res = Transcriber.from_pretrained(speech_bundle, lm="none").transcribe(files, skip_silence=False)
    lite_res = auto.transcribe(files, skip_silence=False)
    assert [r.error for r in lite_res] == [None] * len(files)
    assert [r.text for r in lite_res] == [r.text for r in torch_res]
    if len(files) == 3:
        assert lite_res[2].duration == pytest.approx(61.0, abs=0.05) and len(lite_res[2].words) > 10
        assert [w["word"] for w in lite_res[2].words] == [w["word"] for w in torch_res[2].words]


def test_cli_auto_falls_back_to_torch_for_unsupported_bundle(speech_bundle, audio_files, tmp_path, capsys) -> None:
    import yaml

    from pipeline.cli import main

    odd = _copy_bundle(speech_bundle, tmp_path / "odd")
    config = yaml.safe_load((odd / "config.yaml").read_text())
    config["features"]["log_floor"] = 1e-6
    del config["features"]["n_fft"]  # torch fills in the default; lite wants every value
    (odd / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["transcribe", "--model", str(odd), "--format", "json", str(audio_files["mono"])]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(audio_files["mono"])
    assert main(["transcribe", "--engine", "lite", "--model", str(odd), str(audio_files["mono"])]) == 2
    assert "n_fft is missing" in capsys.readouterr().err
    assert main(["transcribe", "--engine", "lite", "--device", "cuda", "--model", str(odd), str(audio_files["mono"])]) == 2
    assert "the lite engine runs on --device cpu only" in capsys.readouterr().err


def test_lite_knows_every_feature_field() -> None:
    """A new feature option must be taught to the lite engine's numpy front end (else auto uses
    torch); model options need nothing, since the graph carries the model."""
    from data_prep.features import FeatureConfig
    from pipeline.config import to_dict
    from pipeline.inference import lite_config

    assert set(to_dict(FeatureConfig())) == lite_config._FEATURE_KEYS | {"speed", "upstream_layers", "kind"}


def test_lite_hands_upstream_bundles_to_torch() -> None:
    """An upstream feature kind is refused as unsupported (auto then uses torch)."""
    from pipeline.bundle import UnsupportedBundleError
    from pipeline.inference.lite_config import LiteFeatureConfig

    feats = {"sample_rate": 16000, "n_mels": 80, "n_fft": 512, "win_length": 400, "hop_length": 160,
             "f_min": 20.0, "f_max": 7600.0, "log_floor": 1e-6, "kind": "logmel", "upstream_layers": "last"}
    assert LiteFeatureConfig.from_config(feats).n_mels == 80
    with pytest.raises(UnsupportedBundleError, match="features.kind"):
        LiteFeatureConfig.from_config({**feats, "kind": "whisper_tiny_en"})


# --------------------------------------------------------------------------- no speech


@pytest.fixture(scope="module")
def quiet_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("quiet")
    rng = np.random.default_rng(7)
    files = {"silence": np.zeros(int(1.5 * SR), np.float32),
             "noise": (0.1 * rng.standard_normal(int(1.5 * SR))).astype(np.float32)}  # fmt: skip
    for name, wave in files.items():
        sf.write(root / f"{name}.wav", wave, SR, subtype="PCM_16")
    return {name: root / f"{name}.wav" for name in files}


def test_has_speech_tells_speech_from_silence_and_noise(audio_files, quiet_files) -> None:
    from data_prep.audio import load_audio
    from pipeline.inference.common import has_speech

    def heard(path: Path) -> bool:
        return has_speech(load_audio(path, target_sr=SR).numpy(), SR)

    assert heard(audio_files["mono"]) and heard(audio_files["stereo"])
    assert not heard(quiet_files["silence"]) and not heard(quiet_files["noise"])
    assert has_speech(np.zeros(SR, np.float32), 8000)  # no detector at 8 kHz: decode as usual
    assert not has_speech(np.zeros(10, np.float32), SR)  # shorter than one frame


def test_files_without_speech_get_an_empty_transcript(speech_bundle, audio_files, quiet_files) -> None:
    """Both engines: no words for silence or noise (but their duration), speech unchanged;
    skip_silence=False decodes them as before."""
    from pipeline.inference.transcriber import Transcriber

    files = [quiet_files["silence"], audio_files["mono"], quiet_files["noise"]]
    for engine, stage in ((Transcriber.from_pretrained(speech_bundle), "features"),
                          (LiteTranscriber.from_pretrained(speech_bundle), "front_end")):  # fmt: skip
        decoded = []
        features = getattr(engine, stage)
        setattr(engine, stage, lambda wave, _f=features, _d=decoded: _d.append(1) or _f(wave))
        skipped = engine.transcribe(files)
        assert len(decoded) == 1  # only the speech file reached the model
        assert [r.text for r in skipped[::2]] == ["", ""] and [r.words for r in skipped[::2]] == [[], []]
        assert [round(r.duration, 2) for r in skipped[::2]] == [1.5, 1.5]
        assert all(r.error is None for r in skipped)
        everything = engine.transcribe(files, skip_silence=False)
        assert len(decoded) == 4  # all three this time
        assert everything[1].to_dict() == skipped[1].to_dict()


def test_cli_decode_silence(speech_bundle, quiet_files, capsys) -> None:
    from pipeline.cli import main as cli_main

    noise = str(quiet_files["noise"])
    want = LiteTranscriber.from_pretrained(speech_bundle).transcribe(noise, skip_silence=False)[0]
    assert want.text  # this untrained model makes words of noise
    for flags, text in (([], ""), (["--decode-silence"], want.text)):
        assert cli_main(["transcribe", "--engine", "lite", "--model", str(speech_bundle), *flags, noise]) == 0
        assert capsys.readouterr().out == f"{noise}\t{text}\n"
