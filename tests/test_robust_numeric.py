"""Numerical faults in the CTC loss: targets that cannot fit their input give no NaN.

NaN batches, huge gradients and the skip patience are covered in test_trainer.py.
"""

from __future__ import annotations

import logging

import pytest
import torch

from pipeline.models import bilstm_ctc
from pipeline.tokenizer import CharTokenizer
from pipeline.training.tasks import CTCTask


def _batch(x_lens: list[int], texts: list[str], tok: CharTokenizer) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    targets = [torch.tensor(tok.encode(t)) for t in texts]
    return {
        "x": torch.randn(len(x_lens), max(x_lens), 80, generator=g),  # (B, T, D)
        "x_lens": torch.tensor(x_lens),
        "targets": torch.nn.utils.rnn.pad_sequence(targets, batch_first=True),  # (B, S)
        "target_lens": torch.tensor([len(t) for t in targets]),
    }


@pytest.fixture
def model_task():
    torch.manual_seed(0)
    tok = CharTokenizer()
    model = bilstm_ctc(vocab_size=tok.vocab_size, cell="gru", hidden_size=8, num_layers=1, subsampling=2)
    return model.train(), CTCTask(tok), tok


def _grads_finite(model: torch.nn.Module) -> bool:
    return all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_targets_longer_than_the_input_add_no_loss_and_no_nan(model_task, caplog) -> None:
    model, task, tok = model_task
    # Output frames after 2x subsampling: 10 -> 5, 4 -> 2, 10 -> 5.
    batch = _batch([10, 4, 10], ["abc", "hello", "a much longer sentence"], tok)
    with caplog.at_level(logging.WARNING, logger="pipeline.training.tasks"):
        loss, n = task.loss(model, batch)
    assert n == 3 and torch.isfinite(loss) and loss.item() > 0
    assert "2 utterance(s) have more tokens than output frames" in caplog.text
    loss.backward()
    assert _grads_finite(model)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # The infeasible utterances contribute exactly 0: the loss is the feasible one's share.
    model.zero_grad()
    alone = _batch([10], ["abc"], tok)
    alone["x"] = batch["x"][:1]
    model.eval()  # no dropout/augmentation, so both passes see the same network
    with torch.no_grad():
        both = task.loss(model, batch)[0]
        single = task.loss(model, alone)[0]
    torch.testing.assert_close(both, single / 3, rtol=1e-5, atol=1e-6)


def test_every_target_too_long_gives_zero_loss_and_zero_gradient(model_task) -> None:
    model, task, tok = model_task
    batch = _batch([2, 3], ["abcdef", "ghijkl"], tok)  # 1 and 2 output frames
    loss, _ = task.loss(model, batch)
    assert loss.item() == 0.0
    loss.backward()
    assert _grads_finite(model)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.parameters())


def test_repeated_characters_that_need_blanks_stay_finite(model_task) -> None:
    model, task, tok = model_task
    # "aaaa" has 4 tokens but CTC needs 7 frames (a blank between repeats); 5 frames exist.
    batch = _batch([10, 10], ["aaaa", "ab"], tok)
    loss, _ = task.loss(model, batch)
    assert torch.isfinite(loss)
    loss.backward()
    assert _grads_finite(model)


def test_evaluation_with_too_long_targets_is_finite(model_task) -> None:
    model, task, tok = model_task
    batch = _batch([4, 10], ["a rather long reference", "abc"], tok)
    metrics = task.evaluate(model, [batch], torch.device("cpu"))
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert metrics["cer"] >= 0.0 and metrics["loss"] >= 0.0
