"""The embedded default speech corpus: real English sentences read by many offline TTS engines.

Engines (:mod:`data_prep.corpora.tts_engines`): espeak-ng, flite, festival, piper, hibari and Kokoro.
Each engine offers one or more speakers; every speaker gets its own base rate, pitch and
level, and every utterance varies them a little. The splits keep three things apart:

* **engines**: ``held_out_engines`` (default piper and festival) are never heard in train or
  dev; the test split holds ``held_out_share`` of its utterances from them. Their WER is the
  number that says how the model does on voices unlike anything it trained on.
* **speakers**: within the other engines, about 10% of each voice group's speakers are held
  out for dev and 10% for test (groups of fewer than 10 speakers stay in train).
* **sentences**: open-vocabulary sentences (:mod:`data_prep.corpora.text_sources`) are drawn disjoint
  per split; with ``text="open"`` a held-out text source appears only in test. ``text=
  "generated"`` uses the template grammar of :mod:`data_prep.corpora.text_gen` instead (no packages).

espeak-ng is a formant synthesizer unlike any other voice, so its share of training audio is
capped (``train_shares``). A missing engine is skipped with one log line and its share goes
to the others.

Layout written under ``out_dir``::

    wavs/<split>/<id>.wav     16-bit PCM mono at cfg.sample_rate
    <split>.jsonl             manifests (id, audio_filepath, duration, text, speaker, engine,
                              text_source)
    corpus_info.json          hours, utterances, speakers and engines per split, held-out sets
    .plan.json                hash of the synthesis plan, so a rerun knows which wavs to trust

The whole plan (speaker split, sentence, speaker, rate, pitch and level of every utterance) is
drawn in the parent process from ``cfg.seed``; workers only synthesise. A rerun skips
utterances whose wav exists and is valid under the same plan; manifests are written last,
atomically, and only when the corpus reaches ``min_train_hours``.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import logging
import multiprocessing
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch

from data_prep.audio import resample
from data_prep.corpora.text_gen import generate_sentences
from data_prep.corpora.text_sources import available_sources, load_all_sources, split_sentences
from data_prep.corpora.tts_engines import ENGINES, SpeakerSpec, available_engines
from data_prep.manifest import write_manifest
from data_prep.text_norm import normalize_text
from pipeline.errors import SeqrecError
from pipeline.io_utils import atomic_open, atomic_write_json, user_cache_dir

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")

_HELD_OUT_FRACTION = 0.1  # of each voice group's speakers, for dev and again for test
# A group with fewer speakers stays in train: holding out one of flite's 4 voices left 2 in
# training and made "unseen speakers" mean "another engine" for that group.
_MIN_GROUP_FOR_HOLDOUT = 10


class SpeechCorpusError(SeqrecError, RuntimeError):
    """The corpus cannot be generated (no engine, too many failures, too few hours)."""


@dataclass(frozen=True)
class SpeechCorpusConfig:
    """Size, engines, text and seed of a generated corpus.

    Attributes:
        train_utts: Utterances in train.
        dev_utts: Utterances in dev.
        test_utts: Utterances in test.
        seed: Decides sentences, speaker split and voice settings.
        sample_rate: Sample rate of the written wavs, in Hz.
        engines: Engine families to use when installed (see ``tts_engines.ENGINES``).
        held_out_engines: Families heard only in test.
        train_shares: (family, share) of train (and dev) utterances among the other families;
            missing families' shares go to the rest pro rata.
        held_out_share: Share of test utterances spoken by the held-out families.
        text: ``open`` (real sentences, Debian text packages) or ``generated`` (templates).
        held_out_texts: With ``open``, text sources seen only in test.
        min_train_hours: Stop with an error (no manifests) below this much train audio.
    """

    train_utts: int
    dev_utts: int
    test_utts: int
    seed: int = 0
    sample_rate: int = 16000
    engines: tuple[str, ...] = ("espeak", "flite", "festival", "piper", "hibari", "kokoro")
    held_out_engines: tuple[str, ...] = ("piper", "festival")
    train_shares: tuple[tuple[str, float], ...] = (
        ("espeak", 0.25), ("flite", 0.25), ("hibari", 0.42), ("kokoro", 0.08),
    )  # fmt: skip
    held_out_share: float = 0.5
    text: Literal["open", "generated"] = "open"
    held_out_texts: tuple[str, ...] = ("fortunes",)
    min_train_hours: float = 0.0

    def __post_init__(self) -> None:
        unknown = sorted((set(self.engines) | set(self.held_out_engines)) - set(ENGINES))
        unknown += sorted({f for f, _ in self.train_shares} - set(ENGINES))
        if unknown:
            raise ValueError(f"unknown engine families {unknown}; known: {sorted(ENGINES)}")
        if not 0.0 <= self.held_out_share < 1.0:
            raise ValueError(f"held_out_share must be in [0, 1), got {self.held_out_share}")

    def count(self, split: str) -> int:
        """Utterances asked for in ``split``."""
        return {"train": self.train_utts, "dev": self.dev_utts, "test": self.test_utts}[split]


#: Named sizes. Utterances of the open-vocabulary text average about 2.6 s. Kokoro is the
#: slow engine (about 0.9 s of CPU per second of audio, the others 0.006-0.16), so its share
#: sets how long a corpus takes: the default keeps it at 8% of train; "large" raises it.
SIZES: dict[str, SpeechCorpusConfig] = {
    "tiny": SpeechCorpusConfig(train_utts=24, dev_utts=8, test_utts=12),
    "small": SpeechCorpusConfig(train_utts=600, dev_utts=60, test_utts=120),
    "default": SpeechCorpusConfig(train_utts=2000, dev_utts=150, test_utts=300),
    "large": SpeechCorpusConfig(
        train_utts=18000, dev_utts=300, test_utts=600, min_train_hours=10.0,
        train_shares=(("espeak", 0.25), ("flite", 0.2), ("hibari", 0.3), ("kokoro", 0.25)),
    ),
    # The original corpus: espeak-ng and flite reading template sentences.
    "espeak": SpeechCorpusConfig(
        train_utts=3450, dev_utts=300, test_utts=300, engines=("espeak", "flite"),
        held_out_engines=(), train_shares=(("espeak", 0.98), ("flite", 0.02)), text="generated",
    ),
}


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs to synthesise one utterance."""

    utt_id: str
    wav_path: str
    prompt: str
    speaker: SpeakerSpec
    rate: float  # speaking-rate factor, 1 = the engine's default
    pitch: float  # semitones (engines without native pitch ignore it)
    level_db: float  # peak level of the written wav, dBFS
    sample_rate: int


# ----------------------------------------------------------------------------- speakers


def _group(spk: SpeakerSpec) -> str:
    """Speakers sharing a voice; the speaker split is drawn within each group."""
    return f"{spk.family}:{spk.voice}" if spk.family == "espeak" else spk.family


def split_speakers(
    speakers: list[SpeakerSpec], seed: int, held_out: tuple[str, ...] = ()
) -> dict[str, list[SpeakerSpec]]:
    """Splits speakers into disjoint train/dev/test sets.

    Speakers of ``held_out`` families all go to test. For the others, about 10% of each voice
    group's speakers go to dev and 10% to test (at least one each); groups with fewer than
    10 speakers stay entirely in train, so held-out speakers come from populations that
    training represents. A group's draw depends only on the seed and its members, so adding
    an engine leaves the other groups' split unchanged.
    """
    groups: dict[str, list[SpeakerSpec]] = {}
    for spk in speakers:
        groups.setdefault(_group(spk), []).append(spk)
    out: dict[str, list[SpeakerSpec]] = {s: [] for s in SPLITS}
    for name in sorted(groups):
        members = sorted(groups[name], key=lambda s: s.name)
        if members[0].family in held_out:
            out["test"] += members
            continue
        random.Random(f"{seed}:{name}").shuffle(members)
        n = len(members)
        held = max(1, round(_HELD_OUT_FRACTION * n)) if n >= _MIN_GROUP_FOR_HOLDOUT else 0
        out["test"] += members[:held]
        out["dev"] += members[held : 2 * held]
        out["train"] += members[2 * held :]
    return out


# ----------------------------------------------------------------------------- the plan


_Plan = dict[str, list[tuple[_Job, dict]]]  # split -> (job, manifest fields other than audio)


@dataclass
class _Style:
    rate: float
    pitch: float
    level_db: float


def _speaker_style(spk: SpeakerSpec, seed: int) -> _Style:
    """A speaker's own base rate, pitch and level, so speakers differ in more than timbre."""
    rng = random.Random(f"{seed}:style:{spk.name}")
    return _Style(rng.uniform(0.88, 1.12), rng.uniform(-2.0, 2.0), rng.uniform(-9.0, -2.0))


def _allocate(n: int, shares: dict[str, float]) -> dict[str, int]:
    """Splits ``n`` into integer counts proportional to ``shares`` (largest remainders)."""
    total = sum(shares.values())
    if n == 0 or total <= 0:
        return {k: 0 for k in shares}
    exact = {k: n * v / total for k, v in shares.items()}
    counts = {k: int(x) for k, x in exact.items()}
    for k in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def _family_counts(cfg: SpeechCorpusConfig, split: str, pool: dict[str, list[SpeakerSpec]]) -> dict[str, int]:
    """Utterances per family in ``split`` (families without speakers there get none)."""
    n = cfg.count(split)
    shares = {f: w for f, w in cfg.train_shares if pool.get(f)}
    for fam in pool:  # an engine without a configured share still contributes a little
        if fam not in shares and fam not in cfg.held_out_engines and pool[fam]:
            shares[fam] = 0.05
    held = [f for f in cfg.held_out_engines if pool.get(f)]
    if split != "test" or not held:
        return _allocate(n, shares)
    n_held = round(n * cfg.held_out_share)
    return {**_allocate(n - n_held, shares), **_allocate(n_held, dict.fromkeys(held, 1.0))}


def _sentences(cfg: SpeechCorpusConfig) -> dict[str, list[tuple[str, str]]]:
    """Split -> (sentence, text source), disjoint across splits."""
    counts = {s: cfg.count(s) for s in SPLITS}
    if cfg.text == "generated":
        sentences = generate_sentences(sum(counts.values()), seed=cfg.seed)  # distinct
        out, start = {}, 0
        for split in SPLITS:
            out[split] = [(t, "template") for t in sentences[start : start + counts[split]]]
            start += counts[split]
        return out

    names = available_sources()
    if not names:
        raise SpeechCorpusError(
            "no open-vocabulary text source is installed (apt-get install wordnet-base "
            "fortunes dict-gcide, or `make setup`); data.text=generated needs none"
        )
    held = tuple(s for s in cfg.held_out_texts if s in names)
    return split_sentences(load_all_sources(names), seed=cfg.seed, counts=counts, held_out_sources=held)


def _plan(out_dir: Path, cfg: SpeechCorpusConfig, speakers: dict[str, list[SpeakerSpec]]) -> _Plan:
    """Draws every utterance's sentence, speaker and voice settings from ``cfg.seed``."""
    sentences = _sentences(cfg)
    rng = random.Random(cfg.seed)
    jobs: _Plan = {}
    for split in SPLITS:
        pool: dict[str, list[SpeakerSpec]] = {}
        for spk in speakers[split]:
            pool.setdefault(spk.family, []).append(spk)
        counts = _family_counts(cfg, split, pool)
        order: list[SpeakerSpec] = []
        for fam in sorted(counts):
            members = list(pool[fam])
            rng.shuffle(members)
            order += [members[i % len(members)] for i in range(counts[fam])]
        rng.shuffle(order)  # sentences are drawn independently of engines
        if len(order) != cfg.count(split):
            raise SpeechCorpusError(f"no speakers left for split {split!r}")
        rows = []
        for i, ((sentence, source), spk) in enumerate(zip(sentences[split], order, strict=True)):
            style = _speaker_style(spk, cfg.seed)
            utt_id = f"{split}_{i:06d}"
            job = _Job(
                utt_id, str(out_dir / "wavs" / split / f"{utt_id}.wav"), sentence, spk,
                rate=round(style.rate * rng.uniform(0.93, 1.07), 3),
                pitch=round(style.pitch + rng.uniform(-1.0, 1.0), 2),
                level_db=round(style.level_db + rng.uniform(-2.0, 2.0), 2),
                sample_rate=cfg.sample_rate,
            )  # fmt: skip
            fields = {"text": normalize_text(sentence), "speaker": spk.name, "engine": spk.family,
                      "text_source": source}  # fmt: skip
            rows.append((job, fields))
        jobs[split] = rows
    return jobs


#: Bumped when synthesis changes what a wav holds (2: silence trimmed to TRIM_KEEP_S;
#: 3: engines behind data_prep.corpora.tts_engines, rate factors, pitch in semitones, peak level).
SYNTH_VERSION = 3
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
        for job, fields in jobs[split]:
            what = {k: v for k, v in asdict(job).items() if k != "wav_path"}
            h.update(json.dumps([what, fields], sort_keys=True).encode())
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
    """Runs the engine; returns (N,) float32 at job.sample_rate, trimmed, at job.level_db."""
    wave, sr = ENGINES[job.speaker.family].synthesize(job.prompt, job.speaker, rate=job.rate, pitch=job.pitch)
    if sr != job.sample_rate:
        wave = resample(torch.from_numpy(np.ascontiguousarray(wave)), sr, job.sample_rate).numpy()
    wave = trim_silence(wave, job.sample_rate)
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak > 0:
        wave = wave * (10 ** (job.level_db / 20) / peak)
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


def corpus_cache_dir(cfg: SpeechCorpusConfig) -> Path | None:
    """Where the embedded corpus of ``cfg`` is kept across runs and checkouts (None: off).

    ``$SEQREC_CORPUS_CACHE`` names the root (``""`` or ``"0"`` turns the cache off); the default
    is ``$XDG_CACHE_HOME/seqrec/corpora`` (``~/.cache/seqrec/corpora``). One entry per config,
    named by its train size and a hash of every field, so a corpus of another config is never
    reused; within an entry the generator resumes per utterance and checks its plan (see
    :func:`generate_speech_corpus`), and its manifests are written last, so an entry cut short
    is never read as a corpus.
    """
    root = user_cache_dir("SEQREC_CORPUS_CACHE", "corpora")
    if root is None:
        return None
    key = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:16]
    return root / f"speech-{cfg.train_utts}utts-{key}"


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
        SpeechCorpusError: no engine installed, more than 5% of utterances failed, or the
            train split is short of ``cfg.min_train_hours`` (then no manifest is written).
    """
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    engines = available_engines(cfg.engines)
    if not engines:
        raise SpeechCorpusError(
            f"none of the speech engines {list(cfg.engines)} is installed; `make setup` installs "
            "them (at least: apt-get install espeak-ng)"
        )
    missing_held = [f for f in cfg.held_out_engines if f not in {e.family for e in engines}]
    if missing_held:
        log.warning("held-out engines %s not installed: the test split has fewer unseen engines", missing_held)
    all_speakers = [spk for engine in engines for spk in engine.speakers()]
    speakers = split_speakers(all_speakers, cfg.seed, cfg.held_out_engines)
    if not speakers["train"]:
        raise SpeechCorpusError(f"only held-out engines {cfg.held_out_engines} are installed; nothing to train on")
    jobs = _plan(out_dir, cfg, speakers)
    plan_hash = _plan_hash(jobs)
    plan_file = out_dir / ".plan.json"
    if _read_plan_hash(plan_file) != plan_hash:
        # Wavs from another plan (seed, sizes, tools) would be trusted by a resumed run: remove
        # them, and the manifests that list them, before recording the new plan.
        stale = sorted((out_dir / "wavs").glob("*/*.wav"))
        if stale:
            log.warning("%s: plan changed; removing %d old wavs", out_dir, len(stale))
        for path in [*stale, *(out_dir / f"{s}.jsonl" for s in SPLITS)]:
            path.unlink(missing_ok=True)
    for split in SPLITS:
        (out_dir / "wavs" / split).mkdir(parents=True, exist_ok=True)
    atomic_write_json(plan_file, {"plan_hash": plan_hash, "config": asdict(cfg)})
    # Grouped by engine, so that each worker's chunk reuses the engine it has loaded.
    all_jobs = sorted((job for split in SPLITS for job, _ in jobs[split]),
                      key=lambda j: (j.speaker.family, j.utt_id))  # fmt: skip
    durations, failures = _run_all(all_jobs, num_workers)
    for utt_id, err in failures:
        log.error("%s: synthesis failed, utterance dropped: %s", utt_id, err)
    if len(failures) > 0.05 * max(1, len(all_jobs)):
        raise SpeechCorpusError(
            f"{len(failures)} of {len(all_jobs)} utterances failed to synthesise; see the log"
        )
    records = {
        split: [{"id": job.utt_id, "audio_filepath": job.wav_path,
                 "duration": round(durations[job.utt_id], 4), **fields}
                for job, fields in jobs[split] if job.utt_id in durations]
        for split in SPLITS
    }  # fmt: skip
    train_hours = sum(r["duration"] for r in records["train"]) / 3600.0
    if train_hours < cfg.min_train_hours:
        raise SpeechCorpusError(
            f"{out_dir}: the train split holds {train_hours:.2f} h of audio, short of the "
            f"{cfg.min_train_hours:g} h this size asks for; no manifest written"
        )
    manifests = {s: write_manifest(out_dir / f"{s}.jsonl", records[s], "speech") for s in SPLITS}
    stats = {split: _split_stats(records[split]) for split in SPLITS}
    wall = round(time.perf_counter() - t0, 2)
    atomic_write_json(out_dir / "corpus_info.json", {
        "config": asdict(cfg), "plan_hash": plan_hash,
        "engines": sorted({e.family for e in engines}),
        "held_out_engines": [f for f in cfg.held_out_engines if f not in missing_held],
        "licenses": {e.family: e.license for e in engines},
        "splits": stats, "failed": [utt for utt, _ in failures], "wall_time_s": wall,
    })  # fmt: skip
    summary = ", ".join(
        f"{s} {v['utterances']} utts/{v['hours']:.2f} h/{len(v['speakers'])} spk"
        for s, v in stats.items()
    )
    log.info("speech corpus in %s: %s (%.1f s)", out_dir, summary, wall)
    return manifests


def _split_stats(records: list[dict]) -> dict:
    """Utterances, hours, speakers, and hours per engine and per text source of one split."""
    def hours_by(key: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in records:
            out[r[key]] = out.get(r[key], 0.0) + r["duration"] / 3600.0
        return {k: round(v, 4) for k, v in sorted(out.items())}

    return {
        "utterances": len(records),
        "hours": round(sum(r["duration"] for r in records) / 3600.0, 4),
        "speakers": sorted({r["speaker"] for r in records}),
        "engine_hours": hours_by("engine"),
        "text_source_hours": hours_by("text_source"),
        "distinct_words": len({w for r in records for w in r["text"].split()}),
    }


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
