"""Torch-free CPU transcription of speech CTC bundles: ``LiteTranscriber``.

``import torch`` alone takes 1.5-2.5 s, several times what transcribing a short file costs. This
engine runs the whole speech path with numpy, soundfile and onnxruntime, so a
cold ``seqrec transcribe`` of a few seconds of audio starts as fast as a small C program. It
shares every step it can with the torch path, through modules that do not import torch:

* bundle: :func:`pipeline.bundle.load_bundle` (safe YAML, format and kind checks, safe member
  paths); the model and feature sections are parsed by :mod:`pipeline.inference.lite_config`;
* audio: :func:`data_prep.audio.load_waveform` with ``backend="numpy"`` (its numpy port of
  torchaudio's sinc resampler), raising the same :class:`~data_prep.audio.AudioError`;
* features: :class:`data_prep.features_numpy.LogMel`, the numbers of ``LogMelExtractor``;
* model: the bundle's exported ONNX graph (``model.onnx``, see
  :mod:`pipeline.inference.onnx_export`) run by onnxruntime, :class:`OnnxCTCModel`;
* decoding: :func:`pipeline.decoding.greedy.greedy_path` and
  :func:`pipeline.decoding.timestamps.word_timestamps`, the torch path's own functions.

Greedy decoding on CPU only; ``tests/test_lite_engine.py`` holds every part against the torch
path it mirrors, and ``tests/test_onnx_export.py`` the graph against ``CTCModel``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from data_prep.audio import AudioError, load_waveform
from data_prep.features_numpy import LogMel
from pipeline.bundle import Bundle, BundleError, UnsupportedBundleError, load_bundle
from pipeline.decoding.greedy import greedy_path
from pipeline.decoding.timestamps import word_timestamps
from pipeline.errors import one_line
from pipeline.inference import common
from pipeline.inference.lite_config import LiteFeatureConfig
from pipeline.inference.transcription import Transcription
from pipeline.tokenizer import CharTokenizer

log = logging.getLogger(__name__)

#: Total input audio (seconds) up to which ``seqrec transcribe --engine auto`` picks this engine.
LITE_MAX_AUDIO_S = 60.0

#: What the lite engine raises for a bundle it cannot use (missing, malformed, not a speech CTC
#: bundle, or :class:`UnsupportedBundleError`): the torch path's :class:`BundleError` itself.
LiteBundleError = BundleError
#: The lite engine's per-file result: the torch engine's :class:`Transcription`.
LiteTranscription = Transcription


class OnnxCTCModel:
    """A speech bundle's ONNX graph on onnxruntime's CPU provider: (T, D) features -> (T'', V) log-probs.

    Args:
        graph: The serialised ONNX model (see :func:`pipeline.inference.onnx_export.speech_onnx`).
        frame_ratio: Feature frames per output frame (the bundle's ``onnx.frame_ratio``).
        where: Names the file in error messages.

    Raises:
        BundleError: onnxruntime cannot load the graph, or it lacks the expected inputs.
    """

    def __init__(self, graph: bytes, frame_ratio: float, where: str) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only; they become BundleError below
        # One thread: the graph is a chain of small matrix products, for which a second thread
        # costs more than it saves (and far more when another process keeps a core busy).
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(f"{where}: onnxruntime cannot load the graph: {one_line(exc)}") from None
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = [o.shape for o in self.session.get_outputs()]
        if set(inputs) != {"features", "lengths"} or len(outputs) != 2 or len(inputs["features"]) != 3:
            raise BundleError(f"{where}: not a seqrec speech graph (inputs {sorted(inputs)})")
        self.input_dim = inputs["features"][-1]
        self.vocab_size = outputs[0][-1]
        self.frame_ratio = frame_ratio

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        """(T, D) float32 features -> (T'', V) float32 log-probabilities."""
        log_probs, lengths = self.session.run(
            None, {"features": np.ascontiguousarray(feats[None], dtype=np.float32), "lengths": np.array([len(feats)])}
        )
        return log_probs[0, : int(lengths[0])]


def load_graph(bundle: Bundle) -> OnnxCTCModel:
    """Loads and checks the bundle's ONNX graph (its ``onnx`` config section).

    Raises:
        UnsupportedBundleError: the bundle has no graph (it predates ONNX export); torch can run it.
        BundleError: the file is missing, fails its sha256, or cannot be loaded.
    """
    import hashlib

    section = bundle.config.get("onnx")
    if section is None:
        raise UnsupportedBundleError(
            "the bundle has no ONNX graph (export one with `seqrec export --format onnx`, or use --engine torch)"
        )
    if not isinstance(section, dict) or not isinstance(section.get("file"), str):
        raise BundleError(f"{bundle.path}: config.yaml: 'onnx' must be a mapping with a 'file'")
    path = bundle.file(section["file"])
    try:
        graph = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: cannot read the ONNX graph: {exc.strerror or exc}") from None
    if hashlib.sha256(graph).hexdigest() != section.get("sha256"):
        raise BundleError(f"{path}: sha256 does not match config.yaml (altered or truncated file)")
    ratio = section.get("frame_ratio")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 64:
        raise BundleError(f"{bundle.path}: config.yaml: onnx.frame_ratio must be a positive number, got {ratio!r}")
    return OnnxCTCModel(graph, float(ratio), str(path))


def total_audio_seconds(paths: Iterable[str | Path]) -> float | None:
    """Sum of the input files' durations from their headers (``soundfile.info``), or None.

    Directories are expanded as :class:`LiteTranscriber` expands them. None when any header
    cannot be read or declares no samples (the caller then cannot tell how long the job is).
    """
    import soundfile as sf

    total = 0.0
    for path in common.expand_paths(paths, common.AUDIO_EXTENSIONS):
        try:
            info = sf.info(str(path))
            frames, rate = int(info.frames), int(info.samplerate)
        except Exception as exc:  # anything unreadable means "don't know"
            log.debug("%s: no duration from the header (%s)", path, one_line(exc))
            return None
        if frames <= 0 or rate <= 0:
            return None
        total += frames / rate
    return total


class LiteTranscriber:
    """Greedy CTC transcription on CPU with numpy and onnxruntime (no torch import).

    Gives the same results and per-file errors as :class:`pipeline.Transcriber` with
    ``beam_size=1``, up to float32 rounding.

    Args:
        model: The bundle's graph.
        tokenizer: The bundle's :class:`pipeline.tokenizer.CharTokenizer`.
        feature_cfg: The bundle's log-mel parameters.
    """

    def __init__(self, model: OnnxCTCModel, tokenizer: CharTokenizer, feature_cfg: LiteFeatureConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.feature_cfg = feature_cfg
        self.extractor = LogMel(feature_cfg)
        self.frame_shift = feature_cfg.hop_length / feature_cfg.sample_rate * model.frame_ratio

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, lm: str | Path | None = "none") -> LiteTranscriber:
        """Loads a ``speech_ctc`` bundle directory.

        Args:
            model_dir: The bundle directory.
            lm: As for :meth:`pipeline.Transcriber.from_pretrained`; this engine decodes
                greedily, so a word LM (the bundle's with ``"auto"``, or a path) is refused.

        Raises:
            BundleError: the bundle is missing or invalid, or not a speech CTC bundle (the
                same messages as :meth:`pipeline.Transcriber.from_pretrained`).
            UnsupportedBundleError: it uses something the lite engine does not implement.
        """
        bundle = load_bundle(model_dir, kind="speech_ctc")
        root, cfg = bundle.path, bundle.config
        lm_off = lm is None or (isinstance(lm, str) and lm.lower() in ("none", "off"))
        if not lm_off and (lm != "auto" or "lm" in cfg):
            raise UnsupportedBundleError(f"{root}: word-level LM decoding needs the torch engine (or --lm none)")
        try:
            feature_cfg = LiteFeatureConfig.from_config(common.bundle_section(cfg, "features"))
            tokenizer = CharTokenizer.from_list(common.bundle_section(cfg, "tokens", list))
            model = load_graph(bundle)  # its errors name the graph file
        except UnsupportedBundleError as exc:
            raise UnsupportedBundleError(f"{root}: {exc}") from None
        except BundleError:
            raise
        except (ValueError, TypeError) as exc:  # config values that do not fit
            raise BundleError(f"{root}: invalid speech bundle: {one_line(exc)}") from None
        if model.vocab_size != tokenizer.vocab_size:
            raise BundleError(f"{root}: {tokenizer.vocab_size} tokens for a model with {model.vocab_size} outputs")
        if model.input_dim != feature_cfg.n_mels:
            raise BundleError(f"{root}: invalid speech bundle: {feature_cfg.n_mels} mels for a model of input_dim {model.input_dim}")
        return cls(model, tokenizer, feature_cfg)

    def features(self, wave: np.ndarray) -> np.ndarray:
        """(N,) waveform at the model's rate -> (T, n_mels) log-mel (short audio zero-padded)."""
        min_len = self.feature_cfg.n_fft // 2 + 1
        if wave.size < min_len:
            wave = np.concatenate([wave, np.zeros(min_len - wave.size, np.float32)])
        return self.extractor(wave)

    def decode_features(self, feats: np.ndarray) -> tuple[str, list[dict]]:
        """(T, n_mels) features of one utterance -> (text, words)."""
        log_probs = self.model(feats)  # (T'', V)
        hyp = greedy_path(log_probs, blank=self.tokenizer.blank_id)
        text = self.tokenizer.decode(hyp.token_ids)
        return text, word_timestamps(hyp, self.tokenizer, self.frame_shift, num_frames=log_probs.shape[0])

    def transcribe(
        self, paths: list[str | Path] | str | Path, *, raise_errors: bool = False, skip_silence: bool = True
    ) -> list[Transcription]:
        """Transcribes files (or directories of audio files), in input order, one at a time.

        With ``skip_silence`` (default), a file in which the voice activity detector hears no
        speech gets an empty transcript (as with the torch engine). A file that cannot be read
        or decoded gets a result with ``error`` set; the others go on. With
        ``raise_errors=True`` the first error raises.
        """
        if isinstance(paths, (str, Path)):
            paths = [paths]
        files = common.expand_paths(paths, common.AUDIO_EXTENSIONS)
        results = [Transcription(path=str(p)) for p in files]
        t0 = time.perf_counter()
        sr = self.feature_cfg.sample_rate
        for i, path in enumerate(files):
            try:
                common.check_input(path, common.AUDIO_EXTENSIONS, "audio")
                wave = load_waveform(path, target_sr=sr, backend="numpy")
                if wave.size == 0:
                    raise ValueError(f"{path}: no audio samples")
                results[i].duration = wave.size / sr
                if skip_silence and not common.has_speech(wave, sr):
                    log.debug("no speech in %s: empty transcript", path)
                    continue
                feats = self.features(wave)
                results[i].text, results[i].words = self.decode_features(feats)
            except Exception as exc:  # one bad file must not stop the others
                if raise_errors:
                    raise
                results[i].error, results[i].exception = one_line(exc), exc
                log.debug("failed %s: %s", path, results[i].error)
        log.debug("lite engine: %d files in %.3f s", len(files), time.perf_counter() - t0)
        return results


__all__ = [
    "LITE_MAX_AUDIO_S", "AudioError", "LiteBundleError", "LiteFeatureConfig", "LiteTranscriber",
    "LiteTranscription", "LogMel", "OnnxCTCModel", "UnsupportedBundleError", "load_graph",
    "total_audio_seconds",
]
