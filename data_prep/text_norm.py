"""The project's one text normaliser: transcripts as the models read and write them.

:func:`normalize_text` is what importers, the corpus generators and the LM stage pass every
transcript through: lowercase ``a-z``, apostrophes inside words and single spaces, with
numbers, years, clock times, prices and percentages spelled out in words
(:func:`number_to_words` and friends, also used by the sentence generator).
"""

from __future__ import annotations

import re
import unicodedata

# ----------------------------------------------------------------------------- numbers in words

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def number_to_words(n: int) -> str:
    """Spells an integer in words, US style without "and": 123 -> "one hundred twenty three".

    Raises:
        ValueError: ``abs(n) >= 10**15``.
    """
    if n < 0:
        return "minus " + number_to_words(-n)
    if n >= 10**15:
        raise ValueError(f"number too large to spell: {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_to_words(rest)}" if rest else "")
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            return f"{number_to_words(high)} {name}" + (f" {number_to_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def ordinal_to_words(n: int) -> str:
    """Spells an ordinal: 21 -> "twenty first", 40 -> "fortieth"."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*words[:-1], last])


def year_to_words(year: int) -> str:
    """Reads a year the way people say it: 1984 -> "nineteen eighty four", 2005 -> "two thousand five"."""
    if 2000 <= year <= 2009 or not 1000 <= year <= 2099:
        return number_to_words(year)
    high, low = divmod(year, 100)
    if low == 0:
        return number_to_words(year) if high % 10 == 0 else f"{number_to_words(high)} hundred"
    if low < 10:
        return f"{number_to_words(high)} oh {number_to_words(low)}"
    return f"{number_to_words(high)} {number_to_words(low)}"


def clock_to_words(hour: int, minute: int) -> str:
    """Reads a clock time: (7, 0) -> "seven o'clock", (7, 5) -> "seven oh five"."""
    if minute == 0:
        return f"{number_to_words(hour)} o'clock"
    if minute < 10:
        return f"{number_to_words(hour)} oh {number_to_words(minute)}"
    return f"{number_to_words(hour)} {number_to_words(minute)}"


def _digits_to_words(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


def _plural_words(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last.endswith("y"):
        last = last[:-1] + "ies"
    elif last.endswith("x"):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}" if head else last


# ----------------------------------------------------------------------------- normalisation

_TRANSLIT = str.maketrans(
    {
        "\u2019": "'",
        "\u2018": "'",
        "\u02bc": "'",
        "`": "'",
        "\u00b4": "'",
        "\u00df": "ss",
        "\u00e6": "ae",
        "\u0153": "oe",
        "\u00f8": "o",
        "\u0142": "l",
        "\u0111": "d",
        "\u00f0": "d",
        "\u00fe": "th",
        "\u2212": "-",
        "&": " and ",
        "@": " at ",
        "+": " plus ",
        "=": " equals ",
    }
)
_CURRENCY = {"$": ("dollar", "cent"), "\u00a3": ("pound", "penny"), "\u20ac": ("euro", "cent")}
_CLOCK_RE = re.compile(r"(?<![\d:])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])")
_NEG_RE = re.compile(r"(?:^|(?<=\s))-(?=\d)")
_NUM_RE = re.compile(
    r"(?P<cur>[$\u00a3\u20ac])?"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)"
    r"(?:\.(?P<frac>\d+))?"
    r"(?P<suf>st|nd|rd|th|s)?(?![a-z])"
    r"(?P<pct>\s?%)?"
)
_NUM_LOOSE_RE = re.compile(r"\d+")
_NOT_ALLOWED_RE = re.compile(r"[^a-z']+")
_STRAY_APOS_RE = re.compile(r"(?<![a-z])'|'(?![a-z])")


def _number_repl(m: re.Match[str]) -> str:
    cur, int_s, frac, suf, pct = m.group("cur", "int", "frac", "suf", "pct")
    plain = int_s.replace(",", "")
    if len(plain) > 15 or (len(plain) > 1 and plain.startswith("0") and "," not in int_s):
        words = _digits_to_words(plain)  # codes, phone numbers, zero-padded ids
    elif suf in ("st", "nd", "rd", "th") and frac is None:
        words = ordinal_to_words(int(plain))
    elif len(plain) == 4 and "," not in int_s and frac is None and cur is None and pct is None:
        words = year_to_words(int(plain))
    else:
        words = number_to_words(int(plain))
    if suf == "s":
        words = _plural_words(words)  # "1990s" -> "nineteen nineties"
    if cur is not None:
        unit, sub = _CURRENCY[cur]
        unit_w = unit if plain == "1" else unit + "s"
        if frac is not None and len(frac) == 2:
            cents = int(frac)
            sub_w = sub if cents == 1 else ("pence" if sub == "penny" else sub + "s")
            words = f"{words} {unit_w}" + (
                f" and {number_to_words(cents)} {sub_w}" if cents else ""
            )
        else:
            if frac is not None:
                words += " point " + _digits_to_words(frac)
            words += " " + (unit + "s" if frac is not None else unit_w)
    elif frac is not None:
        words += " point " + _digits_to_words(frac)
    if pct is not None:
        words += " percent"
    return f" {words} "


def normalize_text(text: str) -> str:
    """Normalises a transcript to what a model should output.

    Lowercases; strips accents; spells out digits (cardinals, decimals, ordinals such as "21st",
    years such as "1984", clock times "7:30", prices "$5.50", percentages); turns hyphens and
    all other punctuation into spaces; keeps apostrophes only inside words ("it's", "o'clock").

    Returns:
        Lowercase ``a-z``/apostrophe words separated by single spaces ("" if nothing is left).
    """
    text = unicodedata.normalize("NFKC", text).lower().translate(_TRANSLIT)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = _CLOCK_RE.sub(lambda m: f" {clock_to_words(int(m[1]), int(m[2]))} ", text)
    text = _NEG_RE.sub(" minus ", text)
    text = _NUM_RE.sub(_number_repl, text)
    text = _NUM_LOOSE_RE.sub(lambda m: f" {_digits_to_words(m[0])} ", text)  # safety net
    text = _NOT_ALLOWED_RE.sub(" ", text)
    text = _STRAY_APOS_RE.sub(" ", text)
    return " ".join(text.split())
