"""Character tokenizer for CTC: id 0 is the blank, then space, apostrophe and a-z.

The token list is the whole tokenizer state; it is stored in a model bundle's ``config.yaml``
(``to_list``) and rebuilt with ``from_list``.

Normalisation here is deliberately minimal (lowercase, drop characters outside the token set,
collapse whitespace); spelling out numbers and the like belongs to the data-prep text stage.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from pipeline.errors import SeqrecError, shown

BLANK = "<blank>"
SPACE = " "
DEFAULT_TOKENS: tuple[str, ...] = (BLANK, SPACE, "'", *string.ascii_lowercase)

_WHITESPACE = re.compile(r"\s+")


class TokenizerError(SeqrecError, ValueError):
    """A token list is invalid, or ids cannot be decoded with it."""


class CharTokenizer:
    """Characters a-z, apostrophe and space; id 0 is the CTC blank.

    Args:
        tokens: Token strings indexed by id. ``tokens[0]`` must be ``"<blank>"``; every other
            token is a single character, and ``" "`` must be one of them. Defaults to
            ``["<blank>", " ", "'", "a", ..., "z"]`` (29 tokens).

    Text is lowercased before encoding unless the token set itself holds uppercase letters.
    """

    blank_id: int = 0

    def __init__(self, tokens: Sequence[str] | None = None) -> None:
        tokens = list(DEFAULT_TOKENS if tokens is None else tokens)
        _validate(tokens)
        self.tokens: list[str] = tokens
        self._index = {tok: i for i, tok in enumerate(tokens)}
        self.space_id: int = self._index[SPACE]
        self._lowercase = not any(t.isupper() for t in tokens[1:])

    @property
    def vocab_size(self) -> int:
        """Number of tokens, blank included (the CTC head's output size V)."""
        return len(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self.tokens == other.tokens

    def __hash__(self) -> int:
        return hash(tuple(self.tokens))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"

    def normalize(self, text: str) -> str:
        """Lowercases, drops characters outside the token set, collapses whitespace, strips."""
        if self._lowercase:
            text = text.lower()
        text = _WHITESPACE.sub(SPACE, text)
        text = "".join(ch for ch in text if ch in self._index)
        return _WHITESPACE.sub(SPACE, text).strip()

    def encode(self, text: str) -> list[int]:
        """Normalises ``text`` and maps each character to its id (never the blank)."""
        return [self._index[ch] for ch in self.normalize(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """Maps ids to text.

        Blanks are skipped and repeats are kept (no CTC collapsing here); runs of spaces are
        collapsed and the result is stripped, so ``decode(encode(t)) == normalize(t)``.

        Raises:
            TokenizerError: an id is outside ``[0, vocab_size)``.
        """
        chars = []
        for raw in ids:
            i = int(raw)
            if not 0 <= i < len(self.tokens):
                raise TokenizerError(f"token id {i} is outside [0, {len(self.tokens)})")
            if i != self.blank_id:
                chars.append(self.tokens[i])
        return _WHITESPACE.sub(SPACE, "".join(chars)).strip()

    def to_list(self) -> list[str]:
        """The token list (a copy), as stored in a bundle config."""
        return list(self.tokens)

    @classmethod
    def from_list(cls, tokens: Sequence[str]) -> CharTokenizer:
        """Builds a tokenizer from a stored token list, validating it.

        Raises:
            TokenizerError: the blank is not first, a token repeats, is not a single
                character, or the space is missing.
        """
        return cls(list(tokens))


def _validate(tokens: list[str]) -> None:
    if not tokens or tokens[0] != BLANK:
        first = tokens[0] if tokens else None
        raise TokenizerError(f"token list must start with the blank {BLANK!r}, got {shown(first)}")
    seen: set[str] = set()
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str):
            raise TokenizerError(f"token {i} is {type(tok).__name__}, expected str")
        if tok in seen:
            raise TokenizerError(f"token {shown(tok)} appears more than once")
        seen.add(tok)
        if i > 0 and len(tok) != 1:
            raise TokenizerError(f"token {i} ({shown(tok)}) is not a single character")
    if SPACE not in seen:
        raise TokenizerError("token list has no space token ' '")
