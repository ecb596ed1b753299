"""Long recordings: block reading, chunking at pauses, stitching, flat memory, damaged files.

Most tests run the real reader, planner and stitcher with a stand-in model: "words" are tone
bursts of a known loudness, an energy detector plays the VAD, and the stand-in decoder names
each burst it hears with its loudness, timed within the chunk it was given. The file's
transcript must then be exactly the bursts, in order, at their times: nothing lost or doubled
at a chunk edge, whether the edge is a pause or an overlapping cut inside "speech". The last
tests run the shipped model and Silero VAD on speech from espeak-ng.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep.audio import load_waveform, reduced_ratio, resample_sinc
from data_prep.audio_stream import AudioBlockReader, AudioTruncated, StreamResampler
from data_prep.vad import FRAME_SAMPLES, ConstantDetector
from pipeline.inference.long_audio import (
    OPEN_END,
    Chunk,
    ChunkConfig,
    ChunkPlanner,
    append_words,
    stitch_words,
    transcribe_long,
)
from pipeline.inference.transcription import Transcription

SR = 16000
HOP = 160  # the stand-in's feature frame: 10 ms


# --------------------------------------------------------------------------- the stand-in model


def burst_audio(plan: list[tuple[str, float]], sr: int = SR) -> tuple[np.ndarray, list[dict]]:
    """Audio from ``[("w3", seconds) | ("-", seconds)]``: word k is a 300 Hz tone of amplitude
    0.1 * k (k = 1..9), "-" is silence. Returns (samples, the words with their times)."""
    parts, truth, t = [], [], 0
    for name, secs in plan:
        n = int(round(secs * sr))
        if name == "-":
            parts.append(np.zeros(n, np.float32))
        else:
            amp = 0.1 * int(name[1:])
            parts.append((amp * np.sin(2 * np.pi * 300 * np.arange(n) / sr)).astype(np.float32))
            truth.append({"word": name, "start": t / sr, "end": (t + n) / sr})
        t += n
    return np.concatenate(parts), truth


class EnergyDetector:
    """The VAD stand-in: a 512-sample frame is speech (1.0) when its RMS exceeds 0.02."""

    frame_samples = FRAME_SAMPLES
    sample_rate = SR

    def __init__(self) -> None:
        self.rest = np.zeros(0, np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self.rest, samples])
        whole = buf.size // FRAME_SAMPLES * FRAME_SAMPLES
        self.rest = buf[whole:]
        frames = buf[:whole].reshape(-1, FRAME_SAMPLES)
        return (np.sqrt((frames**2).mean(axis=1)) > 0.02).astype(np.float32)

    def finish(self) -> np.ndarray:
        out = self.push(np.zeros(FRAME_SAMPLES - self.rest.size, np.float32)) if self.rest.size else np.zeros(0)
        self.rest = np.zeros(0, np.float32)
        return out


class BurstTranscriber:
    """Features: RMS per 10 ms frame, (T, 1). Decoding: each run of loud frames is a word
    named by its loudness, timed in seconds from the chunk's start."""

    def __init__(self) -> None:
        self.feature_cfg = SimpleNamespace(sample_rate=SR, frame_rate=SR / HOP)
        self.decoded_chunks = 0

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave.numpy()
        n = x.size // HOP
        return torch.from_numpy(np.sqrt((x[: n * HOP].reshape(n, HOP) ** 2).mean(axis=1))[:, None])

    def decode_features(self, feats: list[torch.Tensor], beam_size=None, pad_multiple: int = 1) -> list[tuple[str, list[dict]]]:
        out = []
        for f in feats:
            self.decoded_chunks += 1
            rms = f[:, 0].numpy()
            loud = np.concatenate([[False], rms > 0.02, [False]])
            edges = np.flatnonzero(np.diff(loud.astype(np.int8)))
            words = []
            for a, b in zip(edges[::2], edges[1::2], strict=True):
                level = int(round(float(np.median(rms[a:b])) * np.sqrt(2) / 0.1))
                words.append({"word": f"w{level}", "start": a * HOP / SR, "end": b * HOP / SR})
            out.append((" ".join(w["word"] for w in words), words))
        return out


def _write(path: Path, samples: np.ndarray, sr: int = SR) -> Path:
    sf.write(path, samples, sr, subtype="PCM_16")
    return path


def _check_words(got: list[dict], truth: list[dict], tol: float = 0.02) -> None:
    assert [w["word"] for w in got] == [w["word"] for w in truth]
    for g, t in zip(got, truth, strict=True):
        assert g["start"] == pytest.approx(t["start"], abs=tol) and g["end"] == pytest.approx(t["end"], abs=tol)
    assert all(a["end"] <= b["start"] for a, b in zip(got, got[1:], strict=False))  # monotonic


SMALL = ChunkConfig(min_chunk_s=1.0, max_chunk_s=8.0, overlap_s=1.0, batch_s=10.0, block_s=0.5)


# --------------------------------------------------------------------------- reading in blocks


@pytest.mark.parametrize("rate", [44100, 8000, 22050, 16000])
def test_stream_resampler_equals_resampling_the_whole_signal(rate: int) -> None:
    rng = np.random.default_rng(rate)
    x = (0.1 * rng.standard_normal(50_003)).astype(np.float32)
    resampler, out, i = StreamResampler(rate, SR), [], 0
    while i < x.size:
        k = int(rng.integers(1, 7000))
        out.append(resampler.push(x[i : i + k]))
        i += k
    out.append(resampler.flush())
    np.testing.assert_allclose(np.concatenate(out), resample_sinc(x, *reduced_ratio(rate, SR)), atol=1e-6)


def test_block_reader_holds_one_block_and_reads_what_load_waveform_reads(tmp_path: Path) -> None:
    x = (0.2 * np.random.default_rng(0).standard_normal((20 * 48000, 2))).astype(np.float32)
    path = tmp_path / "stereo48k.wav"
    sf.write(path, x, 48000, subtype="PCM_16")
    reader = AudioBlockReader(path, SR, block_s=0.5)
    blocks = list(reader)
    assert reader.max_block <= reader.block_samples + 64  # the resampler's kernel tail at most
    assert max(b.size for b in blocks) == reader.max_block and len(blocks) >= 40
    np.testing.assert_allclose(np.concatenate(blocks), load_waveform(path, SR), atol=2e-6)
    assert reader.seconds == pytest.approx(20.0, abs=1e-3)


def test_block_reader_reports_a_truncated_wav_after_the_audio_before_it(tmp_path: Path) -> None:
    full = _write(tmp_path / "full.wav", (0.1 * np.ones(10 * SR)).astype(np.float32))
    raw = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(raw[: raw.index(b"data") + 8 + 2 * 4 * SR])  # the header still says 10 s
    reader = AudioBlockReader(cut, SR, block_s=1.0)
    got = []
    with pytest.raises(AudioTruncated, match=r"breaks off after 4\.0 s .*declares 10\.0 s") as err:
        for block in reader:
            got.append(block)
    assert sum(b.size for b in got) == 4 * SR and err.value.at_s == pytest.approx(4.0)
    assert list(AudioBlockReader(full, SR))  # the whole file: no complaint


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_block_reader_pipes_other_formats_through_ffmpeg(tmp_path: Path) -> None:
    path = tmp_path / "tone.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=500:duration=6", "-c:a", "aac",
                    str(path)], check=True)  # fmt: skip
    reader = AudioBlockReader(path, SR, block_s=1.0)
    got = np.concatenate(list(reader))
    np.testing.assert_allclose(got, load_waveform(path, SR), atol=1e-6)
    assert reader.max_block <= SR


# --------------------------------------------------------------------------- planning and stitching


def test_planner_cuts_in_the_middle_of_pauses_and_skips_long_silence() -> None:
    frame_s = FRAME_SAMPLES / SR
    speech = [1.0] * 60 + [0.0] * 20 + [1.0] * 40 + [0.0] * 400 + [1.0] * 30  # 1.9 s, pause, 1.3 s, 12.8 s silence, 1 s
    planner = ChunkPlanner(ChunkConfig(min_chunk_s=1.0, pad_s=0.2), FRAME_SAMPLES, SR)
    chunks = planner.push(speech)
    last = planner.finish(len(speech) * FRAME_SAMPLES)
    assert last is not None
    chunks.append(last)
    pad = round(0.2 / frame_s)
    assert [(c.start // FRAME_SAMPLES, c.end // FRAME_SAMPLES) for c in chunks] == [
        (0, 60 + pad), (80 - pad, 120 + pad), (520 - pad, 550)]  # fmt: skip
    assert chunks[0].keep_to == chunks[1].keep_from == 70 * FRAME_SAMPLES  # the middle of the pause
    assert chunks[1].keep_to == chunks[2].keep_from == 320 * FRAME_SAMPLES
    assert chunks[-1].keep_to == OPEN_END and chunks[0].keep_from == 0


def test_planner_cuts_long_speech_with_overlap_at_its_quietest_frame() -> None:
    cfg = ChunkConfig(max_chunk_s=8.0, overlap_s=1.0)
    probs = np.full(1000, 0.9, np.float32)
    probs[180] = 0.4  # a dip that is no pause (above neg_threshold)
    planner = ChunkPlanner(cfg, FRAME_SAMPLES, SR)
    chunks = planner.push(probs)
    first = chunks[0]
    assert first.keep_to == 180 * FRAME_SAMPLES  # cut at the dip, in the chunk's second half
    assert first.end - first.keep_to == chunks[1].keep_from - chunks[1].start == round(1.0 / 0.032) * FRAME_SAMPLES
    assert all(c.end - c.start <= 8.0 * SR for c in chunks)
    assert planner.max_held <= int(8.0 / 0.032)


def test_stitch_keeps_words_by_centre_and_moves_them_to_the_file_timeline() -> None:
    chunk = Chunk(start=10 * SR, end=20 * SR, keep_from=11 * SR, keep_to=19 * SR)
    words = [{"word": "a", "start": 0.2, "end": 0.6}, {"word": "b", "start": 0.8, "end": 1.4},
             {"word": "c", "start": 8.7, "end": 9.2}, {"word": "d", "start": 9.1, "end": 9.9}]  # fmt: skip
    kept = stitch_words(words, chunk, SR)
    assert [(w["word"], w["start"], w["end"]) for w in kept] == [("b", 10.8, 11.4), ("c", 18.7, 19.2)]
    out = [{"word": "x", "start": 10.0, "end": 10.9}]
    append_words(out, kept)
    assert out[1]["start"] == 10.9 and out[1]["end"] == 11.4  # monotonic across the edge


@pytest.mark.parametrize("gap_s", [0.1, 0.6], ids=["cuts-inside-speech", "cuts-at-pauses"])
def test_every_word_once_at_its_time_across_chunk_edges(tmp_path: Path, gap_s: float) -> None:
    rng = np.random.default_rng(int(gap_s * 10))
    plan = [("-", 0.7)]
    for _ in range(70):
        plan += [(f"w{rng.integers(1, 10)}", float(rng.uniform(0.2, 0.6))), ("-", gap_s)]
    audio, truth = burst_audio(plan)
    tr = BurstTranscriber()
    stats: dict = {}
    res = transcribe_long(tr, _write(tmp_path / "long.wav", audio), cfg=SMALL, detector=EnergyDetector(), stats=stats)
    assert res.error is None and res.duration == pytest.approx(audio.size / SR, abs=1e-3)
    _check_words(res.words, truth)
    assert res.text == " ".join(w["word"] for w in truth)
    assert stats["chunks"] >= 4  # edges were crossed


def test_fixed_windows_without_a_detector_lose_and_double_nothing(tmp_path: Path) -> None:
    plan = []
    for k in range(60):
        plan += [(f"w{k % 9 + 1}", 0.35), ("-", 0.15)]
    audio, truth = burst_audio(plan)
    res = transcribe_long(BurstTranscriber(), _write(tmp_path / "long.wav", audio), cfg=SMALL,
                          detector=ConstantDetector())  # fmt: skip
    _check_words(res.words, truth)


def test_silence_gives_empty_text_and_decodes_nothing(tmp_path: Path) -> None:
    tr = BurstTranscriber()
    res = transcribe_long(tr, _write(tmp_path / "quiet.wav", np.zeros(90 * SR, np.float32)), cfg=SMALL,
                          detector=EnergyDetector())  # fmt: skip
    assert (res.text, res.words, res.error, tr.decoded_chunks) == ("", [], None, 0)
    assert res.duration == pytest.approx(90.0)


def test_long_silences_between_words_keep_their_offsets(tmp_path: Path) -> None:
    audio, truth = burst_audio([("-", 3.0), ("w2", 0.4), ("-", 41.0), ("w5", 0.3), ("-", 25.0), ("w9", 0.5),
                                ("-", 0.2)])  # fmt: skip
    tr = BurstTranscriber()
    res = transcribe_long(tr, _write(tmp_path / "sparse.wav", audio), cfg=SMALL, detector=EnergyDetector())
    _check_words(res.words, truth)
    assert tr.decoded_chunks == 3  # the silences between are never decoded


def test_a_truncated_long_file_gives_its_text_up_to_the_damage_and_an_error(tmp_path: Path) -> None:
    plan = []
    for k in range(40):
        plan += [(f"w{k % 9 + 1}", 0.4), ("-", 0.4)]
    audio, truth = burst_audio(plan)  # 32 s
    full = _write(tmp_path / "full.wav", audio).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full[: full.index(b"data") + 8 + 2 * 20 * SR])  # 20 s of 32 remain
    res = transcribe_long(BurstTranscriber(), cut, cfg=SMALL, detector=EnergyDetector())
    assert res.partial and "breaks off after 20.0 s" in res.error and "declares 32.0 s" in res.error
    _check_words(res.words, [w for w in truth if w["end"] <= 20.0])
    row = res.to_dict()
    assert set(row) == {"path", "text", "duration", "words", "segments", "error"} and row["duration"] == pytest.approx(20.0)
    assert Transcription(path="x", error="broken").to_dict() == {"path": "x", "error": "broken"}


# --------------------------------------------------------------------------- flat memory


def _peak_bytes(path: Path) -> tuple[int, dict]:
    """Peak traced allocation (numpy's included) of transcribing ``path``, and its stats."""
    stats: dict = {}
    tracemalloc.start()
    try:
        transcribe_long(BurstTranscriber(), path, cfg=ChunkConfig(batch_s=30.0), detector=EnergyDetector(), stats=stats)
        return tracemalloc.get_traced_memory()[1], stats
    finally:
        tracemalloc.stop()


def test_memory_is_flat_in_the_length_of_the_file(tmp_path: Path) -> None:
    """1 and 12 minutes: the same bounds on what is held (blocks, buffer, planner frames), and
    peak traced allocations that differ by the longer transcript's words, not its audio."""
    unit, _ = burst_audio([("w3", 0.4), ("-", 0.2), ("w6", 0.5), ("-", 0.5)] * 40)  # 64 s

    def write_minutes(name: str, repeats: int) -> Path:
        path = tmp_path / name
        with sf.SoundFile(path, "w", SR, 1, "PCM_16") as fh:
            for _ in range(repeats):
                fh.write(unit)
        return path

    one, twelve = write_minutes("1min.wav", 1), write_minutes("12min.wav", 12)
    _peak_bytes(one)  # imports and caches of the first run are not the file's
    short_peak, short = _peak_bytes(one)
    long_peak, long_ = _peak_bytes(twelve)
    cfg = ChunkConfig()
    assert long_["max_block_samples"] <= cfg.block_s * SR + 64
    assert long_["max_buffer_samples"] <= (cfg.max_chunk_s + 2 * cfg.block_s) * SR
    assert long_["max_planner_frames"] <= cfg.max_chunk_s * SR / FRAME_SAMPLES
    # 11 more minutes of float32 samples are 42 MB; the peak grows by the transcript's words only
    assert long_peak - short_peak < 0.02 * 11 * unit.nbytes, (short_peak, long_peak)


# --------------------------------------------------------------------------- the real model


def _espeak(path: Path, text: str, voice: str = "en-us") -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True, capture_output=True)
    return load_waveform(path, SR)


SENTENCES = [
    "the weather was cold and the wind blew across the field",
    "she opened the door and walked into the kitchen",
    "many people read the news every morning",
    "he bought a small house near the river",
    "the children played in the garden after school",
    "we will meet at the station at noon",
]


@pytest.fixture(scope="module")
def spoken(tmp_path_factory) -> tuple[Path, list[Path], list[tuple[float, float]]]:
    """Six espeak-ng sentences as files, and one file of all of them with 0.5 s pauses
    (about 20 s), with each sentence's span in it."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    root = tmp_path_factory.mktemp("spoken")
    parts, spans, t = [], [], 0.0
    files = []
    for k, text in enumerate(SENTENCES):
        wave = _espeak(root / f"s{k}.raw.wav", text)
        files.append(_write(root / f"s{k}.wav", wave))
        spans.append((t, t + wave.size / SR))
        parts += [wave, np.zeros(SR // 2, np.float32)]
        t += wave.size / SR + 0.5
    return _write(root / "all.wav", np.concatenate(parts)), files, spans


@pytest.fixture(scope="module")
def shipped():
    from pipeline.inference.transcriber import Transcriber

    return Transcriber.from_pretrained(lm="none")


def test_long_file_transcript_matches_its_parts_with_the_shipped_model(spoken, shipped) -> None:
    """Silero VAD cuts the sentences apart; the text is close to the parts' text (no word lost
    or doubled), each word inside its sentence's span on the file's timeline."""
    from pipeline.scoring import error_rates

    long_file, files, spans = spoken
    parts = shipped.transcribe(files)
    whole = next(shipped.transcribe_iter([long_file], long_audio_s=5.0))
    assert whole.error is None and whole.duration == pytest.approx(spans[-1][1] + 0.5, abs=0.01)
    joined = " ".join(p.text for p in parts)
    rates = error_rates([joined], [whole.text])  # greedy spellings shift with the silence around
    assert rates["cer"] <= 0.08 and abs(len(whole.words) - len(joined.split())) <= 2, (joined, whole.text)
    assert all(a["end"] <= b["start"] for a, b in zip(whole.words, whole.words[1:], strict=False))
    for w in whole.words:
        assert any(s - 0.35 <= w["start"] and w["end"] <= e + 0.35 for s, e in spans), w


def test_cli_prints_a_partial_text_then_the_error_line(tmp_path: Path, spoken, capsys) -> None:
    """A long file cut off mid-recording through ``seqrec transcribe``: the text before the
    damage on stdout and in --output-dir, one error line, exit status 1."""
    from pipeline.cli import main as cli_main

    long_file, _, spans = spoken
    wave = load_waveform(long_file, SR)
    quiet = np.zeros(45 * SR, np.float32)  # costs nothing to decode
    full = _write(tmp_path / "full.wav", np.concatenate([wave, quiet, wave]))  # about 85 s: the long path
    raw = full.read_bytes()
    cut_s = (wave.size + quiet.size) / SR + 5.0  # 5 s into the second copy
    cut = tmp_path / "cut.wav"
    cut.write_bytes(raw[: raw.index(b"data") + 8 + 2 * int(cut_s * SR)])
    code = cli_main(["transcribe", "--lm", "none", "--format", "json", "--output-dir", str(tmp_path / "out"), str(cut)])
    out, err = capsys.readouterr()
    row = json.loads(out.strip())
    assert code == 1 and row["text"] and "breaks off after" in row["error"]
    assert row["duration"] == pytest.approx(cut_s, abs=0.01) and row["words"][-1]["end"] <= cut_s + 0.01
    assert row["words"][-1]["start"] > cut_s - 5.0  # words after the silence, before the damage
    assert [ln for ln in err.splitlines() if ln.startswith("seqrec: error:")] == [f"seqrec: error: {row['error']}"]
    assert json.loads((tmp_path / "out" / "cut.json").read_text()) == row
