"""The embedded default speech corpus: generated sentences spoken by espeak-ng (and flite).

A speaker is an espeak-ng English voice (en-us, en-gb, en-gb-scotland, ...) crossed with a voice
variant (m1..m8, f1..f5, klatt, ...), or a flite voice when ``flite`` is installed. Each speaker
gets its own base rate and pitch, and every utterance varies them a little. Train, dev and test
use disjoint speaker sets (test voices are never heard in training) and disjoint sentences.

Layout written under ``out_dir``::

    wavs/<split>/<id>.wav     16-bit PCM mono at cfg.sample_rate
    <split>.jsonl             manifests (id, audio_filepath, duration, text, speaker)
    corpus_info.json          hours, utterances and speakers per split, tools used
    .plan.json                hash of the synthesis plan, so a rerun knows which wavs to trust

The whole plan (speaker split, sentence, voice, rate and pitch of every utterance) is drawn in
the parent process from ``cfg.seed``; workers only synthesise. A rerun skips utterances whose
wav exists and is valid under the same plan, and manifests are written last, atomically.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import json
import logging
import multiprocessing
import random
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from data_prep.audio import resample
from data_prep.manifest import write_manifest
from data_prep.text_gen import generate_sentences, normalize_text
from pipeline.io_utils import atomic_open, atomic_write_json

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")

#: espeak-ng English voices (mbrola voices need extra packages and are never used).
ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                 "en-gb-x-gbcwmd", "en-029", "en-us-nyc")  # fmt: skip
#: espeak-ng voice variants that stay intelligible (no echo, whisper, robot or croak effects).
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
                   "klatt", "klatt2", "klatt3", "Alex", "Andy", "Annie", "Gene", "Michael", "Mike",
                   "antonio", "belinda", "david", "edward", "grandma", "grandpa", "iven", "linda",
                   "max", "paul", "quincy", "rob", "robert", "steph", "travis", "victor")  # fmt: skip
#: flite voices that read any text (awb_time only knows clock times; kal is kal16 at 8 kHz).
FLITE_VOICES = ("awb", "kal16", "rms", "slt")

_SYNTH_TIMEOUT_S = 60.0
_HELD_OUT_FRACTION = 0.1  # of each voice group's speakers, for dev and again for test
# A group with fewer speakers stays in train: holding out one of flite's 4 voices left 2 in
# training (1% of the speakers) and made the test set measure cross-synthesizer transfer
# from 2 voices (that one voice had 69% CER) rather than unseen-speaker generalisation.
_MIN_GROUP_FOR_HOLDOUT = 10


class SpeechCorpusError(RuntimeError):
    """The corpus cannot be generated (a missing tool, or too many failed utterances)."""


@dataclass(frozen=True)
class SpeechCorpusConfig:
    """Size and seed of a generated corpus.

    Attributes:
        train_utts: Utterances in train.
        dev_utts: Utterances in dev.
        test_utts: Utterances in test.
        seed: Decides sentences, speaker split and voice settings.
        sample_rate: Sample rate of the written wavs, in Hz.
        use_flite: Add flite voices when ``flite`` is installed.
    """

    train_utts: int
    dev_utts: int
    test_utts: int
    seed: int = 0
    sample_rate: int = 16000
    use_flite: bool = True

    def count(self, split: str) -> int:
        """Utterances asked for in ``split``."""
        return {"train": self.train_utts, "dev": self.dev_utts, "test": self.test_utts}[split]


#: Named sizes. "default" holds over 2 hours of train audio (trimmed utterances average about 2.14 s:
#: 3450 of them make about 2.05 h).
SIZES: dict[str, SpeechCorpusConfig] = {
    "tiny": SpeechCorpusConfig(train_utts=24, dev_utts=8, test_utts=8),
    "small": SpeechCorpusConfig(train_utts=600, dev_utts=60, test_utts=60),
    "default": SpeechCorpusConfig(train_utts=3450, dev_utts=300, test_utts=300),
}


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: an engine, a voice and (for espeak-ng) a variant."""

    name: str
    engine: str  # "espeak" or "flite"
    voice: str
    variant: str = ""

    @property
    def group(self) -> str:
        """Speakers sharing an accent/voice; the split is drawn within each group."""
        return f"{self.engine}:{self.voice}" if self.engine == "espeak" else self.engine


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs to synthesise one utterance."""

    utt_id: str
    wav_path: str
    prompt: str
    engine: str
    voice: str
    variant: str
    rate: float  # espeak: words per minute; flite: duration stretch
    pitch: int  # espeak only, 0..99
    sample_rate: int


# ----------------------------------------------------------------------------- speakers


def _run_text(cmd: list[str]) -> str:
    proc = subprocess.run(
        cmd, capture_output=True, timeout=30, check=False, stdin=subprocess.DEVNULL
    )
    return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else ""


def available_speakers(*, use_flite: bool = True) -> list[Speaker]:
    """Lists the synthetic speakers this machine can produce, in a fixed order.

    Raises:
        SpeechCorpusError: espeak-ng is not installed or has none of the English voices.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechCorpusError(
            "espeak-ng is not installed; the embedded speech corpus needs it. Install it with "
            "`apt-get install espeak-ng` (Debian/Ubuntu), `dnf install espeak-ng` or "
            "`brew install espeak-ng` (or `make setup`, which installs it when it can)."
        )
    langs = set()
    for line in _run_text([exe, "--voices=en"]).splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and not re.search(r"\smb/", line):  # mbrola voices are not installed
            langs.add(parts[1])
    variants = set(re.findall(r"!v/(\S+)", _run_text([exe, "--voices=variant"])))
    voices = [v for v in ESPEAK_VOICES if v in langs]
    if not voices:
        raise SpeechCorpusError(
            f"espeak-ng ({exe}) lists none of the English voices {ESPEAK_VOICES}"
        )
    picked = [v for v in ESPEAK_VARIANTS if v in variants] or [""]
    speakers = [
        Speaker(f"espeak_{voice}_{variant or 'default'}", "espeak", voice, variant)
        for voice in voices
        for variant in picked
    ]
    flite = shutil.which("flite") if use_flite else None
    if flite is not None:
        listed = set(_run_text([flite, "-lv"]).replace(":", " ").split())
        speakers += [Speaker(f"flite_{v}", "flite", v) for v in FLITE_VOICES if v in listed]
    elif use_flite:
        log.info("flite not installed; the corpus uses espeak-ng voices only")
    return speakers


def split_speakers(speakers: list[Speaker], seed: int) -> dict[str, list[Speaker]]:
    """Splits speakers into disjoint train/dev/test sets, drawn within each voice group.

    About 10% of each group's speakers go to dev and 10% to test (at least one each). Groups
    with fewer than 10 speakers (flite's handful of voices) stay entirely in train, so that
    held-out speakers come from populations that training represents. A group's draw depends
    only on the seed and its members, so adding flite voices leaves the espeak-ng split unchanged.
    """
    groups: dict[str, list[Speaker]] = {}
    for spk in speakers:
        groups.setdefault(spk.group, []).append(spk)
    out: dict[str, list[Speaker]] = {s: [] for s in SPLITS}
    for name in sorted(groups):
        members = sorted(groups[name], key=lambda s: s.name)
        random.Random(f"{seed}:{name}").shuffle(members)
        n = len(members)
        held = max(1, round(_HELD_OUT_FRACTION * n)) if n >= _MIN_GROUP_FOR_HOLDOUT else 0
        out["test"] += members[:held]
        out["dev"] += members[held : 2 * held]
        out["train"] += members[2 * held :]
    return out


# ----------------------------------------------------------------------------- the plan


_Plan = dict[str, list[tuple[_Job, str, str]]]  # split -> (job, normalised text, speaker)


def _speaker_style(spk: Speaker, seed: int) -> tuple[float, float]:
    """A speaker's own base rate and pitch, so speakers differ in more than timbre."""
    rng = random.Random(f"{seed}:style:{spk.name}")
    if spk.engine == "espeak":
        return rng.uniform(145.0, 190.0), rng.uniform(30.0, 70.0)  # words/min, espeak pitch
    return rng.uniform(0.9, 1.15), 0.0  # flite duration stretch


def _plan(out_dir: Path, cfg: SpeechCorpusConfig, speakers: dict[str, list[Speaker]]) -> _Plan:
    """Draws every utterance's sentence, speaker and voice settings from ``cfg.seed``."""
    total = sum(cfg.count(s) for s in SPLITS)
    sentences = generate_sentences(total, seed=cfg.seed)  # distinct, so splits share none
    rng = random.Random(cfg.seed)
    style = {spk.name: _speaker_style(spk, cfg.seed) for s in SPLITS for spk in speakers[s]}
    jobs: _Plan = {}
    start = 0
    for split in SPLITS:
        n = cfg.count(split)
        pool = list(speakers[split])
        if n and not pool:
            raise SpeechCorpusError(f"no speakers left for split {split!r}")
        rng.shuffle(pool)
        rows = []
        for i, sentence in enumerate(sentences[start : start + n]):
            spk = pool[i % len(pool)]
            base_rate, base_pitch = style[spk.name]
            if spk.engine == "espeak":
                rate = round(base_rate + rng.uniform(-15.0, 15.0))
                pitch = int(min(99, max(0, round(base_pitch + rng.uniform(-8.0, 8.0)))))
            else:
                rate, pitch = round(base_rate * rng.uniform(0.92, 1.08), 3), 0
            utt_id = f"{split}_{i:06d}"
            wav = out_dir / "wavs" / split / f"{utt_id}.wav"
            job = _Job(utt_id, str(wav), sentence, spk.engine, spk.voice, spk.variant,
                       float(rate), pitch, cfg.sample_rate)  # fmt: skip
            rows.append((job, normalize_text(sentence), spk.name))
        jobs[split] = rows
        start += n
    return jobs


#: Bumped when synthesis changes what a wav holds (2: silence trimmed to TRIM_KEEP_S).
SYNTH_VERSION = 2
#: Silence kept before the first and after the last audible sample. espeak-ng ends every
#: sentence with ~0.3 s of silence (14% of the audio), which only costs training time.
TRIM_KEEP_S = 0.1


def trim_silence(wave: np.ndarray, sample_rate: int, keep_s: float = TRIM_KEEP_S, rel_db: float = -40.0) -> np.ndarray:
    """Cuts leading/trailing silence, keeping ``keep_s`` seconds around the audible part.

    Audible = magnitude above ``rel_db`` relative to the peak. (N,) -> (M,), M <= N.
    """
    if wave.size == 0:
        return wave
    mag = np.abs(wave)
    loud = np.flatnonzero(mag > mag.max() * 10 ** (rel_db / 20))
    if loud.size == 0:
        return wave
    keep = int(round(keep_s * sample_rate))
    return wave[max(0, loud[0] - keep) : loud[-1] + 1 + keep]


def _plan_hash(jobs: _Plan) -> str:
    """Hash of what every wav should hold (not where it lies, so the corpus can move)."""
    h = hashlib.sha256()
    h.update(f"synth-v{SYNTH_VERSION}".encode())
    for split in SPLITS:
        for job, text, spk in jobs[split]:
            fields = {k: v for k, v in asdict(job).items() if k != "wav_path"}
            h.update(json.dumps([fields, text, spk], sort_keys=True).encode())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- synthesis


def _existing_duration(path: Path, sample_rate: int) -> float | None:
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, OSError):
        return None
    ok = info.samplerate == sample_rate and info.channels == 1 and info.frames > 0
    return info.frames / info.samplerate if ok else None


def _synthesize(job: _Job) -> np.ndarray:
    """Runs the engine; returns (N,) float32 at job.sample_rate."""
    if job.engine == "espeak":
        voice = f"{job.voice}+{job.variant}" if job.variant else job.voice
        cmd = [shutil.which("espeak-ng") or "espeak-ng", "-v", voice, "-s", str(int(job.rate)),
               "-p", str(job.pitch), "--stdout", "--stdin"]  # fmt: skip
        proc = subprocess.run(cmd, input=job.prompt.encode("utf-8"), capture_output=True,
                              timeout=_SYNTH_TIMEOUT_S, check=False)  # fmt: skip
        if proc.returncode != 0 or len(proc.stdout) <= 44:
            raise RuntimeError(f"espeak-ng failed ({proc.returncode}): {proc.stderr[-300:]!r}")
        data, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    else:
        with tempfile.TemporaryDirectory(prefix="flite_") as tmp:
            out = Path(tmp) / "out.wav"
            cmd = [shutil.which("flite") or "flite", "-voice", job.voice, "--setf",
                   f"duration_stretch={job.rate}", "-t", job.prompt, "-o", str(out)]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, timeout=_SYNTH_TIMEOUT_S, check=False,
                                  stdin=subprocess.DEVNULL)  # fmt: skip
            if proc.returncode != 0 or not out.exists():
                raise RuntimeError(f"flite failed ({proc.returncode}): {proc.stderr[-300:]!r}")
            data, sr = sf.read(str(out), dtype="float32", always_2d=True)
    wave = data.mean(axis=1)
    if sr != job.sample_rate:
        wave = resample(torch.from_numpy(np.ascontiguousarray(wave)), sr, job.sample_rate).numpy()
    wave = trim_silence(wave, job.sample_rate)
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak > 0.99:  # the sinc resampler can overshoot a full-scale synth
        wave = wave * (0.99 / peak)
    return wave.astype(np.float32)


def _worker_init() -> None:
    torch.set_num_threads(1)  # one process per core already


def _run_job(job: _Job) -> tuple[str, float | None, str]:
    """Synthesises one utterance unless a valid wav is there; returns (id, duration, error)."""
    path = Path(job.wav_path)
    if path.exists():  # written under this plan (see generate_speech_corpus): keep it
        dur = _existing_duration(path, job.sample_rate)
        if dur is not None:
            return job.utt_id, dur, ""
    try:
        wave = _synthesize(job)
        if wave.size == 0:
            raise RuntimeError("synthesiser produced no audio")
        with atomic_open(path, "wb") as fh:
            sf.write(fh, wave, job.sample_rate, subtype="PCM_16", format="WAV")
    except Exception as exc:  # noqa: BLE001 - one failed utterance must not stop the rest
        return job.utt_id, None, f"{type(exc).__name__}: {exc}"
    return job.utt_id, wave.size / job.sample_rate, ""


def generate_speech_corpus(
    out_dir: Path, cfg: SpeechCorpusConfig, *, num_workers: int = 2
) -> dict[str, Path]:
    """Generates the embedded speech corpus (resumable, deterministic for ``cfg.seed``).

    Args:
        out_dir: Corpus directory; created if needed.
        cfg: Sizes and seed (see :data:`SIZES`).
        num_workers: Synthesis processes; 0 or 1 runs in this process.

    Returns:
        Split name -> manifest path (``out_dir/<split>.jsonl``).

    Raises:
        SpeechCorpusError: espeak-ng missing, or more than 5% of utterances failed.
    """
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    speakers = split_speakers(available_speakers(use_flite=cfg.use_flite), cfg.seed)
    jobs = _plan(out_dir, cfg, speakers)
    plan_hash = _plan_hash(jobs)
    plan_file = out_dir / ".plan.json"
    if _read_plan_hash(plan_file) != plan_hash:
        # Wavs from another plan (seed, sizes, tools) would be trusted by a resumed run: remove
        # them before recording the new plan.
        stale = sorted((out_dir / "wavs").glob("*/*.wav"))
        if stale:
            log.warning("%s: plan changed; removing %d old wavs", out_dir, len(stale))
        for wav in stale:
            wav.unlink()
    for split in SPLITS:
        (out_dir / "wavs" / split).mkdir(parents=True, exist_ok=True)
    atomic_write_json(plan_file, {"plan_hash": plan_hash, "config": asdict(cfg)})
    all_jobs = [job for split in SPLITS for job, _, _ in jobs[split]]
    durations, failures = _run_all(all_jobs, num_workers)
    for utt_id, err in failures:
        log.error("%s: synthesis failed: %s", utt_id, err)
    if len(failures) > 0.05 * max(1, len(all_jobs)):
        raise SpeechCorpusError(
            f"{len(failures)} of {len(all_jobs)} utterances failed to synthesise; see the log"
        )
    manifests: dict[str, Path] = {}
    stats: dict[str, dict] = {}
    for split in SPLITS:
        records = []
        for job, text, spk in jobs[split]:
            if job.utt_id not in durations:
                continue
            records.append({"id": job.utt_id, "audio_filepath": job.wav_path,
                            "duration": round(durations[job.utt_id], 4), "text": text,
                            "speaker": spk})  # fmt: skip
        manifests[split] = write_manifest(out_dir / f"{split}.jsonl", records, "speech")
        stats[split] = {
            "utterances": len(records),
            "hours": round(sum(r["duration"] for r in records) / 3600.0, 4),
            "speakers": sorted({r["speaker"] for r in records}),
        }
    wall = round(time.perf_counter() - t0, 2)
    engines = sorted({spk.engine for split in SPLITS for spk in speakers[split]})
    atomic_write_json(out_dir / "corpus_info.json", {
        "config": asdict(cfg), "plan_hash": plan_hash, "engines": engines, "splits": stats,
        "failed": [utt for utt, _ in failures], "wall_time_s": wall,
    })  # fmt: skip
    summary = ", ".join(
        f"{s} {v['utterances']} utts/{v['hours']:.2f} h/{len(v['speakers'])} spk"
        for s, v in stats.items()
    )
    log.info("speech corpus in %s: %s (%.1f s)", out_dir, summary, wall)
    return manifests


def _read_plan_hash(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("plan_hash")
    except (OSError, ValueError, AttributeError):
        return None


def _run_all(jobs: list[_Job], num_workers: int) -> tuple[dict[str, float], list[tuple[str, str]]]:
    durations: dict[str, float] = {}
    failures: list[tuple[str, str]] = []
    done = 0

    def collect(result: tuple[str, float | None, str]) -> None:
        nonlocal done
        utt_id, dur, err = result
        if dur is None:
            failures.append((utt_id, err))
        else:
            durations[utt_id] = dur
        done += 1
        if done % 500 == 0:
            log.info("synthesised %d/%d utterances", done, len(todo))

    todo = []
    for job in jobs:  # wavs already there need no worker (a resumed run may start none)
        path = Path(job.wav_path)
        dur = _existing_duration(path, job.sample_rate) if path.exists() else None
        if dur is None:
            todo.append(job)
        else:
            durations[job.utt_id] = dur
    if len(todo) < len(jobs):
        log.info("%d of %d utterances already synthesised", len(jobs) - len(todo), len(jobs))
    if num_workers <= 1 or len(todo) <= 1:
        for job in todo:
            collect(_run_job(job))
        return durations, failures
    # "spawn" keeps workers clear of any threads or CUDA state the parent already started.
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(num_workers, mp_context=ctx, initializer=_worker_init) as pool:
        for result in pool.map(_run_job, todo, chunksize=16):
            collect(result)
    return durations, failures
