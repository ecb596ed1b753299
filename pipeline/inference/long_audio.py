"""Transcribing a recording of any length in chunks, with memory that does not grow with it.

The file is read a block at a time (:class:`data_prep.audio_stream.AudioBlockReader`), a voice
activity detector gives each 32 ms frame a speech probability (:mod:`data_prep.vad`), and
:class:`ChunkPlanner` turns that stream into chunks of at most ``max_chunk_s``:

* **at a pause**: once a chunk holds ``min_chunk_s``, the first pause of ``min_pause_s`` or more
  ends it, cut in the middle of the pause; each side keeps ``pad_s`` of the silence next to
  its speech and the rest of the pause is never decoded (so silence costs nothing);
* **inside speech**: a chunk that reaches ``max_chunk_s`` without such a pause is cut at the
  least speech-like frame of its second half, and both sides overlap by ``overlap_s`` there.

Each chunk owns the stretch between its two cuts. Chunks are decoded in batches of about
``batch_s`` of audio; a word is kept from the chunk that owns its centre, with its times moved
to the file's timeline (:func:`stitch_words`), so a word cut by an overlapping edge is decoded
whole on both sides and kept once. Memory is one reader block, the chunk being planned and one
decoding batch, whatever the length of the file.
"""

from __future__ import annotations

import collections
import contextvars
import ctypes
import ctypes.util
import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.vad import ConstantDetector, SileroDetector, VADError
from pipeline.inference.transcription import Transcription

log = logging.getLogger(__name__)

#: Files longer than this (seconds, by their header) are transcribed in chunks.
LONG_AUDIO_S = 60.0
#: ``keep_to`` of the last chunk: it owns everything after its start.
OPEN_END = 2**62
#: Decoding batches are padded to a multiple of this many feature frames (see
#: ``Transcriber.decode_features``).
PAD_MULTIPLE = 64


@dataclasses.dataclass(frozen=True)
class ChunkConfig:
    """How a long file is cut into chunks (seconds; probabilities in [0, 1]).

    ``threshold``/``neg_threshold``: a frame starts speech at a probability of at least
    ``threshold`` and speech goes on until one falls below ``neg_threshold`` (Silero's own
    hysteresis). ``batch_s``: audio decoded per batch. ``block_s``: audio per read.
    """

    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_pause_s: float = 0.25
    min_chunk_s: float = 1.0
    max_chunk_s: float = 30.0
    overlap_s: float = 1.0
    pad_s: float = 0.3
    batch_s: float = 60.0
    block_s: float = 2.0

    def __post_init__(self) -> None:
        if not 0 <= self.neg_threshold <= self.threshold <= 1:
            raise ValueError(f"need 0 <= neg_threshold <= threshold <= 1, got {self.neg_threshold}, {self.threshold}")
        if not 0 < 4 * self.overlap_s <= self.max_chunk_s:
            raise ValueError(f"overlap_s must be in (0, max_chunk_s / 4], got {self.overlap_s} for {self.max_chunk_s}")
        if not (0 <= self.min_chunk_s < self.max_chunk_s and self.min_pause_s > 0 and self.pad_s >= 0):
            raise ValueError("need min_pause_s > 0, pad_s >= 0 and 0 <= min_chunk_s < max_chunk_s")
        if self.batch_s <= 0 or self.block_s <= 0:
            raise ValueError("batch_s and block_s must be positive")


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Samples ``[start, end)`` of the file to decode; its words with centres in
    ``[keep_from, keep_to)`` are kept. All four in samples."""

    start: int
    end: int
    keep_from: int
    keep_to: int


class ChunkPlanner:
    """Speech probabilities per frame in, :class:`Chunk` s out (see the module docstring).

    Holds the probabilities of the chunk being planned only (at most ``max_chunk_s`` of
    frames). :attr:`hold_from` is the first sample a later chunk can still need.

    Args:
        cfg: The chunking rules.
        frame_samples: Samples per detector frame.
        sample_rate: Samples per second.
    """

    def __init__(self, cfg: ChunkConfig, frame_samples: int, sample_rate: int) -> None:
        frame_s = frame_samples / sample_rate
        self.cfg, self.frame = cfg, frame_samples
        self.min_pause = max(1, math.ceil(cfg.min_pause_s / frame_s))
        self.min_chunk = round(cfg.min_chunk_s / frame_s)
        self.max_len = int(cfg.max_chunk_s / frame_s)
        self.overlap = max(1, round(cfg.overlap_s / frame_s))
        self.pad = round(cfg.pad_s / frame_s)
        self.n = 0  # frames seen
        self.base = 0  # first frame held: where the current chunk's audio starts
        self.keep_from = 0  # where the current chunk's ownership starts
        self.probs: list[float] = []  # frames base .. n-1
        self.flags: list[bool] = []
        self.speaking = False
        self.silence_from: int | None = None  # first frame of the current pause
        self.speech_held = 0  # speech frames among those held
        self.max_held = 0  # most frames ever held (the structural bound, for tests)

    @property
    def hold_from(self) -> int:
        """The first sample any chunk still to come can start at."""
        return self.base * self.frame

    def push(self, probs: Iterable[float]) -> list[Chunk]:
        """Takes the next frames' speech probabilities; returns the chunks they complete."""
        out = []
        for p in probs:
            chunk = self._step(float(p))
            if chunk is not None:
                out.append(chunk)
        return out

    def finish(self, total_samples: int) -> Chunk | None:
        """The last chunk (None if it holds no speech); ``total_samples``: the file's length."""
        if not self.speech_held:
            return None
        last = self.base + len(self.flags) - 1 - self.flags[::-1].index(True)
        return self._chunk(self.base, min(total_samples, (last + 1 + self.pad) * self.frame), OPEN_END)

    # ------------------------------------------------------------------ one frame
    def _step(self, p: float) -> Chunk | None:
        i = self.n
        self.n += 1
        self.speaking = p >= (self.cfg.neg_threshold if self.speaking else self.cfg.threshold)
        self.probs.append(p)
        self.flags.append(self.speaking)
        self.speech_held += self.speaking
        self.max_held = max(self.max_held, len(self.flags))
        chunk = None
        if self.speaking:
            pause_from, self.silence_from = self.silence_from, None
            if pause_from is not None and self._speech_before(pause_from):
                mid = (pause_from + i) // 2
                if i - pause_from >= self.min_pause and mid - self.base >= self.min_chunk:
                    chunk = self._pause_cut(pause_from, mid, resume=i)
        else:
            if self.silence_from is None:
                self.silence_from = i
            if not self.speech_held:  # no speech yet: keep only ``pad`` frames of leading silence
                self._drop_to(max(self.base, i + 1 - self.pad))
        if chunk is None and self.n - self.base >= self.max_len:
            chunk = self._full_cut()
        return chunk

    # ------------------------------------------------------------------ cuts
    def _pause_cut(self, pause_from: int, mid: int, resume: int) -> Chunk:
        """Ends the chunk in the pause ``[pause_from, resume)``; ownership changes at ``mid``."""
        chunk = self._chunk(self.base, min(mid, pause_from + self.pad) * self.frame, mid * self.frame)
        self._drop_to(max(mid, resume - self.pad))
        self.keep_from = mid
        return chunk

    def _full_cut(self) -> Chunk:
        """The chunk is as long as allowed: end it in the pause under way, else cut inside
        speech at the least speech-like frame of its second half, with overlap."""
        pause_from = self.silence_from
        if pause_from is not None and self.n - pause_from >= self.min_pause and self._speech_before(pause_from):
            end = min(self.n, pause_from + self.pad)
            chunk = self._chunk(self.base, end * self.frame, end * self.frame)
            self._drop_to(end)
            self.keep_from = end
            return chunk
        lo, hi = self.base + self.max_len // 2, max(self.base + self.max_len // 2, self.n - self.overlap)
        cut = lo + quietest(np.asarray(self.probs[lo - self.base : hi - self.base + 1], np.float32))
        chunk = self._chunk(self.base, min(self.n, cut + self.overlap) * self.frame, cut * self.frame)
        self._drop_to(cut - self.overlap)
        self.keep_from = cut
        return chunk

    def _chunk(self, start: int, end_sample: int, keep_to_sample: int) -> Chunk:
        """The current chunk from frame ``start`` to ``end_sample``, owning up to ``keep_to_sample``."""
        return Chunk(start * self.frame, end_sample, self.keep_from * self.frame, keep_to_sample)

    def _speech_before(self, frame: int) -> bool:
        """Whether a held frame before ``frame`` is speech."""
        return any(self.flags[: max(0, frame - self.base)])

    def _drop_to(self, frame: int) -> None:
        """Forgets the frames before ``frame``."""
        k = frame - self.base
        if k > 0:
            self.speech_held -= sum(self.flags[:k])
            del self.probs[:k], self.flags[:k]
            self.base = frame
            self.keep_from = max(self.keep_from, frame)


def quietest(probs: np.ndarray) -> int:
    """Where to cut inside speech: the index of the least speech-like frame of ``probs``.

    Probabilities are averaged over 3 frames (edges repeated); among equal minima, the middle
    of the last run of them (the middle of a pause, not its edge). All equal: the last frame,
    which makes the longest chunk (fixed windows, without a detector).
    """
    if probs.size == 0 or np.all(probs == probs[0]):
        return max(0, probs.size - 1)
    padded = np.pad(probs, 1, mode="edge")
    smooth = (padded[:-2] + padded[1:-1] + padded[2:]) / 3
    low = np.flatnonzero(smooth <= smooth.min() + 1e-6)
    gaps = np.flatnonzero(np.diff(low) > 1)  # where one run of minima ends and another starts
    run_start = low[gaps[-1] + 1] if gaps.size else low[0]
    return int((run_start + low[-1]) // 2)


class SampleBuffer:
    """The samples of a stream from :attr:`start` on, as the blocks that came in.

    ``max_held`` records the most samples ever held: the structural memory bound.
    """

    def __init__(self) -> None:
        self.blocks: list[tuple[int, np.ndarray]] = []  # (offset, (n,) samples)
        self.end = 0
        self.max_held = 0

    @property
    def start(self) -> int:
        return self.blocks[0][0] if self.blocks else self.end

    def append(self, block: np.ndarray) -> None:
        self.blocks.append((self.end, block))
        self.end += block.size
        self.max_held = max(self.max_held, self.end - self.start)

    def take(self, start: int, end: int) -> np.ndarray:
        """A copy of samples ``[start, end)`` (clipped to what came in)."""
        if start < self.start:
            raise ValueError(f"samples from {start} were dropped (buffer starts at {self.start})")
        parts = [b[max(0, start - o) : max(0, min(b.size, end - o))] for o, b in self.blocks if o < end and o + b.size > start]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def drop_before(self, sample: int) -> None:
        """Forgets the blocks that end at or before ``sample``."""
        while self.blocks and self.blocks[0][0] + self.blocks[0][1].size <= sample:
            self.blocks.pop(0)


def stitch_words(words: list[dict[str, Any]], chunk: Chunk, sample_rate: int) -> list[dict[str, Any]]:
    """A chunk's words on the file's timeline, keeping those whose centre the chunk owns.

    Args:
        words: ``[{"word", "start", "end"}]`` in seconds from the chunk's start.
        chunk: Where the chunk lies and what it owns.
        sample_rate: Samples per second of the chunk's sample indices.

    Returns:
        The kept words, times in seconds from the file's start.
    """
    offset = chunk.start / sample_rate
    lo, hi = chunk.keep_from / sample_rate, chunk.keep_to / sample_rate
    out = []
    for w in words:
        start, end = w["start"] + offset, w["end"] + offset
        if lo <= (start + end) / 2 < hi:
            out.append({**w, "start": round(start, 6), "end": round(end, 6)})
    return out


def append_words(out: list[dict[str, Any]], words: list[dict[str, Any]]) -> None:
    """Appends ``words`` to ``out``, keeping times monotonic across a chunk edge (a word never
    starts before the previous one ends)."""
    for w in words:
        if out and w["start"] < out[-1]["end"]:
            w = {**w, "start": out[-1]["end"], "end": max(w["end"], out[-1]["end"])}
        out.append(w)


class ChunkDecoder:
    """Features of chunks in, stitched words out: decodes in batches of about ``batch_s``.

    Args:
        transcriber: A :class:`pipeline.inference.transcriber.Transcriber`.
        batch_s: Audio seconds per decoding batch.
        beam_size: As in ``Transcriber.decode_features``.
    """

    def __init__(self, transcriber, batch_s: float, beam_size: int | None = None) -> None:
        self.tr = transcriber
        self.sample_rate = transcriber.feature_cfg.sample_rate
        self.batch_frames = max(1, int(batch_s * transcriber.feature_cfg.frame_rate))
        self.beam_size = beam_size
        self.pending: list[tuple[Chunk, Any]] = []  # (chunk, (T, D) features)
        self.frames = 0
        self.words: list[dict[str, Any]] = []
        self.chunks = 0
        self.pad_multiple = PAD_MULTIPLE

    def add(self, chunk: Chunk, samples: np.ndarray) -> None:
        """Computes the chunk's features; decodes the batch once it holds ``batch_s``."""
        # lazy: torch only for the torch engine; the lite engine runs long audio through this module too
        import torch

        feats = self.tr.features(torch.from_numpy(np.ascontiguousarray(samples, np.float32)))
        self.pending.append((chunk, feats))
        self.frames += feats.size(0)
        self.chunks += 1
        if self.frames >= self.batch_frames:
            self.flush()

    def flush(self) -> None:
        """Decodes what is pending, in order, and stitches its words."""
        # lazy: pipeline.data pulls in torch; the lite engine runs long audio through this module too
        from pipeline.data import length_sorted_batches

        if not self.pending:
            return
        decoded: dict[int, list[dict[str, Any]]] = {}
        for batch in length_sorted_batches([f.size(0) for _, f in self.pending], self.batch_frames):
            results = self.tr.decode_features([self.pending[j][1] for j in batch], self.beam_size,
                                              pad_multiple=self.pad_multiple)  # fmt: skip
            for j, (_, words) in zip(batch, results, strict=True):
                decoded[j] = words
        for j, (chunk, _) in enumerate(self.pending):
            append_words(self.words, stitch_words(decoded[j], chunk, self.sample_rate))
        self.pending, self.frames = [], 0
        release_free_memory()


class OneByOneChunkDecoder:
    """The torch-free engine's chunk decoder: each chunk decoded on its own (one onnxruntime
    call: its graph reads one utterance), its words stitched in order; the interface of
    :class:`ChunkDecoder` (``add``, ``flush``, ``words``, ``chunks``).

    The acoustic model of a chunk runs in a worker thread while the calling thread searches
    the chunk before it and reads and cuts the audio after it: onnxruntime and flashlight
    release the GIL, so on two cores the search, the voice activity detector and the file
    reading cost almost no wall time. At most ``ahead`` chunks wait for their search, so
    memory stays bounded by a few chunks.

    Args:
        acoustic: (N,) samples of one chunk -> its (T'', V) log-probabilities.
        search: (T'', V) log-probabilities -> the chunk's words, timed from its start.
        sample_rate: Of the samples.
        ahead: Chunks whose acoustic model may run before their search (0: no worker thread).
    """

    def __init__(self, acoustic, search, sample_rate: int, ahead: int = 1) -> None:
        self.acoustic, self.search, self.sample_rate, self.ahead = acoustic, search, sample_rate, ahead
        self.words: list[dict[str, Any]] = []
        self.chunks = 0
        self._pending: collections.deque = collections.deque()  # (chunk, future of its log-probs)
        self._pool: Any = None

    def add(self, chunk: Chunk, samples: np.ndarray) -> None:
        self.chunks += 1
        if self.ahead <= 0:
            self._stitch(chunk, self.acoustic(samples))
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="seqrec-acoustic")
        self._pending.append((chunk, self._pool.submit(contextvars.copy_context().run, self.acoustic, samples)))
        while len(self._pending) > self.ahead:
            self._finish_one()

    def flush(self) -> None:
        try:
            while self._pending:
                self._finish_one()
        finally:
            self.close()
            release_free_memory()

    def close(self) -> None:
        """Drops what is pending and stops the worker (after an error, and at the end of
        :meth:`flush`)."""
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _finish_one(self) -> None:
        chunk, future = self._pending.popleft()
        try:
            log_probs = future.result()  # re-raises the worker's error here, in order
        except BaseException:
            self.close()
            raise
        self._stitch(chunk, log_probs)

    def _stitch(self, chunk: Chunk, log_probs: np.ndarray) -> None:
        append_words(self.words, stitch_words(self.search(log_probs), chunk, self.sample_rate))


def release_free_memory() -> None:
    """Hands the allocator's free pages back to the system (glibc's ``malloc_trim``; a no-op
    elsewhere).

    Each batch allocates and frees tensors of new sizes; glibc keeps the freed memory in its
    heaps, scattered, so without this the resident size of an hour-long file crept up by
    about 270 MB (535 -> 808 MiB on the 2-core CPU) although nothing was kept. With it the
    growth stops at about 120 MB, most of it oneDNN's cache of kernels per shape (bounded).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where there is none."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def make_detector(sample_rate: int):
    """Silero VAD for 16 kHz audio; a constant detector (fixed windows) otherwise, or when the
    model cannot be loaded (with a warning)."""
    if sample_rate != SileroDetector.sample_rate:
        log.debug("no VAD at %d Hz: fixed windows with overlap", sample_rate)
        return ConstantDetector(sample_rate=sample_rate)
    try:
        return SileroDetector()
    except VADError as exc:
        log.warning("no voice activity detector (%s): long files are cut into fixed windows", exc)
        return ConstantDetector(sample_rate=sample_rate)


class ArrayBlockReader:
    """A waveform already in memory, yielded in blocks as :class:`data_prep.audio_stream.AudioBlockReader`
    yields a file's (``samples``, ``seconds`` and ``max_block`` alike), so that an array goes
    through :func:`transcribe_long` as a file does.

    Args:
        samples: (N,) float32 at ``sample_rate`` (checked, as ``common.array_waveform`` gives them).
        sample_rate: Their rate in Hz.
        block_s: Seconds per block.
    """

    def __init__(self, samples: np.ndarray, sample_rate: int, block_s: float) -> None:
        self.data = np.asarray(samples, np.float32)
        self.sample_rate = sample_rate
        self.block_samples = max(1024, int(round(block_s * sample_rate)))
        self.samples = 0
        self.max_block = 0

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    def __iter__(self):
        for start in range(0, self.data.size, self.block_samples):
            block = self.data[start : start + self.block_samples]
            self.samples += block.size
            self.max_block = max(self.max_block, block.size)
            yield block


def transcribe_long(
    transcriber, path: str | Path, *, cfg: ChunkConfig = ChunkConfig(), beam_size: int | None = None,
    detector=None, stats: dict[str, int] | None = None, samples: np.ndarray | None = None,
    progress: Callable[[float], None] | None = None,
) -> Transcription:  # fmt: skip
    """Transcribes one file of any length in chunks (see the module docstring).

    Args:
        transcriber: A ``Transcriber`` (its model, features and decoder), or a
            ``LiteTranscriber`` (its ``chunk_decoder``).
        path: The audio file; with ``samples``, only the name its result carries.
        cfg: The chunking rules.
        beam_size: As in ``Transcriber.decode_features``.
        detector: A voice activity detector (``push``/``finish``, ``frame_samples``); default:
            :func:`make_detector`.
        stats: If given, filled with ``chunks``, ``max_buffer_samples``, ``max_block_samples``
            and ``max_planner_frames`` (what memory was bounded by).
        samples: A (N,) float32 waveform at the transcriber's rate to transcribe instead of
            reading ``path`` (an array given to ``transcribe``).
        progress: Called with the seconds read so far after each block is read and the chunks
            it completes are decoded (a batch of the torch engine is decoded once it holds
            ``cfg.batch_s``), and once at the end.

    Returns:
        The file's result. Silence gives empty text. A file that breaks off gives the text up
        to the damage with ``error`` naming it and ``partial`` set.

    Raises:
        AudioError: the file cannot be read at all; other errors of decoding.
    """
    # lazy: data_prep.audio_stream pulls in soundfile; only file input needs it
    from data_prep.audio_stream import AudioBlockReader, AudioTruncated

    if hasattr(transcriber, "chunk_decoder"):  # the torch-free engine
        sr = transcriber.sample_rate
        decoder: Any = transcriber.chunk_decoder(beam_size)
    else:
        sr = transcriber.feature_cfg.sample_rate
        decoder = ChunkDecoder(transcriber, cfg.batch_s, beam_size)
    reader: Any = AudioBlockReader(path, sr, cfg.block_s) if samples is None else ArrayBlockReader(samples, sr, cfg.block_s)
    detector = detector if detector is not None else make_detector(sr)
    planner = ChunkPlanner(cfg, detector.frame_samples, sr)
    buffer = SampleBuffer()
    damage: AudioTruncated | None = None

    def take(chunks: list[Chunk]) -> None:
        for chunk in chunks:
            decoder.add(chunk, buffer.take(chunk.start, chunk.end))

    try:
        try:
            for block in reader:
                buffer.append(block)
                take(planner.push(detector.push(block)))
                buffer.drop_before(planner.hold_from)
                if progress is not None:
                    progress(reader.seconds)
        except AudioTruncated as exc:
            damage = exc
        take(planner.push(detector.finish()))
        take([c for c in [planner.finish(reader.samples)] if c is not None])
        decoder.flush()
    finally:
        if hasattr(decoder, "close"):
            decoder.close()  # a worker thread, after an error
    if progress is not None:
        progress(reader.seconds)
    result = Transcription(path=str(path), duration=reader.seconds, words=decoder.words)
    result.text = " ".join(w["word"] for w in decoder.words)
    if damage is not None:
        result.error, result.exception, result.partial = f"{damage}; the text covers the audio before it", damage, True
    if stats is not None:
        stats.update(chunks=decoder.chunks, max_buffer_samples=buffer.max_held,
                     max_block_samples=reader.max_block, max_planner_frames=planner.max_held)  # fmt: skip
    log.debug("%s: %.1f s in %d chunks", path, reader.seconds, decoder.chunks)
    return result


__all__ = [
    "LONG_AUDIO_S", "ArrayBlockReader", "Chunk", "ChunkConfig", "ChunkDecoder", "ChunkPlanner", "OneByOneChunkDecoder", "SampleBuffer",
    "append_words",
    "make_detector", "quietest", "release_free_memory", "stitch_words", "transcribe_long",
]
