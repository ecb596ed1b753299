"""The two training tasks: CTC transcription and clip classification."""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn
from torch.utils.data import DataLoader

from pipeline.decoding.greedy import greedy_decode
from pipeline.scoring import error_rates
from pipeline.training.augment import SpecAugmentConfig, spec_augment
from pipeline.training.trainer import Batch, move_batch

log = logging.getLogger(__name__)


class CTCTask:
    """CTC loss (summed per utterance, averaged over the batch); dev metric CER (greedy)."""

    metric = "cer"
    higher_is_better = False

    def __init__(self, tokenizer, specaugment: SpecAugmentConfig | None = None) -> None:
        self.tokenizer = tokenizer
        self.specaugment = specaugment or SpecAugmentConfig(enabled=False)
        # zero_infinity: a target longer than its (subsampled) input gives loss 0, not inf/NaN.
        self.ctc = nn.CTCLoss(blank=tokenizer.blank_id, reduction="none", zero_infinity=True)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, int]:
        augment = functools.partial(spec_augment, cfg=self.specaugment) if model.training else None
        log_probs, out_lens = model(batch["x"], batch["x_lens"], augment=augment)
        # CTC needs a frame per token plus a blank between repeated tokens.
        targets = batch["targets"]
        repeats = ((targets[:, 1:] == targets[:, :-1]) & (targets[:, 1:] != 0)).sum(1)
        too_long = batch["target_lens"] + repeats > out_lens
        if bool(too_long.any()):
            log.warning("%d utterance(s) have more tokens than output frames; they add no loss", int(too_long.sum()))
        per_utt = self.ctc(
            log_probs.transpose(0, 1),  # (B, T', V) -> (T', B, V), the layout CTCLoss wants
            batch["targets"],
            out_lens,
            batch["target_lens"],
        )
        return per_utt.sum() / log_probs.size(0), log_probs.size(0)

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
        model.eval()
        refs, hyps = [], []
        total_loss, count = 0.0, 0
        for batch in loader:
            batch = move_batch(batch, device)
            log_probs, out_lens = model(batch["x"], batch["x_lens"])
            per_utt = self.ctc(log_probs.transpose(0, 1), batch["targets"], out_lens, batch["target_lens"])
            total_loss += float(per_utt.sum())
            count += log_probs.size(0)
            for hyp, tgt, n in zip(
                greedy_decode(log_probs.cpu(), out_lens.cpu(), blank=self.tokenizer.blank_id),
                batch["targets"].cpu(),
                batch["target_lens"].cpu(),
                strict=True,
            ):
                hyps.append(self.tokenizer.decode(hyp.token_ids))
                refs.append(self.tokenizer.decode(tgt[: int(n)].tolist()))
        model.train()
        rates = error_rates(refs, hyps)
        return {"cer": rates["cer"], "wer": rates["wer"], "loss": total_loss / max(count, 1)}


class ClassificationTask:
    """Cross-entropy over clip labels; dev metric top-1 accuracy.

    Args:
        label_smoothing: Cross-entropy label smoothing.
        feature_noise: Std of Gaussian noise added to the (B, T, D) input embeddings in training.
            Embeddings of the clips a frame backbone was fitted on are cleaner than those of
            unseen clips; the noise keeps the classifier from relying on that precision.
    """

    metric = "accuracy"
    higher_is_better = True

    def __init__(self, label_smoothing: float = 0.0, feature_noise: float = 0.0) -> None:
        self.ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.feature_noise = feature_noise

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, int]:
        x = batch["x"]
        if model.training and self.feature_noise > 0:
            x = x + self.feature_noise * torch.randn_like(x)
        logits = model(x, batch["x_lens"])
        return self.ce(logits.float(), batch["labels"]), logits.size(0)

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
        model.eval()
        correct, total, loss = 0, 0, 0.0
        for batch in loader:
            batch = move_batch(batch, device)
            logits = model(batch["x"], batch["x_lens"]).float()
            loss += float(nn.functional.cross_entropy(logits, batch["labels"], reduction="sum"))
            correct += int((logits.argmax(-1) == batch["labels"]).sum())
            total += logits.size(0)
        model.train()
        return {"accuracy": correct / max(total, 1), "loss": loss / max(total, 1)}
