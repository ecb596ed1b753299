"""The lite engine's overlapped stages: chunks decoded ahead in a worker, and a search that
finishes building while the first file is read."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pipeline.inference.long_audio import Chunk, OneByOneChunkDecoder

SR = 16000


def _chunks(n: int) -> list[tuple[Chunk, np.ndarray]]:
    out = []
    for i in range(n):
        start = i * SR
        out.append((Chunk(start, start + SR, start, start + SR), np.full(SR, float(i), np.float32)))
    return out


def _fake_stages(log: list[str], fail_at: int | None = None):
    """An acoustic stage that takes a little time (in the worker) and a search that words each
    chunk by its value; both note what ran in which thread."""

    def acoustic(samples: np.ndarray) -> np.ndarray:
        i = int(samples[0])
        time.sleep(0.01)
        log.append(f"acoustic {i} {threading.current_thread().name.startswith('seqrec-acoustic')}")
        if i == fail_at:
            raise RuntimeError(f"chunk {i} broke")
        return np.array([i])

    def search(lp: np.ndarray) -> list[dict]:
        i = int(lp[0])
        log.append(f"search {i}")
        return [{"word": f"w{i}", "start": 0.4, "end": 0.6, "confidence": 1.0}]

    return acoustic, search


@pytest.mark.parametrize("ahead", [0, 1, 3])
def test_chunks_come_out_in_order_whatever_runs_ahead(ahead) -> None:
    log: list[str] = []
    dec = OneByOneChunkDecoder(*_fake_stages(log), SR, ahead=ahead)
    for chunk, samples in _chunks(6):
        dec.add(chunk, samples)
        searched = sum(e.startswith("search") for e in log)
        assert dec.chunks - searched <= ahead  # no more than `ahead` chunks wait for their search
    dec.flush()
    assert [w["word"] for w in dec.words] == [f"w{i}" for i in range(6)]
    assert [e for e in log if e.startswith("search")] == [f"search {i}" for i in range(6)]
    in_worker = {e.split()[2] == "True" for e in log if e.startswith("acoustic")}
    assert in_worker == {ahead > 0}
    assert dec._pool is None  # the worker is gone after flush


def test_a_failing_chunk_raises_in_order_and_stops_the_worker() -> None:
    log: list[str] = []
    dec = OneByOneChunkDecoder(*_fake_stages(log, fail_at=2), SR, ahead=1)
    with pytest.raises(RuntimeError, match="chunk 2 broke"):
        for chunk, samples in _chunks(6):
            dec.add(chunk, samples)
        dec.flush()
    assert [w["word"] for w in dec.words] == ["w0", "w1"]  # the chunks before it are kept
    dec.close()
    assert dec._pool is None and not dec._pending
    assert not any(t.name.startswith("seqrec-acoustic") for t in threading.enumerate())


def test_a_search_that_fails_to_build_is_the_models_error_not_the_files(tmp_path, monkeypatch) -> None:
    """The LM's files pass their checks, then KenLM fails while the first file is read: the
    transcriber raises one BundleError (naming the bundle) instead of failing each file."""
    import soundfile as sf
    from bundles import tiny_speech_bundle

    from pipeline.bundle import BundleError
    from pipeline.inference import lite

    bundle = tiny_speech_bundle(tmp_path / "b", graph=True)

    def broken(*args, **kwargs):
        time.sleep(0.05)
        raise RuntimeError("KenLM gave up")

    monkeypatch.setattr(lite, "_build_search", broken)
    tr = lite.LiteTranscriber.from_pretrained(bundle, lm="none", beam_size=4)  # loading itself succeeds
    wav = tmp_path / "a.wav"
    t = np.arange(SR) / SR
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), SR)
    with pytest.raises(BundleError, match="cannot build the decoder: KenLM gave up") as info:
        tr.transcribe([wav, wav], skip_silence=False)
    assert str(bundle) in str(info.value)
