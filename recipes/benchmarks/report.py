"""``results.json`` of the benchmark suite and its Markdown table.

``results.json`` holds a flat object ``ratios`` with exactly :data:`RATIO_KEYS`; each value is
a median of pairwise ratios (higher is better for seqrec) or ``null`` when that benchmark could
not run (the reason is in ``skipped``). ``gpu`` is ``null`` on a machine without CUDA.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pipeline.errors import SeqrecError
from pipeline.io_utils import atomic_write_text
from recipes.benchmarks.hotwords import render as render_hotwords

SCHEMA_VERSION = 1

#: ratio key -> (benchmark name, field of that benchmark's dict)
RATIO_SOURCES: dict[str, tuple[str, str]] = {
    "features_vs_librosa": ("features", "ratio"),
    "upstream_vs_ct2_float32": ("upstream", "ratio_float32"),
    "upstream_vs_ct2_int8": ("upstream", "ratio_int8"),
    "train_vs_compute_speech": ("train_speech", "ratio"),
    "train_vs_compute_video": ("train_video", "ratio"),
    "rtf_batched_vs_pocketsphinx": ("transcribe", "ratio_batched"),
    "rtf_single_vs_pocketsphinx": ("transcribe", "ratio_single"),
    "rtf_batched_lm_vs_pocketsphinx": ("transcribe", "ratio_batched_lm"),
    "label_vs_limit": ("label", "ratio"),
    "coldstart_vs_pocketsphinx": ("coldstart", "ratio"),
    "coldstart_torch_vs_pocketsphinx": ("coldstart", "ratio_torch"),
}
RATIO_KEYS: tuple[str, ...] = tuple(RATIO_SOURCES)

#: The issue's targets on the 2-core CPU machine, as minimum ratios.
TARGETS: dict[str, float] = {
    "features_vs_librosa": 2.0,
    "upstream_vs_ct2_float32": 1.0,
    "upstream_vs_ct2_int8": 1.0,
    "train_vs_compute_speech": 0.85,
    "train_vs_compute_video": 0.85,
    "rtf_batched_vs_pocketsphinx": 20.0,
    "rtf_single_vs_pocketsphinx": 10.0,
    "rtf_batched_lm_vs_pocketsphinx": 20.0,
    "label_vs_limit": 0.70,
    "coldstart_vs_pocketsphinx": 1.0,
}


class ResultsError(SeqrecError, ValueError):
    """``results.json`` does not follow the schema; the message names the field."""


def ratios_from(benchmarks: dict[str, Any]) -> dict[str, float | None]:
    """The flat ``ratios`` object from the per-benchmark dicts (None where not measured)."""
    out: dict[str, float | None] = {}
    for key, (bench, field) in RATIO_SOURCES.items():
        value = (benchmarks.get(bench) or {}).get(field)
        out[key] = None if value is None else round(float(value), 4)
    return out


def targets_from(ratios: dict[str, float | None]) -> dict[str, dict[str, Any]]:
    """``{key: {"min": target, "met": bool or None}}``."""
    return {
        key: {"min": target, "met": None if ratios.get(key) is None else bool(ratios[key] >= target)}
        for key, target in TARGETS.items()
    }


def build_results(
    *, date: str, machine: dict[str, Any], settings: dict[str, Any], benchmarks: dict[str, Any],
    gpu: dict[str, Any] | None, skipped: dict[str, str],
) -> dict[str, Any]:
    """Assembles (and validates) the content of ``results.json``."""
    ratios = ratios_from(benchmarks)
    results = {
        "schema_version": SCHEMA_VERSION,
        "date": date,
        "machine": machine,
        "settings": settings,
        "ratios": ratios,
        "targets": targets_from(ratios),
        "benchmarks": benchmarks,
        "gpu": gpu,
        "skipped": skipped,
    }
    validate_results(results)
    return results


def validate_results(results: Any) -> None:
    """Checks the schema of ``results.json``.

    Raises:
        ResultsError: naming the first field that is wrong.
    """
    if not isinstance(results, dict):
        raise ResultsError("results must be a JSON object")
    for key in ("schema_version", "date", "machine", "settings", "ratios", "benchmarks", "gpu", "skipped"):
        if key not in results:
            raise ResultsError(f"results has no {key!r}")
    ratios = results["ratios"]
    if not isinstance(ratios, dict):
        raise ResultsError("'ratios' must be an object")
    if set(ratios) != set(RATIO_KEYS):
        missing = sorted(set(RATIO_KEYS) - set(ratios))
        extra = sorted(set(ratios) - set(RATIO_KEYS))
        raise ResultsError(f"'ratios' keys differ from the schema: missing {missing}, unexpected {extra}")
    for key, value in ratios.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ResultsError(f"ratios.{key} must be a number or null, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ResultsError(f"ratios.{key} must be finite and > 0, got {value!r}")
    if results["gpu"] is not None and not isinstance(results["gpu"], dict):
        raise ResultsError("'gpu' must be an object or null")
    if not isinstance(results["machine"], dict) or "cpu" not in results["machine"]:
        raise ResultsError("'machine' must be an object with 'cpu'")
    if not isinstance(results["skipped"], dict):
        raise ResultsError("'skipped' must be an object")


def write_results(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Writes ``results.json`` and ``results.md`` (atomically); returns their paths."""
    validate_results(results)
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    atomic_write_text(json_path, json.dumps(results, indent=2) + "\n")
    atomic_write_text(md_path, render_markdown(results) + "\n")
    return json_path, md_path


# --------------------------------------------------------------------------- Markdown
def fmt(x: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, without scientific notation for usual sizes."""
    if x is None:
        return "—"
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    magnitude = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{x:,.{decimals}f}" if decimals <= 6 else f"{x:.{digits}g}"


def _med(bench: dict[str, Any] | None, side: str) -> float | None:
    if not bench or side not in bench:
        return None
    return bench[side].get("median")


def _met(results: dict[str, Any], key: str) -> str:
    met = results.get("targets", {}).get(key, {}).get("met")
    return "—" if met is None else ("yes" if met else "**no**")


def machine_line(results: dict[str, Any]) -> str:
    """One line naming the date and the machine."""
    m = results["machine"]
    gpu = m.get("gpu")
    gpu_text = f"GPU {gpu['name']}" if gpu else "no GPU"
    mem = f", {m['memory_gib']} GiB RAM" if m.get("memory_gib") else ""
    return (
        f"{results['date']}; {m['cpu']}, {m.get('cores', '?')} cores{mem}, {gpu_text}; "
        f"Python {m.get('python', '?')}, torch {m.get('torch', '?')}"
    )


def render_markdown(results: dict[str, Any]) -> str:
    """The benchmark tables (what the README shows), from a ``results.json`` object."""
    b = results["benchmarks"]
    r = results["ratios"]
    s = results["settings"]
    lines = [
        f"Measured {machine_line(results)}.",
        f"Each figure is the median of {s.get('repeats', '?')} run{'' if s.get('repeats') == 1 else 's'}{' (quick mode: small subsets)' if s.get('quick') else ''}; "
        "each ratio is the median of the ratios of runs made back to back in one process, "
        "oriented so that higher is better for seqrec.",
        "",
        "| benchmark | seqrec | reference | ratio | target | met |",
        "|---|---:|---:|---:|---:|:---:|",
    ]

    def row(what: str, ours: float | None, ref_name: str, ref: float | None, key: str) -> None:
        target = results.get("targets", {}).get(key, {}).get("min")
        lines.append(
            f"| {what} | {fmt(ours)} | {ref_name} {fmt(ref)} | {fmt(r.get(key))} | "
            f"{'—' if target is None else f'≥ {fmt(target)}'} | {_met(results, key)} |"
        )

    f = b.get("features")
    what = "Feature extraction, audio s/s" + (f" ({f['files']} files, {fmt(f['audio_s'])} s)" if f else "")
    row(what.replace("Feature extraction", "Log-mel features"), _med(f, "seqrec"), "librosa loop", _med(f, "librosa"),
        "features_vs_librosa")
    up = b.get("upstream")
    what = "Whisper encoder, audio s/s" + (f" ({up['windows']} windows, {fmt(up['audio_s'])} s, {up['threads']} threads)"
                                          if up else "")  # fmt: skip
    row(what + ", float32", _med(up, "onnx_float32"), "CTranslate2", _med(up, "ct2_float32"), "upstream_vs_ct2_float32")
    row("Whisper encoder, int8", _med(up, "onnx_int8"), "CTranslate2", _med(up, "ct2_int8"), "upstream_vs_ct2_int8")
    for name, key, unit in (("train_speech", "train_vs_compute_speech", "audio s/s"),
                            ("train_video", "train_vs_compute_video", "clips/s")):
        t = b.get(name)
        what = f"Training loop, {name.split('_')[1]}, {unit}" + (f" ({t['items']} items)" if t else "")
        row(what, _med(t, "loop"), "in-memory compute", _med(t, "limit"), key)
    tr = b.get("transcribe")
    files = f" ({tr['files']} files, {fmt(tr['audio_s'])} s)" if tr else ""
    row(f"Transcription RTF, batched{files}", _med(tr, "batched"), "pocketsphinx", _med(tr, "pocketsphinx"),
        "rtf_batched_vs_pocketsphinx")
    row("Transcription RTF, one file at a time", _med(tr, "single"), "pocketsphinx", _med(tr, "pocketsphinx"),
        "rtf_single_vs_pocketsphinx")
    row("Transcription RTF, batched, word LM", _med(tr, "batched_lm"), "pocketsphinx", _med(tr, "pocketsphinx"),
        "rtf_batched_lm_vs_pocketsphinx")
    lab = b.get("label")
    ref = "lower limit"
    if lab and "decode" in lab:
        ref = f"lower of decode {fmt(_med(lab, 'decode'))} / backbone {fmt(_med(lab, 'backbone'))}:"
    what = "Video labelling, clips/s" + (f" ({lab['clips']} clips)" if lab else "")
    row(what, _med(lab, "label"), ref, _med(lab, "lower_limit"), "label_vs_limit")
    cs = b.get("coldstart")
    what = "Cold start, one-file `transcribe`, s" + (f" ({fmt(cs['audio_s'])} s file)" if cs else "")
    row(what, _med(cs, "seqrec"), "pocketsphinx", _med(cs, "pocketsphinx"), "coldstart_vs_pocketsphinx")
    row("Cold start, `--engine torch`, s", _med(cs, "seqrec_torch"), "pocketsphinx", _med(cs, "pocketsphinx"),
        "coldstart_torch_vs_pocketsphinx")
    if tr and "pocketsphinx" in tr:
        lines.append("")
        with_lm = f", with its word LM {100 * tr['batched_lm']['wer']:.1f}%" if "batched_lm" in tr else ""
        lines.append(
            f"Word error rate on those files: seqrec {100 * tr['batched']['wer']:.1f}%{with_lm}, "
            f"pocketsphinx {100 * tr['pocketsphinx']['wer']:.1f}% (its general English model, not trained on this corpus)."
        )

    lines += _engine_lines(b.get("engines"))
    lines += _step_lines(b.get("step_speech"))
    rss: list[str] = []  # rows of the peak-memory table; the table only when it has some
    mt = b.get("memory_transcribe")
    if mt and "curve" not in mt:  # results of before the curve: one file
        rss.append(f"| `seqrec transcribe`, one {fmt(mt['audio_s'] / 60, 2)}-minute file | "
                  f"{fmt(mt['peak_rss_mib'])} MiB | {fmt(mt['wall_s'])} s |")
    ml = b.get("memory_label")
    if ml and "curve" not in ml:  # results of before the labelling curve: one video
        rss.append(f"| `seqrec label --window {ml['window_s']:g}`, one {fmt(ml['video_s'] / 60, 2)}-minute video | "
                  f"{fmt(ml['peak_rss_mib'])} MiB | {fmt(ml['wall_s'])} s |")
    if cs:
        rss.append(f"| `seqrec transcribe`, one {fmt(cs['audio_s'])} s file | {fmt(cs['seqrec_peak_rss_mib'])} MiB | "
                  f"{fmt(_med(cs, 'seqrec'))} s |")
        if "seqrec_torch" in cs:
            rss.append(f"| `seqrec transcribe --engine torch`, same file | {fmt(cs['seqrec_torch_peak_rss_mib'])} MiB | "
                       f"{fmt(_med(cs, 'seqrec_torch'))} s |")
        if "pocketsphinx" in cs:
            rss.append(f"| pocketsphinx, same file | {fmt(cs['pocketsphinx_peak_rss_mib'])} MiB | "
                       f"{fmt(_med(cs, 'pocketsphinx'))} s |")
    if rss:
        lines += ["", "| peak memory (RSS), fresh process | peak RSS | wall time |", "|---|---:|---:|", *rss]

    if mt and "curve" in mt and "loaded" in mt["curve"][0]:
        lines += _transcribe_curve_lines(mt)
    elif mt and "curve" in mt:  # results of before the default engine's curve: torch alone
        lines += _memory_curve_lines(mt, f"`seqrec transcribe --engine {mt.get('engine', 'torch')}`, one file of",
                                     "audio_s", "file", "(target: at most 1.2x, and under 1 GiB)")
    if ml and "curve" in ml:
        lines += _memory_curve_lines(ml, f"`seqrec label --window {ml['window_s']:g} --stride {ml['stride_s']:g}`, "
                                     "one video of", "video_s", "video")
    lines += _long_wer_lines(b.get("long_wer"))
    if b.get("hotwords"):
        lines += ["", "Hotwords, the shipped model on the lite engine: " + render_hotwords(b["hotwords"])]
    lines.append("")
    gpu = results.get("gpu")
    if gpu is None:
        lines.append("GPU: none on this machine, so there are no GPU figures (`\"gpu\": null`).")
    else:
        lines += _gpu_lines(gpu)
    skipped = results.get("skipped") or {}
    if skipped:
        lines.append("")
        lines.append("Not measured:")
        lines += [f"- {name}: {why}" for name, why in skipped.items()]
    return "\n".join(lines)


def _engine_lines(eng: dict[str, Any] | None) -> list[str]:
    """WER % (CER %) per engine of seqrec (without and with its word LM) and pocketsphinx."""
    if not eng:
        return []
    systems = [k for k in ("seqrec", "seqrec_lm", "pocketsphinx") if k in eng]
    titles = {"seqrec": "seqrec WER % (CER %)", "seqrec_lm": "seqrec + word LM", "pocketsphinx": "pocketsphinx WER % (CER %)"}
    head = f"engine ({eng['files']} test files, {fmt(eng['audio_s'])} s) | in training | files"
    lines = ["", "| " + " | ".join([head, *(titles[k] for k in systems)]) + " |",
             "|---|---|---:|" + "---:|" * len(systems)]  # fmt: skip
    for name, ours in eng["seqrec"].items():
        cells = [f"{100 * eng[k][name]['wer']:.1f} ({100 * eng[k][name]['cer']:.1f})" for k in systems]
        lines.append(f"| {name} | {'yes' if ours['seen'] else 'no'} | {ours['utterances']} | " + " | ".join(cells) + " |")
    return lines


def _step_lines(step: dict[str, Any] | None) -> list[str]:
    """The speech model's training-step cost against the previous default model."""
    if not step:
        return []

    def model(m: dict[str, Any]) -> str:
        ln = " + LayerNorm" if m["layer_norm"] else ""
        return f"{m['num_layers']} x {m['hidden_size']} Bi{m['cell'].upper()}{ln} ({m['params'] / 1e6:.2f} M params)"

    rec, ref = step["recipe"], step["reference"]
    return [
        "",
        f"| training step, speech model (batch {step['batch']} x {step['frames']} frames, "
        f"{step['threads']} threads) | recipe model | previous default | ratio |",
        "|---|---:|---:|---:|",
        f"| {model(rec)} vs {model(ref)}, ms | {fmt(rec['ms']['median'])} | {fmt(ref['ms']['median'])} | "
        f"{fmt(step['ratio'])} |",
    ]


def _memory_curve_lines(mem: dict[str, Any], title: str, length: str, noun: str, target: str = "") -> list[str]:
    """Peak RSS and RTF of one command against the length of its one input (``length``: the
    curve rows' seconds key), then the longest input's peak over the shortest's."""
    lines = ["", f"| {title} | peak RSS | wall time (with start-up) | RTF |", "|---|---:|---:|---:|"]
    for row in mem["curve"]:
        lines.append(f"| {fmt(row[length] / 60, 3)} min | {fmt(row['peak_rss_mib'])} MiB | {fmt(row['wall_s'])} s | "
                     f"{fmt(row['rtf'])} |")
    first, last = mem["curve"][0], mem["curve"][-1]
    lines += ["", f"Peak RSS of the {fmt(last[length] / 60, 3)}-minute {noun} over the {fmt(first[length] / 60, 3)}-minute "
              f"one: {mem['rss_ratio']:.2f}x{' ' + target if target else ''}."]  # fmt: skip
    return lines


def _transcribe_curve_lines(mem: dict[str, Any]) -> list[str]:
    """Peak RSS and RTF of ``seqrec transcribe`` on one file of each length: the default engine
    alone and beside a competing job, and ``--engine torch``."""
    lines = ["", "| `seqrec transcribe`, one file of | default engine: peak RSS | RTF | beside a one-thread job: RTF "
             "| peak RSS | `--engine torch`: peak RSS | RTF |", "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in mem["curve"]:
        loaded, torch = row["loaded"], row["torch"]
        lines.append(f"| {fmt(row['audio_s'] / 60, 3)} min | {fmt(row['peak_rss_mib'])} MiB | {fmt(row['rtf'])} | "
                     f"{fmt(loaded['rtf'])} | {fmt(loaded['peak_rss_mib'])} MiB | {fmt(torch['peak_rss_mib'])} MiB | "
                     f"{fmt(torch['rtf'])} |")  # fmt: skip
    first, last = mem["curve"][0], mem["curve"][-1]
    lines += ["", f"Wall times include the start-up. Peak RSS of the {fmt(last['audio_s'] / 60, 3)}-minute file over the "
              f"{fmt(first['audio_s'] / 60, 3)}-minute one: {mem['rss_ratio']:.2f}x (targets: RTF at most 0.02 and "
              "under 500 MB for an hour on the default engine)."]  # fmt: skip
    return lines


def _long_wer_lines(lw: dict[str, Any] | None) -> list[str]:
    """WER of one long file against the same utterances one by one."""
    if not lw:
        return []
    lines = ["", f"| WER, {lw['utterances']} test utterances ({fmt(lw['audio_s'])} s, {lw['gap_s']:g} s pauses) | "
             "one by one | one by one, with a chunk's silence | one long file | difference, points |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, row in lw.items():
        if isinstance(row, dict):
            lm = ", word LM" if row["word_lm"] else ", greedy"
            padded = row.get("wer_per_utterance_padded")
            padded_text = "—" if padded is None else f"{100 * padded:.1f}%"
            delta = f"{row['delta_points']:+.1f}" + (
                "" if padded is None else f" ({row['delta_padded_points']:+.1f} against padded)")
            lines.append(f"| {name} bundle{lm} | {100 * row['wer_per_utterance']:.1f}% | {padded_text} | "
                         f"{100 * row['wer_long_file']:.1f}% | {delta} |")
    return lines


def _gpu_lines(gpu: dict[str, Any]) -> list[str]:
    lines = [f"GPU ({gpu.get('name', '?')}):", "", "| benchmark | seqrec | reference | ratio |", "|---|---:|---:|---:|"]
    for name, unit in (("train_speech", "audio s/s"), ("train_video", "clips/s")):
        t = gpu.get(name)
        if t:
            lines.append(f"| Training loop, {name.split('_')[1]}, {unit} ({t['precision']}) | {fmt(_med(t, 'loop'))} | "
                         f"in-memory compute {fmt(_med(t, 'limit'))} | {fmt(t.get('ratio'))} |")
    tr = gpu.get("transcribe")
    if tr:
        lines.append(f"| Transcription RTF, batched | {fmt(_med(tr, 'batched'))} | | |")
        lines.append(f"| Transcription RTF, one file at a time | {fmt(_med(tr, 'single'))} | | |")
    lab = gpu.get("label")
    if lab:
        lines.append(f"| Video labelling, clips/s | {fmt(_med(lab, 'label'))} | lower limit {fmt(_med(lab, 'lower_limit'))} | "
                     f"{fmt(lab.get('ratio'))} |")
    for name, why in (gpu.get("skipped") or {}).items():
        lines.append(f"| {name} | not measured: {why} | | |")
    return lines
