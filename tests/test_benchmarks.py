"""The benchmark suite's helpers: ratios, interleaving, peak RSS, results.json and its table.

Nothing here times anything against a threshold (docs/design.md: performance is measured by the
suite, never asserted in tests).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from recipes.benchmarks import report, speech, suite
from recipes.benchmarks.report import (
    RATIO_KEYS,
    TARGETS,
    ResultsError,
    build_results,
    fmt,
    render_markdown,
    validate_results,
    write_results,
)
from recipes.benchmarks.timing import (
    BenchmarkError,
    interleave,
    median,
    median_ratio,
    pairwise_ratios,
    run_measured,
    summarize,
)

# ----------------------------------------------------------------------------- timing


def test_median_and_pairwise_ratios() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    assert pairwise_ratios([2.0, 4.0, 9.0], [1.0, 2.0, 3.0]) == [2.0, 2.0, 3.0]
    # The median of pairwise ratios is not the ratio of medians: a slow round that hits both
    # sides (here the third) does not move it.
    seqrec, peer = [10.0, 12.0, 3.0], [5.0, 4.0, 1.0]
    assert median_ratio(seqrec, peer) == 3.0
    assert median(seqrec) / median(peer) == 2.5
    with pytest.raises(ValueError, match="empty"):
        median([])
    with pytest.raises(ValueError, match="numerators"):
        pairwise_ratios([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="> 0"):
        pairwise_ratios([1.0], [0.0])


def test_interleave_runs_sides_back_to_back_and_drops_warmup() -> None:
    calls: list[str] = []
    counter = {"a": 0, "b": 0}

    def side(name: str):
        def run() -> float:
            calls.append(name)
            counter[name] += 1
            return float(counter[name])

        return run

    out = interleave({"a": side("a"), "b": side("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert out == {"a": [2.0, 3.0, 4.0], "b": [2.0, 3.0, 4.0]}  # round 1 was the warm-up
    with pytest.raises(ValueError, match="repeats"):
        interleave({"a": side("a")}, repeats=0)


def test_summarize_rounds_and_keeps_values() -> None:
    s = summarize([1.234567, 2.0, 0.5])
    assert s == {"median": 1.235, "min": 0.5, "max": 2.0, "values": [1.235, 2.0, 0.5]}


def test_run_measured_reports_the_child_not_the_parent() -> None:
    ballast = np.ones(300 * 2**20 // 8)  # 300 MiB in this process
    ballast[::4096] = 2.0  # touch every page
    small = run_measured([sys.executable, "-c", "print('hi')"])
    assert small.returncode == 0 and small.stdout.strip() == "hi"
    # A child forked straight from this process would report >= 300 MiB.
    assert small.max_rss_bytes < 100 * 2**20
    big = run_measured([sys.executable, "-c", "import numpy as np; a = np.ones(200 * 2**20 // 8); a[::512] = 2"])
    assert big.max_rss_bytes > 190 * 2**20
    failing = run_measured([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])
    assert failing.returncode == 3 and "boom" in failing.stderr
    assert ballast.sum() > 0


def test_run_measured_errors() -> None:
    with pytest.raises(BenchmarkError, match="cannot run"):
        run_measured(["/nonexistent/program"])
    with pytest.raises(BenchmarkError, match="killed"):
        run_measured([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)


# ----------------------------------------------------------------------------- results.json


def fake_benchmarks() -> dict:
    def fig(x: float) -> dict:
        return summarize([x, x * 1.1, x * 0.9])

    return {
        "features": {"files": 10, "audio_s": 25.0, "seqrec": fig(900.0), "librosa": fig(100.0), "ratio": 9.0},
        "upstream": {"files": 10, "windows": 10, "audio_s": 25.0, "threads": 2, "onnx_float32": fig(50.0),
                     "onnx_int8": fig(60.0), "ct2_float32": fig(40.0), "ct2_int8": fig(80.0),
                     "ratio_float32": 1.25, "ratio_int8": 0.75},
        "train_speech": {"items": 400, "loop": fig(150.0), "limit": fig(160.0), "ratio": 0.93},
        "transcribe": {
            "files": 24, "audio_s": 55.0, "single": {**fig(0.01), "wer": 0.4},
            "batched": {**fig(0.005), "wer": 0.4}, "pocketsphinx": {**fig(0.3), "wer": 0.9},
            "ratio_batched": 60.0, "ratio_single": 8.0,
        },
        "coldstart": {"audio_s": 2.5, "seqrec": fig(0.6), "seqrec_torch": fig(2.4), "pocketsphinx": fig(1.2),
                      "ratio": 2.0, "ratio_torch": 0.5, "seqrec_peak_rss_mib": 250.0,
                      "seqrec_torch_peak_rss_mib": 950.0, "pocketsphinx_peak_rss_mib": 110.0},
        "memory_transcribe": {"audio_s": 600.0, "peak_rss_mib": 900.0, "wall_s": 8.0},
        "step_speech": {
            "batch": 16, "frames": 222, "steps": 10, "threads": 2, "ratio": 1.8,
            "recipe": {"cell": "lstm", "hidden_size": 128, "num_layers": 3, "layer_norm": True,
                       "subsampling": 4, "params": 1_500_000, "ms": fig(70.0)},
            "reference": {"cell": "lstm", "hidden_size": 192, "num_layers": 3, "layer_norm": False,
                          "subsampling": 4, "params": 3_300_000, "ms": fig(130.0)},
        },
    }


def make_results(gpu=None) -> dict:
    return build_results(
        date="2026-01-01T00:00+00:00",
        machine={"cpu": "Test CPU", "cores": 2, "python": "3.11", "torch": "2.11", "gpu": None},
        settings={"repeats": 3, "quick": False},
        benchmarks=fake_benchmarks(),
        gpu=gpu,
        skipped={"train_video": "no bundle", "label": "no bundle"},
    )


def test_results_have_the_flat_ratios_object() -> None:
    results = make_results()
    ratios = results["ratios"]
    assert list(ratios) == list(RATIO_KEYS)
    assert set(RATIO_KEYS) == {
        "features_vs_librosa", "upstream_vs_ct2_float32", "upstream_vs_ct2_int8",
        "train_vs_compute_speech", "train_vs_compute_video",
        "rtf_batched_vs_pocketsphinx", "rtf_single_vs_pocketsphinx", "rtf_batched_lm_vs_pocketsphinx",
        "label_vs_limit", "coldstart_vs_pocketsphinx", "coldstart_torch_vs_pocketsphinx",
    }
    assert ratios["features_vs_librosa"] == 9.0
    assert ratios["rtf_batched_vs_pocketsphinx"] == 60.0
    assert ratios["train_vs_compute_video"] is None and ratios["label_vs_limit"] is None
    targets = results["targets"]
    assert set(targets) == set(TARGETS)
    assert targets["features_vs_librosa"] == {"min": 2.0, "met": True}
    assert targets["upstream_vs_ct2_float32"]["met"] is True and targets["upstream_vs_ct2_int8"]["met"] is False
    assert targets["rtf_single_vs_pocketsphinx"]["met"] is False  # 8 < 10
    assert targets["coldstart_vs_pocketsphinx"]["met"] is True
    assert ratios["coldstart_torch_vs_pocketsphinx"] == 0.5 and "coldstart_torch_vs_pocketsphinx" not in targets
    assert targets["label_vs_limit"]["met"] is None
    assert results["gpu"] is None
    # Round trip through JSON keeps it valid.
    validate_results(json.loads(json.dumps(results)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["ratios"].pop("label_vs_limit"), "missing"),
        (lambda r: r["ratios"].update(extra=1.0), "unexpected"),
        (lambda r: r["ratios"].update(features_vs_librosa=-1.0), "> 0"),
        (lambda r: r["ratios"].update(features_vs_librosa=math.nan), "finite"),
        (lambda r: r["ratios"].update(features_vs_librosa="fast"), "number or null"),
        (lambda r: r["ratios"].update(features_vs_librosa=True), "number or null"),
        (lambda r: r.pop("gpu"), "gpu"),
        (lambda r: r.update(gpu="none"), "gpu"),
        (lambda r: r.update(ratios=[1.0]), "object"),
        (lambda r: r.update(machine={}), "cpu"),
    ],
)
def test_validate_results_rejects_schema_breaks(change, message) -> None:
    results = make_results()
    change(results)
    with pytest.raises(ResultsError, match=message):
        validate_results(results)


def test_fmt() -> None:
    assert fmt(None) == "—"
    assert fmt(1234.5) == "1,234"  # rounds half to even at three significant digits
    assert fmt(0.004567) == "0.00457"
    assert fmt(12.345) == "12.3"
    assert fmt(2.0) == "2.00"
    assert fmt(0.0) == "0"


def test_markdown_table() -> None:
    md = render_markdown(make_results())
    lines = md.splitlines()
    assert "Test CPU" in lines[0] and "2026-01-01" in lines[0] and "no GPU" in lines[0]
    header = lines.index("| benchmark | seqrec | reference | ratio | target | met |")
    rows = [ln for ln in lines[header + 2 :] if ln.startswith("| ")][:10]
    assert len(rows) == 10
    assert all(row.count("|") == 7 for row in rows)
    features = next(r for r in rows if r.startswith("| Log-mel features"))
    assert "| 900 |" in features and "librosa loop 100" in features and "| 9.00 |" in features
    assert features.rstrip().endswith("| yes |")
    encoder = [r for r in rows if r.startswith("| Whisper encoder")]
    assert "float32 | 50.0 | CTranslate2 40.0 | 1.25 |" in encoder[0] and encoder[0].endswith("| yes |")
    assert "int8 | 60.0 | CTranslate2 80.0 | 0.750 |" in encoder[1] and encoder[1].endswith("| **no** |")
    cold = next(r for r in rows if r.startswith("| Cold start"))
    assert cold.rstrip().endswith("| yes |")  # 2.0 >= 1.0
    video = next(r for r in rows if r.startswith("| Training loop, video"))
    assert "| — |" in video  # not measured
    assert "| `seqrec transcribe`, one 10-minute file | 900 MiB | 8.00 s |" in md
    assert "GPU: none on this machine" in md
    assert "- label: no bundle" in md
    step = next(ln for ln in lines if ln.startswith("| 3 x 128 BiLSTM + LayerNorm (1.50 M params) vs 3 x 192 BiLSTM (3.30 M"))
    assert step.endswith("| 70.0 | 130 | 1.80 |")


def test_markdown_gpu_section() -> None:
    gpu = {"name": "Test GPU", "train_speech": {"precision": "bfloat16", "loop": summarize([900.0]),
                                                 "limit": summarize([1000.0]), "ratio": 0.9},
           "skipped": {"label": "no bundle"}}
    md = render_markdown(make_results(gpu=gpu))
    assert "GPU (Test GPU):" in md
    assert "| Training loop, speech, audio s/s (bfloat16) | 900 | in-memory compute 1,000 | 0.900 |" in md
    assert "GPU: none" not in md


def test_write_results(tmp_path: Path) -> None:
    json_path, md_path = write_results(make_results(), tmp_path / "bench")
    loaded = json.loads(json_path.read_text())
    validate_results(loaded)
    assert loaded["ratios"]["features_vs_librosa"] == 9.0
    assert md_path.read_text().startswith("Measured 2026-01-01")
    bad = make_results()
    bad["ratios"].pop("features_vs_librosa")
    with pytest.raises(ResultsError):
        write_results(bad, tmp_path / "bad")
    assert not (tmp_path / "bad" / "results.json").exists()


# ----------------------------------------------------------------------------- the suite


def test_suite_options() -> None:
    parser = suite.build_parser()
    opts = suite.options_from_args(parser.parse_args([]))
    assert opts.repeats == 5 and not opts.quick and opts.only == suite.BENCHMARKS
    assert opts.speech_exp == Path("exp/speech_ctc") and opts.video_exp == Path("exp/video_activity")
    quick = suite.options_from_args(parser.parse_args(["--quick", "--only", "transcribe", "label"]))
    assert quick.repeats == 3 and quick.only == ("transcribe", "label")
    assert quick.size(400, 96) == 96 and opts.size(400, 96) == 400
    with pytest.raises(SystemExit):
        parser.parse_args(["--only", "nonsense"])
    # both memory curves take their lengths from --memory-minutes; either half runs alone
    assert opts.curve_minutes() == speech.MEMORY_MINUTES[0] and quick.curve_minutes() == speech.MEMORY_MINUTES[1]
    half = suite.options_from_args(parser.parse_args(["--only", "memory_label", "--memory-minutes", "0.5", "2"]))
    assert half.curve_minutes() == (0.5, 2.0) and half.wants("memory_label") and not half.wants("memory_transcribe")
    assert opts.wants("memory_label") and opts.wants("memory_transcribe")
    with pytest.raises(SystemExit):
        suite.options_from_args(parser.parse_args(["--memory-minutes", "0"]))


def test_suite_without_experiments_still_writes_valid_results(tmp_path: Path) -> None:
    """Every benchmark is skipped with a reason; the files are still written."""
    opts = suite.SuiteOptions(
        speech_exp=tmp_path / "no_speech", video_exp=tmp_path / "no_video", out_dir=tmp_path / "out",
        repeats=1, quick=True, gpu=False, only=tuple(b for b in suite.BENCHMARKS if b not in ("step", "hotwords")),
    )  # "step" and "hotwords" need no experiment (test_step_benchmark_..., tests/test_hotwords.py)
    results = suite.run_suite(opts)
    assert all(v is None for v in results["ratios"].values())
    for name in ("features", "train_speech", "train_video", "transcribe", "coldstart", "label",
                 "memory_transcribe", "memory_label"):
        assert name in results["skipped"], name
    assert "no_speech" in results["skipped"]["transcribe"]
    assert "recipes/speech_ctc/run.py" in results["skipped"]["features"]
    assert "no_video" in results["skipped"]["label"]
    json_path, md_path = write_results(results, opts.out_dir)
    validate_results(json.loads(json_path.read_text()))
    assert "Not measured:" in md_path.read_text()


def test_runner_records_failures_and_goes_on() -> None:
    runner = suite.Runner(threads=1)
    out: dict = {}

    def missing() -> dict:
        raise BenchmarkError("no bundle at /x")

    def broken() -> dict:
        raise RuntimeError("kaput\nsecond line")

    runner("a", missing, out)
    runner("b", broken, out)
    runner("c", lambda: {"ratio": 2.0}, out)
    assert out == {"c": {"ratio": 2.0}}
    assert runner.skipped == {"a": "no bundle at /x", "b": "failed: RuntimeError: kaput"}


def test_runner_profiles(tmp_path: Path) -> None:
    def work() -> dict:
        return {"total": sum(i * i for i in range(1000))}

    out: dict = {}
    suite.Runner(threads=1, profile_dir=tmp_path / "prof")("squares", work, out)
    assert out["squares"]["total"] == 332833500
    text = (tmp_path / "prof" / "squares.txt").read_text()
    assert "sorted by tottime" in text and "work" in text


# ----------------------------------------------------------------------------- inputs and peers


def write_tone(path: Path, seconds: float, sr: int = 16000, freq: float = 440.0) -> None:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="PCM_16")


def test_librosa_loop_matches_seqrec_features(tmp_path: Path) -> None:
    """The peer does the same work: the same numbers as seqrec's extractor."""
    import torch

    from data_prep.audio import load_audio
    from data_prep.features import FeatureConfig, LogMelExtractor
    from recipes.benchmarks.speech import librosa_feature_loop

    records = []
    for i, secs in enumerate((0.5, 0.8)):
        path = tmp_path / f"u{i}.wav"
        write_tone(path, secs, freq=300.0 + 500 * i)
        records.append({"id": f"u{i}", "audio_filepath": str(path), "duration": secs})
    cfg = FeatureConfig()
    rows = librosa_feature_loop(records, tmp_path / "out", cfg)
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    data = np.fromfile(tmp_path / "out" / "feats.f16", dtype=np.float16).reshape(-1, cfg.n_mels)
    assert rows == data.shape[0] == sum(e["length"] for e in index["entries"])
    ext = LogMelExtractor(cfg)
    for rec, entry in zip(records, index["entries"], strict=True):
        ours = ext(load_audio(rec["audio_filepath"])).numpy()
        theirs = data[entry["offset"] : entry["offset"] + entry["length"]].astype(np.float32)
        assert theirs.shape == ours.shape
        np.testing.assert_allclose(theirs, ours, atol=2e-2, rtol=1e-2)
    assert torch.get_num_threads() >= 1


def test_build_long_wav(tmp_path: Path) -> None:
    from recipes.benchmarks.speech import build_long_wav

    records = []
    for i in range(2):
        path = tmp_path / f"u{i}.wav"
        write_tone(path, 0.7)
        records.append({"id": f"u{i}", "audio_filepath": str(path), "duration": 0.7})
    out = build_long_wav(records, tmp_path / "long.wav", seconds=3.0)
    info = sf.info(str(out))
    assert info.frames == 48000 and info.samplerate == 16000
    mtime = out.stat().st_mtime_ns
    assert build_long_wav(records, out, seconds=3.0) == out and out.stat().st_mtime_ns == mtime  # reused
    with pytest.raises(BenchmarkError, match="no utterances"):
        build_long_wav([], tmp_path / "other.wav", seconds=1.0)


def test_long_video_and_decode_only(tmp_path: Path) -> None:
    from data_prep.video_io import probe_video, write_video
    from recipes.benchmarks.video import build_long_video, decode_only

    rng = np.random.default_rng(0)
    clips = []
    for i in range(2):
        frames = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(6 + i)]
        clips.append(str(write_video(tmp_path / f"c{i}.mp4", frames, fps=10)))
    out = build_long_video(clips, tmp_path / "long.mp4", seconds=2.0, fps=10.0)
    info = probe_video(out)
    assert info.num_frames == 20 and (info.width, info.height) == (32, 32)
    assert decode_only(clips[1], num_segments=4) == 7
    assert decode_only(str(out), num_segments=8) == 20


def test_memory_label_curve_one_video_per_length(tmp_path: Path, monkeypatch) -> None:
    """The suite's memory_label builds one video per --memory-minutes length (reused by a later
    run) and labels each in its own measured process; the curve has a row per length."""
    from data_prep.manifest import write_manifest
    from data_prep.video_io import write_video
    from recipes.benchmarks import video
    from recipes.benchmarks.timing import ProcessRun

    exp = tmp_path / "video_exp"
    (exp / "bundle").mkdir(parents=True)
    (exp / "bundle" / "config.yaml").write_text("kind: video_classifier\n")
    rng = np.random.default_rng(0)
    records = []
    for i in range(2):
        frames = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(5)]
        clip = write_video(tmp_path / f"c{i}.mp4", frames, fps=25)
        records.append({"id": f"c{i}", "video_filepath": str(clip), "label": "x", "num_frames": 5, "fps": 25.0})
    write_manifest(exp / "manifests" / "test.jsonl", records, "video")
    commands = []

    def fake_run(cmd, **kw):  # the real `seqrec label` is tested elsewhere; this checks the bookkeeping
        commands.append(cmd)
        return ProcessRun(wall_s=0.5 * len(commands), max_rss_bytes=(400 + 10 * len(commands)) * 2**20,
                          returncode=0, stdout="", stderr="")  # fmt: skip

    monkeypatch.setattr(video, "run_measured", fake_run)
    opts = suite.SuiteOptions(video_exp=exp, speech_exp=tmp_path / "none", out_dir=tmp_path / "out", repeats=1,
                              gpu=False, only=("memory_label",), memory_minutes=(0.02, 0.04))  # fmt: skip
    results = suite.run_suite(opts)
    assert "memory_transcribe" not in results["benchmarks"] and "memory_transcribe" not in results["skipped"]
    ml = results["benchmarks"]["memory_label"]
    assert set(ml) == {"bundle", "window_s", "stride_s", "curve", "rss_ratio"}
    assert [row["frames"] for row in ml["curve"]] == [30, 60]  # 1.2 s and 2.4 s at 25 fps
    for row in ml["curve"]:
        assert set(row) == {"file", "video_s", "frames", "peak_rss_mib", "wall_s", "rtf"}
        assert row["rtf"] == pytest.approx(row["wall_s"] / (row["frames"] / 25), rel=0.05)
    assert [row["peak_rss_mib"] for row in ml["curve"]] == [410.0, 420.0] and ml["rss_ratio"] == round(42 / 41, 3)
    assert [c[-1] for c in commands] == [row["file"] for row in ml["curve"]]
    assert all(c[c.index("--window") + 1] == "2.0" for c in commands)
    assert results["settings"]["only"] == ["memory_label"] and results["settings"]["memory_minutes"] == [0.02, 0.04]
    md = render_markdown(results)
    assert "one video of | peak RSS |" in md and "fresh process" not in md  # no empty one-row table
    mtimes = [Path(row["file"]).stat().st_mtime_ns for row in ml["curve"]]
    again = suite.run_suite(opts)["benchmarks"]["memory_label"]
    assert [Path(row["file"]).stat().st_mtime_ns for row in again["curve"]] == mtimes  # videos reused
    with pytest.raises(BenchmarkError, match="no video"):
        video.bench_memory_label(exp / "bundle", [])


def test_sphinx_cli(tmp_path: Path) -> None:
    pytest.importorskip("pocketsphinx")
    from recipes.benchmarks.speech import SPHINX_SCRIPT

    wav = tmp_path / "tone.wav"
    write_tone(wav, 0.5)
    res = run_measured([sys.executable, str(SPHINX_SCRIPT), str(wav), str(tmp_path / "missing.wav")])
    assert res.returncode == 1  # the missing file
    assert res.stdout.startswith(f"{wav}\t")
    assert "missing.wav" in res.stderr


def test_report_module_has_no_side_effects() -> None:
    assert report.SCHEMA_VERSION == 1 and len(RATIO_KEYS) == 11 and set(TARGETS) < set(RATIO_KEYS)  # torch cold start: no target


# ----------------------------------------------------------------------------- optimisations


def test_log_mel_blocks_match_torchaudio() -> None:
    """The faster extractor (blocked for long inputs) equals torchaudio's MelSpectrogram."""
    import torch
    import torchaudio

    from data_prep.features import FeatureConfig, LogMelExtractor

    cfg = FeatureConfig()
    ref = torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length,
        hop_length=cfg.hop_length, f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels,
        power=2.0, center=True, pad_mode="reflect", norm="slaney", mel_scale="slaney",
    )
    ext = LogMelExtractor(cfg)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(16000 * 50).astype(np.float32) * 0.1)
    ours = ext(x)  # 5001 frames: two blocks
    assert ours.shape == (5001, 80) and ours.shape[0] > ext.block_frames
    expected = torch.log(ref(x) + cfg.log_floor).T
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-4)
    batch = ext(torch.stack([x[:20000], x[20000:40000]]))
    torch.testing.assert_close(batch[1], ext(x[20000:40000]), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="too short"):
        ext(torch.zeros(256))


def test_feature_workers() -> None:
    from data_prep.features import feature_workers

    assert feature_workers(700.0, 2) == 1  # a test split: in-process
    assert feature_workers(7300.0, 2) == 2
    assert feature_workers(360_000.0, 8) == 8
    assert feature_workers(10.0, 4, audio_s_per_worker=0) == 4
    assert feature_workers(10.0, 0) == 1


def test_step_benchmark_compares_the_recipe_model_with_the_reference(tmp_path: Path) -> None:
    """The recipe side follows the experiment's config; both sides are timed every round."""
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text("model:\n  encoder:\n    hidden_size: 16\n    num_layers: 2\n    layer_norm: true\n")
    out = speech.bench_step_speech(speech.SpeechExp(exp), 2, batch=4, frames=60, steps=2)
    rec, ref = out["recipe"], out["reference"]
    assert (rec["hidden_size"], rec["num_layers"], rec["layer_norm"]) == (16, 2, True)
    assert (ref["hidden_size"], ref["num_layers"], ref["layer_norm"]) == (192, 2, False)
    assert rec["params"] < ref["params"] / 20
    for side in (rec, ref):
        assert len(side["ms"]["values"]) == 2 and side["ms"]["min"] > 0
    assert out["ratio"] > 0 and (out["batch"], out["frames"], out["steps"]) == (4, 60, 2)
    # Without a config.yaml the recipe side is the model of the recipe's conf/default.yaml.
    from pipeline.config import load_config
    from recipes.speech_ctc.stages import DEFAULT_CONFIG, SpeechRecipeConfig

    enc = load_config(SpeechRecipeConfig, DEFAULT_CONFIG).model.encoder
    default = speech.bench_step_speech(speech.SpeechExp(tmp_path / "none"), 1, batch=2, frames=40, steps=1)
    assert (default["recipe"]["hidden_size"], default["recipe"]["num_layers"]) == (enc.hidden_size, enc.num_layers)
    assert default["recipe"]["layer_norm"] is enc.layer_norm and enc.hidden_size != 192
    with pytest.raises(ValueError, match="frames >= 40"):
        speech.bench_step_speech(speech.SpeechExp(exp), 1, frames=10)


def test_memory_curve_and_long_file_wer_in_the_report(tmp_path: Path) -> None:
    bench = fake_benchmarks()
    bench["memory_transcribe"] = {"bundle": "b", "engine": "torch", "rss_ratio": 1.05, "curve": [
        {"audio_s": 60.0, "peak_rss_mib": 600.0, "wall_s": 9.0, "rtf": 0.15},
        {"audio_s": 3600.0, "peak_rss_mib": 630.0, "wall_s": 90.0, "rtf": 0.025}]}  # fmt: skip
    bench["memory_label"] = {"bundle": "v", "window_s": 2.0, "stride_s": 1.0, "rss_ratio": 1.1, "curve": [
        {"video_s": 60.0, "frames": 1500, "peak_rss_mib": 500.0, "wall_s": 12.0, "rtf": 0.2},
        {"video_s": 600.0, "frames": 15000, "peak_rss_mib": 530.0, "wall_s": 60.0, "rtf": 0.1},
        {"video_s": 3600.0, "frames": 90000, "peak_rss_mib": 550.0, "wall_s": 300.0, "rtf": 0.0833}]}  # fmt: skip
    bench["long_wer"] = {"utterances": 40, "audio_s": 190.0, "gap_s": 0.3, "shipped": {
        "bundle": "shipped", "word_lm": True, "wer_per_utterance": 0.307, "wer_per_utterance_padded": 0.298,
        "wer_long_file": 0.301, "delta_points": -0.6, "delta_padded_points": 0.3}}
    results = build_results(date="2026-01-01", machine={"cpu": "Test CPU"}, settings={"repeats": 1},
                            benchmarks=bench, gpu=None, skipped={})  # fmt: skip
    md = render_markdown(results)
    assert "| 1.00 min | 600 MiB | 9.00 s | 0.150 |" in md and "| 60.0 min | 630 MiB | 90.0 s | 0.0250 |" in md
    assert "file over the 1.00-minute one: 1.05x (target" in md
    assert "| `seqrec label --window 2 --stride 1`, one video of | peak RSS |" in md
    assert "| 10.0 min | 530 MiB | 60.0 s | 0.100 |" in md and "| 60.0 min | 550 MiB | 300 s | 0.0833 |" in md
    assert "Peak RSS of the 60.0-minute video over the 1.00-minute one: 1.10x." in md
    assert "one 10.0-minute video" not in md  # the one-video row is for results of before the curve
    assert "| shipped bundle, word LM | 30.7% | 29.8% | 30.1% | -0.6 (+0.3 against padded) |" in md
    # The curve of today: the default engine alone and beside a job, and torch.
    bench["memory_transcribe"] = {"bundle": "shipped", "engine": "auto", "rss_ratio": 1.02, "curve": [
        {"audio_s": 60.0, "peak_rss_mib": 270.0, "wall_s": 3.0, "rtf": 0.05,
         "loaded": {"audio_s": 60.0, "peak_rss_mib": 271.0, "wall_s": 4.5, "rtf": 0.075},
         "torch": {"audio_s": 60.0, "peak_rss_mib": 800.0, "wall_s": 6.0, "rtf": 0.1}},
        {"audio_s": 3600.0, "peak_rss_mib": 275.0, "wall_s": 70.0, "rtf": 0.0194,
         "loaded": {"audio_s": 3600.0, "peak_rss_mib": 280.0, "wall_s": 110.0, "rtf": 0.0306},
         "torch": {"audio_s": 3600.0, "peak_rss_mib": 1000.0, "wall_s": 66.0, "rtf": 0.0183}}]}  # fmt: skip
    md = render_markdown(build_results(date="2026-01-01", machine={"cpu": "Test CPU"}, settings={"repeats": 1},
                                       benchmarks=bench, gpu=None, skipped={}))  # fmt: skip
    assert "| 60.0 min | 275 MiB | 0.0194 | 0.0306 | 280 MiB | 1,000 MiB | 0.0183 |" in md
    assert "over the 1.00-minute one: 1.02x (targets: RTF at most 0.02" in md
    records = []
    for i, secs in enumerate((0.5, 0.7)):
        write_tone(tmp_path / f"u{i}.wav", secs)
        records.append({"id": f"u{i}", "audio_filepath": str(tmp_path / f"u{i}.wav"), "duration": secs})
    out = speech.build_concatenation(records, tmp_path / "cat.wav", gap_s=0.3)
    assert sf.info(str(out)).frames == 8000 + 11200 + 2 * 4800


def test_upstream_benchmark_runs_the_same_encoder_on_both_runtimes(tmp_path) -> None:
    """The encoder comparison is like for like: the same windows give the same hidden states
    on onnxruntime, torch and CTranslate2 (float32), and every side is timed."""
    pytest.importorskip("ctranslate2")
    from data_prep.whisper_upstream import UpstreamError, WhisperUpstream
    from recipes.benchmarks.upstream import bench_upstream

    try:
        WhisperUpstream.from_name()
    except UpstreamError as exc:
        pytest.skip(str(exc))
    import numpy as np
    import soundfile as sf

    t = np.arange(int(2.3 * 16000)) / 16000
    wav = tmp_path / "a.wav"
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32), 16000)
    out = bench_upstream([{"audio_filepath": str(wav), "duration": 2.3}], repeats=1, threads=1)
    assert out["windows"] == 1 and out["audio_s"] == 2.3
    assert out["max_abs_diff"] < 1e-3 and out["max_abs_diff_torch"] < 1e-3
    for side in ("onnx_float32", "onnx_int8", "torch_float32", "ct2_float32", "ct2_int8"):
        assert out[side]["median"] > 0
    assert out["ratio_float32"] > 0 and out["ratio_int8"] > 0


def test_the_competing_job_runs_during_the_block_and_stops_after() -> None:
    import os
    import time

    from recipes.benchmarks.timing import competing_job

    def busy_children() -> float:  # CPU seconds of this process's running children, from /proc
        total = 0.0
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if pid.isdigit() and int(fields[1]) == os.getpid():
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    with competing_job():
        first = busy_children()
        time.sleep(1.0)
        assert busy_children() > first + 0.3  # it burns CPU while the block runs
    assert busy_children() == 0.0  # and is gone after


@pytest.mark.slow
def test_family_measures_each_bundle_on_each_file(tmp_path):
    """Two bundles, two files: a row for each pair, with a real wall time, RSS and RTF."""
    import soundfile as sf
    from bundles import synthetic_speech, tiny_speech_bundle

    from recipes.benchmarks import family

    a = tiny_speech_bundle(tmp_path / "a", graph=True)
    b = tiny_speech_bundle(tmp_path / "b")
    files = []
    for seconds in (1.0, 3.0):
        files.append(tmp_path / f"{seconds:g}.wav")
        sf.write(files[-1], synthetic_speech(seconds), 16000)
    out = family.bench_family({"a": a, "b": b}, files, repeats=1)
    assert set(out) == {"a", "b"} and out["a"]["upstream"] == "logmel"
    for row in out.values():
        assert [f["audio_s"] for f in row["files"]] == [1.0, 3.0]
        for f in row["files"]:
            assert f["wall_s"] > 0 and f["peak_rss_mib"] > 20 and f["rtf"] == pytest.approx(f["wall_s"] / f["audio_s"], abs=0.006)  # wall_s is rounded to 0.01 s
    assert out["a"]["size_mb"] > out["b"]["size_mb"]  # the graph is in a
    assert "| a | logmel |" in family.format_table(out)
    with pytest.raises(SystemExit):
        family.main(["--bundle", f"x={tmp_path}", "--audio", str(files[0])])  # not a bundle
