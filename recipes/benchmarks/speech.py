"""Speech benchmarks: feature extraction, the training loop, transcription, cold start, memory.

Each ``bench_*`` function returns a JSON-ready dict with its figures (medians plus the raw
values) and, where the suite compares two sides, ``"ratio"``: the median of the pairwise
ratios, oriented so that higher is better for seqrec.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from data_prep.audio import load_waveform
from data_prep.manifest import read_manifest, write_manifest
from pipeline.config import load_config
from pipeline.inference.long_audio import ChunkConfig
from pipeline.io_utils import atomic_open, atomic_write_text
from pipeline.scoring import error_rates
from pipeline.tokenizer import CharTokenizer
from recipes.benchmarks.timing import (
    BenchmarkError,
    RecipeExp,
    Stopwatch,
    competing_job,
    interleave,
    median,
    pairwise_ratios,
    run_measured,
    summarize,
)

log = logging.getLogger(__name__)

SPHINX_SCRIPT = Path(__file__).with_name("sphinx_cli.py")


# --------------------------------------------------------------------------- inputs
class SpeechExp(RecipeExp):
    """A finished ``speech_ctc`` experiment directory."""

    recipe = "speech_ctc"
    store_files = ("feats/train/.done", "feats/dev/.done")


def read_records(manifest: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Speech manifest records (absolute audio paths), the first ``limit`` of them."""
    records = read_manifest(manifest, "speech")
    return records[:limit] if limit else records


def recipe_features(exp: SpeechExp):
    """The experiment's feature config and worker count (the recipe defaults without a config)."""
    # lazy: these pull in torch, which this module loads only inside the benchmarks that need it
    from recipes.speech_ctc.stages import SpeechRecipeConfig

    path = exp.config if exp.config.is_file() else None
    cfg = load_config(SpeechRecipeConfig, path, [f"exp_dir={exp.root}"])
    return replace(cfg.features, speed=1.0), cfg.num_workers


def audio_seconds(records: list[dict[str, Any]]) -> float:
    """Total duration of the records, in seconds."""
    return float(sum(float(r["duration"]) for r in records))


# --------------------------------------------------------------------------- 1. features
def librosa_feature_loop(records: list[dict[str, Any]], out_dir: Path, cfg) -> int:
    """The peer of ``extract_features``: a plain librosa loop doing the same work.

    Reads and resamples each file with ``librosa.load``, computes the same log-mel features
    (``librosa.feature.melspectrogram``, Slaney filterbank, reflect padding), converts them to
    float16 and writes one concatenated array plus a JSON index of offsets and lengths.

    Returns:
        The number of rows written.
    """
    # lazy: librosa (about a second) only for its comparison loop
    import librosa

    out_dir.mkdir(parents=True, exist_ok=True)
    entries, offset = [], 0
    with atomic_open(out_dir / "feats.f16", "wb") as fh:
        for rec in records:
            y, _ = librosa.load(rec["audio_filepath"], sr=cfg.sample_rate, mono=True)
            power = librosa.feature.melspectrogram(
                y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                win_length=cfg.win_length, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max,
                power=2.0, center=True, pad_mode="reflect",
            )  # (n_mels, T)
            feats = np.log(power + cfg.log_floor).T.astype(np.float16)  # (n_mels, T) -> (T, n_mels)
            fh.write(np.ascontiguousarray(feats).tobytes())
            entries.append({"id": rec["id"], "offset": offset, "length": int(feats.shape[0])})
            offset += int(feats.shape[0])
    atomic_write_text(out_dir / "index.json", json.dumps({"dim": cfg.n_mels, "entries": entries}))
    return offset


def bench_features(
    records: list[dict[str, Any]], cfg, tmp: Path, repeats: int, *, num_workers: int = 2
) -> dict[str, Any]:
    """Feature extraction end to end (read, resample, log-mel, write the store), both tools.

    Figures are audio seconds per wall second; ``ratio`` = seqrec / librosa.
    """
    # lazy: these pull in torch, which this module loads only inside the benchmarks that need it
    from data_prep.features import extract_features

    tmp.mkdir(parents=True, exist_ok=True)
    manifest = tmp / "features.jsonl"
    write_manifest(manifest, records, "speech")
    total = audio_seconds(records)

    def seqrec() -> float:
        store = tmp / "store_seqrec"
        shutil.rmtree(store, ignore_errors=True)
        with Stopwatch() as sw:
            summary = extract_features(manifest, store, cfg, num_workers=num_workers)
        if summary.num_failed:
            raise BenchmarkError(f"{summary.num_failed} files failed feature extraction; see {store}")
        shutil.rmtree(store, ignore_errors=True)
        return total / sw.seconds

    def librosa_loop() -> float:
        out = tmp / "store_librosa"
        shutil.rmtree(out, ignore_errors=True)
        with Stopwatch() as sw:
            librosa_feature_loop(records, out, cfg)
        shutil.rmtree(out, ignore_errors=True)
        return total / sw.seconds

    runs = interleave({"seqrec": seqrec, "librosa": librosa_loop}, repeats)
    return {
        "files": len(records),
        "audio_s": round(total, 1),
        "num_workers": num_workers,
        "unit": "audio s / s",
        "seqrec": summarize(runs["seqrec"]),
        "librosa": summarize(runs["librosa"]),
        "ratio": median(pairwise_ratios(runs["seqrec"], runs["librosa"])),
    }


# --------------------------------------------------------------------------- 2. training
def bench_train_speech(
    exp: SpeechExp, tmp: Path, repeats: int, *, max_utts: int, device: str = "cpu", seed: int = 0
) -> dict[str, Any]:
    """The real training loop against the same model's compute on in-memory batches.

    The loop is :meth:`pipeline.training.Trainer.fit` for one epoch over ``max_utts``
    training utterances (its per-epoch ``seconds``: data loading, collation, the step,
    clipping, non-finite checks and logging; the dev evaluation and checkpoints come after
    and are not counted). The limit runs the same batches, collated once and already on the
    device, through forward, CTC loss, backward and the optimizer step, with the trainer's
    precision. Figures are audio seconds per second; ``ratio`` = loop / limit.
    """
    # lazy: torch, and the modules below that pull it in, load only inside the benchmarks that need them
    import torch

    from data_prep.features import compute_cmvn
    from data_prep.store import FeatureStore
    from pipeline.data import FeatureDataset, collate_ctc
    from pipeline.training.tasks import CTCTask
    from recipes.speech_ctc.stages import SpeechRecipe, SpeechRecipeConfig

    exp.check(bundle=False, manifests=("train", "dev"), stores=True)
    cfg = load_config(SpeechRecipeConfig, exp.config, [f"exp_dir={exp.root}"])
    recipe = SpeechRecipe(cfg)
    full = recipe.dataset("train")
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(full), size=min(max_utts, len(full)), replace=False).tolist())
    train = FeatureDataset([full.entries[i] for i in pick], [full.lengths[i] for i in pick])
    dev_full = recipe.dataset("dev")
    dev = FeatureDataset(dev_full.entries[:8], dev_full.lengths[:8])
    frame_s = cfg.features.hop_length / cfg.features.sample_rate
    total = sum(train.lengths) * frame_s
    train_cfg = replace(cfg.train, max_epochs=1, device=device, progress=False, save_every_steps=0)
    mean, std = compute_cmvn(FeatureStore(recipe.store_dir("train")))
    model = recipe.build_model()
    model.cmvn.set_stats(torch.from_numpy(mean), torch.from_numpy(std))
    task = CTCTask(recipe.tokenizer, cfg.specaugment)
    return _train_comparison(
        model, task, train, collate_ctc, recipe.eval_loader(dev), train_cfg, tmp / "train_speech",
        repeats, amount=total, unit="audio s / s",
    )


def _train_comparison(
    model, task, train, collate, dev_loader, train_cfg, tmp: Path, repeats: int, *, amount: float, unit: str
) -> dict[str, Any]:
    """Shared by the speech and video training benchmarks (see :func:`bench_train_speech`)."""
    # lazy: torch, and the modules below that pull it in, load only inside the benchmarks that need them
    import torch

    from pipeline.amp import autocast
    from pipeline.training.sampler import BucketBatchSampler
    from pipeline.training.schedule import adamw
    from pipeline.training.trainer import Trainer, move_batch

    state: dict[str, Any] = {"round": 0}

    def new_trainer() -> Trainer:
        run_dir = tmp / f"run{state['round']}"
        shutil.rmtree(run_dir, ignore_errors=True)
        state["round"] += 1
        return Trainer(model, task, train, train.lengths, collate, dev_loader, train_cfg, run_dir)

    first = new_trainer()  # fixes the device, threads and precision the limit reuses
    device, amp = first.device, first.amp_dtype
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    sampler = BucketBatchSampler(
        train.lengths, max_frames=train_cfg.max_frames, max_batch_size=train_cfg.max_batch_size,
        seed=train_cfg.seed,
    )
    batches = [move_batch(collate([train[i] for i in b]), device) for b in sampler]
    optimizer = adamw(model.parameters(), lr=train_cfg.lr * 0.1)  # the trainer's optimizer
    trainers = [first]

    def loop() -> float:
        trainer = trainers.pop() if trainers else new_trainer()
        result = trainer.fit(resume=False)
        shutil.rmtree(trainer.exp_dir, ignore_errors=True)
        return amount / float(result.history[-1]["seconds"])

    def limit() -> float:
        model.train()
        with Stopwatch(sync) as sw:
            for batch in batches:
                with autocast(device, amp):
                    loss, _ = task.loss(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return amount / sw.seconds

    runs = interleave({"loop": loop, "limit": limit}, repeats)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "items": len(train),
        "amount": round(amount, 1),
        "batches": len(batches),
        "unit": unit,
        "device": str(device),
        "precision": str(amp).replace("torch.", "") if amp is not None else "fp32",
        "threads": torch.get_num_threads(),
        "num_workers": train_cfg.num_workers,
        "loop": summarize(runs["loop"]),
        "limit": summarize(runs["limit"]),
        "ratio": median(pairwise_ratios(runs["loop"], runs["limit"])),
    }


#: The speech model before LayerNorm made a narrower one learn as well (README, "How the speech
#: part got under 15 minutes"): the step benchmark's reference.
REFERENCE_ENCODER = {"hidden_size": 192, "layer_norm": False}


def bench_step_speech(
    exp: SpeechExp, repeats: int, *, batch: int = 16, frames: int = 222, steps: int = 10, seed: int = 0
) -> dict[str, Any]:
    """Cost of one training step of the recipe's model against the previous default model.

    Both models take the same synthetic batch of ``batch`` utterances of ``frames`` feature
    frames (the default corpus's median length; every second one 20 frames shorter, so
    packing is exercised) with 30 random tokens each, through forward, CTC loss (the
    recipe's :class:`CTCTask`, SpecAugment included), backward and the fused AdamW step.
    Each round times ``steps`` steps of each model back to back and keeps their median;
    ``ratio`` is reference ms / recipe ms (higher: the recipe's model is cheaper).

    The model is the one in ``exp``'s ``config.yaml`` (the recipe's conf/default.yaml without one); the
    reference is the same config with :data:`REFERENCE_ENCODER` (3 x 192 BiLSTM, no LayerNorm).
    The reference's absolute time is also a handy gauge of how busy a shared machine is.
    """
    # lazy: torch, and the modules below that pull it in, load only inside the benchmarks that need them
    import torch

    from pipeline.models.ctc_model import CTCModel
    from pipeline.training.schedule import adamw
    from pipeline.training.tasks import CTCTask
    from recipes.speech_ctc.stages import DEFAULT_CONFIG, SpeechRecipeConfig

    if batch < 1 or frames < 40 or steps < 1:
        raise ValueError(f"need batch >= 1, frames >= 40, steps >= 1; got {batch}, {frames}, {steps}")
    # The experiment's own config, else the one `make demo` runs (conf/default.yaml).
    cfg_path = exp.config if exp.config.is_file() else DEFAULT_CONFIG
    cfg = load_config(SpeechRecipeConfig, cfg_path, [f"exp_dir={exp.root}"])
    reference = replace(cfg.model, encoder=replace(cfg.model.encoder, **REFERENCE_ENCODER))
    task = CTCTask(CharTokenizer(), cfg.specaugment)
    gen = torch.Generator().manual_seed(seed)
    x_lens = torch.full((batch,), frames, dtype=torch.long)
    x_lens[1::2] = frames - 20
    data = {
        "x": torch.randn(batch, frames, cfg.model.input_dim, generator=gen),
        "x_lens": x_lens,
        "targets": torch.randint(1, cfg.model.vocab_size, (batch, 30), generator=gen),
        "target_lens": torch.full((batch,), 30, dtype=torch.long),
    }

    def stepper(model_cfg) -> tuple[Any, Any]:
        torch.manual_seed(seed)
        model = CTCModel(model_cfg).train()
        optimizer = adamw(model.parameters(), lr=cfg.train.lr)

        def run() -> float:
            times = []
            for _ in range(steps):
                with Stopwatch() as sw:
                    loss, _ = task.loss(model, data)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                times.append(sw.seconds * 1000.0)
            return median(times)

        return model, run

    models = {"recipe": stepper(cfg.model), "reference": stepper(reference)}
    runs = interleave({name: run for name, (_, run) in models.items()}, repeats)

    def describe(name: str, model_cfg) -> dict[str, Any]:
        enc = model_cfg.encoder
        n_params = sum(p.numel() for p in models[name][0].parameters())
        return {"cell": enc.cell, "hidden_size": enc.hidden_size, "num_layers": enc.num_layers,
                "layer_norm": enc.layer_norm, "subsampling": enc.subsampling, "params": n_params,
                "ms": summarize(runs[name])}

    return {
        "batch": batch, "frames": frames, "steps": steps, "threads": torch.get_num_threads(),
        "recipe": describe("recipe", cfg.model), "reference": describe("reference", reference),
        "ratio": median(pairwise_ratios(runs["reference"], runs["recipe"])),
    }


# --------------------------------------------------------------------------- 3. transcription
def pocketsphinx_available() -> tuple[bool, str]:
    """Whether the ``pocketsphinx`` package imports, and why not."""
    try:
        # lazy: optional extra seqrec[bench]
        import pocketsphinx  # noqa: F401
    except ImportError as exc:
        return False, (
            f"pocketsphinx is not installed ({exc}); install it with "
            "`pip install -e '.[bench]'` (or `pip install pocketsphinx`)"
        )
    return True, ""


def read_pcm16(path: str | Path, sample_rate: int = 16000) -> bytes:
    """A mono 16-bit PCM wav's samples as bytes, for pocketsphinx's ``process_raw``."""
    data, sr = sf.read(str(path), dtype="int16", always_2d=True)
    if sr != sample_rate:
        raise BenchmarkError(f"{path}: {sr} Hz; pocketsphinx's model needs {sample_rate} Hz")
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1).astype(np.int16)
    return np.ascontiguousarray(mono).tobytes()


class SphinxRecognizer:
    """pocketsphinx's default English model (acoustic model, 3-gram LM, CMU dictionary)."""

    def __init__(self, sample_rate: int = 16000) -> None:
        # lazy: optional extra seqrec[bench]
        from pocketsphinx import Decoder

        self.sample_rate = sample_rate
        self.decoder = Decoder(samprate=sample_rate)

    def transcribe(self, path: str | Path) -> str:
        """Reads and decodes one file; returns the best hypothesis (lower case)."""
        pcm = read_pcm16(path, self.sample_rate)
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr.lower() if hyp is not None else ""


def _texts(results) -> list[str]:
    """The texts of ``Transcriber.transcribe`` results; a failed file stops the benchmark."""
    failed = [r for r in results if r.error is not None]
    if failed:
        raise BenchmarkError(f"seqrec failed on {len(failed)} files, e.g. {failed[0].path}: {failed[0].error}")
    return [r.text for r in results]


def bench_engines(bundle: Path, test: list[dict[str, Any]], train: list[dict[str, Any]]) -> dict[str, Any]:
    """Word and character error rates per engine of seqrec and pocketsphinx on the same files.

    Decodes every ``test`` record with the bundle (batched, greedy: ``seqrec``; and with its
    word LM when it has one: ``seqrec_lm``) and with pocketsphinx's default English model, and
    groups the errors by each record's ``engine`` field
    (:func:`pipeline.workflow.speech_ctc.engine_group_rates`); engines absent from ``train``
    also form the ``unseen-engines`` group. An accuracy benchmark: nothing is timed.

    Raises:
        BenchmarkError: the test records name no engine.
    """
    # lazy: these pull in torch, which this module loads only inside the benchmarks that need it
    from pipeline.inference.transcriber import Transcriber
    from recipes.speech_ctc.stages import engine_group_rates

    engines = {r["id"]: r["engine"] for r in test if "engine" in r}
    if not engines:
        raise BenchmarkError("the test manifest has no 'engine' field (not a generated many-engine corpus)")
    seen = {r["engine"] for r in train if "engine" in r}
    ids = [r["id"] for r in test]
    refs = [r["text"] for r in test]
    paths = [r["audio_filepath"] for r in test]
    decoded = {"seqrec": _texts(Transcriber.from_pretrained(bundle, lm="none").transcribe(paths))}
    with_lm = Transcriber.from_pretrained(bundle, lm="auto")
    if with_lm.lm is not None:
        decoded["seqrec_lm"] = _texts(with_lm.transcribe(paths))
    sphinx = SphinxRecognizer()
    decoded["pocketsphinx"] = [sphinx.transcribe(p) for p in paths]
    out = {"files": len(test), "audio_s": audio_seconds(test)}
    for name, hyps in decoded.items():
        out[name] = engine_group_rates(ids, refs, hyps, engines, seen)
    return out


def bench_transcribe(
    bundle: Path, records: list[dict[str, Any]], repeats: int, *, device: str = "cpu",
    with_sphinx: bool = True,
) -> dict[str, Any]:
    """Real-time factor (wall / audio seconds, lower is better) of seqrec and pocketsphinx.

    seqrec runs ``Transcriber.transcribe`` one file per call (``single``) and on all files at
    once (``batched``, sorted by length inside), greedy without an LM; when the bundle has a
    word LM, also batched with it (``batched_lm``). pocketsphinx decodes the same files one by
    one with its default English model. The ratios are pocketsphinx RTF / seqrec RTF.
    """
    # lazy: these pull in torch, which this module loads only inside the benchmarks that need it
    from pipeline.inference.transcriber import Transcriber

    transcriber = Transcriber.from_pretrained(bundle, device=device, lm="none")
    with_lm = Transcriber.from_pretrained(bundle, device=device, lm="auto")  # its LM is loaded here
    paths = [r["audio_filepath"] for r in records]
    refs = [r["text"] for r in records]
    total = audio_seconds(records)
    hyps: dict[str, list[str]] = {}
    sync = _cuda_sync(device)

    check = _texts
    def single() -> float:
        out = []
        with Stopwatch(sync) as sw:
            for p in paths:
                out += check(transcriber.transcribe([p]))
        hyps["single"] = out
        return sw.seconds / total

    def batched() -> float:
        with Stopwatch(sync) as sw:
            out = check(transcriber.transcribe(paths))
        hyps["batched"] = out
        return sw.seconds / total

    sides = {"single": single, "batched": batched}
    if with_lm.lm is not None:
        def batched_lm() -> float:
            with Stopwatch(sync) as sw:
                out = check(with_lm.transcribe(paths))
            hyps["batched_lm"] = out
            return sw.seconds / total

        sides["batched_lm"] = batched_lm
    if with_sphinx:
        sphinx = SphinxRecognizer()

        def pocketsphinx() -> float:
            with Stopwatch() as sw:
                out = [sphinx.transcribe(p) for p in paths]
            hyps["pocketsphinx"] = out
            return sw.seconds / total

        sides["pocketsphinx"] = pocketsphinx
    runs = interleave(sides, repeats)
    out: dict[str, Any] = {
        "files": len(paths), "audio_s": round(total, 1), "device": device, "unit": "RTF",
        "threads": _torch_threads(),
    }
    for name, values in runs.items():
        out[name] = summarize(values)
        out[name]["wer"] = round(error_rates(refs, hyps[name])["wer"], 4)
    if with_sphinx:
        out["ratio_batched"] = median(pairwise_ratios(runs["pocketsphinx"], runs["batched"]))
        out["ratio_single"] = median(pairwise_ratios(runs["pocketsphinx"], runs["single"]))
        if "batched_lm" in runs:
            out["ratio_batched_lm"] = median(pairwise_ratios(runs["pocketsphinx"], runs["batched_lm"]))
    return out


def _cuda_sync(device: str):
    if str(device).startswith("cuda"):
        # lazy: torch only when the benchmark runs on a GPU
        import torch

        return torch.cuda.synchronize
    return None


def _torch_threads() -> int:
    # lazy: torch only for the torch-engine benchmarks
    import torch

    return torch.get_num_threads()


# --------------------------------------------------------------------------- 4. cold start
def seqrec_command() -> list[str]:
    """How to start the ``seqrec`` console script of this environment."""
    exe = Path(sys.executable).with_name("seqrec")
    if exe.is_file() and os.access(exe, os.X_OK):
        return [str(exe)]
    found = shutil.which("seqrec")
    return [found] if found else [sys.executable, "-m", "pipeline.cli"]


def pocketsphinx_command() -> tuple[list[str], str]:
    """The pocketsphinx command for one file, and a description of it.

    pocketsphinx's C distribution installs ``pocketsphinx`` (``pocketsphinx single FILE``);
    the PyPI package ships no such program, so without it the peer is
    ``sphinx_cli.py FILE``: a minimal script that imports the package, loads its default
    English model, decodes the file and prints the text, as the C command does.
    """
    exe = shutil.which("pocketsphinx")
    if exe:
        return [exe, "single"], f"{exe} single FILE"
    return [sys.executable, str(SPHINX_SCRIPT)], "python sphinx_cli.py FILE (pocketsphinx package, default model)"


def bench_coldstart(bundle: Path | None, wav: Path, repeats: int, *, with_sphinx: bool = True) -> dict[str, Any]:
    """Wall time and peak RSS of a fresh ``seqrec transcribe`` process on one short file, with the
    default engine (``seqrec``: auto, the torch-free engine on CPU) and with ``--engine torch``
    (``seqrec_torch``), beside pocketsphinx's (``pocketsphinx``), rounds interleaved.

    ``bundle`` None: the model shipped with seqrec, with its word LM (what a user gets by
    default). One unrecorded round first puts every program's files in the page cache.
    ``ratio`` = pocketsphinx wall time / seqrec wall time; ``ratio_torch`` the same for the
    torch engine.
    """
    model = [] if bundle is None else ["--model", str(bundle)]
    cmds = {
        "seqrec": [*seqrec_command(), "transcribe", *model, str(wav)],
        "seqrec_torch": [*seqrec_command(), "transcribe", "--engine", "torch", *model, str(wav)],
    }
    if with_sphinx:
        sphinx_cmd, sphinx_desc = pocketsphinx_command()
        cmds["pocketsphinx"] = [*sphinx_cmd, str(wav)]
    rss: dict[str, list[int]] = {name: [] for name in cmds}

    def run(name: str) -> float:
        res = run_measured(cmds[name])
        if res.returncode != 0:
            raise BenchmarkError(f"{' '.join(cmds[name])} exited with {res.returncode}: {res.stderr.strip()[-500:]}")
        rss[name].append(res.max_rss_bytes)
        return res.wall_s

    runs = interleave({name: (lambda n=name: run(n)) for name in cmds}, repeats)
    out: dict[str, Any] = {
        "file": str(wav), "audio_s": round(_wav_seconds(wav), 3), "unit": "s",
        "seqrec_command": "seqrec transcribe " + ("--model BUNDLE " if bundle else "") + "FILE",
        "bundle": str(bundle) if bundle else "shipped",
    }
    for name in cmds:
        out[name] = summarize(runs[name])
        out[f"{name}_peak_rss_mib"] = round(median(rss[name][-repeats:]) / 2**20, 1)
    if with_sphinx:
        out["pocketsphinx_command"] = sphinx_desc
        out["ratio"] = median(pairwise_ratios(runs["pocketsphinx"], runs["seqrec"]))
        out["ratio_torch"] = median(pairwise_ratios(runs["pocketsphinx"], runs["seqrec_torch"]))
    return out


def _wav_seconds(path: Path) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate


# --------------------------------------------------------------------------- 5. memory
def _write_wav_stream(out: Path, waves, want: int | None = None, *, sample_rate: int = 16000) -> Path:
    """Writes the (n,) float32 arrays of ``waves`` one after the other as 16-bit PCM, stopping at
    ``want`` samples (None: all), atomically and without holding the whole file in memory."""
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with atomic_open(out, "wb") as fh, sf.SoundFile(fh, "w", sample_rate, 1, "PCM_16", format="WAV") as wav:
        for wave in waves:
            if want is not None:
                wave = wave[: want - written]
            wav.write(wave)
            written += wave.size
            if want is not None and written >= want:
                break
    return out


def _utterances_with_gaps(records: list[dict[str, Any]], sample_rate: int, gap_s: float, *, cycle: bool):
    """Each record's audio then ``gap_s`` of silence; over and over with ``cycle``."""
    gap = np.zeros(int(round(gap_s * sample_rate)), dtype=np.float32)
    i = 0
    while cycle or i < len(records):
        yield load_waveform(records[i % len(records)]["audio_filepath"], sample_rate)
        yield gap
        i += 1


def build_long_wav(records: list[dict[str, Any]], out: Path, seconds: float = 600.0, *, sample_rate: int = 16000) -> Path:
    """Concatenates test utterances (0.3 s of silence between) into one ``seconds``-long wav.

    Reuses ``out`` when it already has that length. Written atomically, 16-bit PCM, a file at a
    time (an hour of audio never sits in memory).
    """
    want = int(round(seconds * sample_rate))
    if out.is_file():
        info = sf.info(str(out))
        if info.frames == want and info.samplerate == sample_rate:
            return out
    if not records:
        raise BenchmarkError("no utterances to build a long file from")
    return _write_wav_stream(out, _utterances_with_gaps(records, sample_rate, 0.3, cycle=True), want,
                             sample_rate=sample_rate)  # fmt: skip


#: Lengths of the memory benchmark's files, in minutes (full suite, --quick).
MEMORY_MINUTES = ((1, 10, 60), (1, 10))


def bench_memory_transcribe(bundle: Path | None, wavs: list[Path]) -> dict[str, Any]:
    """Peak RSS and real-time factor of ``seqrec transcribe`` on one file of each length, each
    in a fresh process (the wall time includes the start), three ways: the default engine
    (torch-free on CPU) alone, the same beside a competing CPU-bound job (one thread of
    matrix products, :func:`~recipes.benchmarks.timing.competing_job`), and ``--engine torch``
    alone. ``bundle`` None: the shipped model with its word LM.

    Returns:
        ``{"bundle", "engine", "curve": [{"audio_s", "peak_rss_mib", "wall_s", "rtf",
        "loaded": {...}, "torch": {...}}, ...], "rss_ratio"}``: the curve in the order of
        ``wavs`` (the default engine's figures at the top of each row), and the last file's
        peak RSS over the first's.
    """
    model = [] if bundle is None else ["--model", str(bundle)]

    def measure(wav: Path, *engine: str) -> dict[str, Any]:
        cmd = [*seqrec_command(), "transcribe", *engine, *model, str(wav)]
        res = run_measured(cmd, timeout=3600)
        if res.returncode != 0:
            raise BenchmarkError(f"{' '.join(cmd)} exited with {res.returncode}: {res.stderr.strip()[-500:]}")
        seconds = _wav_seconds(wav)
        return {"audio_s": round(seconds, 1), "peak_rss_mib": round(res.max_rss_bytes / 2**20, 1),
                "wall_s": round(res.wall_s, 2), "rtf": round(res.wall_s / seconds, 4)}  # fmt: skip

    curve = []
    for wav in wavs:
        row = {"file": str(wav), **measure(wav)}
        with competing_job():
            row["loaded"] = measure(wav)
        row["torch"] = measure(wav, "--engine", "torch")
        curve.append(row)
    return {"bundle": str(bundle) if bundle else "shipped", "engine": "auto", "curve": curve,
            "rss_ratio": round(curve[-1]["peak_rss_mib"] / curve[0]["peak_rss_mib"], 3)}  # fmt: skip


# --------------------------------------------------------------------------- 6. WER of a long file
def build_concatenation(records: list[dict[str, Any]], out: Path, *, gap_s: float = 0.3,
                        sample_rate: int = 16000) -> Path:  # fmt: skip
    """The records' audio in order, each followed by ``gap_s`` of silence, as one wav."""
    if not records:
        raise BenchmarkError("no utterances to concatenate")
    return _write_wav_stream(out, _utterances_with_gaps(records, sample_rate, gap_s, cycle=False),
                             sample_rate=sample_rate)  # fmt: skip


def bench_long_wer(bundles: dict[str, Path | None], records: list[dict[str, Any]], tmp: Path,
                   *, gap_s: float = 0.3) -> dict[str, Any]:  # fmt: skip
    """WER of one long file made of ``records`` (``gap_s`` of silence between) against the WER
    of the same utterances transcribed one by one, per bundle (its word LM when it has one).

    The long file goes the long-recording way (read in blocks, cut at pauses by the VAD,
    stitched); the utterances the usual way, and once more each with the silence a chunk
    keeps around its speech (``ChunkConfig.pad_s`` on both sides; ``wer_per_utterance_padded``),
    which separates the effect of that silence from the effect of chunking and stitching. The
    WERs count all errors over all reference words. ``bundles``: name -> bundle directory
    (None: the shipped model).
    """
    # lazy: these pull in torch, which this module loads only inside the benchmarks that need it
    from pipeline.inference.transcriber import Transcriber

    long_wav = build_concatenation(records, tmp / f"long_{len(records)}utts.wav", gap_s=gap_s)
    refs = [r["text"] for r in records]
    out: dict[str, Any] = {"utterances": len(records), "audio_s": round(_wav_seconds(long_wav), 1), "gap_s": gap_s}
    for name, bundle in bundles.items():
        transcriber = Transcriber.from_pretrained(bundle, lm="auto")
        one_by_one = _texts(transcriber.transcribe([r["audio_filepath"] for r in records]))
        whole = _texts(transcriber.transcribe([long_wav]))
        padded = _padded_texts(transcriber, records)
        per_utt = error_rates(refs, one_by_one)["wer"]
        per_utt_padded = error_rates(refs, padded)["wer"]
        long_file = error_rates([" ".join(refs)], whole)["wer"]
        out[name] = {
            "bundle": str(bundle) if bundle is not None else "shipped", "word_lm": transcriber.lm is not None,
            "wer_per_utterance": round(per_utt, 4), "wer_per_utterance_padded": round(per_utt_padded, 4),
            "wer_long_file": round(long_file, 4), "delta_points": round(100 * (long_file - per_utt), 2),
            "delta_padded_points": round(100 * (long_file - per_utt_padded), 2),
        }
    return out


def _padded_texts(transcriber, records: list[dict[str, Any]]) -> list[str]:
    """Each record decoded alone with ``ChunkConfig.pad_s`` of silence before and after it."""
    # lazy: torch only for the torch-engine benchmarks
    import torch

    sr = transcriber.feature_cfg.sample_rate
    pad = np.zeros(int(round(ChunkConfig().pad_s * sr)), np.float32)
    feats = [transcriber.features(torch.from_numpy(np.concatenate([pad, load_waveform(r["audio_filepath"], sr), pad])))
             for r in records]  # fmt: skip
    return [text for text, _ in transcriber.decode_features(feats)]
