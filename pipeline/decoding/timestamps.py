"""Word timestamps from CTC hypotheses, and forced alignment of a known transcript.

Times are in seconds: ``frame * frame_shift_s``, where ``frame_shift_s`` is the duration of
one encoder frame (feature hop times the encoder's subsampling factor). Importing this module
does not import torch (only :func:`forced_align_words` needs it), so the torch-free lite engine
uses :func:`word_timestamps` too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipeline.decoding.types import CTCHypothesis
from pipeline.errors import SeqrecError
from pipeline.tokenizer import CharTokenizer

if TYPE_CHECKING:
    from torch import Tensor


class AlignmentError(SeqrecError, ValueError):
    """A transcript cannot be aligned to the given log-probabilities."""


def _group_words(
    spans: Sequence[tuple[int, int, int]], tokenizer: CharTokenizer, frame_shift_s: float,
    token_logp: Sequence[float] | None = None,
) -> list[dict]:
    """Groups ``(token_id, start_frame, end_frame_exclusive)`` spans into timed words; with
    ``token_logp`` (the log-posterior of each span's token), each word gets a ``confidence``."""
    words: list[dict] = []
    chars: list[str] = []
    logps: list[float] = []
    start = end = 0
    marks = list(token_logp) if token_logp is not None else [0.0] * len(spans)
    for (tok, first, last), logp in zip([*spans, (tokenizer.space_id, -1, -1)], [*marks, 0.0], strict=True):
        if tok == tokenizer.space_id:
            if chars:
                word = {"word": "".join(chars), "start": round(start * frame_shift_s, 6),
                        "end": round(end * frame_shift_s, 6)}  # fmt: skip
                if token_logp is not None:
                    word["confidence"] = round(math.exp(sum(logps) / len(logps)), 3)
                words.append(word)
            chars, logps = [], []
            continue
        if tok == tokenizer.blank_id:
            continue
        if not chars:
            start = first
        chars.append(tokenizer.tokens[tok])
        logps.append(logp)
        end = last
    return words


def word_timestamps(
    hyp: CTCHypothesis,
    tokenizer: CharTokenizer,
    frame_shift_s: float,
    *,
    num_frames: int | None = None,
    log_probs: Any = None,
) -> list[dict]:
    """Splits a hypothesis into words at space tokens and times each word.

    A word starts at its first character's frame and ends at the frame after its last
    character (never past the next token's frame, nor past ``num_frames``). With
    ``log_probs`` (the (T, V) CTC log-posteriors the hypothesis was decoded from, numpy or
    torch), each word also gets a ``confidence`` in (0, 1]: the geometric mean of its
    characters' posteriors at the frames that emit them. A word the LM chose against the
    acoustics scores low.

    Args:
        hyp: A decoded hypothesis (token ids and their start frames).
        tokenizer: The tokenizer that defines the space and the characters.
        frame_shift_s: Seconds per encoder frame.
        num_frames: Valid frames of the utterance, to cap the last word's end.
        log_probs: Optional (T, V) log-posteriors, for each word's confidence.

    Returns:
        ``[{"word": str, "start": float, "end": float}, ...]`` in seconds, plus
        ``"confidence"`` with ``log_probs``.
    """
    if frame_shift_s <= 0:
        raise ValueError(f"frame_shift_s must be positive, got {frame_shift_s}")
    ids, frames = hyp.token_ids, hyp.frames
    spans = []
    for k, (tok, frame) in enumerate(zip(ids, frames, strict=True)):
        end = frame + 1
        if k + 1 < len(frames):
            end = min(end, frames[k + 1])
        if num_frames is not None:
            end = min(end, num_frames)
        spans.append((int(tok), int(frame), max(end, int(frame))))
    logp = None
    if log_probs is not None:
        logp = [float(log_probs[frame][tok]) for tok, frame, _ in spans]
    return _group_words(spans, tokenizer, frame_shift_s, logp)


def forced_align_words(
    log_probs: Tensor,
    token_ids: Sequence[int] | str,
    tokenizer: CharTokenizer,
    frame_shift_s: float,
) -> list[dict]:
    """Aligns a known transcript to CTC outputs and returns timed words.

    Uses ``torchaudio.functional.forced_align`` (Viterbi over the CTC graph). Each word
    spans from its first character's first frame to its last character's last frame + 1.

    Args:
        log_probs: (T, V) log-probabilities of one utterance (only its valid frames).
        token_ids: The transcript as token ids (no blanks), or as text to encode.
        tokenizer: The tokenizer that produced ``token_ids``.
        frame_shift_s: Seconds per encoder frame.

    Returns:
        ``[{"word": str, "start": float, "end": float}, ...]`` in seconds.

    Raises:
        AlignmentError: the transcript holds blanks or unknown ids, or is too long for T.
    """
    # lazy: torch and torchaudio only for forced alignment on the torch engine
    import torch
    import torchaudio.functional as taf

    if frame_shift_s <= 0:
        raise ValueError(f"frame_shift_s must be positive, got {frame_shift_s}")
    if log_probs.dim() != 2:
        raise AlignmentError(f"log_probs must be (T, V), got shape {tuple(log_probs.shape)}")
    ids = tokenizer.encode(token_ids) if isinstance(token_ids, str) else [int(i) for i in token_ids]
    if not ids:
        return []
    num_frames, vocab = log_probs.shape
    bad = [i for i in ids if i == tokenizer.blank_id or not 0 <= i < vocab]
    if bad:
        raise AlignmentError(f"transcript holds blank or out-of-range ids {bad[:5]}")
    # CTC needs a blank between repeated labels, so repeats cost one extra frame each.
    needed = len(ids) + sum(a == b for a, b in zip(ids[:-1], ids[1:], strict=True))
    if needed > num_frames:
        raise AlignmentError(
            f"transcript needs at least {needed} frames, log_probs has {num_frames}"
        )

    emissions = log_probs.detach().float().unsqueeze(0)  # (T, V) -> (1, T, V)
    targets = torch.tensor([ids], dtype=torch.int32, device=emissions.device)
    alignment, scores = taf.forced_align(emissions, targets, blank=tokenizer.blank_id)
    token_spans = taf.merge_tokens(alignment[0].cpu(), scores[0].cpu(), blank=tokenizer.blank_id)
    spans = [(s.token, s.start, s.end) for s in token_spans]
    return _group_words(spans, tokenizer, frame_shift_s)
