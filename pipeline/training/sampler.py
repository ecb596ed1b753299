"""Length-bucketed batch sampler with resumable state and DDP sharding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class BucketBatchSampler:
    """Yields batches of indices of similar length, bounded by a frame budget.

    Items are sorted by length, cut into batches whose padded size ``max_len * count`` stays
    under ``max_frames`` (and at most ``max_batch_size`` items), and the batch order is shuffled
    from ``seed + epoch``. Under DDP each rank takes every ``world_size``-th batch.

    The first ``sorted_epochs`` epochs go through the batches shortest first instead
    (SortaGrad, as in Deep Speech 2): CTC escapes its all-blank start sooner on short
    utterances, and the run depends less on the luck of its first batches.

    The state (epoch and batches already consumed) is saved in checkpoints, so a resumed run
    sees exactly the batches the interrupted run had not seen yet, in the same order.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        max_frames: int,
        max_batch_size: int = 64,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        sorted_epochs: int = 0,
    ) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_frames = int(max_frames)
        self.max_batch_size = int(max_batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.sorted_epochs = int(sorted_epochs)
        self.epoch = 0
        self.consumed = 0  # batches of the current epoch already yielded (this rank)
        self._batches = self._make_batches()

    def _make_batches(self) -> list[list[int]]:
        order = np.argsort(self.lengths, kind="stable")
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for idx in order.tolist():
            n = int(self.lengths[idx])
            new_longest = max(longest, n)
            if current and (
                new_longest * (len(current) + 1) > self.max_frames
                or len(current) >= self.max_batch_size
            ):
                batches.append(current)
                current, new_longest = [], n
            current.append(idx)
            longest = new_longest
        if current:
            batches.append(current)
        return batches

    def _epoch_batches(self) -> list[list[int]]:
        batches = self._batches
        if self.shuffle and self.epoch >= self.sorted_epochs:
            rng = np.random.default_rng(self.seed + self.epoch)
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.world_size > 1:
            # Every rank needs the same number of steps; pad by wrapping around.
            per_rank = -(-len(batches) // self.world_size)
            total = per_rank * self.world_size
            batches = (batches * (total // max(len(batches), 1) + 1))[:total]
            batches = batches[self.rank :: self.world_size]
        return batches

    def __len__(self) -> int:
        if self.world_size > 1:
            return -(-len(self._batches) // self.world_size)
        return len(self._batches)

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._epoch_batches()
        while self.consumed < len(batches):
            batch = batches[self.consumed]
            self.consumed += 1
            yield batch

    def set_epoch(self, epoch: int) -> None:
        """Starts ``epoch`` from its first batch."""
        self.epoch = epoch
        self.consumed = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self.consumed = int(state["consumed"])
        self.seed = int(state.get("seed", self.seed))
