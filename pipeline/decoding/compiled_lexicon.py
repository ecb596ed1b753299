"""A lexicon compiled for the decoder: what flashlight's trie is built from, ready to load.

Building the word-level search from ``lexicon.txt`` costs about half a second for the shipped
model's 43,600 words: the file is parsed and checked line by line, every spelling is mapped
to token ids, and KenLM scores each word's unigram for the trie's smearing. All of that is
fixed once a bundle's lexicon, LM and token list are fixed, so a bundle may carry it compiled
(``lexicon.npz``, recorded as ``lm.compiled`` with its sha256), and the search then only
inserts ready-made id lists into the trie.

``lexicon.npz`` holds numpy arrays only (loaded with ``allow_pickle=False``):

=============  =========  ============================================================
name           shape      what
=============  =========  ============================================================
``words``      (B,) u8    the W words, UTF-8, each followed by ``\\n``
``ids``        (L,) u16   every spelling's token ids, one after the other
``offsets``    (W+1,) i32 spelling ``i`` is ``ids[offsets[i]:offsets[i+1]]``
``unigram``    (W,) f32   KenLM's score of each word from the start state
``tokens``     (B',) u8   the model's tokens, UTF-8, each followed by ``\\n``
``sources``    (B'',) u8  ``name=sha256`` lines of the lexicon and LM it was made from
=============  =========  ============================================================

It is a cache in a file, never a second source of truth: loading refuses one that was made
from other files than the bundle's lexicon and LM, or for other tokens (the bundle is
refused with one line; compile it again with :func:`compile_lexicon`).
Torch-free.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.decoding.lexicon import LexiconError, read_lexicon
from pipeline.io_utils import atomic_write_bytes, file_sha256
from pipeline.limits import LimitError, current_limits

if TYPE_CHECKING:
    from pipeline.tokenizer import CharTokenizer

#: The compiled lexicon's file name in a bundle.
COMPILED_NAME = "lexicon.npz"
_ARRAYS = ("words", "ids", "offsets", "unigram", "tokens", "sources")


@dataclass
class CompiledLexicon:
    """Words, their spellings as token ids and their unigram scores.

    Attributes:
        words: The W words (flashlight's word ids are their indices).
        spellings: W lists of token ids, in the decoder's ids (the word boundary is our space).
        unigram: (W,) float32 KenLM unigram scores from the start state, or None (computed
            by the search when it loads the LM).
    """

    words: list[str]
    spellings: list[list[int]]
    unigram: np.ndarray | None = None

    def save(self, path: str | Path, tokens: list[str], sources: dict[str, str]) -> None:
        """Writes the ``.npz`` (atomically); ``sources``: file name -> sha256 it was made from."""
        if self.unigram is None or len(self.unigram) != len(self.words):
            raise ValueError("a compiled lexicon needs one unigram score per word")
        if len(tokens) > 1 << 16:
            raise ValueError("a compiled lexicon holds token ids below 65536")
        lengths = np.fromiter((len(s) for s in self.spellings), np.int64, len(self.spellings))
        arrays = {
            "words": _blob(self.words),
            "ids": np.fromiter((i for s in self.spellings for i in s), np.uint16, int(lengths.sum())),
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32),
            "unigram": np.asarray(self.unigram, np.float32),
            "tokens": _blob(tokens),
            "sources": _blob([f"{k}={v}" for k, v in sorted(sources.items())]),
        }
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path, tokens: list[str], sources: dict[str, str]) -> CompiledLexicon:
        """Reads a ``.npz`` written by :meth:`save` and checks it against the bundle.

        Args:
            path: The file (its size and sha256 already checked by the caller).
            tokens: The model's tokens; the file must have been compiled for exactly these.
            sources: File name -> sha256 of the bundle's lexicon and LM; the file must have
                been compiled from exactly these.

        Raises:
            LimitError: it would inflate past ``max_lm_bytes`` or holds more than
                ``max_lexicon_words`` words.
            LexiconError: the file is not a compiled lexicon, is inconsistent, or was made from
                other files or for other tokens (names the file).
        """
        path = Path(path)

        def bad(problem: str) -> LexiconError:
            return LexiconError(f"{path}: {problem}")

        limits = current_limits()
        try:
            with zipfile.ZipFile(path) as zf:  # what np.load would inflate, bounded first
                inflated = sum(info.file_size for info in zf.infolist())
        except (OSError, zipfile.BadZipFile) as exc:
            raise bad(f"cannot read the compiled lexicon: {exc}") from None
        if inflated > limits.max_lm_bytes:
            raise LimitError(path, "the compiled lexicon is larger than allowed", "max_lm_bytes", limits.max_lm_bytes)
        try:
            with np.load(path, allow_pickle=False) as npz:
                if sorted(npz.files) != sorted(_ARRAYS):
                    raise bad(f"not a compiled lexicon (arrays {sorted(npz.files)})")
                arrays = {name: npz[name] for name in _ARRAYS}
        except LexiconError:
            raise
        except (OSError, ValueError, EOFError) as exc:  # not a zip, a damaged member, a pickle
            raise bad(f"cannot read the compiled lexicon: {exc}") from None
        if any(arrays[k].dtype != np.uint8 or arrays[k].ndim != 1 for k in ("words", "tokens", "sources")):
            raise bad("the compiled lexicon's arrays have the wrong types")
        try:
            words, file_tokens, file_sources = (_unblob(arrays[k]) for k in ("words", "tokens", "sources"))
        except UnicodeDecodeError:
            raise bad("the compiled lexicon's text is not UTF-8") from None
        if len(words) > limits.max_lexicon_words:
            raise LimitError(path, "the lexicon has more words than allowed", "max_lexicon_words", limits.max_lexicon_words)
        if file_tokens != list(tokens):
            raise bad("compiled for another token list than this model's (compile it again)")
        wanted = sorted(f"{k}={v}" for k, v in sources.items())
        if file_sources != wanted:
            raise bad("compiled from another lexicon or LM than the bundle's (compile it again)")
        ids, offsets, unigram = arrays["ids"], arrays["offsets"], arrays["unigram"]
        n = len(words)
        if ids.dtype != np.uint16 or offsets.dtype != np.int32 or unigram.dtype != np.float32:
            raise bad("the compiled lexicon's arrays have the wrong types")
        if offsets.shape != (n + 1,) or unigram.shape != (n,) or ids.ndim != 1:
            raise bad(f"the compiled lexicon's arrays do not fit its {n} words")
        if n == 0 or offsets[0] != 0 or offsets[-1] != ids.size or np.any(np.diff(offsets) < 1):
            raise bad("the compiled lexicon's spelling offsets are inconsistent")
        if ids.size and ids.max() >= len(tokens):
            raise bad("the compiled lexicon spells with token ids the model does not have")
        if not np.all(np.isfinite(unigram)):
            raise bad("the compiled lexicon has non-finite unigram scores")
        flat, bounds = ids.tolist(), offsets.tolist()
        spellings = [flat[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        return cls(words, spellings, unigram)


def _blob(strings: list[str]) -> np.ndarray:
    """Strings -> one uint8 array of UTF-8 lines (no string may hold a newline)."""
    if any("\n" in s for s in strings):
        raise ValueError("a compiled lexicon cannot hold a newline in a word or token")
    return np.frombuffer("".join(f"{s}\n" for s in strings).encode("utf-8"), np.uint8)


def _unblob(blob: np.ndarray) -> list[str]:
    """The inverse of :func:`_blob`."""
    text = blob.tobytes().decode("utf-8")
    return text.split("\n")[:-1] if text else []


def compile_lexicon(arpa: Path, lexicon: Path, tokenizer: CharTokenizer, out: Path) -> CompiledLexicon:
    """Compiles ``lexicon`` (a lexicon file) against ``arpa`` (its word LM) for ``tokenizer``'s
    tokens into ``out`` (a ``.npz``), recording both files' names and sha256 as its sources.

    Raises:
        LexiconError: the lexicon cannot be read (see :func:`~pipeline.decoding.lexicon.read_lexicon`).
        RuntimeError: KenLM cannot load ``arpa``.
    """
    # lazy: import cycle with pipeline.decoding.flashlight
    from pipeline.decoding.flashlight import FlashlightSearch

    search = FlashlightSearch(tokenizer.tokens, lm=arpa, lexicon=read_lexicon(lexicon, tokenizer))
    search.lexicon.save(out, tokenizer.tokens, {arpa.name: file_sha256(arpa), lexicon.name: file_sha256(lexicon)})
    return search.lexicon
