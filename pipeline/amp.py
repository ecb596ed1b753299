"""Mixed precision choices shared by training, frame embedding and inference.

bf16 autocast pays off on CUDA and on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX),
where oneDNN's LSTM and convolution kernels run 1.4-1.8x faster than in fp32. On other CPUs
bf16 is emulated and slower, so ``auto`` keeps fp32 there.
"""

from __future__ import annotations

import contextlib
import functools

import torch


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX), not emulated."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (auto | fp32 | bf16 | fp16), or None for fp32.

    ``auto``: bf16 on CUDA when supported, else fp16 (with a grad scaler); on CPU, bf16 where the
    CPU has native bf16 arithmetic, else fp32. ``fp16`` is CUDA only; on CPU it means fp32.
    """
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if precision == "bf16" or (precision == "auto" and device.type == "cpu" and cpu_has_native_bf16()):
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``; a no-op context for None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
