#!/usr/bin/env python3
"""WER of a speech bundle's ONNX graphs (float32, int8) against the torch engine, same files.

    python recipes/benchmarks/onnx_parity.py exp/speech_ctc/corpus [--model DIR] [--engines piper festival]

Reads the corpus's ``test.jsonl``, keeps the files of the given engines (default: the two never
heard in training), and decodes each with the torch engine and with every graph precision,
greedy and with the bundle's word LM, through the one flashlight-text search. Prints WER/CER,
graph size and model time per variant (one thread). The figures of docs/results.md ("the whole
chain on onnxruntime") come from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without install


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="a speech corpus folder with test.jsonl")
    parser.add_argument("--model", type=Path, default=None, help="speech bundle (default: the shipped model)")
    parser.add_argument("--engines", nargs="+", default=["piper", "festival"])
    args = parser.parse_args()

    # lazy: torch, onnxruntime and the engines load after the arguments are parsed
    import numpy as np
    import onnxruntime as ort
    import torch

    from data_prep.audio import load_waveform
    from data_prep.whisper_frontend import window_batch
    from pipeline.decoding.greedy import greedy_path
    from pipeline.inference.onnx_export import speech_onnx
    from pipeline.inference.transcriber import Transcriber
    from pipeline.scoring import error_rates

    torch.set_num_threads(1)
    records = [json.loads(line) for line in (args.corpus / "test.jsonl").read_text().splitlines() if line]
    records = [r for r in records if r.get("engine") in args.engines]
    ref = Transcriber.from_pretrained(args.model)
    upstream = getattr(ref.extractor, "upstream", None)
    if upstream is None:
        raise SystemExit("this script compares whole-chain graphs: give a bundle on the Whisper upstream")
    search = ref.lm.search(ref.tokenizer) if ref.lm is not None else None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    graphs = {q: speech_onnx(ref.model, upstream, q) for q in ("none", "int8")}
    sessions = {q: ort.InferenceSession(g, opts, providers=["CPUExecutionProvider"]) for q, g in graphs.items()}
    texts: dict[str, list[str]] = {}
    seconds = dict.fromkeys(["torch", *sessions], 0.0)
    for rec in records:
        wave = load_waveform(args.corpus / rec["audio_filepath"], target_sr=16000)
        t0 = time.perf_counter()
        with torch.inference_mode():
            feats = ref.features(torch.as_tensor(wave))
            log_probs, lengths = ref.model(feats[None], torch.tensor([feats.shape[0]]))
        seconds["torch"] += time.perf_counter() - t0
        emissions = {"torch": log_probs[0, : int(lengths[0])].numpy()}
        mel, mel_lengths, index = window_batch(wave)
        for q, session in sessions.items():
            t0 = time.perf_counter()
            emissions[q] = session.run(None, {"mel": mel, "mel_lengths": mel_lengths, "frame_index": index})[0][0]
            seconds[q] += time.perf_counter() - t0
        for name, em in emissions.items():
            texts.setdefault(f"{name} greedy", []).append(ref.tokenizer.decode(greedy_path(em, blank=0).token_ids))
            if search is not None:
                best = search.search(np.ascontiguousarray(em))[0]
                texts.setdefault(f"{name} word LM", []).append(ref.tokenizer.decode(best.token_ids))
    refs = [r["text"] for r in records]
    print(f"{len(records)} files ({', '.join(args.engines)})")
    for q, g in graphs.items():
        print(f"graph {q}: {len(g) / 1e6:.1f} MB")
    for name, hyps in texts.items():
        rates = error_rates(refs, hyps)
        print(f"{name:16s} WER {100 * rates['wer']:.2f}  CER {100 * rates['cer']:.2f}")
    print("model time (s):", {k: round(v, 2) for k, v in seconds.items()})


if __name__ == "__main__":
    main()
