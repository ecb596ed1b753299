"""The length-bucketed batch sampler: frame budget, shuffling, SortaGrad epochs, resumable state."""

import numpy as np

from pipeline.training.sampler import BucketBatchSampler


def _lengths(n: int = 200, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(20, 400, size=n).tolist()


def _longest(batch: list[int], lengths: list[int]) -> int:
    return max(lengths[i] for i in batch)


def test_batches_cover_every_item_once_within_the_frame_budget():
    lengths = _lengths()
    sampler = BucketBatchSampler(lengths, max_frames=1200, max_batch_size=16)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 16
        assert len(b) == 1 or _longest(b, lengths) * len(b) <= 1200


def test_shuffled_order_changes_with_the_epoch():
    lengths = _lengths()
    sampler = BucketBatchSampler(lengths, max_frames=1200, seed=3)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert first != second
    assert sorted(map(tuple, first)) == sorted(map(tuple, second))


def test_sortagrad_epochs_go_shortest_first_then_shuffle():
    lengths = _lengths()
    sampler = BucketBatchSampler(lengths, max_frames=1200, seed=3, sorted_epochs=1)
    longest = [_longest(b, lengths) for b in sampler]
    assert longest == sorted(longest)
    sampler.set_epoch(1)
    longest = [_longest(b, lengths) for b in sampler]
    assert longest != sorted(longest)


def test_state_dict_resumes_mid_epoch():
    lengths = _lengths()
    ref = BucketBatchSampler(lengths, max_frames=1200, seed=5)
    ref.set_epoch(2)
    full = list(ref)
    part = BucketBatchSampler(lengths, max_frames=1200, seed=5)
    part.set_epoch(2)
    it = iter(part)
    head = [next(it) for _ in range(4)]
    resumed = BucketBatchSampler(lengths, max_frames=1200, seed=0)
    resumed.load_state_dict(part.state_dict())
    assert head + list(resumed) == full
