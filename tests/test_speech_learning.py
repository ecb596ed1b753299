"""A small CTC model really learns: it overfits a tiny generated set to CER < 10%."""

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from data_prep.features import FeatureConfig, compute_cmvn, extract_features
from data_prep.manifest import read_manifest
from data_prep.store import FeatureStore
from pipeline.data import FeatureDataset, build_entries, collate_ctc, length_sorted_batches
from pipeline.models import bilstm_ctc
from pipeline.tokenizer import CharTokenizer
from pipeline.training import TrainConfig, Trainer
from pipeline.training.augment import SpecAugmentConfig
from pipeline.training.tasks import CTCTask


@pytest.mark.slow
def test_small_model_overfits_tiny_corpus(tiny_speech_corpus, tmp_path: Path):
    manifest = tiny_speech_corpus["train"]
    store_dir = tmp_path / "feats"
    extract_features(manifest, store_dir, FeatureConfig(), num_workers=1)
    store = FeatureStore(store_dir)
    tok = CharTokenizer()
    texts = {r["id"]: r["text"] for r in read_manifest(manifest, "speech")}
    entries, lengths = build_entries(store, store.lengths, lambda i: tok.encode(texts[i]))
    data = FeatureDataset(entries, lengths)
    assert len(data) >= 20
    torch.manual_seed(0)
    model = bilstm_ctc(cell="gru", hidden_size=128, num_layers=2, subsampling=2, dropout=0.0)
    mean, std = compute_cmvn(store)
    model.cmvn.set_stats(torch.from_numpy(mean), torch.from_numpy(std))
    loader = DataLoader(data, batch_sampler=length_sorted_batches(lengths, 20000), collate_fn=collate_ctc)
    cfg = TrainConfig(
        max_epochs=36, lr=3e-3, warmup_steps=20, max_frames=1000, max_batch_size=2,
        average_last=1, progress=False, final_lr_ratio=0.1,
    )
    task = CTCTask(tok, SpecAugmentConfig(enabled=False))
    before = task.evaluate(model, loader, torch.device("cpu"))["cer"]
    result = Trainer(model, task, data, lengths, collate_ctc, loader, cfg, tmp_path / "exp").fit()
    assert before > 0.5
    assert result.best_metric < 0.10, result.history[-3:]
