"""Torch-free CPU transcription of speech CTC bundles: ``LiteTranscriber``.

``import torch`` alone takes 1.5-2.5 s, several times what transcribing a short file costs. This
engine runs the whole speech path with numpy, soundfile and onnxruntime, so a
cold ``seqrec transcribe`` of a few seconds of audio starts as fast as a small C program. It
shares every step it can with the torch path, through modules that do not import torch:

* bundle: :func:`pipeline.bundle.load_bundle` (safe YAML, format and kind checks, safe member
  paths); the model and feature sections are parsed by :mod:`pipeline.inference.lite_config`;
* audio: :func:`data_prep.audio.load_waveform` with ``backend="numpy"`` (its numpy port of
  torchaudio's sinc resampler), raising the same :class:`~data_prep.audio.AudioError`;
* front end: :class:`data_prep.features_numpy.LogMel` (the numbers of ``LogMelExtractor``) for
  a log-mel model; for a model on the Whisper upstream, Whisper's log-mel windows
  (:func:`data_prep.whisper_frontend.window_batch`), the encoder being part of the graph;
* model: the bundle's exported ONNX graph (``model.onnx``, see
  :mod:`pipeline.inference.onnx_export`, float32 or int8) run by onnxruntime,
  :class:`OnnxCTCModel`;
* decoding: greedy (:func:`pipeline.decoding.greedy.greedy_path`), or flashlight-text's beam
  search with the bundle's word LM (:class:`pipeline.decoding.flashlight.FlashlightSearch`, the
  torch engine's own search), then :func:`pipeline.decoding.timestamps.word_timestamps`.

CPU only, files of up to 60 s; ``tests/test_lite_engine.py`` holds every part against the torch
path it mirrors, and ``tests/test_onnx_export.py`` the graph against ``CTCModel``.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from data_prep import whisper_frontend as wf
from data_prep.audio import AudioError
from data_prep.features_numpy import LogMel
from data_prep.whisper_frontend import GRAPH_INPUT
from pipeline.bundle import Bundle, BundleError, UnsupportedBundleError, load_bundle
from pipeline.decoding.flashlight import FlashlightSearch
from pipeline.decoding.greedy import greedy_path
from pipeline.decoding.hotwords import as_hotwords
from pipeline.decoding.timestamps import word_timestamps
from pipeline.decoding.types import CTCHypothesis
from pipeline.decoding.word_lm import LMError, apply_hotwords, resolve_lm
from pipeline.errors import one_line, shown
from pipeline.inference import common, long_audio
from pipeline.inference import progress as media_progress  # the module: tests patch audio_seconds
from pipeline.inference.lite_config import LiteFeatureConfig
from pipeline.inference.progress import MediaProgress, ProgressCallback
from pipeline.inference.transcription import Transcription
from pipeline.io_utils import file_sha256
from pipeline.limits import check_beam
from pipeline.pretrained import speech_model_dir
from pipeline.tokenizer import CharTokenizer

log = logging.getLogger(__name__)

#: What the lite engine raises for a bundle it cannot use (missing, malformed, not a speech CTC
#: bundle, or :class:`UnsupportedBundleError`): the torch path's :class:`BundleError` itself.
LiteBundleError = BundleError
#: The lite engine's per-file result: the torch engine's :class:`Transcription`.
LiteTranscription = Transcription


class OnnxCTCModel:
    """A speech bundle's ONNX graph on onnxruntime's CPU provider -> (T'', V) log-probs.

    The graph reads either log-mel ``features`` (1, T, D) and ``lengths``, or Whisper log-mel
    windows (``mel``, ``mel_lengths``, ``frame_index``, see
    :class:`pipeline.inference.onnx_export.UpstreamChain`); :attr:`reads` says which.

    Args:
        graph: The serialised ONNX model (see :func:`pipeline.inference.onnx_export.speech_onnx`).
        frame_ratio: Input frames per output frame (the bundle's ``onnx.frame_ratio``).
        where: Names the file in error messages.
        threads: onnxruntime's intra-op threads (None: :func:`default_threads`).

    Raises:
        BundleError: onnxruntime cannot load the graph, or it lacks the expected inputs.
    """

    def __init__(self, graph: bytes, frame_ratio: float, where: str, threads: int | None = None) -> None:
        # Before the import: onnxruntime 1.29+ otherwise writes a telemetry database and a
        # device id under ~/.cache/Microsoft/DeveloperTools/.onnxruntime on every start.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        # lazy: onnxruntime (about half a second) loads on the engine's loader thread, beside other start-up work
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only; they become BundleError below
        # Two threads by default (where two cores are usable), which do not spin while they
        # wait: on two idle cores a 10-minute file took 12.9 s against 16.1 s on one thread;
        # beside another CPU-bound job 15.4 s against 16.0 s, where spinning threads took
        # 21.8 s (they hold a core the other job needs; docs/results.md).
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Basic rewrites only (constant folding, e.g. the Casts of float16-stored weights): the
        # fuller ones cost more at start-up (0.17 s against 0.12 s for the shipped graph) than
        # they save on a short file, and measured no faster on long ones (docs/results.md).
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        try:
            self.session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(f"{where}: onnxruntime cannot load the graph: {one_line(exc)}") from None
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = [o.shape for o in self.session.get_outputs()]
        if set(inputs) == {"features", "lengths"} and len(inputs["features"]) == 3:
            self.reads, self.input_dim = "features", inputs["features"][-1]
        elif set(inputs) == {"mel", "mel_lengths", "frame_index"} and len(inputs["mel"]) == 3:
            self.reads, self.input_dim = WHISPER_WINDOWS, inputs["mel"][1]
        else:
            raise BundleError(f"{where}: not a seqrec speech graph (inputs {sorted(inputs)})")
        if len(outputs) != 2:
            raise BundleError(f"{where}: not a seqrec speech graph ({len(outputs)} outputs)")
        self.vocab_size = outputs[0][-1]
        self.frame_ratio = frame_ratio

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's inputs for one utterance -> (T'', V) float32 log-probabilities."""
        log_probs, lengths = self.session.run(None, inputs)
        return log_probs[0, : int(lengths[0])]


#: ``onnx.input`` of a graph from Whisper log-mel windows.
WHISPER_WINDOWS = GRAPH_INPUT


class LogMelFrontEnd:
    """(N,) waveform -> the inputs of a log-mel graph; ``frame_s``: seconds per feature frame."""

    def __init__(self, cfg: LiteFeatureConfig) -> None:
        self.cfg, self.extractor = cfg, LogMel(cfg)
        self.sample_rate, self.dim = cfg.sample_rate, cfg.n_mels
        self.frame_s = cfg.hop_length / cfg.sample_rate

    def __call__(self, wave: np.ndarray) -> dict[str, np.ndarray]:
        min_len = self.cfg.n_fft // 2 + 1  # short audio is zero-padded to one window
        if wave.size < min_len:
            wave = np.concatenate([wave, np.zeros(min_len - wave.size, np.float32)])
        feats = self.extractor(wave)
        return {"features": np.ascontiguousarray(feats[None], dtype=np.float32), "lengths": np.array([len(feats)])}


class WhisperWindowsFrontEnd:
    """(N,) 16 kHz waveform -> the inputs of a whole-chain graph (Whisper log-mel windows);
    ``frame_s``: seconds per upstream frame (20 ms)."""

    def __init__(self) -> None:
        self._wf = wf
        self.sample_rate, self.dim = wf.SAMPLE_RATE, wf.N_MELS
        self.frame_s = wf.SAMPLES_PER_FRAME / wf.SAMPLE_RATE

    def __call__(self, wave: np.ndarray) -> dict[str, np.ndarray]:
        min_len = self._wf.N_FFT // 2 + 1
        if wave.size < min_len:
            wave = np.concatenate([wave, np.zeros(min_len - wave.size, np.float32)])
        mel, lengths, index = self._wf.window_batch(wave)
        return {"mel": mel, "mel_lengths": lengths, "frame_index": index}


def default_threads() -> int:
    """onnxruntime's threads when none are asked for: two, or one where one core is usable."""
    return max(1, min(2, common.usable_cores()))


def load_graph(bundle: Bundle, threads: int | None = None) -> OnnxCTCModel:
    """Loads and checks the bundle's ONNX graph (its ``onnx`` config section).

    Raises:
        UnsupportedBundleError: the bundle has no graph (it predates ONNX export); torch can run it.
        BundleError: the file is missing, fails its sha256, or cannot be loaded.
    """
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
        raise BundleError(f"{bundle.path}: config.yaml: onnx.frame_ratio must be a positive number, got {shown(ratio)}")
    made_from = section.get("weights_sha256")
    if made_from is not None:  # bundles from before the record have none
        weights = bundle.weights_file()
        if file_sha256(weights) != made_from:
            raise BundleError(f"{path}: the graph was made from other weights than {weights.name} (export it again)")
    model = OnnxCTCModel(graph, float(ratio), str(path), threads)
    if section.get("input", "features") != model.reads:
        raise BundleError(f"{path}: the graph reads {model.reads}, config.yaml says onnx.input {shown(section.get('input'))}")
    return model


class LiteTranscriber:
    """CTC transcription on CPU with numpy and onnxruntime (no torch import): greedy, character
    beam search, or word-level beam search with the bundle's LM.

    Gives the same results and per-file errors as :class:`pipeline.Transcriber`, up to float32
    rounding (int8 graphs: up to their quantisation).

    Args:
        model: The bundle's graph.
        tokenizer: The bundle's :class:`pipeline.tokenizer.CharTokenizer`.
        front_end: :class:`LogMelFrontEnd` or :class:`WhisperWindowsFrontEnd`, as the graph reads.
        lm: The word LM (a :class:`pipeline.decoding.word_lm.WordLM`), or None.
        beam_size: Beam width (None: the LM's, or greedy without one).
    """

    engine = "lite"

    def __init__(self, model: OnnxCTCModel, tokenizer: CharTokenizer, front_end: Any, lm: Any = None,
                 beam_size: int | None = None, search: Any = None) -> None:  # fmt: skip
        self.model, self.tokenizer, self.front_end, self.lm = model, tokenizer, front_end, lm
        self.beam_size = _beam(lm, beam_size)
        self.frame_shift = front_end.frame_s * model.frame_ratio
        self.sample_rate = front_end.sample_rate
        self._search = search if search is not None else _build_search(tokenizer, lm, self.beam_size)

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path | None = None, *, lm: str | Path | None = "auto", beam_size: int | None = None,
        threads: int | None = None, hotwords: Any = None,
    ) -> LiteTranscriber:  # fmt: skip
        """Loads a ``speech_ctc`` bundle directory (None: the model shipped with seqrec).

        Args:
            model_dir: The bundle directory.
            lm: ``"auto"`` (the bundle's word LM, if any), ``"none"``, or an ARPA/KenLM file,
                as for :meth:`pipeline.Transcriber.from_pretrained`.
            beam_size: Beam width (default: the LM's tuned width, or greedy without an LM).
            threads: onnxruntime's threads (None: two where two cores are usable).
            hotwords: Words or phrases to favour, as for
                :meth:`pipeline.Transcriber.from_pretrained` (:mod:`pipeline.decoding.hotwords`).

        Raises:
            BundleError: the bundle is missing or invalid, or not a speech CTC bundle (the
                same messages as :meth:`pipeline.Transcriber.from_pretrained`), or its LM
                cannot be used.
            UnsupportedBundleError: it has no graph, or uses something this engine does not
                implement.
            LimitError: ``beam_size`` is past the run's limit, or the hotwords the lexicon's.
            HotwordError: a hotword entry is malformed, none can be spelt, or there is no word LM.
        """
        entries = as_hotwords(hotwords)  # a malformed list fails before anything loads
        bundle = load_bundle(speech_model_dir(model_dir), kind="speech_ctc")
        root, cfg = bundle.path, bundle.config
        if beam_size is not None:
            check_beam(beam_size, root)
        try:
            tokenizer = CharTokenizer.from_list(common.bundle_section(cfg, "tokens", list))
        except (ValueError, TypeError) as exc:
            raise BundleError(f"{root}: invalid speech bundle: {one_line(exc)}") from None
        # The word LM and the voice activity detector load in a thread while onnxruntime
        # builds the graph's session, which releases the GIL. The LM's files are checked
        # before this returns; its search (KenLM and the lexicon trie, about 0.4 s for the
        # shipped model) may still be building then, and the first search waits for it, so
        # that reading, cutting and the acoustic model of the first file overlap it.
        decoding: dict[str, Any] = {}
        checked = threading.Event()

        def load_decoding() -> None:
            try:
                decoding["lm"] = apply_hotwords(resolve_lm(lm, bundle, tokenizer), entries, tokenizer)
            except BaseException as exc:  # re-raised below, in this thread
                decoding["error"] = exc
                return
            finally:
                checked.set()
            common.warm_vad()
            try:
                decoding["search"] = _build_search(tokenizer, decoding["lm"], _beam(decoding["lm"], beam_size))
            except BaseException as exc:  # raised by the first search
                decoding["search_error"] = exc

        loader = threading.Thread(target=contextvars.copy_context().run, args=(load_decoding,), daemon=True)
        loader.start()  # (in a copy of this context: the run's limits hold there too)
        try:
            model = load_graph(bundle, threads)  # its errors name the graph file
            if model.reads == WHISPER_WINDOWS:
                front_end: Any = WhisperWindowsFrontEnd()
            else:
                front_end = LogMelFrontEnd(LiteFeatureConfig.from_config(common.bundle_section(cfg, "features")))
        except UnsupportedBundleError as exc:
            raise UnsupportedBundleError(f"{root}: {exc}") from None
        except BundleError:
            raise
        except (ValueError, TypeError) as exc:  # config values that do not fit
            raise BundleError(f"{root}: invalid speech bundle: {one_line(exc)}") from None
        finally:
            checked.wait()
        if model.vocab_size != tokenizer.vocab_size:
            raise BundleError(f"{root}: {tokenizer.vocab_size} tokens for a model with {model.vocab_size} outputs")
        if model.input_dim != front_end.dim:
            raise BundleError(f"{root}: invalid speech bundle: {front_end.dim} mels for a graph of input_dim {model.input_dim}")
        if isinstance(decoding.get("error"), LMError):
            raise BundleError(str(decoding["error"])) from decoding["error"]
        if "error" in decoding:
            raise decoding["error"]
        return cls(model, tokenizer, front_end, decoding["lm"], beam_size, _DeferredSearch(loader, decoding, root))

    def chunk_decoder(self, beam_size: int | None = None) -> long_audio.OneByOneChunkDecoder:
        """What :func:`~pipeline.inference.long_audio.transcribe_long` decodes chunks with (the
        beam is this transcriber's: ``beam_size`` is not used)."""
        return long_audio.OneByOneChunkDecoder(
            lambda samples: self.model(self.front_end(samples)), lambda lp: self.search(lp)[1], self.sample_rate
        )

    def _transcribe_long(self, path: Path | common.ArrayInput, raise_errors: bool, samples: np.ndarray | None = None,
                         progress: Any = None) -> Transcription:  # fmt: skip
        """One long file (or, with ``samples``, a long array) in chunks; a failure becomes the
        result's ``error`` (or raises)."""
        try:
            result = long_audio.transcribe_long(self, str(path), samples=samples, progress=progress)
        except BundleError:
            raise
        except Exception as exc:
            if raise_errors:
                raise
            log.debug("failed %s: %s", path, one_line(exc))
            return Transcription(path=str(path), error=one_line(exc), exception=exc)
        if raise_errors and result.exception is not None:  # broke off: the text before the damage
            raise result.exception
        return result

    def decode(self, inputs: dict[str, np.ndarray]) -> tuple[str, list[dict]]:
        """The graph's inputs for one utterance (from :attr:`front_end`) -> (text, words)."""
        return self.search(self.model(inputs))

    def search(self, log_probs: np.ndarray) -> tuple[str, list[dict]]:
        """(T'', V) log-probabilities of one utterance -> (text, words with times and confidences)."""
        if isinstance(self._search, _DeferredSearch):
            self._search = self._search.get()
        if self._search is None:
            hyp = greedy_path(log_probs, blank=self.tokenizer.blank_id)
        else:
            best = self._search.search(log_probs)[0]
            hyp = CTCHypothesis(token_ids=best.token_ids, frames=best.frames, score=best.score)
        text = self.tokenizer.decode(hyp.token_ids)
        words = word_timestamps(hyp, self.tokenizer, self.frame_shift, num_frames=log_probs.shape[0], log_probs=log_probs)
        return text, words

    def transcribe(self, paths: Any, **options: Any) -> list[Transcription]:
        """The list form of :meth:`transcribe_iter` (same inputs and options)."""
        return list(self.transcribe_iter(paths, **options))

    def transcribe_iter(
        self, paths: Any, *, raise_errors: bool = False, skip_silence: bool = True, sample_rate: int = 16000,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Transcription]:  # fmt: skip
        """Transcribes files (or directories of audio files) and waveform arrays one at a time,
        yielding each result in input order as soon as it is done.

        Args:
            paths: A path (str or Path), a numpy array, or a list of them. A directory is
                searched for audio and video files. An array is one waveform: (N,) or
                (N, C) floating-point samples in [-1, 1] at ``sample_rate`` (channels are
                averaged), whose result's ``path`` is ``"<array i>"``, ``i`` its index in
                the list (see :func:`pipeline.inference.common.array_waveform`).
            raise_errors: Raise the first error instead of giving a result with ``error``.
            skip_silence: Give an empty transcript to a file in which the voice activity
                detector hears no speech (as the torch engine does), instead of decoding it.
            sample_rate: The rate of the arrays, in Hz (files carry their own); resampled to
                the model's rate when it differs.
            progress: ``progress(seconds_done, seconds_total)``, called as media is processed
                (:mod:`pipeline.inference.progress`; the total comes from the files' headers).

        A file that cannot be read or decoded, or an array that cannot be used (not floating
        point, not 1-D or 2-D, empty, NaN or infinite samples), gets a result with ``error``
        set; the others go on.

        A file longer than ``LONG_AUDIO_S`` (60 s) by its header, or found longer while it is
        read whole, is read a block at a time and decoded in chunks cut at pauses, as the torch
        engine does (:func:`pipeline.inference.long_audio.transcribe_long`, one chunk per
        onnxruntime call): memory does not grow with its length. An array that long is cut
        into chunks the same way.

        Raises:
            ValueError: ``sample_rate`` is not an integer in 1000-1000000.
        """
        rate = common.check_sample_rate(sample_rate)
        items = common.expand_inputs(paths, common.TRANSCRIBE_EXTENSIONS)
        t0 = time.perf_counter()
        sr = self.sample_rate
        tracker = MediaProgress.of(progress, items, lambda x: common.array_seconds(x, rate)
                                   if isinstance(x, common.ArrayInput) else media_progress.audio_seconds(x))  # fmt: skip
        for i, item in enumerate(items):
            result = Transcription(path=str(item))
            try:
                wave = common.read_input(item, rate, sr, long_audio.LONG_AUDIO_S, backend="numpy")
                if isinstance(wave, common.LongInput):  # block-wise, in chunks
                    result = self._transcribe_long(item, raise_errors, wave.samples, tracker.inside(i))
                else:
                    result.duration = wave.size / sr
                    if skip_silence and not common.has_speech(wave, sr):
                        log.debug("no speech in %s: empty transcript", item)
                    else:
                        result.text, result.words = self.decode(self.front_end(wave))
            except BundleError:  # the model's (its LM's search failed to build), not the file's
                raise
            except Exception as exc:  # one bad file must not stop the others
                if raise_errors:
                    raise
                result.error, result.exception = one_line(exc), exc
                log.debug("failed %s: %s", item, result.error)
            tracker.file_done(i)
            yield result
        log.debug("lite engine: %d inputs in %.3f s", len(items), time.perf_counter() - t0)


class _DeferredSearch:
    """The search a loader thread is still building: :meth:`get` waits for it.

    Raises (from :meth:`get`): BundleError naming the bundle when the build failed (KenLM or
    flashlight refused what the checks passed, or ran out of memory).
    """

    def __init__(self, loader: threading.Thread, box: dict[str, Any], where: Path) -> None:
        self.loader, self.box, self.where = loader, box, where

    def get(self) -> Any:
        self.loader.join()
        error = self.box.get("search_error")
        if error is None:
            return self.box["search"]

        if isinstance(error, (LMError, MemoryError, RuntimeError)):
            raise BundleError(f"{self.where}: cannot build the decoder: {one_line(error)}") from error
        raise error


def _beam(lm: Any, beam_size: int | None) -> int:
    """The beam width: the one asked for, else the word LM's tuned one, else 1 (greedy)."""
    return beam_size or (lm.beam_size if lm is not None else 1)


def _build_search(tokenizer: CharTokenizer, lm: Any, beam_size: int) -> Any:
    """The search to decode with: the word LM's, a character beam search, or None (greedy)."""
    if lm is not None:
        return lm.search(tokenizer, beam_size)
    if beam_size > 1:
        return FlashlightSearch(tokenizer.tokens, beam_size=beam_size)
    return None


__all__ = [
    "AudioError", "LiteBundleError", "LiteFeatureConfig", "LiteTranscriber",
    "LiteTranscription", "LogMel", "OnnxCTCModel", "UnsupportedBundleError", "load_graph",
]
