"""Integration: the speech recipe on a tiny corpus, then `seqrec transcribe` on its bundle."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.cli import main as cli_main
from recipes.speech_ctc.run import main as recipe_main
from recipes.speech_ctc.stages import DEFAULT_CONFIG

TINY = DEFAULT_CONFIG.parent / "tiny.yaml"
STAGES = ["corpus", "manifests", "features", "train", "lm", "decode", "export"]

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    exp = tmp_path_factory.mktemp("speech_exp")
    results = recipe_main(["--config", str(TINY), "--exp-dir", str(exp), "train.max_epochs=1"])
    return exp, results


@pytest.mark.slow
def test_recipe_writes_results_and_bundle(recipe_run):
    exp, results = recipe_run
    on_disk = json.loads((exp / "results.json").read_text())
    assert on_disk == results
    assert set(results["stage_seconds"]) == set(STAGES)
    for tag in ("dev", "test", "test-beam4", "dev-lm", "test-lm"):
        m = results["metrics"][tag]
        assert 0.0 <= m["cer"] <= 1.5 and 0.0 <= m["wer"] <= 1.5 and m["utterances"] > 0
        assert (exp / f"recogs-{tag}.txt").is_file() and (exp / f"errs-{tag}.txt").is_file()
    assert "%WER" in (exp / "errs-test.txt").read_text()
    assert (exp / "bundle" / "config.yaml").is_file() and (exp / "bundle" / "model.safetensors").is_file()
    assert (exp / "config.yaml").is_file()
    assert (exp / "log" / "run.log").read_text().count("Stage ") >= 6
    for store, kept in (("train", "train"), ("dev", "dev"), ("test", "test")):
        summary = results["features"][store]
        assert summary["entries"] == results["manifests"][kept]["kept"] > 0
        assert summary["failed"] == 0 and summary["frames"] > summary["entries"]


@pytest.mark.slow
def test_rerun_skips_finished_stages(recipe_run, caplog):
    exp, results = recipe_run
    before = (exp / "bundle" / "model.safetensors").stat().st_mtime_ns
    again = recipe_main(["--config", str(TINY), "--exp-dir", str(exp), "train.max_epochs=1"])
    assert again["stage_seconds"] == results["stage_seconds"]
    assert (exp / "bundle" / "model.safetensors").stat().st_mtime_ns == before


@pytest.mark.slow
def test_retraining_with_another_model_refuses_the_old_checkpoints_and_keeps_them(recipe_run):
    exp, results = recipe_run
    kept = {p: p.read_bytes() for p in [exp / "config.yaml", *sorted((exp / "checkpoints").iterdir())]}
    with pytest.raises(SystemExit) as exc:
        recipe_main(["--config", str(TINY), "--exp-dir", str(exp), "--stage", "3", "--stop-stage", "3",
                     "train.max_epochs=1", "model.encoder.hidden_size=48"])
    assert exc.value.code == 1
    log = (exp / "log" / "run.log").read_text()
    assert "model.encoder.hidden_size: 64 -> 48" in log and "another experiment directory" in log
    assert {p: p.read_bytes() for p in kept} == kept
    assert json.loads((exp / "results.json").read_text()) == results


@pytest.mark.slow
def test_transcribe_cli_json_and_bad_files(recipe_run, tmp_path, capsys):
    exp, _ = recipe_run
    wav = sorted((exp / "corpus" / "wavs" / "test").glob("*.wav"))[0]
    # the same audio at 44.1 kHz stereo must work too
    audio, sr = sf.read(wav)
    import librosa

    stereo = np.stack([librosa.resample(audio, orig_sr=sr, target_sr=44100)] * 2, axis=1)
    sf.write(tmp_path / "stereo44k.wav", stereo, 44100)
    (tmp_path / "bad.wav").write_text("not audio at all")
    code = cli_main([
        "transcribe", "--model", str(exp / "bundle"), "--format", "json", "--output-dir", str(tmp_path / "out"),
        str(wav), str(tmp_path / "stereo44k.wav"), str(tmp_path / "bad.wav"), str(tmp_path / "missing.wav"),
    ])
    out, err = capsys.readouterr()
    assert code == 1
    rows = [json.loads(line) for line in out.splitlines()]
    assert [Path(r["path"]).name for r in rows] == [wav.name, "stereo44k.wav"]
    for r in rows:
        assert set(r) == {"path", "text", "duration", "words", "segments"}
        assert r["duration"] == pytest.approx(len(audio) / sr, abs=0.05)
        for w in r["words"]:
            assert 0 <= w["start"] <= w["end"] <= r["duration"] + 0.1 and w["word"]
    err_lines = [line for line in err.splitlines() if line.startswith("seqrec: error:")]
    assert len(err_lines) == 2
    assert "bad.wav" in err_lines[0] and "missing.wav" in err_lines[1]
    assert "Traceback" not in err
    assert (tmp_path / "out" / f"{wav.stem}.json").is_file()


@pytest.mark.slow
def test_transcriber_python_api_and_directory_input(recipe_run):
    from pipeline import Transcriber

    exp, _ = recipe_run
    t = Transcriber.from_pretrained(exp / "bundle")
    results = t.transcribe(exp / "corpus" / "wavs" / "test")
    assert len(results) == len(list((exp / "corpus" / "wavs" / "test").glob("*.wav")))
    assert all(r.error is None and r.duration > 0 for r in results)
    beam = Transcriber.from_pretrained(exp / "bundle", beam_size=4).transcribe(results[0].path)[0]
    assert beam.error is None


@pytest.mark.slow
def test_transcribe_cli_beam_search_matches_the_api(recipe_run, capsys, monkeypatch):
    from pipeline import Transcriber

    exp, _ = recipe_run
    wav = sorted((exp / "corpus" / "wavs" / "test").glob("*.wav"))[1]
    api = Transcriber.from_pretrained(exp / "bundle", beam_size=4).transcribe(wav)[0]
    seen = []
    real = Transcriber.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.append(kwargs.get("beam_size"))
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(Transcriber, "from_pretrained", classmethod(spy))
    for engine in ("auto", "torch"):  # auto: the torch-free engine, with the same search
        cli = ["transcribe", "--engine", engine, "--model", str(exp / "bundle"), "--beam-size", "4", "--format", "json"]
        assert cli_main([*cli, str(wav)]) == 0
        assert json.loads(capsys.readouterr().out)["text"] == api.text
    assert seen == [4]  # torch was loaded once, by --engine torch, with the beam asked for


@pytest.mark.slow
def test_the_bundle_carries_its_word_lm_and_transcribe_uses_it(recipe_run, tmp_path, capsys):
    """The export copies the LM, `--lm auto` (default) uses it with the dev-tuned weights,
    `--lm none` decodes greedily, `--lm PATH` takes another file, and bad LM files are one
    error line with exit 2."""
    import yaml

    from pipeline import Transcriber

    exp, results = recipe_run
    bundle = exp / "bundle"
    cfg = yaml.safe_load((bundle / "config.yaml").read_text())
    tuned = results["lm_decoding"]
    assert cfg["lm"]["lm_weight"] == tuned["lm_weight"] and cfg["lm"]["beam_size"] == tuned["beam_size"]
    assert set(tuned["grid"]) == {"0.5,-1", "0.5,0", "2,-1", "2,0"}
    assert (bundle / cfg["lm"]["arpa"]).is_file() and (bundle / cfg["lm"]["lexicon"]).is_file()
    assert results["lm"]["sentences"] > 0 and results["lm"]["ngrams"][0] > 10
    wav = sorted((exp / "corpus" / "wavs" / "test").glob("*.wav"))[0]
    with_lm = Transcriber.from_pretrained(bundle)
    assert with_lm.lm is not None and with_lm.lm.lm_weight == tuned["lm_weight"]
    r = with_lm.transcribe(wav)[0]
    lexicon = {line.split("\t")[0] for line in (bundle / "lexicon.txt").read_text().splitlines()}
    assert r.error is None and all(w in lexicon for w in r.text.split())  # only listed words
    assert [w["word"] for w in r.words] == r.text.split()
    greedy = Transcriber.from_pretrained(bundle, lm="none")
    assert greedy.lm is None
    for lm_opt, expected in (("none", greedy.transcribe(wav)[0].text), ("auto", r.text)):
        assert cli_main(["transcribe", "--model", str(bundle), "--lm", lm_opt, str(wav)]) == 0
        assert capsys.readouterr().out.split("\t", 1)[1].strip() == expected
    other = tmp_path / "other.arpa"
    import gzip

    other.write_bytes(gzip.decompress((bundle / "lm.arpa.gz").read_bytes()))
    assert cli_main(["transcribe", "--model", str(bundle), "--lm", str(other), str(wav)]) == 0
    capsys.readouterr()
    (tmp_path / "bad.arpa").write_text("\\data\\\nngram 1=5\n\n\\1-grams:\n-1.0\ta\n")
    for bad in (tmp_path / "bad.arpa", tmp_path / "missing.arpa"):
        assert cli_main(["transcribe", "--model", str(bundle), "--lm", str(bad), str(wav)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(bad) in err and "Traceback" not in err
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (broken / "lm.arpa.gz").write_bytes((broken / "lm.arpa.gz").read_bytes()[:100])
    assert cli_main(["transcribe", "--model", str(broken), str(wav)]) == 2
    assert "sha256" in capsys.readouterr().err
    assert cli_main(["transcribe", "--model", str(broken), "--lm", "none", str(wav)]) == 0  # LM off: fine
    capsys.readouterr()
    assert cli_main(["transcribe", "--model", str(bundle), "--engine", "lite", str(wav)]) == 0  # LM on onnxruntime
    assert capsys.readouterr().out.split("\t", 1)[1].strip() == r.text


@pytest.mark.slow
def test_transcribe_subtitle_formats(recipe_run, tmp_path, capsys):
    """--format srt|vtt|tsv print subtitles built from the word timestamps; --format all writes
    every format per file and needs --output-dir."""
    exp, _ = recipe_run
    wavs = sorted((exp / "corpus" / "wavs" / "test").glob("*.wav"))[:2]
    bundle = ["--model", str(exp / "bundle"), "--lm", "none"]
    assert cli_main(["transcribe", *bundle, "--format", "json", str(wavs[0])]) == 0
    row = json.loads(capsys.readouterr().out)
    assert cli_main(["transcribe", *bundle, "--format", "srt", str(wavs[0])]) == 0
    srt = capsys.readouterr().out
    if row["words"]:
        assert srt.startswith("1\n00:00:") and " --> " in srt
        assert " ".join(line for line in srt.splitlines() if line and "-->" not in line and not line.isdigit()) == row["text"]
    out = tmp_path / "out"
    assert cli_main(["transcribe", *bundle, "--format", "all", "--output-dir", str(out), *map(str, wavs)]) == 0
    assert capsys.readouterr().out.splitlines()[0].split("\t")[0] == str(wavs[0])  # stdout: txt
    for wav in wavs:
        for fmt in ("txt", "json", "srt", "vtt", "tsv"):
            assert (out / f"{wav.stem}.{fmt}").is_file(), fmt
    assert (out / f"{wavs[0].stem}.vtt").read_text().startswith("WEBVTT")
    assert (out / f"{wavs[0].stem}.tsv").read_text().startswith("start\tend\ttext\n")
    assert cli_main(["transcribe", *bundle, "--format", "all", str(wavs[0])]) == 2
    assert "--output-dir" in capsys.readouterr().err


def test_cli_usage_errors(capsys, tmp_path):
    assert cli_main(["transcribe", "--model", str(tmp_path / "nope"), "x.wav"]) == 2
    assert "bundle directory not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_main(["transcribe", "--bogus"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli_main(["--help"])
    assert exc.value.code == 0
    assert "transcribe" in capsys.readouterr().out
    for sub, flags in (("transcribe", ("--beam-size", "--format", "--output-dir", "--model")),
                       ("label", ("--top-k", "--window", "--format", "--model"))):
        with pytest.raises(SystemExit) as exc:
            cli_main([sub, "--help"])
        assert exc.value.code == 0
        usage = capsys.readouterr().out
        assert all(flag in usage for flag in flags), usage


def test_engine_group_rates_reports_each_engine_and_the_unseen_group():
    from recipes.speech_ctc.stages import UNSEEN, engine_group_rates, format_table

    ids = ["a", "b", "c", "d"]
    refs = ["one two", "three four", "five six", "seven"]
    hyps = ["one two", "three for", "five", "eleven"]
    engines = {"a": "espeak", "b": "piper", "c": "piper", "d": "festival"}
    out = engine_group_rates(ids, refs, hyps, engines, seen={"espeak"})
    assert list(out) == ["espeak", "festival", "piper", UNSEEN]
    assert out["espeak"] == {"wer": 0.0, "cer": 0.0, "utterances": 1, "seen": True}
    assert out["piper"]["wer"] == 0.5 and out["piper"]["utterances"] == 2 and not out["piper"]["seen"]
    assert out[UNSEEN]["utterances"] == 3 and out[UNSEEN]["wer"] == 0.6  # 3 errors in 5 words
    table = format_table({"metrics": {}, "engine_metrics": {"test": out}})
    assert "| unseen-engines | no | 3 | 60.00 |" in table


@pytest.mark.slow
def test_engine_benchmark_matches_the_recipe_and_scores_pocketsphinx(recipe_run):
    """The benchmark's per-engine WER of the bundle is the decode stage's; pocketsphinx is
    scored on the same files."""
    pytest.importorskip("pocketsphinx")
    from recipes.benchmarks.report import _engine_lines
    from recipes.benchmarks.speech import bench_engines, read_records

    exp, results = recipe_run
    test = read_records(exp / "manifests" / "test.jsonl")
    out = bench_engines(exp / "bundle", test, read_records(exp / "manifests" / "train.jsonl"))
    assert out["files"] == len(test)
    for name, m in results["engine_metrics"]["test"].items():
        assert out["seqrec"][name]["utterances"] == m["utterances"]
        assert out["seqrec"][name]["cer"] == pytest.approx(m["cer"], abs=0.02)
        lm = results["engine_metrics"]["test-lm"][name]
        assert out["seqrec_lm"][name]["wer"] == pytest.approx(lm["wer"], abs=0.02)
    assert set(out["pocketsphinx"]) == set(out["seqrec"])
    lines = _engine_lines(out)
    assert len(lines) == 3 + len(out["seqrec"]) and "pocketsphinx WER" in lines[1]


@pytest.mark.slow
def test_the_bundle_carries_an_onnx_graph_that_lite_runs_and_export_writes(recipe_run, tmp_path, capsys):
    import onnxruntime as ort
    import torch

    from pipeline.inference.lite import LiteTranscriber
    from pipeline.inference.transcriber import Transcriber

    exp, _ = recipe_run
    bundle = exp / "bundle"
    assert (bundle / "model.onnx").is_file()
    wavs = sorted((exp / "corpus" / "wavs" / "test").glob("*.wav"))[:3]
    for lm in ("none", "auto"):  # greedy, and the word LM through the same flashlight-text search
        want = [r.to_dict() for r in Transcriber.from_pretrained(bundle, lm=lm).transcribe(wavs)]
        assert [r.to_dict() for r in LiteTranscriber.from_pretrained(bundle, lm=lm).transcribe(wavs)] == want
    capsys.readouterr()
    assert cli_main(["export", "--model", str(bundle), "--format", "onnx", str(tmp_path / "speech.onnx")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'speech.onnx'}\tspeech_ctc\t")
    model = Transcriber.from_pretrained(bundle, lm="none").model
    x = torch.randn(2, 70, model.cfg.input_dim)
    lens = torch.tensor([70, 41])
    with torch.no_grad():
        ref, ref_lens = model(x, lens)
    got, got_lens = ort.InferenceSession(str(tmp_path / "speech.onnx")).run(None, {"features": x.numpy(), "lengths": lens.numpy()})
    assert got_lens.tolist() == ref_lens.tolist()
    np.testing.assert_allclose(got[1, : int(ref_lens[1])], ref[1, : int(ref_lens[1])].numpy(), atol=1e-4)
    assert cli_main(["export", "--model", str(tmp_path / "nothing"), str(tmp_path / "x.onnx")]) == 2
    assert "nothing" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
    # int8: a smaller graph that still gives nearly the same posteriors
    assert cli_main(["export", "--model", str(bundle), "--quantize", "int8", str(tmp_path / "int8.onnx")]) == 0
    assert (tmp_path / "int8.onnx").stat().st_size < (tmp_path / "speech.onnx").stat().st_size
    q, q_lens = ort.InferenceSession(str(tmp_path / "int8.onnx")).run(None, {"features": x.numpy(), "lengths": lens.numpy()})
    assert q_lens.tolist() == ref_lens.tolist()
    probs, q_probs = np.exp(ref[1, : int(ref_lens[1])].numpy()), np.exp(q[1, : int(ref_lens[1])])
    assert np.abs(q_probs - probs).max() < 0.2  # posteriors move by quantisation only
