"""Word n-gram language models: a modified Kneser-Ney ARPA writer and an ARPA checker.

No maintained ARPA builder installs offline here (KenLM's ``lmplz`` is in neither PyPI nor
Debian), so this module writes the model itself; KenLM (inside flashlight-text) loads it
for decoding. Torch-free.

The model is interpolated modified Kneser-Ney (Chen & Goodman, 1998), as ``lmplz`` builds it:

* counts of every n-gram of a sentence padded as ``<s> w1 .. wk </s>``;
* *adjusted* counts: the highest order and n-grams starting with ``<s>`` keep their counts;
  every other lower-order n-gram counts the distinct words seen to its left;
* three discounts per order from the counts of adjusted counts ``t1..t4``:
  ``Y = t1 / (t1 + 2 t2)``, ``D1 = 1 - 2Y t2/t1``, ``D2 = 2 - 3Y t3/t2``, ``D3+ = 3 - 4Y t4/t3``
  (0.5, 1.0, 1.5 when the data are too small for those);
* ``p(w | h) = max(a(hw) - D, 0) / sum_v a(hv) + gamma(h) p(w | h')``, where ``h'`` drops the
  oldest word and ``gamma(h)`` is the discounted mass; unigrams interpolate with the uniform
  distribution over the vocabulary (``<unk>`` included, ``<s>`` excluded), so ``<unk>`` gets
  a small probability of its own.

Pruning drops n-grams of order >= 2 whose raw count is at most ``prune[n-1]``; the backoff
weights are then recomputed so that every context's distribution still sums to one (as SRILM
renormalises). Probabilities and backoff weights are written in log10, as ARPA wants.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import InputError, SeqrecError
from pipeline.io_utils import atomic_open
from pipeline.limits import LimitError, bounded_lines, check_regular_file, current_limits

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
#: What ARPA files write for log10(0) (the probability of ``<s>``).
LOG_ZERO = -99.0
#: Discounts used for an order whose counts of counts cannot give valid ones.
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)

Ngram = tuple[str, ...]


class ArpaError(SeqrecError, ValueError):
    """A file is not a usable ARPA language model (the message names the file and the problem)."""


@dataclass
class NgramModel:
    """A backoff n-gram model: per order, n-gram -> (log10 prob, log10 backoff).

    Attributes:
        order: Highest n-gram order N.
        grams: ``grams[n - 1]`` maps each n-gram (a tuple of n words) to
            ``(log10 p(w_n | w_1..w_{n-1}), log10 backoff)``; the highest order's backoff is 0.
        discounts: ``discounts[n - 1]`` = (D1, D2, D3+) used for order n.
    """

    order: int
    grams: list[dict[Ngram, tuple[float, float]]]
    discounts: list[tuple[float, float, float]] = field(default_factory=list)

    @property
    def vocabulary(self) -> list[str]:
        """Unigrams in file order (``<unk>``, ``<s>``, ``</s>`` included)."""
        return [g[0] for g in self.grams[0]]

    def log10_prob(self, word: str, context: Sequence[str] = ()) -> float:
        """log10 p(word | context) by the ARPA backoff rule (unknown words score as ``<unk>``).

        Args:
            word: The predicted word.
            context: Preceding words, oldest first; only the last ``order - 1`` matter.
        """
        unigrams = self.grams[0]
        if (word,) not in unigrams:
            word = UNK
        ctx = (
            tuple(w if (w,) in unigrams else UNK for w in context)[-(self.order - 1) :]
            if self.order > 1
            else ()
        )
        backoff = 0.0
        while True:
            gram = (*ctx, word)
            entry = self.grams[len(gram) - 1].get(gram)
            if entry is not None:
                return backoff + entry[0]
            hist = self.grams[len(ctx) - 1].get(ctx) if ctx else None
            if hist is not None:
                backoff += hist[1]
            ctx = ctx[1:]

    def write_arpa(self, path: str | Path) -> None:
        """Writes the model as an ARPA text file (atomically); gzipped if ``path`` ends in ``.gz``."""
        with atomic_open(path, "wb") as raw:
            if str(path).endswith(".gz"):  # mtime 0: the same model gives the same bytes
                with (
                    gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
                    io.TextIOWrapper(gz, "utf-8") as f,
                ):
                    self._write(f)
            else:
                f = io.TextIOWrapper(raw, "utf-8")
                self._write(f)
                f.flush()
                f.detach()  # atomic_open closes (and fsyncs) the file itself

    def _write(self, f) -> None:
        f.write("\\data\\\n")
        for n, grams in enumerate(self.grams, 1):
            f.write(f"ngram {n}={len(grams)}\n")
        for n, grams in enumerate(self.grams, 1):
            f.write(f"\n\\{n}-grams:\n")
            last = n == self.order
            for gram, (lp, bow) in grams.items():
                words = " ".join(gram)
                if last:
                    f.write(f"{lp:.6f}\t{words}\n")
                else:
                    f.write(f"{lp:.6f}\t{words}\t{bow:.6f}\n")
        f.write("\n\\end\\\n")


def _discount(count: float, ds: Sequence[float]) -> float:
    """The discount of an adjusted count: D1, D2 or D3+."""
    return ds[0] if count == 1 else ds[1] if count == 2 else ds[2]


def _discounts(adjusted: Counter) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts (D1, D2, D3+) from counts of adjusted counts."""
    t = Counter(min(c, 5) for c in adjusted.values())
    t1, t2, t3, t4 = t[1], t[2], t[3], t[4]
    if min(t1, t2, t3, t4) == 0:
        return FALLBACK_DISCOUNTS
    y = t1 / (t1 + 2 * t2)
    ds = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    if not all(0 < d < k for d, k in zip(ds, (1, 2, 3), strict=True)):
        return FALLBACK_DISCOUNTS
    return ds


def count_ngrams(sentences: Iterable[str], order: int) -> list[Counter]:
    """Raw counts of every n-gram, n = 1..order, over ``<s> words </s>`` (``<s>`` alone uncounted).

    Args:
        sentences: Normalised sentences (words split on whitespace); empty ones are skipped.
        order: Highest order N >= 1.

    Returns:
        ``counts[n - 1]``: Counter of n-gram tuples.
    """
    counts = [Counter() for _ in range(order)]
    for sentence in sentences:
        words = sentence.split()
        if not words:
            continue
        padded = [BOS, *words, EOS]
        for n in range(1, order + 1):
            c = counts[n - 1]
            for i in range(len(padded) - n + 1):
                gram = tuple(padded[i : i + n])
                if n == 1 and gram[0] == BOS:
                    continue
                c[gram] += 1
    return counts


def _adjusted_counts(counts: list[Counter]) -> list[Counter]:
    """Kneser-Ney adjusted counts: left-continuation counts below the top order (except ``<s> ..``)."""
    order = len(counts)
    adjusted = [Counter() for _ in range(order)]
    adjusted[-1] = Counter(counts[-1])
    for n in range(order - 1, 0, -1):  # order n from the distinct left extensions at n + 1
        cont: Counter = Counter()
        for gram in counts[n]:
            cont[gram[1:]] += 1
        a = adjusted[n - 1]
        for gram, c in counts[n - 1].items():
            # every occurrence of an n-gram not starting with <s> has a word to its left
            a[gram] = c if gram[0] == BOS else cont[gram]
    return adjusted


def build_kneser_ney(
    sentences: Iterable[str],
    order: int = 3,
    *,
    prune: Sequence[int] | None = None,
    discounts: Sequence[tuple[float, float, float]] | None = None,
) -> NgramModel:
    """Estimates an interpolated modified Kneser-Ney model (see the module docstring).

    Args:
        sentences: Training sentences, words separated by spaces (never dev or test text).
        order: N, 1 or more (3 or 4 for decoding).
        prune: Per order, drop n-grams with a raw count at most this (``prune[0]`` must be 0:
            unigrams are never pruned); non-decreasing, so kept n-grams keep their contexts.
            None keeps everything.
        discounts: Per order (D1, D2, D3+) instead of the estimated ones (for tests).

    Returns:
        The model; ``<unk>``, ``<s>`` and ``</s>`` are in its vocabulary.

    Raises:
        ValueError: bad ``order``/``prune``/``discounts``, or no sentence with a word.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    prune = [0] * order if prune is None else [int(p) for p in prune]
    if len(prune) != order or prune[0] != 0 or any(p < 0 for p in prune):
        raise ValueError(
            f"prune must have {order} non-negative values starting with 0, got {prune}"
        )
    if any(b < a for a, b in zip(prune, prune[1:], strict=False)):
        raise ValueError(f"prune thresholds must not decrease with the order, got {prune}")
    if discounts is not None and (len(discounts) != order or any(len(d) != 3 for d in discounts)):
        raise ValueError(f"discounts must give (D1, D2, D3+) for each of the {order} orders")

    counts = count_ngrams(sentences, order)
    if not counts[0]:
        raise ValueError("no words to build a language model from")
    adjusted = _adjusted_counts(counts)
    ds = (
        [tuple(d) for d in discounts]
        if discounts
        else [_discounts(adjusted[n]) for n in range(order)]
    )

    # Interpolated probabilities, lowest order first.
    vocab = sorted(g[0] for g in counts[0])  # </s> and the words (no <s>)
    num_predictable = len(vocab) + (UNK not in vocab)  # uniform over words, </s> and <unk>
    probs: list[dict[Ngram, float]] = []
    gammas: list[dict[Ngram, float]] = []
    for n in range(1, order + 1):
        a = adjusted[n - 1]
        denom: dict[Ngram, float] = defaultdict(float)
        mass: dict[Ngram, float] = defaultdict(float)
        for gram, c in a.items():
            ctx = gram[:-1]
            denom[ctx] += c
            mass[ctx] += _discount(c, ds[n - 1])
        gamma = {ctx: mass[ctx] / denom[ctx] for ctx in denom}
        p: dict[Ngram, float] = {}
        for gram, c in a.items():
            ctx = gram[:-1]
            d = _discount(c, ds[n - 1])
            lower = (
                1.0 / num_predictable
                if n == 1
                else _interp(probs, gammas, gram[1:], num_predictable)
            )
            p[gram] = max(c - d, 0.0) / denom[ctx] + gamma[ctx] * lower
        if n == 1 and (UNK,) not in p:
            p[(UNK,)] = gamma[()] / num_predictable
        probs.append(p)
        gammas.append(gamma)

    # Keep the unpruned n-grams; recompute the backoffs so each context still sums to one.
    kept: list[dict[Ngram, float]] = [probs[0]]
    for n in range(2, order + 1):
        kept.append(
            {g: lp for g, lp in probs[n - 1].items() if counts[n - 1].get(g, 0) > prune[n - 1]}
        )
    model = NgramModel(order=order, grams=[{} for _ in range(order)], discounts=ds)
    model.grams[0][(UNK,)] = (math.log10(kept[0][(UNK,)]), 0.0)
    model.grams[0][(BOS,)] = (LOG_ZERO, 0.0)
    for w in vocab:
        model.grams[0][(w,)] = (math.log10(kept[0][(w,)]), 0.0)
    for n in range(2, order + 1):
        for gram, pr in sorted(kept[n - 1].items()):
            model.grams[n - 1][gram] = (math.log10(pr), 0.0)
    for n in range(1, order):  # backoff of each order-n context from the order-(n+1) n-grams
        seen_p: dict[Ngram, float] = defaultdict(float)
        seen_lower: dict[Ngram, float] = defaultdict(float)
        for gram, pr in kept[n].items():
            seen_p[gram[:-1]] += pr
            seen_lower[gram[:-1]] += 10 ** model.log10_prob(
                gram[-1], gram[1:-1]
            )  # the pruned model's
        grams = model.grams[n - 1]
        for ctx in grams:
            if ctx not in seen_p:
                continue
            num = max(1.0 - seen_p[ctx], 1e-12)
            den = max(1.0 - seen_lower[ctx], 1e-12)
            grams[ctx] = (grams[ctx][0], math.log10(num / den))
    return model


def _interp(
    probs: list[dict[Ngram, float]], gammas: list[dict[Ngram, float]], gram: Ngram, v: int
) -> float:
    """Interpolated probability of ``gram`` from the orders already estimated (for an unseen one too)."""
    n = len(gram)
    p = probs[n - 1].get(gram)
    if p is not None:
        return p
    if n == 1:
        return gammas[0][()] / v
    gamma = gammas[n - 1].get(gram[:-1], 1.0)
    return gamma * _interp(probs, gammas, gram[1:], v)


# --------------------------------------------------------------------------- checking
_HEADER_RE = re.compile(r"^ngram (\d+)=(\d+)$")
_SECTION_RE = re.compile(r"^\\(\d+)-grams:$")
#: The first bytes of a KenLM binary model.
KENLM_BINARY_MAGIC = b"mmap lm http://kheafield.com/code"
GZIP_MAGIC = b"\x1f\x8b"
#: A header number with more digits than this stands for "too many" (no int() of 5000 digits).
_MAX_DIGITS = 18


def _header_int(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS


@contextlib.contextmanager
def _arpa_lines(path: Path) -> Iterator[Iterator[str]]:
    """The lines of an ARPA file (through gzip when compressed), read within the run's limits.

    Bytes after decompression are bounded by ``max_lm_bytes`` and each line by
    ``max_line_bytes`` (:func:`pipeline.limits.bounded_lines`), so a gzip bomb, a sparse file or
    a file without newlines stops at the first limit it reaches, having held one line at most.
    """
    with open(path, "rb") as raw:
        gz = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        with gzip.GzipFile(fileobj=raw, mode="rb") if gz else contextlib.nullcontext(raw) as fb:
            yield bounded_lines(fb, path, "language model", total="max_lm_bytes")


@dataclass(frozen=True)
class ArpaInfo:
    """What :func:`check_arpa` read from a model file.

    Attributes:
        order: Highest order (0 for a KenLM binary, whose header is not read here).
        counts: n-grams per order, as the header declares and the sections hold.
        words: The unigrams (empty for a KenLM binary).
        binary: True for a KenLM binary model.
    """

    order: int
    counts: tuple[int, ...]
    words: tuple[str, ...]
    binary: bool = False


def check_arpa(path: str | Path, *, full: bool = True) -> ArpaInfo:
    """Reads an ARPA file through and checks its structure (KenLM binaries: the magic only).

    Checks the ``\\data\\`` header, that each ``\\n-grams:`` section holds as many well-formed
    lines (a log10 probability, n words, an optional log10 backoff) as declared, and the final
    ``\\end\\``, so a truncated or foreign file fails here with one line rather than inside the
    decoder.

    Everything is bounded by the run's limits (:func:`pipeline.limits.current_limits`) before
    KenLM, which allocates from the header's counts, ever sees the file: the path must be a
    regular file (a FIFO or device is refused from its ``stat``), the bytes after decompression
    and each line are bounded while reading, and the header's counts are refused at once when
    they would need more than ``max_lm_bytes`` of lines or more 1-grams (words) than
    ``max_lexicon_words``. A KenLM binary may not be larger than ``max_lm_bytes``.

    ``full=False`` checks the header and reads the rest through within the limits, without
    parsing each n-gram line (KenLM refuses a malformed one with an error of its own) and
    without collecting the words: for a bundle's own LM, whose lexicon lists the words and
    whose sha256 the bundle records. About five times faster on the shipped model's LM.

    Raises:
        ArpaError: the file is missing, not a regular file, empty, truncated or not an ARPA
            model (names the file).
        LimitError: the file is past one of the limits (names the file and the limit's flag).
    """
    path = Path(path)
    limits = current_limits()
    try:
        st = check_regular_file(path, "language model file")
    except InputError as exc:
        raise ArpaError(str(exc)) from None
    try:
        with open(path, "rb") as fb:
            head = fb.read(len(KENLM_BINARY_MAGIC))
        gz = head[:2] == GZIP_MAGIC
        if gz:
            with gzip.open(path, "rb") as fb:
                head = fb.read(len(KENLM_BINARY_MAGIC))
    except (OSError, EOFError) as exc:
        raise ArpaError(
            f"{path}: cannot read language model: {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    binary = head == KENLM_BINARY_MAGIC
    if (binary or not gz) and st.st_size > limits.max_lm_bytes:  # a gzip is bounded as it is read
        what = "KenLM binary" if binary else "language model"
        raise LimitError(path, f"the {what} is larger than allowed", "max_lm_bytes", limits.max_lm_bytes)
    if binary:
        return ArpaInfo(order=0, counts=(), words=(), binary=True)
    if not head:
        raise ArpaError(f"{path}: language model file is empty")

    def fail(lineno: int, problem: str) -> ArpaError:
        return ArpaError(f"{path}: not a valid ARPA language model (line {lineno}: {problem})")

    declared: list[int] = []
    words: list[str] = []
    try:
        with _arpa_lines(path) as f:
            lineno = 0
            line = ""
            for line in f:  # header: blank lines, then \data\
                lineno += 1
                if line.strip():
                    break
            if line.strip() != "\\data\\":
                raise fail(lineno, "expected '\\data\\'")
            for line in f:
                lineno += 1
                m = _HEADER_RE.match(line.strip())
                if m is None:
                    break
                if _header_int(m.group(1)) != len(declared) + 1:
                    raise fail(lineno, f"n-gram orders out of order ({line.strip()[:40]!r})")
                declared.append(_header_int(m.group(2)))
            if not declared:
                raise fail(lineno, "no 'ngram N=count' lines")
            _check_declared(path, declared)
            if not full:
                for _ in f:  # bounded reading only: bytes, and the length of each line
                    pass
                return ArpaInfo(order=len(declared), counts=tuple(declared), words=())
            for n, expected in enumerate(declared, 1):
                while not line.strip():
                    line = next(f, None)
                    lineno += 1
                    if line is None:
                        raise fail(lineno, f"ends before the {n}-grams section")
                m = _SECTION_RE.match(line.strip())
                if m is None or _header_int(m.group(1)) != n:
                    raise fail(lineno, f"expected '\\{n}-grams:', got {line.strip()[:40]!r}")
                seen = 0
                for line in f:
                    lineno += 1
                    parts = line.split()
                    if not parts:
                        break
                    if len(parts) not in (n + 1, n + 2):
                        raise fail(lineno, f"a {n}-gram line needs {n + 1} or {n + 2} fields")
                    try:
                        float(parts[0])
                        if len(parts) == n + 2:
                            float(parts[-1])
                    except ValueError:
                        raise fail(lineno, f"not a number in {line.strip()[:60]!r}") from None
                    seen += 1
                    if seen > expected:
                        raise fail(lineno, f"more {n}-grams than the header's {expected}")
                    if n == 1:
                        words.append(parts[1])
                else:
                    line = ""
                if seen != expected:
                    raise fail(
                        lineno,
                        f"{seen} {n}-grams where the header declares {expected} (truncated?)",
                    )
            ended = line.strip() == "\\end\\" or any(r.strip() == "\\end\\" for r in f)
            if not ended:
                raise fail(lineno, "no '\\end\\' (truncated?)")
            for _ in f:  # KenLM reads what follows too: it must be within the limits as well
                pass
    except UnicodeDecodeError as exc:
        raise ArpaError(f"{path}: not a valid ARPA language model (not UTF-8 text)") from exc
    except (OSError, EOFError, zlib.error) as exc:  # EOFError: a cut gzip stream
        raise ArpaError(
            f"{path}: cannot read language model: {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    return ArpaInfo(order=len(declared), counts=tuple(declared), words=tuple(words))


def _check_declared(path: Path, declared: list[int]) -> None:
    """Refuses header counts that imply more than the limits allow, before any section is read.

    KenLM sizes its tables from these counts; each n-gram needs a line of at least ``2n + 2``
    bytes (``p w1 .. wn``), and the 1-grams are the words that become a lexicon.
    """
    limits = current_limits()
    if declared[0] > limits.max_lexicon_words:
        raise LimitError(
            path, f"the header declares {declared[0]:,} words (1-grams)", "max_lexicon_words",
            limits.max_lexicon_words,
        )  # fmt: skip
    need = sum(count * (2 * n + 2) for n, count in enumerate(declared, 1))
    if need > limits.max_lm_bytes:
        raise LimitError(
            path, f"the header declares {sum(declared):,} n-grams, at least {need:,} bytes of lines",
            "max_lm_bytes", limits.max_lm_bytes,
        )  # fmt: skip


def read_arpa(path: str | Path) -> NgramModel:
    """Loads a (checked) ARPA file into an :class:`NgramModel` (for tests and small models)."""
    info = check_arpa(path)
    if info.binary:
        raise ArpaError(f"{path}: a KenLM binary cannot be read back as ARPA")
    grams: list[dict[Ngram, tuple[float, float]]] = [{} for _ in range(info.order)]
    n = 0
    with _arpa_lines(Path(path)) as f:
        for line in f:
            m = _SECTION_RE.match(line.strip())
            if m:
                n = int(m.group(1))
                continue
            parts = line.split()
            if n and len(parts) in (n + 1, n + 2):
                bow = float(parts[-1]) if len(parts) == n + 2 else 0.0
                grams[n - 1][tuple(parts[1 : n + 1])] = (float(parts[0]), bow)
    return NgramModel(order=info.order, grams=grams)
