"""ONNX export: the graphs against the torch models on every encoder configuration, and
`seqrec export` on speech and video bundles."""

from __future__ import annotations

import itertools

import numpy as np
import onnxruntime as ort
import pytest
import torch

from pipeline.inference import onnx_export
from pipeline.models.ctc_model import CTCModel, CTCModelConfig
from pipeline.models.encoder import EncoderConfig

CELLS, DIRECTIONS, SUBSAMPLING = ("rnn", "lstm", "gru"), (True, False), (1, 2, 4, 8)
#: (ctc_upsample, utterance_cmn, layer_norm): each outer configuration takes the next in turn,
#: so every combination meets every cell.
INNER = list(itertools.product((1, 2), (False, True), (False, True)))
GRID = [(*outer, *INNER[i % len(INNER)]) for i, outer in enumerate(itertools.product(CELLS, DIRECTIONS, SUBSAMPLING))]


def _session(graph: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(graph, providers=["CPUExecutionProvider"])


def _speech_model(cell, bidirectional, subsampling, upsample, cmn, norm, input_layers=1, upstream_blocks=0) -> CTCModel:
    cfg = CTCModelConfig(
        input_dim=64 if upstream_blocks else 12 * input_layers, input_layers=input_layers, vocab_size=7,
        ctc_upsample=upsample, utterance_cmn=cmn, upstream_blocks=upstream_blocks,
        encoder=EncoderConfig(cell=cell, hidden_size=8, num_layers=2, bidirectional=bidirectional,
                              subsampling=subsampling, layer_norm=norm),
    )  # fmt: skip
    model = CTCModel(cfg).eval()
    model.cmvn.set_stats(torch.randn(cfg.input_dim), torch.rand(cfg.input_dim) + 0.5)
    with torch.no_grad():  # non-trivial norms and layer mix, so the graph must apply them
        for ln in model.encoder.norms or []:
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.normal_(0.0, 0.3)
        if model.layer_mix is not None:
            model.layer_mix.logits.normal_()
    return model


def _check_speech(model: CTCModel) -> None:
    session = _session(onnx_export.speech_onnx(model))
    lens = torch.tensor([23, 16, 9, 1])  # odd and even lengths, in one padded batch
    x = torch.randn(4, 23, model.cfg.input_dim) * 2
    with torch.no_grad():
        want, want_lens = model(x, lens)
    got, got_lens = session.run(None, {"features": x.numpy(), "lengths": lens.numpy()})
    np.testing.assert_array_equal(got_lens, want_lens.numpy())
    for b in range(4):
        n = int(want_lens[b])
        np.testing.assert_allclose(got[b, :n], want[b, :n].numpy(), atol=1e-4)
    # one utterance alone, longer than the traced example: the time axis is dynamic
    x1 = torch.randn(1, 101, model.cfg.input_dim)
    with torch.no_grad():
        want1, _ = model(x1, torch.tensor([101]))
    got1, _ = session.run(None, {"features": x1.numpy(), "lengths": np.array([101])})
    np.testing.assert_allclose(got1, want1.numpy(), atol=1e-4)


@pytest.mark.parametrize("cell,bidirectional,subsampling,upsample,cmn,norm", GRID)
def test_speech_graph_matches_torch(cell, bidirectional, subsampling, upsample, cmn, norm) -> None:
    torch.manual_seed(hash((cell, bidirectional, subsampling)) % 1000)
    _check_speech(_speech_model(cell, bidirectional, subsampling, upsample, cmn, norm))


def test_speech_graph_with_an_upstream_layer_mix() -> None:
    torch.manual_seed(5)
    _check_speech(_speech_model("lstm", True, 2, 2, True, True, input_layers=3))


def test_speech_graph_with_upstream_top_blocks() -> None:
    """Fine-tuned upstream blocks (masked attention) export too. The graph holds one attention
    window, which is what the model computes for inputs of up to 30 s (1500 frames)."""
    torch.manual_seed(6)
    _check_speech(_speech_model("lstm", True, 2, 2, True, True, upstream_blocks=2))


def test_grid_covers_every_encoder_option() -> None:
    """A new encoder or model option must join the parity grid above."""
    from pipeline.config import to_dict

    assert set(to_dict(EncoderConfig())) == {
        "cell", "hidden_size", "num_layers", "bidirectional", "subsampling", "dropout", "impl", "layer_norm",
    }  # fmt: skip
    assert set(to_dict(CTCModelConfig())) == {
        "input_dim", "input_layers", "vocab_size", "encoder", "ctc_upsample", "utterance_cmn", "upstream_blocks",
    }  # fmt: skip
    assert {(g[0], g[3:]) for g in GRID} == set(itertools.product(CELLS, INNER))  # every cell, every combination
    assert {g[:3] for g in GRID} == set(itertools.product(CELLS, DIRECTIONS, SUBSAMPLING))


def test_video_graph_matches_torch() -> None:
    from data_prep.frame_embed import FrameEmbedder, build_backbone
    from pipeline.models.classifier import bilstm_classifier

    torch.manual_seed(0)
    backbone, dim = build_backbone("resnet18", "none")
    embedder = FrameEmbedder(backbone, dim).for_inference().eval()
    classifier = bilstm_classifier(input_dim=embedder.dim, num_classes=4, hidden_size=16, num_layers=1).eval()
    session = _session(onnx_export.video_onnx(embedder, classifier, frame_size=32))
    frames = torch.randint(0, 256, (3, 8, 32, 32, 3), dtype=torch.uint8)
    lens = torch.tensor([8, 6, 2])
    with torch.no_grad():
        want = onnx_export.VideoGraph(embedder, classifier)(frames, lens)
        direct = classifier(torch.from_numpy(embedder.embed(frames[0].numpy()))[None], lens[:1])
    (got,) = session.run(None, {"frames": frames.numpy(), "lengths": lens.numpy()})
    np.testing.assert_allclose(got, want.numpy(), atol=1e-3)
    # The wrapper is the labeller's path (which embeds in batches, so float sums differ slightly).
    np.testing.assert_allclose(got[:1], direct.numpy(), atol=1e-2)


def test_half_storage_is_lossless_and_int8_is_close() -> None:
    """float16-exact weights stored as float16 give the very same outputs from a smaller file;
    int8 (per channel) is about four times smaller than float32 and close to it."""
    torch.manual_seed(3)
    model = CTCModel(CTCModelConfig(input_dim=40, vocab_size=7, encoder=EncoderConfig(
        cell="lstm", hidden_size=48, num_layers=2, bidirectional=True, subsampling=2))).eval()  # fmt: skip
    with torch.no_grad():  # float16-exact weights, as a shipped model's
        for p in model.parameters():
            p.copy_(p.half().float())
    x, lens = torch.randn(1, 40, model.cfg.input_dim), np.array([40])
    plain = onnx_export._export(model, (x, torch.tensor([40])), ["features", "lengths"], ["log_probs", "out_lengths"],
                                {"features": {1: "time"}, "log_probs": {1: "out_time"}})  # fmt: skip
    half = onnx_export.speech_onnx(model)
    assert len(half) < 0.75 * len(plain)
    feeds = {"features": x.numpy(), "lengths": lens}
    np.testing.assert_array_equal(_session(half).run(None, feeds)[0], _session(plain).run(None, feeds)[0])
    int8 = onnx_export.speech_onnx(model, quantize="int8")
    assert len(int8) < 0.5 * len(plain)
    np.testing.assert_allclose(_session(int8).run(None, feeds)[0], _session(plain).run(None, feeds)[0], atol=0.5)
    with pytest.raises(ValueError, match="unknown quantization"):
        onnx_export.speech_onnx(model, quantize="int4")
