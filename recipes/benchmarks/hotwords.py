#!/usr/bin/env python3
"""Hotwords: recall of words the lexicon lacks, with and without ``hotwords=``, and the WER on
the other words.

    python recipes/benchmarks/hotwords.py --threads 1
    python recipes/benchmarks/hotwords.py --weights 0 3 5 8 --out /tmp/hotwords.json

The test set is built here, once, in ``--cache-dir`` (default ``~/.cache/seqrec/hotwords``):
:data:`SENTENCES` are everyday sentences, each holding one or two names or terms that the
shipped model's lexicon lacks (surnames, software names, invented product names; the script
checks that they are absent and that every other word is present). Each is read by one of the
TTS voices the shipped model never trained on (piper joe, festival kal/ked/slt; README's model
card), resampled to 16 kHz. Files already there are kept, so a second run only transcribes.

The shipped model transcribes every file on the lite engine without hotwords, then with the
list of all target words at each ``--weights`` value. For each run: recall of the target words
(aligned to themselves), B-WER (errors on them), U-WER (errors on every other word, insertions
of non-target words included) and the other words' substitutions and deletions alone
(:func:`pipeline.scoring.biased_error_rates`), and the search time per file (the same
log-probabilities searched with and without the hotwords).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.io_utils import atomic_write_text
from pipeline.pretrained import speech_model_dir
from recipes.benchmarks.timing import BenchmarkError

if __name__ == "__main__":  # the repository root, not this folder (its module names shadow others)
    sys.path[0] = str(Path(__file__).resolve().parents[2])

log = logging.getLogger(__name__)

#: Where the synthesised test set is kept between runs.
DEFAULT_CACHE = Path.home() / ".cache" / "seqrec" / "hotwords"
#: Voices the shipped model never heard in training (family, speaker name), used in turn.
VOICES = (("piper", "piper_joe"), ("festival", "festival_kal"), ("festival", "festival_ked"),
          ("festival", "festival_slt_hts"))  # fmt: skip
#: Hotword weights measured by default (0: the words are added to the lexicon, no boost).
WEIGHTS = (0.0, 5.0, 10.0, 15.0)
SAMPLE_RATE = 16000

#: Each sentence holds one or two words outside the shipped lexicon; every other word is in it.
SENTENCES = (
    "please send the quarterly report to doctor zarnowski before friday",
    "we moved the whole cluster to kubernetes last spring",
    "the grafana charts stopped working after the update",
    "she trained the new model with pytorch on a single machine",
    "our orders are stored in a postgres database in the basement",
    "the team replaced tensorflow with a smaller library",
    "he wrote the network setup in terraform over the weekend",
    "the machines are set up with ansible every night",
    "we keep the session data in redis for speed",
    "open the jupyter notebook and run the first cell",
    "the code lives on github in a private repository",
    "a webhook tells the shop when a payment arrives",
    "check the dockerfile before you build the image",
    "the events flow through kafka to the billing service",
    "the phone program is written in kotlin",
    "the office connects to the lab through wireguard",
    "all the photos are backed up to a synology box",
    "they split the old program into microservices",
    "doctor okonkwo will chair the meeting on monday",
    "the letter was signed by anna kowalczyk",
    "the painting was sold by a dealer named delacroix",
    "maria ferreira won the race for the third time",
    "the new manager is called james abernathy",
    "the castellanos family owns the bakery on the corner",
    "professor ostrowski teaches the evening class",
    "the lindqvist report describes the flood in detail",
    "we hired sarah brightwell as our new accountant",
    "the package was addressed to john nakamura",
    "doctor oyelaran explained the results to the patients",
    "the court heard from a witness named vasquez",
    "peter thorsby built the bridge over the river",
    "the zyntrex vacuum cleaner is very quiet",
    "buy a florbix charger for your old phone",
    "the quandrel bottle tracks how much water you drink",
    "my sister ordered a velmora jacket by mail",
    "the trivexa printer jammed again this morning",
    "plumicor paint dries in less than an hour",
    "the zenthos watch counts your steps all day",
    "he sold his borvik bicycle to a neighbor",
    "the kalvado coffee machine makes a strong cup",
    "nexora phones will be cheaper next year",
    "doctor zarnowski asked for the kubernetes logs",
    "nakamura and okonkwo wrote the paper together",
    "the grafana chart shows the redis memory",
    "ferreira uses pytorch at work every day",
    "the kafka stream feeds the postgres tables",
    "abernathy bought a zyntrex for the office",
    "we tested the trivexa with a synology drive",
    "lindqvist prefers kotlin to any other language",
    "the terraform plan made a new cluster in an hour",
    "the florbix and the nexora are both on sale",
    "thorsby fixed the dockerfile in ten minutes",
    "castellanos runs ansible from his desk",
    "a github webhook starts the tests",
    "velmora and plumicor opened shops in the mall",
    "brightwell moved the old code to kubernetes",
    "ostrowski wants a zenthos watch for his birthday",
    "vasquez packed the borvik in the car",
    "the kalvado was a gift from delacroix",
    "oyelaran set up wireguard at home",
    "kowalczyk signed the quandrel contract",
    "the tensorflow version on this computer is too old",
)
#: Sentences with no target word at all (every word in the lexicon): hotwords must not hurt them.
CONTROL = (
    "the children walked to school in the rain",
    "please close the window before you leave",
    "my brother bought a new car last month",
    "the river was cold and very deep",
    "we had soup and bread for dinner",
    "the train to the city leaves at noon",
    "she wrote a long letter to her mother",
    "the garden needs water every morning",
    "our neighbor plays the piano at night",
    "the doctor told him to rest for a week",
    "they painted the kitchen a bright yellow",
    "the museum is closed on sunday",
    "he lost his keys on the way home",
    "the farmer sold eggs at the market",
    "a small dog followed us to the park",
    "the teacher read a story to the class",
    "we watched the sun go down over the hills",
    "the store opens early on saturday",
    "i found an old map in the attic",
    "the baby slept through the whole storm",
)


def lexicon_words(bundle: Path | None = None) -> set[str]:
    """The words of a bundle's lexicon file (default: the shipped model's)."""
    path = speech_model_dir(bundle) / "lexicon.txt"
    with open(path, encoding="utf-8") as fh:
        return {line.split("\t", 1)[0] for line in fh if line.strip()}


def targets(known: set[str]) -> list[str]:
    """The words of :data:`SENTENCES` outside ``known``, in first-seen order.

    Raises:
        ValueError: a sentence has no such word, or more than two.
    """
    out: dict[str, None] = {}
    for sentence in SENTENCES:
        unknown = [w for w in sentence.split() if w not in known]
        if not 1 <= len(unknown) <= 2:
            raise ValueError(f"{sentence!r}: expected one or two words outside the lexicon, got {unknown}")
        out.update(dict.fromkeys(unknown))
    return list(out)


def build_set(cache_dir: Path) -> list[dict[str, Any]]:
    """Synthesises :data:`SENTENCES`, then :data:`CONTROL`, into ``cache_dir`` (16 kHz mono PCM
    wav), skipping files already there; returns one record per sentence (``audio``, ``text``,
    ``voice``, ``control``)."""
    # lazy: numpy, soundfile and the TTS engines only when the set is built
    import numpy as np
    import soundfile as sf

    from data_prep.audio import resample
    from data_prep.corpora.tts_engines import available_engines

    cache_dir.mkdir(parents=True, exist_ok=True)
    records = []
    engines: dict[str, Any] = {}
    sentences = [(f"{i:03d}", text, False) for i, text in enumerate(SENTENCES)]
    sentences += [(f"c{i:03d}", text, True) for i, text in enumerate(CONTROL)]
    for i, (stem, text, is_control) in enumerate(sentences):
        family, speaker = VOICES[i % len(VOICES)]
        path = cache_dir / f"{stem}_{speaker}.wav"
        records.append({"audio": str(path), "text": text, "voice": speaker, "control": is_control})
        if path.is_file():
            continue
        if family not in engines:
            found = available_engines([family])
            if not found:
                raise BenchmarkError(f"TTS engine {family} is not installed (see data_prep/corpora/tts_engines.py)")
            engines[family] = found[0]
        engine = engines[family]
        spec = next(s for s in engine.speakers() if s.name == speaker)
        wave, sr = engine.synthesize(text, spec)
        if sr != SAMPLE_RATE:
            wave = resample(np.asarray(wave, np.float32), sr, SAMPLE_RATE)
        tmp = path.with_suffix(".tmp.wav")
        sf.write(tmp, np.clip(wave, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
        tmp.replace(path)
        log.info("synthesised %s (%.1f s)", path.name, len(wave) / SAMPLE_RATE)
    atomic_write_text(cache_dir / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return records


def _built(search: Any) -> Any:
    """The lite engine's search, once its loader thread has built it (it may defer the build)."""
    return search.get() if hasattr(search, "get") else search


def _search_seconds(search: Any, log_probs: list[Any]) -> float:
    """Seconds the search takes over all the log-probabilities (best of three passes)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for lp in log_probs:
            search.search(lp)
        best = min(best, time.perf_counter() - t0)
    return best


def run(cache_dir: Path = DEFAULT_CACHE, weights: tuple[float, ...] = WEIGHTS, threads: int = 1) -> dict[str, Any]:
    """Builds (or reuses) the test set and measures every setting; returns the figures."""
    # lazy: the engine and scoring load only when the benchmark runs
    from data_prep.audio import load_waveform
    from pipeline.inference.lite import LiteTranscriber
    from pipeline.scoring import biased_error_rates, error_rates

    known = lexicon_words()
    words = targets(known)
    records = build_set(cache_dir)
    if any(w not in known for text in CONTROL for w in text.split()):
        raise ValueError("a control sentence has a word outside the lexicon")
    refs = [r["text"] for r in records]
    test = [i for i, r in enumerate(records) if not r["control"]]
    control = [i for i, r in enumerate(records) if r["control"]]
    files = [r["audio"] for r in records]
    audio_s = sum(load_waveform(f, target_sr=SAMPLE_RATE, backend="numpy").size for f in files) / SAMPLE_RATE
    settings: list[tuple[str, list[Any] | None]] = [("none", None)]
    settings += [(f"weight {w:g}", [(word, w) for word in words]) for w in weights]
    rows: dict[str, Any] = {}
    log_probs = None
    for name, hotwords in settings:
        t0 = time.perf_counter()
        transcriber = LiteTranscriber.from_pretrained(threads=threads, hotwords=hotwords)
        load_s = time.perf_counter() - t0
        results = transcriber.transcribe(files, raise_errors=True)
        hyps = [r.text for r in results]
        if log_probs is None:  # the model's output does not depend on the hotwords
            fe, model = transcriber.front_end, transcriber.model
            log_probs = [model(fe(load_waveform(f, target_sr=SAMPLE_RATE, backend="numpy"))) for f in files]
        split = biased_error_rates([refs[i] for i in test], [hyps[i] for i in test], words)
        rows[name] = {
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in split.items()},
            "wer": round(error_rates([refs[i] for i in test], [hyps[i] for i in test])["wer"], 4),
            "control_wer": round(error_rates([refs[i] for i in control], [hyps[i] for i in control])["wer"], 4),
            "load_s": round(load_s, 3),
            "search_s_per_file": round(_search_seconds(_built(transcriber._search), log_probs) / len(files), 4),
            "hypotheses": hyps,
        }
        row = rows[name]
        log.info("%s: recall %.3f, U-WER %.3f, other sub+del %.3f, WER %.3f, control WER %.3f", name, row["recall"],
                 row["u_wer"], row["u_sub_del"], row["wer"], row["control_wer"])  # fmt: skip
    return {
        "utterances": len(test), "control_utterances": len(control), "audio_s": round(audio_s, 1), "targets": words,
        "voices": sorted({r["voice"] for r in records}), "threads": threads, "runs": rows,
    }  # fmt: skip


def render(results: dict[str, Any]) -> str:
    """A markdown table of :func:`run`'s figures."""
    lines = [
        f"{results['utterances']} sentences with {len(results['targets'])} target words "
        f"({results['runs']['none']['num_biased']} occurrences) and {results['runs']['none']['num_other']} other "
        f"words, {results['control_utterances']} control sentences without any ({results['audio_s']:g} s in all)",
        "",
        "| hotwords | target recall | B-WER | U-WER | other sub+del | WER | control WER | search ms/file | load s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["runs"].items():
        lines.append(f"| {name} | {r['recall']:.3f} | {r['b_wer']:.3f} | {r['u_wer']:.3f} | {r['u_sub_del']:.3f} | "
                     f"{r['wer']:.3f} | {r['control_wer']:.3f} | {1000 * r['search_s_per_file']:.1f} | "
                     f"{r['load_s']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="recipes/benchmarks/hotwords.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, metavar="DIR",
                        help="where the synthesised test set is kept (default: %(default)s)")
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS), metavar="W",
                        help="hotword weights to measure (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default: 1)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")  # fmt: skip
    results = run(args.cache_dir, tuple(args.weights), args.threads)
    print(render(results))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
