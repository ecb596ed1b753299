"""WER/CER with jiwer, and icefall-style ``recogs-*.txt`` / ``errs-*.txt`` files.

Texts are compared after whitespace normalisation only (runs collapsed, ends stripped); case
and punctuation are the caller's business. CER counts the spaces between words as characters,
as jiwer does. An empty reference contributes no reference words, and every hypothesis word
for it counts as an insertion. Rates are fractions: errors / reference units, where a set of
references with no units at all gives 0.0 without errors and ``errors`` (as if divided by 1)
otherwise.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jiwer

from pipeline.io_utils import atomic_write_text

_WHITESPACE = re.compile(r"\s+")

# One aligned position: (kind, ref unit or None, hyp unit or None); kind is one of
# "cor", "sub", "del", "ins".
_Op = tuple[str, str | None, str | None]


def _norm(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _check(refs: Sequence[str], hyps: Sequence[str], ids: Sequence[str] | None = None) -> None:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if ids is not None:
        if len(ids) != len(refs):
            raise ValueError(f"{len(ids)} ids but {len(refs)} references")
        dupes = [k for k, n in Counter(ids).items() if n > 1]
        if dupes:
            raise ValueError(f"duplicate utterance ids: {dupes[:5]}")


def _align(refs: list[str], hyps: list[str], unit: str) -> list[list[_Op]]:
    """Per-utterance alignments from jiwer (``unit`` is "word" or "char")."""
    ops: list[list[_Op]] = [[] for _ in refs]
    keep = [i for i, r in enumerate(refs) if r]
    if keep:
        process = jiwer.process_words if unit == "word" else jiwer.process_characters
        out = process([refs[i] for i in keep], [hyps[i] for i in keep])
        for i, r_units, h_units, chunks in zip(
            keep, out.references, out.hypotheses, out.alignments, strict=True
        ):
            ops[i] = _chunks_to_ops(r_units, h_units, chunks)
    for i, r in enumerate(refs):
        if not r:  # jiwer < 4 refuses empty references: everything is an insertion
            h_units = hyps[i].split() if unit == "word" else list(hyps[i])
            ops[i] = [("ins", None, h) for h in h_units]
    return ops


def _chunks_to_ops(r: list[str], h: list[str], chunks: list[Any]) -> list[_Op]:
    ops: list[_Op] = []
    for c in chunks:
        rs, hs = r[c.ref_start_idx : c.ref_end_idx], h[c.hyp_start_idx : c.hyp_end_idx]
        if c.type == "equal":
            ops.extend(("cor", a, b) for a, b in zip(rs, hs, strict=True))
        elif c.type == "substitute":
            ops.extend(("sub", a, b) for a, b in zip(rs, hs, strict=True))
        elif c.type == "delete":
            ops.extend(("del", a, None) for a in rs)
        elif c.type == "insert":
            ops.extend(("ins", None, b) for b in hs)
        else:  # pragma: no cover - jiwer has exactly four chunk types
            raise ValueError(f"unknown jiwer alignment chunk type {c.type!r}")
    return ops


def _counts(ops: list[list[_Op]]) -> dict[str, int]:
    kinds = Counter(kind for utt in ops for kind, _, _ in utt)
    return {"sub": kinds["sub"], "del": kinds["del"], "ins": kinds["ins"], "cor": kinds["cor"]}


def _rate(errors: int, total: int) -> float:
    return errors / max(total, 1)


def error_rates(refs: Sequence[str], hyps: Sequence[str]) -> dict:
    """Word and character error rates of hypotheses against references.

    Args:
        refs: Reference transcripts, one per utterance.
        hyps: Hypotheses in the same order.

    Returns:
        ``{"wer", "cer", "num_utts", "num_words", "num_chars", "word_errors": {"sub", "del",
        "ins"}, "char_errors": {"sub", "del", "ins"}}``; rates are fractions (0.031, not 3.1).

    Raises:
        ValueError: the two lists differ in length.
    """
    _check(refs, hyps)
    r = [_norm(t) for t in refs]
    h = [_norm(t) for t in hyps]
    words = _counts(_align(r, h, "word"))
    chars = _counts(_align(r, h, "char"))
    num_words = sum(len(t.split()) for t in r)
    num_chars = sum(len(t) for t in r)
    word_errors = {k: words[k] for k in ("sub", "del", "ins")}
    char_errors = {k: chars[k] for k in ("sub", "del", "ins")}
    return {
        "wer": _rate(sum(word_errors.values()), num_words),
        "cer": _rate(sum(char_errors.values()), num_chars),
        "num_utts": len(r),
        "num_words": num_words,
        "num_chars": num_chars,
        "word_errors": word_errors,
        "char_errors": char_errors,
    }


def biased_error_rates(refs: Sequence[str], hyps: Sequence[str], biased: Iterable[str]) -> dict:
    """Error rates split between a list of biased words (hotwords) and all the others.

    The words are aligned as for :func:`error_rates`. A substitution or deletion counts against
    the reference word's side; an insertion against the biased side if the inserted word is
    one of ``biased``, else against the others (the B-WER / U-WER split of contextual-biasing
    papers). ``recall`` is the share of biased reference words aligned to themselves.

    Returns:
        ``{"recall", "b_wer", "u_wer", "u_sub_del", "num_biased", "num_other", "biased_errors",
        "other_errors"}``: ``u_sub_del`` is the others' rate without insertions (a split
        unknown word cannot raise it); the two ``*_errors`` are ``{"sub", "del", "ins"}``.

    Raises:
        ValueError: the two lists differ in length.
    """
    _check(refs, hyps)
    biased = set(biased)
    ops = _align([_norm(t) for t in refs], [_norm(t) for t in hyps], "word")
    errors: dict[bool, Counter] = {True: Counter(), False: Counter()}
    totals: Counter = Counter()
    correct = 0
    for kind, ref, hyp in (op for utt in ops for op in utt):
        side = (hyp if kind == "ins" else ref) in biased
        if kind != "ins":
            totals[side] += 1
        if kind == "cor":
            correct += side
        else:
            errors[side][kind] += 1
    b, u = ({k: errors[side][k] for k in ("sub", "del", "ins")} for side in (True, False))
    return {
        "recall": correct / max(totals[True], 1),
        "b_wer": _rate(sum(b.values()), totals[True]),
        "u_wer": _rate(sum(u.values()), totals[False]),
        "u_sub_del": _rate(u["sub"] + u["del"], totals[False]),
        "num_biased": totals[True],
        "num_other": totals[False],
        "biased_errors": b,
        "other_errors": u,
    }


def write_recogs(
    path: str | Path, ids: Sequence[str], refs: Sequence[str], hyps: Sequence[str]
) -> None:
    """Writes ``id\\tref: ...`` and ``id\\thyp: ...`` lines per utterance, sorted by id.

    Written atomically. Whitespace inside texts is normalised so each text stays on one line.
    """
    _check(refs, hyps, ids)
    lines = []
    for utt_id, ref, hyp in sorted(zip(ids, refs, hyps, strict=True), key=lambda x: str(x[0])):
        lines.append(f"{utt_id}\tref: {_norm(ref)}\n")
        lines.append(f"{utt_id}\thyp: {_norm(hyp)}\n")
    atomic_write_text(path, "".join(lines))


def _summary_line(name: str, rate: float, errors: dict, total: int) -> str:
    n_err = errors["sub"] + errors["del"] + errors["ins"]
    return (
        f"%{name} {100 * rate:.2f} [ {n_err} / {total}, {errors['ins']} ins, "
        f"{errors['del']} del, {errors['sub']} sub ]"
    )


def _render(ops: list[_Op]) -> str:
    parts = []
    for kind, r, h in ops:
        if kind == "cor":
            parts.append(str(r))
        elif kind == "sub":
            parts.append(f"({r}->{h})")
        elif kind == "del":
            parts.append(f"({r}->*)")
        else:
            parts.append(f"(*->{h})")
    return " ".join(parts)


def write_errs(
    path: str | Path,
    ids: Sequence[str],
    refs: Sequence[str],
    hyps: Sequence[str],
    rates: dict | None = None,
) -> None:
    """Writes an error report: summary, per-utterance alignments, then the commonest errors.

    Per-utterance lines mark errors icefall-style: ``(ref->hyp)`` for a substitution,
    ``(ref->*)`` for a deletion, ``(*->hyp)`` for an insertion. Written atomically.

    Args:
        path: Output file (``errs-<split>.txt``).
        ids: Utterance ids (unique).
        refs: Reference transcripts.
        hyps: Hypotheses.
        rates: The ``error_rates(refs, hyps)`` result; computed when None.
    """
    _check(refs, hyps, ids)
    if rates is None:
        rates = error_rates(refs, hyps)
    r = [_norm(t) for t in refs]
    h = [_norm(t) for t in hyps]
    ops = _align(r, h, "word")

    out = [
        _summary_line("WER", rates["wer"], rates["word_errors"], rates["num_words"]),
    ]
    if "char_errors" in rates:
        out.append(_summary_line("CER", rates["cer"], rates["char_errors"], rates["num_chars"]))
    else:
        out.append(f"%CER {100 * rates['cer']:.2f}")
    out.append(f"utterances: {rates['num_utts']}")
    out.append("")
    out.append("PER-UTT DETAILS: corr or (ref->hyp)")
    order = sorted(range(len(r)), key=lambda i: str(ids[i]))
    for i in order:
        n_err = sum(kind != "cor" for kind, _, _ in ops[i])
        out.append(f"{ids[i]}:\t[{n_err} err]\t{_render(ops[i])}")

    subs: Counter[tuple[str | None, str | None]] = Counter()
    dels: Counter[str | None] = Counter()
    ins: Counter[str | None] = Counter()
    for utt in ops:
        for kind, a, b in utt:
            if kind == "sub":
                subs[(a, b)] += 1
            elif kind == "del":
                dels[a] += 1
            elif kind == "ins":
                ins[b] += 1
    out.append("")
    out.append("SUBSTITUTIONS: count ref -> hyp")
    out.extend(f"{n}\t{a} -> {b}" for (a, b), n in _ranked(subs))
    out.append("")
    out.append("DELETIONS: count ref")
    out.extend(f"{n}\t{a}" for a, n in _ranked(dels))
    out.append("")
    out.append("INSERTIONS: count hyp")
    out.extend(f"{n}\t{b}" for b, n in _ranked(ins))
    atomic_write_text(path, "\n".join(out) + "\n")


def _ranked(counter: Counter) -> list[tuple[Any, int]]:
    """Most frequent first, ties broken by key so the file is deterministic."""
    return sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
