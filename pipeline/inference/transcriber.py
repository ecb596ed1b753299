"""Speech-to-text inference: ``Transcriber.from_pretrained(dir).transcribe(paths)``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from data_prep.features import FeatureConfig, get_extractor, upstream_identity
from data_prep.whisper_upstream import UpstreamError
from pipeline.bundle import BundleError, load_bundle
from pipeline.config import from_dict
from pipeline.data import length_sorted_batches, pad_features
from pipeline.decoding.beam import BeamSearchDecoder
from pipeline.decoding.greedy import greedy_decode
from pipeline.decoding.hotwords import as_hotwords
from pipeline.decoding.timestamps import word_timestamps
from pipeline.decoding.word_lm import LMError, apply_hotwords, resolve_lm
from pipeline.errors import one_line
from pipeline.inference import (
    long_audio,  # the module: tests patch its transcribe_long, LONG_AUDIO_S
)
from pipeline.inference import progress as media_progress  # the module: tests patch audio_seconds
from pipeline.inference.common import (
    TRANSCRIBE_EXTENSIONS,
    ArrayInput,
    LongInput,
    array_seconds,
    bundle_section,
    check_sample_rate,
    expand_inputs,
    has_speech,
    read_input,
)
from pipeline.inference.long_audio import ChunkConfig
from pipeline.inference.progress import MediaProgress, ProgressCallback
from pipeline.inference.transcription import Transcription
from pipeline.limits import LimitError, check_beam
from pipeline.models.ctc_model import CTCModel, CTCModelConfig
from pipeline.models.params import check_params, ctc_model_params
from pipeline.pretrained import speech_model_dir
from pipeline.tokenizer import CharTokenizer

log = logging.getLogger(__name__)


def check_upstream(where: Path, config: dict[str, Any], feature_cfg) -> None:
    """Checks that an upstream bundle's ``upstream`` record matches the installed upstream.

    Args:
        where: The bundle directory, for messages.
        config: The bundle's ``config.yaml`` mapping.
        feature_cfg: Its parsed ``FeatureConfig``.

    Raises:
        BundleError: the record is missing or names another upstream file; or the upstream's
            package is not installed, or its file is truncated or altered (the message names
            the package to install).
    """
    expected = upstream_identity(feature_cfg)
    if expected is None:
        return
    recorded = config.get("upstream")
    if not isinstance(recorded, dict) or recorded.get("sha256") != expected["sha256"]:
        got = recorded.get("sha256") if isinstance(recorded, dict) else None
        raise BundleError(
            f"{where}: the bundle was trained on upstream {feature_cfg.kind} with file sha256 "
            f"{got}, but this seqrec reads {expected['package']} with sha256 {expected['sha256']}"
        )

    try:
        get_extractor(feature_cfg)
    except UpstreamError as exc:
        raise BundleError(f"{where}: needs upstream {feature_cfg.kind}: {one_line(exc)}") from exc


class Transcriber:
    """Transcribes audio files with a CTC model bundle.

    Args:
        model: A :class:`pipeline.models.CTCModel` in eval mode.
        tokenizer: The bundle's :class:`pipeline.tokenizer.CharTokenizer`.
        feature_cfg: The bundle's ``data_prep.features.FeatureConfig``.
        device: Where the model runs.
        beam_size: Without ``lm``: 1 for greedy decoding, >1 for a lexicon-free beam search.
            With ``lm``: the beam width (None: the LM's tuned one).
        lm: A :class:`pipeline.decoding.word_lm.WordLM` for word-level decoding, or None.
    """

    engine = "torch"

    def __init__(
        self, model, tokenizer, feature_cfg, *, device: str | torch.device = "cpu",
        beam_size: int | None = None, lm=None,
    ) -> None:  # fmt: skip

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.feature_cfg = feature_cfg
        self.extractor = get_extractor(feature_cfg)  # log-mel, or the frozen upstream
        self.frame_shift = model.frame_ratio / feature_cfg.frame_rate
        self._beams: dict[int, Any] = {}
        self.lm = lm
        #: What beam-width errors name: the bundle directory once loaded from one.
        self.source = "beam_size"
        self.beam_size = None if beam_size is None else check_beam(beam_size, self.source)

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path | None = None, *, device: str = "cpu", beam_size: int | None = None,
        lm: str | Path | None = "auto", hotwords: Any = None,
    ) -> Transcriber:  # fmt: skip
        """Loads a ``speech_ctc`` bundle directory (no pickle, no code execution).

        A bundle on an upstream (``features.kind: whisper_tiny_en``) names it and its file's
        sha256 in ``config.yaml`` and holds none of its weights: they are loaded from the
        installed package, whose file must have that hash.

        Args:
            model_dir: The bundle directory; None loads the English model shipped with seqrec
                (:data:`pipeline.pretrained.SPEECH_MODEL`).
            device: Where the model runs.
            beam_size: See the class; None: the LM's tuned beam, or greedy without an LM.
            lm: ``"auto"``: the bundle's word LM if it has one; ``"none"`` (or None): no LM;
                a path: that ARPA/KenLM file (with the bundle's tuned weights, if any).
            hotwords: Words or phrases the word-level search favours (it needs a word LM):
                strings ``"phrase"`` or ``"phrase:weight"``, ``(phrase, weight)`` pairs, or the
                :class:`~pathlib.Path` of a hotwords file; words outside the lexicon are added
                (:mod:`pipeline.decoding.hotwords`).

        Everything is bounded by the run's limits (:mod:`pipeline.limits`) before it is
        allocated: the beam width (``max_beam``), the parameters the model config implies
        (``max_params``, counted before the model is built) and the LM files.

        Raises:
            BundleError: the bundle is missing, malformed, or its upstream is not installed
                (the message names the package) or is another version; or the LM is unusable.
            LimitError: past one of the limits (the message names the file and the flag).
            HotwordError: a hotword entry is malformed, none can be spelt, or there is no word LM.
        """
        entries = as_hotwords(hotwords)  # a malformed list fails before anything loads
        bundle = load_bundle(speech_model_dir(model_dir), kind="speech_ctc")
        if beam_size is not None:
            check_beam(beam_size, bundle.path)
        cfg = bundle.config
        cfg_path = bundle.path / "config.yaml"
        try:
            model_cfg = from_dict(CTCModelConfig, bundle_section(cfg, "model"), "model")
            check_params(cfg_path, ctc_model_params(model_cfg))
            model = CTCModel(model_cfg)
            model.load_state_dict(bundle.load_weights())
            tokenizer = CharTokenizer.from_list(bundle_section(cfg, "tokens", list))
            feature_cfg = from_dict(FeatureConfig, bundle_section(cfg, "features"), "features")
        except (BundleError, LimitError):
            raise
        except (ValueError, TypeError, RuntimeError) as exc:  # config values or weights that do not fit
            raise BundleError(f"{bundle.path}: invalid speech bundle: {one_line(exc)}") from exc
        except MemoryError as exc:
            raise BundleError(f"{cfg_path}: out of memory building the model it describes") from exc
        if model.cfg.vocab_size != tokenizer.vocab_size:
            raise BundleError(
                f"{bundle.path}: {tokenizer.vocab_size} tokens for a model with {model.cfg.vocab_size} outputs"
            )
        if model.cfg.input_dim != feature_cfg.dim:
            raise BundleError(
                f"{bundle.path}: features of dim {feature_cfg.dim} for a model of input_dim {model.cfg.input_dim}"
            )
        check_upstream(bundle.path, cfg, feature_cfg)
        try:
            word_lm = apply_hotwords(resolve_lm(lm, bundle, tokenizer), entries, tokenizer)
        except LMError as exc:
            raise BundleError(str(exc)) from exc
        out = cls(model, tokenizer, feature_cfg, device=device, beam_size=beam_size, lm=word_lm)
        out.source = str(bundle.path)
        if word_lm is not None:
            try:
                out._decoder(out._beam(None))  # load the LM now: its errors belong to loading
            except LMError as exc:
                raise BundleError(str(exc)) from exc
        return out

    def _beam(self, beam_size: int | None) -> int:
        """The beam width for a call: the call's, else the transcriber's, else the LM's (or 1)."""
        beam = beam_size or self.beam_size
        if beam is None:
            beam = self.lm.beam_size if self.lm is not None else 1
        return check_beam(beam, self.source)

    def _decoder(self, beam_size: int):
        if beam_size not in self._beams:
            if self.lm is not None:
                self._beams[beam_size] = self.lm.decoder(self.tokenizer, beam_size)
            else:
                self._beams[beam_size] = BeamSearchDecoder(self.tokenizer.tokens, beam_size=beam_size)
        return self._beams[beam_size]

    @torch.inference_mode()
    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """(N,) waveform at the model's rate -> (T, D) features (log-mel or upstream frames).

        Audio shorter than one analysis window is zero-padded to it.
        """
        min_len = self.feature_cfg.min_samples
        if waveform.numel() < min_len:
            waveform = torch.nn.functional.pad(waveform, (0, min_len - waveform.numel()))
        return self.extractor(waveform)

    @torch.inference_mode()
    def decode_features(
        self, feats: list[torch.Tensor], beam_size: int | None = None, *, pad_multiple: int = 1
    ) -> list[tuple[str, list[dict]]]:
        """Decodes a batch of (T_i, D) features into (text, words) pairs (with the LM, if any).

        ``pad_multiple``: pad the batch's time axis to a multiple of this many frames. The
        results are the same (the model ignores padding); fewer distinct shapes mean fewer
        oneDNN kernels built and cached, which matters over the many batches of a long file.
        """
        beam = self._beam(beam_size)
        x, x_lens = pad_features(feats)
        if pad_multiple > 1 and x.size(1) % pad_multiple:
            x = torch.nn.functional.pad(x, (0, 0, 0, pad_multiple - x.size(1) % pad_multiple))
        log_probs, out_lens = self.model(x.to(self.device), x_lens.to(self.device))
        log_probs, out_lens = log_probs.float().cpu(), out_lens.cpu()
        hyps = (
            self._decoder(beam).decode(log_probs, out_lens)
            if beam > 1 or self.lm is not None
            else greedy_decode(log_probs, out_lens, blank=self.tokenizer.blank_id)
        )
        out = []
        for b, (hyp, n) in enumerate(zip(hyps, out_lens.tolist(), strict=True)):
            text = self.tokenizer.decode(hyp.token_ids)
            words = word_timestamps(hyp, self.tokenizer, self.frame_shift, num_frames=n, log_probs=log_probs[b].numpy())
            out.append((text, words))
        return out

    def _decode_batch(self, batch: list[int], feats: dict[int, torch.Tensor], results: dict[int, Transcription],
                      beam_size: int | None, fail) -> None:
        """Decodes one batch; if it fails, decodes its files one by one so only the culprit fails."""
        try:
            decoded = self.decode_features([feats[j] for j in batch], beam_size)
        except Exception as exc:
            if len(batch) == 1:
                fail(batch[0], exc)
                return
            log.debug("batch of %d failed (%s); decoding its files one by one", len(batch), exc)
            for j in batch:
                self._decode_batch([j], feats, results, beam_size, fail)
            return
        for j, (text, words) in zip(batch, decoded, strict=True):
            results[j].text, results[j].words = text, words

    def transcribe(self, paths: Any, **options: Any) -> list[Transcription]:
        """Transcribes files (or directories of audio files) and waveform arrays, in input
        order: the list form of :meth:`transcribe_iter`, which documents the inputs and
        ``options`` (beam_size, max_batch_frames, raise_errors, sample_rate, progress, ...)."""
        return list(self.transcribe_iter(paths, **options))

    def transcribe_iter(
        self,
        paths: Any,
        *,
        beam_size: int | None = None,
        max_batch_frames: int = 60000,
        raise_errors: bool = False,
        long_audio_s: float | None = None,
        chunking=None,
        skip_silence: bool = True,
        sample_rate: int = 16000,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Transcription]:
        """Yields each input's result in input order, as soon as the group holding it is decoded.

        Args:
            paths: A path (str or Path), a numpy array, or a list of them. A directory is
                searched for audio and video files. An array is one waveform: (N,) or (N, C)
                floating-point samples in [-1, 1] at ``sample_rate`` (channels are averaged),
                whose result's ``path`` is ``"<array i>"``, ``i`` its index in the list (rules:
                :func:`pipeline.inference.common.array_waveform`).
            beam_size: Beam width for this call (default: the transcriber's).
            max_batch_frames: Feature frames per group and per decoding batch (below).
            raise_errors: Raise the first error instead of giving a result with ``error``.
            long_audio_s: Inputs longer than this go the long path (below).
            chunking: A :class:`~pipeline.inference.long_audio.ChunkConfig` for the long path.
            skip_silence: See below.
            sample_rate: The rate of the arrays, in Hz (files carry their own); resampled to
                the model's rate when it differs.
            progress: ``progress(seconds_done, seconds_total)``, called as media is processed
                (:mod:`pipeline.inference.progress`; the total comes from the files' headers).

        Inputs are loaded in input order into groups of at most ``max_batch_frames`` feature
        frames (a longer input is a group of its own); each group is sorted by length, decoded
        in padded batches within that budget, and its results are yielded before the next group
        is loaded. Memory is bounded by the group, not by the number of files, and a caller that
        writes each result as it comes keeps them all if the run is killed later.

        A file longer than ``long_audio_s`` seconds (default
        :data:`pipeline.inference.long_audio.LONG_AUDIO_S`, 60 s) by its header, or found longer
        while it is read whole (a header that understates), is read a block at a time and
        transcribed in chunks cut at pauses (:func:`pipeline.inference.long_audio.transcribe_long`,
        rules in ``chunking``), so its memory does not grow with its length;
        if it breaks off, its result holds the text before the damage and an ``error``
        (``partial``). An array that long is cut into chunks the same way.
        ``long_audio_s=math.inf`` loads every input whole, as before.

        With ``skip_silence`` (default), a shorter file in which the voice activity detector
        hears no speech (:func:`~pipeline.inference.common.has_speech`) gets an empty
        transcript instead of the words a model makes of noise; long files only ever decode
        the stretches it hears speech in.

        A file that cannot be read, or an array that cannot be used (not floating point, not
        1-D or 2-D, empty, NaN or infinite samples), gets a result with ``error`` set; the
        others go on. With ``raise_errors=True`` the first error raises.

        Raises:
            ValueError: ``sample_rate`` is not an integer in 1000-1000000.
        """
        rate = check_sample_rate(sample_rate)
        files = expand_inputs(paths, TRANSCRIBE_EXTENSIONS)
        long_s = long_audio.LONG_AUDIO_S if long_audio_s is None else long_audio_s
        chunking = chunking or ChunkConfig()
        sr = self.feature_cfg.sample_rate
        results: dict[int, Transcription] = {}
        tracker = MediaProgress.of(progress, files, lambda x: array_seconds(x, rate)
                                   if isinstance(x, ArrayInput) else media_progress.audio_seconds(x))  # fmt: skip

        def fail(i: int, exc: Exception) -> None:
            if raise_errors:
                raise exc
            results[i].error, results[i].exception = one_line(exc), exc
            log.debug("failed %s: %s", files[i], results[i].error)

        def decode_group(feats: dict[int, torch.Tensor]) -> None:
            keys = list(feats)
            for batch in length_sorted_batches([feats[k].size(0) for k in keys], max_batch_frames):
                self._decode_batch([keys[b] for b in batch], feats, results, beam_size, fail)

        def done(j: int) -> Transcription:
            tracker.file_done(j)
            return results.pop(j)

        feats: dict[int, torch.Tensor] = {}
        frames = 0
        start = 0  # first input of the current group
        for i, path in enumerate(files):
            results[i] = Transcription(path=str(path))
            long = False
            whole = None  # an array past long_s, for the long path
            try:
                wave = read_input(path, rate, sr, long_s, backend="torch")
                if isinstance(wave, LongInput):  # read block-wise, memory stays flat
                    long, whole = True, wave.samples
                else:
                    results[i].duration = wave.size / sr
                    if skip_silence and not has_speech(wave, sr):
                        log.debug("no speech in %s: empty transcript", path)
                    else:
                        feats[i] = self.features(torch.from_numpy(wave))
                        frames += feats[i].size(0)
            except Exception as exc:  # one bad file must not stop the others
                fail(i, exc)
            if long:
                decode_group(feats)  # the group before it, so that results stay in order
                for j in range(start, i):
                    yield done(j)
                del results[i]
                result = self._transcribe_long(path, chunking, beam_size, raise_errors, whole, tracker.inside(i))
                tracker.file_done(i)
                yield result
                feats, frames, start = {}, 0, i + 1
                continue
            if frames >= max_batch_frames or i == len(files) - 1:
                t0 = time.perf_counter()
                decode_group(feats)
                log.debug("decoded inputs %d-%d in %.3f s", start, i, time.perf_counter() - t0)
                for j in range(start, i + 1):
                    yield done(j)
                feats, frames, start = {}, 0, i + 1

    def _transcribe_long(self, path: Path | ArrayInput, chunking, beam_size: int | None, raise_errors: bool,
                         samples: Any = None, progress: Any = None) -> Transcription:  # fmt: skip
        """One long file (or, with ``samples``, a long array) in chunks; any failure becomes the
        result's ``error`` (or raises)."""
        try:
            result = long_audio.transcribe_long(self, str(path), cfg=chunking, beam_size=beam_size, samples=samples,
                                     progress=progress)  # fmt: skip
        except Exception as exc:
            if raise_errors:
                raise
            log.debug("failed %s: %s", path, one_line(exc))
            return Transcription(path=str(path), error=one_line(exc), exception=exc)
        if raise_errors and result.exception is not None:
            raise result.exception
        return result
