"""ClipLabeler decodes the next clips in a thread while the CNN scores the current batch."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from bundles import tiny_video_bundle

import data_prep.video_io as video_io
from data_prep.video_io import write_video
from pipeline.inference.labeler import ClipLabeler


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefetch")
    bundle = tiny_video_bundle(root / "bundle", ["walk", "jump"])
    rng = np.random.default_rng(0)
    clips = [write_video(root / f"c{i}.mp4", list(rng.integers(0, 255, (12, 24, 32, 3), dtype=np.uint8)), 10.0)
             for i in range(5)]  # fmt: skip
    (root / "bad.mp4").write_text("not a video\n")
    return ClipLabeler.from_pretrained(bundle), [*clips[:2], root / "bad.mp4", *clips[2:]]


def test_clips_are_decoded_in_the_decode_thread_and_results_keep_their_order(setup, monkeypatch):
    labeler, paths = setup
    threads = []
    load = video_io.load_clip

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return load(*args, **kwargs)

    monkeypatch.setattr(video_io, "load_clip", spy)
    results = labeler.label(paths, top_k=2, batch_size=2)
    assert [r.path for r in results] == [str(p) for p in paths]
    assert [r.error is None for r in results] == [True, True, False, True, True, True]
    assert threads and all(t.startswith("seqrec-decode") for t in threads)
    one_by_one = labeler.label(paths, top_k=2, batch_size=1)
    for a, b in zip(results, one_by_one, strict=True):
        assert [x["label"] for x in a.labels] == [x["label"] for x in b.labels]
        for x, y in zip(a.labels, b.labels, strict=True):
            assert x["score"] == pytest.approx(y["score"], abs=1e-3)


def test_stopping_early_leaves_no_decoding_thread(setup):
    labeler, paths = setup
    it = labeler.label_iter(paths, batch_size=1)
    assert next(it).error is None
    it.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("seqrec-decode")]


def test_a_refused_video_is_reported_from_the_decode_thread(setup):
    labeler, paths = setup
    limits = video_io.VideoLimits(max_frames=5)
    results = labeler.label(paths[:2], limits=limits)
    assert all(r.error and "5" in r.error for r in results), [r.error for r in results]
    with pytest.raises(video_io.VideoError):
        labeler.label(paths[:1], limits=limits, raise_errors=True)
