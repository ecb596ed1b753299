"""Offline waveform augmentation for ASR training data, built on maintained libraries.

The training speech is clean TTS output; the feature stage writes extra augmented copies of
the training set (as it does for speed perturbation) so the model sees rooms, noise, other
talkers, telephone channels and lossy codecs. :func:`augment` turns one waveform into one
augmented copy, deterministically from a seed such as ``f"{utt_id}-aug{k}"``.

Effects, applied in this order (each with its own probability; 0 switches it off):

* ``reverb``: convolution with a simulated room impulse response. The RIRs come from
  pyroomacoustics (shoebox rooms of random size and RT60, random source and microphone
  positions, image sources up to order 3 plus ray tracing for the tail). A bank of
  ``rir_bank_size`` rooms is drawn from ``rir_bank_seed``; each RIR is simulated on first use
  and cached for the life of the process, and every utterance picks one from the bank.
* ``babble``: a mix of 1-N *other* utterances of the corpus (the caller passes the pool),
  added at a random SNR.
* ``noise``: coloured stationary noise (white, pink, brown, blue, violet) at a random SNR
  (audiomentations ``AddColorNoise``).
* ``gain``: a level change in dB (audiomentations ``Gain``).
* ``telephone``: narrow-band channel: resampled to 8 kHz (soxr), band-limited by Butterworth
  high and low passes (audiomentations) with random cut-offs near 300 / 3400 Hz, resampled back.
* ``codec``: a lossy round trip through ffmpeg (mp3, opus, aac, gsm, G.711 mu-law, G.722) at a
  random low bitrate; the codec delay is removed by cross-correlation so the copy stays aligned.

SNRs follow audiomentations' convention: relative to the RMS of the whole signal the noise is
added to (silences included).

Randomness: every parameter is drawn from numpy Generators seeded from a hash of ``seed``, one
independent stream per effect, so switching one effect off leaves the others' draws unchanged
(on/off ablations compare like with like). audiomentations and pyroomacoustics draw from
process-global RNGs (``random``, ``numpy.random``, pyroomacoustics' own); those calls run under
a module lock with the globals seeded from our stream and their previous states restored
afterwards, so results are reproducible and callers' global RNG state is left as it was
(pyroomacoustics' C++ ray-tracing engine cannot be read back; it is reseeded from fresh
entropy after each simulation). Other threads that draw from the global RNGs while an
augmentation runs are not protected by the lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import math
import random
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import SeqrecError

log = logging.getLogger(__name__)

#: Effect names, in the order they are applied (also the names :func:`augment` returns).
EFFECTS = ("reverb", "babble", "noise", "gain", "telephone", "codec")

#: Noise colours: spectral slope in dB/octave (audiomentations' ``NOISE_COLOR_DECAYS``).
NOISE_COLORS = {
    "white": 0.0,
    "pink": -10.0 * math.log10(2.0),
    "brown": -20.0 * math.log10(2.0),
    "blue": 10.0 * math.log10(2.0),
    "violet": 20.0 * math.log10(2.0),
}


@dataclass(frozen=True)
class _Codec:
    encode: tuple[str, ...]  # ffmpeg output options (codec, rate, ...), before the bitrate
    fmt: str  # container/muxer written to the pipe
    decode_input: tuple[str, ...]  # ffmpeg input options to read it back
    bitrates: tuple[str | None, ...]  # None: the codec has a fixed rate


#: Lossy codecs :func:`augment` can apply (``AugmentConfig.codecs``).
CODECS: dict[str, _Codec] = {
    "mp3": _Codec(("-c:a", "libmp3lame"), "mp3", ("-f", "mp3"), ("16k", "24k", "32k")),
    "opus": _Codec(
        ("-c:a", "libopus", "-application", "voip"), "ogg", ("-f", "ogg"), ("8k", "12k", "16k", "24k")
    ),
    "aac": _Codec(("-c:a", "aac"), "adts", ("-f", "aac"), ("16k", "24k", "32k")),
    "gsm": _Codec(("-c:a", "libgsm", "-ar", "8000"), "gsm", ("-f", "gsm"), (None,)),
    "mulaw": _Codec(
        ("-c:a", "pcm_mulaw", "-ar", "8000"), "mulaw", ("-f", "mulaw", "-ar", "8000", "-ac", "1"), (None,)
    ),
    "g722": _Codec(("-c:a", "g722", "-ar", "16000"), "g722", ("-f", "g722"), (None,)),
}


class AugmentError(SeqrecError, RuntimeError):
    """An augmentation could not run (a missing tool, a failed ffmpeg round trip)."""


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the waveform effects (a probability of 0 switches one off).

    Ranges are ``(low, high)`` pairs, drawn uniformly (``babble_talkers``: integers, both ends
    included). Lists (from YAML) are accepted and stored as tuples.
    """

    reverb_prob: float = 0.4
    rt60_s: tuple[float, float] = (0.2, 0.8)
    room_size_m: tuple[float, float] = (3.0, 10.0)  # length and width
    room_height_m: tuple[float, float] = (2.4, 4.0)
    rir_bank_size: int = 32
    rir_bank_seed: int = 0

    babble_prob: float = 0.2
    babble_snr_db: tuple[float, float] = (5.0, 20.0)
    babble_talkers: tuple[int, int] = (2, 6)

    noise_prob: float = 0.4
    noise_snr_db: tuple[float, float] = (5.0, 30.0)
    noise_colors: tuple[str, ...] = ("white", "pink", "brown", "blue")

    gain_prob: float = 0.3
    gain_db: tuple[float, float] = (-12.0, 6.0)

    telephone_prob: float = 0.15
    telephone_low_hz: tuple[float, float] = (200.0, 400.0)
    telephone_high_hz: tuple[float, float] = (3000.0, 3600.0)

    codec_prob: float = 0.2
    codecs: tuple[str, ...] = ("mp3", "opus", "aac", "gsm", "mulaw")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        for name in ("reverb_prob", "babble_prob", "noise_prob", "gain_prob", "telephone_prob",
                     "codec_prob"):
            p = getattr(self, name)
            if not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
                raise ValueError(f"AugmentConfig.{name} must be a probability in [0, 1], got {p!r}")
        self._range("rt60_s", 0.05, 3.0)
        self._range("room_size_m", 1.5, 50.0)
        self._range("room_height_m", 2.0, 20.0)
        self._range("babble_snr_db", -20.0, 60.0)
        self._range("noise_snr_db", -20.0, 80.0)
        self._range("gain_db", -60.0, 40.0)
        self._range("telephone_low_hz", 20.0, 1000.0)
        self._range("telephone_high_hz", 1500.0, 3990.0)
        self._range("babble_talkers", 1, 64, integer=True)
        for name in ("rir_bank_size", "rir_bank_seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if name == "rir_bank_size" else 0):
                raise ValueError(f"AugmentConfig.{name} must be an integer >= "
                                 f"{1 if name == 'rir_bank_size' else 0}, got {v!r}")
        self._choices("noise_colors", NOISE_COLORS, self.noise_prob)
        self._choices("codecs", CODECS, self.codec_prob)

    def _range(self, name: str, lo: float, hi: float, *, integer: bool = False) -> None:
        r = getattr(self, name)
        kind = "integers" if integer else "numbers"
        if (not isinstance(r, tuple) or len(r) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
                or (integer and not all(float(v).is_integer() for v in r))):
            raise ValueError(f"AugmentConfig.{name} must be a (low, high) pair of {kind}, got {r!r}")
        a, b = r
        if not (math.isfinite(a) and math.isfinite(b) and lo <= a <= b <= hi):
            raise ValueError(
                f"AugmentConfig.{name} must satisfy {lo:g} <= low <= high <= {hi:g}, got {r!r}"
            )

    def _choices(self, name: str, known: dict, prob: float) -> None:
        values = getattr(self, name)
        if not isinstance(values, tuple) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"AugmentConfig.{name} must be a list of names, got {values!r}")
        unknown = [v for v in values if v not in known]
        if unknown:
            raise ValueError(f"AugmentConfig.{name}: unknown {unknown}; known: {sorted(known)}")
        if prob > 0 and not values:
            raise ValueError(f"AugmentConfig.{name} is empty while its probability is {prob}")


# ----------------------------------------------------------------------------------- seeding


def _seed_entropy(seed: int | str) -> int:
    """128 bits of entropy from ``str(seed)`` (stable across processes and Python versions)."""
    return int.from_bytes(hashlib.sha256(str(seed).encode("utf-8")).digest()[:16], "little")


def _effect_rng(entropy: int, effect: str) -> np.random.Generator:
    """The independent stream of ``effect`` for one seed."""
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(EFFECTS.index(effect),)))


_GLOBAL_RNG_LOCK = threading.RLock()


@contextlib.contextmanager
def _seeded_globals(rng: np.random.Generator) -> Iterator[None]:
    """Seeds ``random`` and ``numpy.random`` from ``rng``; restores their states on exit."""
    seed = int(rng.integers(0, 2**32))
    with _GLOBAL_RNG_LOCK:
        py_state, np_state = random.getstate(), np.random.get_state()
        random.seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


# ------------------------------------------------------------------------------- small helpers


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or zero-padded to ``n`` samples."""
    if x.shape[0] >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - x.shape[0], dtype=x.dtype)])


def _uniform(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


# ------------------------------------------------------------------------------------- reverb


def _rir_cfg_key(cfg: AugmentConfig) -> tuple:
    return (cfg.rt60_s, cfg.room_size_m, cfg.room_height_m, cfg.rir_bank_size, cfg.rir_bank_seed)


@functools.lru_cache(maxsize=16)
def _room_specs(key: tuple) -> tuple[dict, ...]:
    """The bank's rooms: size, RT60, source and microphone positions (no simulation yet)."""
    # lazy: pyroomacoustics (about a second to import) only when reverberation is on
    import pyroomacoustics as pra

    rt60_s, size_m, height_m, bank_size, bank_seed = key
    rng = np.random.default_rng(np.random.SeedSequence(bank_seed, spawn_key=(0x52, 0x49, 0x52)))
    specs = []
    for i in range(bank_size):
        for _ in range(1000):
            dims = np.array([_uniform(rng, size_m), _uniform(rng, size_m), _uniform(rng, height_m)])
            rt60 = _uniform(rng, rt60_s)
            try:  # fails when the room is too large for the RT60 (absorption above 1)
                e_absorption, _ = pra.inverse_sabine(rt60, dims)
            except ValueError:
                continue
            margin = 0.5
            src = [rng.uniform(margin, d - margin) for d in dims[:2]] + [rng.uniform(1.2, min(1.9, dims[2] - 0.3))]
            mic = [rng.uniform(margin, d - margin) for d in dims[:2]] + [rng.uniform(0.8, min(1.6, dims[2] - 0.3))]
            if np.linalg.norm(np.subtract(src, mic)) >= 0.7:
                break
        else:  # pragma: no cover - only for absurd ranges
            raise ValueError(f"AugmentConfig: cannot draw room {i} with RT60 in {rt60_s} s and "
                             f"sizes {size_m} x {height_m} m")
        specs.append({"dims": dims, "rt60": rt60, "e_absorption": float(e_absorption),
                      "src": np.array(src), "mic": np.array(mic),
                      "seed": int(rng.integers(0, 2**63))})
    return tuple(specs)


@functools.lru_cache(maxsize=256)
def _rir(key: tuple, index: int, sample_rate: int) -> np.ndarray:
    """RIR ``index`` of the bank, simulated on first use, from its direct path on."""
    # lazy: pyroomacoustics (about a second to import) only when reverberation is on
    import pyroomacoustics as pra
    from pyroomacoustics.random import generator as pra_generator

    spec = _room_specs(key)[index]
    with _GLOBAL_RNG_LOCK:
        saved = pra_generator._rng
        pra.random.seed(numpy=spec["seed"], libroom=spec["seed"] % 2**63)
        try:
            room = pra.ShoeBox(
                spec["dims"], fs=sample_rate, materials=pra.Material(spec["e_absorption"]),
                max_order=3, ray_tracing=True, air_absorption=False,
            )
            room.add_source(spec["src"])
            room.add_microphone(spec["mic"])
            room.compute_rir()
            h = np.asarray(room.rir[0][0], dtype=np.float64)
        finally:
            pra_generator._rng = saved
            pra.libroom.set_rng_seed(int(np.random.SeedSequence().generate_state(1, np.uint64)[0]))
    start = max(0, int(np.argmax(np.abs(h))))  # the direct path: keeps the copy aligned
    h = h[start:]
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


def _reverb(wave: np.ndarray, sr: int, rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, str]:
    # lazy: scipy only when reverberation is on
    from scipy.signal import oaconvolve

    key = _rir_cfg_key(cfg)
    index = int(rng.integers(cfg.rir_bank_size))
    h = _rir(key, index, sr)
    out = oaconvolve(wave, h)[: wave.shape[0]]
    rms_in, rms_out = _rms(wave), _rms(out)
    if rms_out > 0:
        out = out * (rms_in / rms_out)  # the room changes the sound, not the level
    return out.astype(np.float32), f"rir {index} (rt60 {_room_specs(key)[index]['rt60']:.2f} s)"


# ------------------------------------------------------------------------ babble and noise


def _as_wave(item: np.ndarray | str | Path, sr: int) -> np.ndarray:
    if isinstance(item, (str, Path)):
        return _load_cached(str(item), sr)
    return np.asarray(item, dtype=np.float32).reshape(-1)


@functools.lru_cache(maxsize=512)
def _load_cached(path: str, sr: int) -> np.ndarray:
    # lazy: data_prep.audio pulls in soundfile; noise files are read only when babble is on
    from data_prep.audio import load_waveform

    return load_waveform(path, sr, backend="numpy")


def _babble(wave: np.ndarray, sr: int, rng: np.random.Generator, cfg: AugmentConfig,
            pool: Sequence[np.ndarray | str | Path]) -> tuple[np.ndarray, str]:
    # lazy: audiomentations pulls in scipy; loaded only for the effects a config turns on
    from audiomentations.core.utils import calculate_desired_noise_rms

    n = wave.shape[0]
    k = int(rng.integers(int(cfg.babble_talkers[0]), int(cfg.babble_talkers[1]) + 1))
    picks = rng.choice(len(pool), size=k, replace=k > len(pool))
    offsets = rng.random(k)
    snr = _uniform(rng, cfg.babble_snr_db)
    mix = np.zeros(n, dtype=np.float64)
    for idx, offset in zip(picks, offsets, strict=True):
        talker = _as_wave(pool[int(idx)], sr)
        r = _rms(talker)
        if r == 0:
            continue
        start = int(offset * talker.shape[0])
        segment = np.resize(np.roll(talker, -start), n)  # loops a short talker
        mix += segment / r
    r = _rms(mix)
    if r == 0:
        return wave, f"{k} talkers, silent"
    noise_rms = calculate_desired_noise_rms(_rms(wave), snr)
    return (wave + mix * (noise_rms / r)).astype(np.float32), f"{k} talkers @ {snr:.1f} dB"


def _noise(wave: np.ndarray, sr: int, rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, str]:
    # lazy: audiomentations pulls in scipy; loaded only for the effects a config turns on
    from audiomentations import AddColorNoise

    color = cfg.noise_colors[int(rng.integers(len(cfg.noise_colors)))]
    snr = _uniform(rng, cfg.noise_snr_db)
    decay = NOISE_COLORS[color]
    t = AddColorNoise(min_snr_db=snr, max_snr_db=snr, min_f_decay=decay, max_f_decay=decay,
                      p_apply_a_weighting=0.0, p=1.0)
    with _seeded_globals(rng):
        out = t(wave, sr)
    return out, f"{color} @ {snr:.1f} dB"


def _gain(wave: np.ndarray, sr: int, rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, str]:
    # lazy: audiomentations pulls in scipy; loaded only for the effects a config turns on
    from audiomentations import Gain

    db = _uniform(rng, cfg.gain_db)
    with _seeded_globals(rng):
        out = Gain(min_gain_db=db, max_gain_db=db, p=1.0)(wave, sr)
    return out, f"{db:+.1f} dB"


# ------------------------------------------------------------------------ telephone and codec

TELEPHONE_SR = 8000


def _telephone(wave: np.ndarray, sr: int, rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, str]:
    # lazy: soxr and audiomentations load only when the telephone effect is on
    import soxr
    from audiomentations import HighPassFilter, LowPassFilter

    low, high = _uniform(rng, cfg.telephone_low_hz), _uniform(rng, cfg.telephone_high_hz)
    narrow = soxr.resample(wave, sr, TELEPHONE_SR, quality="HQ") if sr > TELEPHONE_SR else wave
    rate = min(sr, TELEPHONE_SR)
    high = min(high, 0.45 * rate)  # only matters below 8 kHz input
    low = min(low, 0.5 * high)
    with _seeded_globals(rng):
        narrow = HighPassFilter(min_cutoff_freq=low, max_cutoff_freq=low, min_rolloff=24,
                                max_rolloff=24, p=1.0)(narrow.astype(np.float32), rate)
        narrow = LowPassFilter(min_cutoff_freq=high, max_cutoff_freq=high, min_rolloff=24,
                               max_rolloff=24, p=1.0)(narrow, rate)
    out = soxr.resample(narrow, TELEPHONE_SR, sr, quality="HQ") if sr > TELEPHONE_SR else narrow
    return _fit(np.asarray(out, dtype=np.float32), wave.shape[0]), f"{low:.0f}-{high:.0f} Hz"


def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise AugmentError("the codec effect needs ffmpeg (apt-get install ffmpeg), not found on PATH")
    return exe


def _ffmpeg_pipeline(encode: list[str], decode: list[str], data: bytes) -> bytes:
    """Runs ``ffmpeg encode | ffmpeg decode`` on ``data``; both processes run concurrently."""
    exe = _ffmpeg()
    base = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1"]
    enc_cmd, dec_cmd = [*base, *encode], [*base, *decode]
    enc = subprocess.Popen(enc_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    dec = subprocess.Popen(dec_cmd, stdin=enc.stdout, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    enc.stdout.close()  # dec owns the read end now

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            enc.stdin.write(data)
        with contextlib.suppress(BrokenPipeError, OSError):
            enc.stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        out, dec_err = dec.communicate(timeout=120)
        enc_err = enc.stderr.read()
        enc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        enc.kill()
        dec.kill()
        raise AugmentError(f"ffmpeg timed out: {' '.join(enc_cmd)} | {' '.join(dec_cmd)}") from None
    finally:
        writer.join(timeout=5)
        enc.stderr.close()
    for proc, cmd, err in ((enc, enc_cmd, enc_err), (dec, dec_cmd, dec_err)):
        if proc.returncode != 0:
            tail = err.decode("utf-8", "replace").strip()[-500:]
            raise AugmentError(f"ffmpeg failed ({proc.returncode}): {' '.join(cmd)}: {tail}")
    return out


def codec_round_trip(wave: np.ndarray, sample_rate: int, codec: str, bitrate: str | None = None) -> np.ndarray:
    """Encodes ``wave`` with ``codec`` through ffmpeg and decodes it back at ``sample_rate``.

    The result has the input's length, with the codec's delay removed (cross-correlation
    within 0.25 s). Raises :class:`AugmentError` when ffmpeg is missing or fails.
    """
    # lazy: scipy only for the codec round trip
    from scipy.signal import correlate

    spec = CODECS[codec]
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    bitrate_args = ["-b:a", bitrate] if bitrate else []
    raw = _ffmpeg_pipeline(
        ["-f", "f32le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
         *spec.encode, *bitrate_args, "-fflags", "+bitexact", "-flags:a", "+bitexact",
         "-map_metadata", "-1", "-f", spec.fmt, "pipe:1"],
        [*spec.decode_input, "-i", "pipe:0", "-f", "f32le", "-ac", "1", "-ar", str(sample_rate),
         "-fflags", "+bitexact", "pipe:1"],
        wave.tobytes(),
    )
    decoded = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    n = wave.shape[0]
    if decoded.size == 0 or not wave.any():
        return _fit(decoded, n) if decoded.size else np.zeros(n, np.float32)
    max_lag = int(0.25 * sample_rate)
    xc = correlate(decoded, wave, mode="full", method="fft")
    zero = n - 1  # index of lag 0: decoded[k + lag] ~ wave[k]
    lo, hi = max(0, zero - max_lag), min(xc.size, zero + max_lag + 1)
    lag = int(np.argmax(xc[lo:hi])) + lo - zero
    out = decoded[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, np.float32), decoded])
    return _fit(out, n)


def _codec(wave: np.ndarray, sr: int, rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, str]:
    codec = cfg.codecs[int(rng.integers(len(cfg.codecs)))]
    bitrates = CODECS[codec].bitrates
    bitrate = bitrates[int(rng.integers(len(bitrates)))]
    return codec_round_trip(wave, sr, codec, bitrate), f"{codec} {bitrate or ''}".strip()


# ---------------------------------------------------------------------------------- augment


def _peak_safe(wave: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if peak > 1.0:
        wave = wave * np.float32(1.0 / peak)
    return np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False)


def augment(
    wave: np.ndarray, sample_rate: int, *, seed: int | str, cfg: AugmentConfig,
    babble: Sequence[np.ndarray | str | Path] = (),
) -> tuple[np.ndarray, list[str]]:
    """One augmented copy of a mono waveform.

    Args:
        wave: (N,) float waveform, values in [-1, 1] (e.g. from ``load_waveform``).
        sample_rate: Its sample rate in Hz.
        seed: Any int or string (e.g. ``f"{utt_id}-aug{k}"``); ``str(seed)`` is hashed, so
            ``1`` and ``"1"`` give the same copy.
        cfg: The effects' probabilities and ranges.
        babble: Pool for the ``babble`` effect: other utterances of the corpus, as (N,)
            float arrays at ``sample_rate`` or audio file paths (read and resampled with
            :func:`data_prep.audio.load_waveform`, cached per process). Leave the utterance
            itself out. With an empty pool the babble effect never applies.

    Returns:
        ``(augmented, effects)``: (N,) float32, finite, peak <= 1 (scaled down when an effect
        pushed it above 1); ``effects`` lists the names of the effects applied (a subset of
        :data:`EFFECTS`, in order). Their parameters are logged at DEBUG level.

    Raises:
        ValueError: ``wave`` is not 1-D, or ``sample_rate`` is not a positive integer.
        AugmentError: the codec effect was drawn and ffmpeg is missing or failed.
    """
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"wave must be 1-D (N,), got shape {wave.shape}")
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    sample_rate = int(sample_rate)
    out = np.nan_to_num(wave.astype(np.float32, copy=True), nan=0.0, posinf=0.0, neginf=0.0)
    if out.size == 0:
        return out, []
    entropy = _seed_entropy(seed)
    probs = {"reverb": cfg.reverb_prob, "babble": cfg.babble_prob, "noise": cfg.noise_prob,
             "gain": cfg.gain_prob, "telephone": cfg.telephone_prob, "codec": cfg.codec_prob}
    applied: list[str] = []
    details: list[str] = []
    for name in EFFECTS:
        rng = _effect_rng(entropy, name)
        if not (rng.random() < probs[name]):
            continue
        if name == "babble":
            if not babble:
                continue
            out, detail = _babble(out, sample_rate, rng, cfg, babble)
        elif name == "codec":
            out, detail = _codec(_peak_safe(out), sample_rate, rng, cfg)
        else:
            out, detail = _APPLY[name](out, sample_rate, rng, cfg)
        out = np.nan_to_num(np.asarray(out, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        applied.append(name)
        details.append(f"{name}: {detail}")
    if details:
        log.debug("augment seed=%s: %s", seed, "; ".join(details))
    return _peak_safe(out), applied


_APPLY = {"reverb": _reverb, "noise": _noise, "gain": _gain, "telephone": _telephone}

__all__ = ["CODECS", "EFFECTS", "NOISE_COLORS", "AugmentConfig", "AugmentError", "augment",
           "codec_round_trip"]
