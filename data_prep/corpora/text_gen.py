"""Everyday English sentences for the embedded speech corpus.

Sentences come from grammar templates filled from the word lists in ``data_prep/resources/``
(names, places, nouns with their plural and class, verbs with their forms and the classes of
object they take, adjectives with the classes they suit, times, locations, ...). Verbs agree
with their subjects, objects suit their verbs, and numbers, years, clock times and prices are
written out in words, so what a synthesiser says is what the transcript holds.

Numbers are written out with :mod:`data_prep.text_norm`, the project's one normaliser.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from data_prep.text_norm import (
    clock_to_words,
    normalize_text,
    number_to_words,
    ordinal_to_words,
    year_to_words,
)

# ----------------------------------------------------------------------------- word lists


@dataclass(frozen=True)
class Noun:
    """A noun with its plural (None for mass nouns such as "bread") and semantic class."""

    singular: str
    plural: str | None
    cls: str


@dataclass(frozen=True)
class Verb:
    """A verb's forms and the noun classes its object may have (empty: it takes none)."""

    base: str
    past: str
    third: str
    ing: str
    objects: tuple[str, ...]


@dataclass(frozen=True)
class Lexicon:
    """The shipped word lists, parsed."""

    names: tuple[str, ...]
    places: tuple[str, ...]
    times: dict[str, tuple[str, ...]]  # tense ("past", "future", "habit", "any") -> phrases
    locations: tuple[str, ...]
    adverbs: tuple[str, ...]
    events: tuple[str, ...]
    feelings: tuple[str, ...]
    nouns: dict[str, tuple[Noun, ...]]  # class -> nouns
    adjectives: dict[str, tuple[str, ...]]  # class -> adjectives that suit it
    transitive: tuple[Verb, ...]
    intransitive: tuple[Verb, ...]


def _lines(name: str) -> list[tuple[int, str]]:
    text = resources.files("data_prep").joinpath("resources", name).read_text(encoding="utf-8")
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append((lineno, line))
    return out


def _fields(name: str, count: int) -> list[list[str]]:
    rows = []
    for lineno, line in _lines(name):
        parts = line.split()
        if len(parts) != count:
            raise ValueError(f"resources/{name}:{lineno}: expected {count} fields, got {line!r}")
        rows.append(parts)
    return rows


@functools.lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    """Reads and parses ``data_prep/resources/*.txt`` (cached after the first call)."""
    nouns: dict[str, list[Noun]] = {}
    for sing, plural, cls in _fields("nouns.txt", 3):
        nouns.setdefault(cls, []).append(Noun(sing, None if plural == "-" else plural, cls))
    classes = set(nouns)
    adjectives: dict[str, list[str]] = {c: [] for c in classes}
    for word, suits in _fields("adjectives.txt", 2):
        for cls in classes if suits == "any" else suits.split(","):
            if cls not in classes:
                raise ValueError(f"resources/adjectives.txt: unknown class {cls!r} for {word!r}")
            adjectives[cls].append(word)
    transitive, intransitive = [], []
    for base, past, third, ing, objs in _fields("verbs.txt", 5):
        objects = () if objs == "none" else tuple(objs.split(","))
        unknown = set(objects) - classes
        if unknown:
            raise ValueError(
                f"resources/verbs.txt: unknown class(es) {sorted(unknown)} for {base!r}"
            )
        (transitive if objects else intransitive).append(Verb(base, past, third, ing, objects))
    simple = {
        key: tuple(line for _, line in _lines(f"{key}.txt"))
        for key in ("names", "places", "locations", "adverbs", "events", "feelings")
    }
    times: dict[str, list[str]] = {t: [] for t in _TENSES}
    for lineno, line in _lines("times.txt"):
        tense, _, phrase = line.partition(" ")
        if tense not in times or not phrase.strip():
            raise ValueError(f"resources/times.txt:{lineno}: expected '<tense> <phrase>': {line!r}")
        times[tense].append(phrase.strip())
    return Lexicon(
        **simple,
        times={t: tuple(v) for t, v in times.items()},
        nouns={c: tuple(v) for c, v in nouns.items()},
        adjectives={c: tuple(v) for c, v in adjectives.items()},
        transitive=tuple(transitive),
        intransitive=tuple(intransitive),
    )


# ----------------------------------------------------------------------------- the grammar

_TENSES = ("past", "future", "habit", "any")
_PRONOUNS = (
    ("I", "1sg"),
    ("you", "pl"),
    ("we", "pl"),
    ("they", "pl"),
    ("he", "3sg"),
    ("she", "3sg"),
)
_BE_PRESENT = {"1sg": "am", "3sg": "is", "pl": "are"}
_BE_PAST = {"1sg": "was", "3sg": "was", "pl": "were"}
_AN_EXCEPTIONS = ("uni", "use", "one", "euro")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_INTENSIFIERS = ("very", "really", "quite", "so", "a bit", "too", "rather")
_PRE_VERB = ("quickly", "carefully", "finally", "suddenly", "quietly", "slowly", "just", "already",
             "also")  # fmt: skip
_FREQUENCY = ("usually", "often", "always", "never", "sometimes", "rarely")
_STATIVE = frozenset({"want", "need", "like", "love", "hate", "see", "hear", "keep"})
_FEW_OF = frozenset({"person", "animal", "vehicle"})  # counted in small numbers


def _a(word: str) -> str:
    lw = word.lower()
    vowel = lw[0] in "aeiou" and not lw.startswith(_AN_EXCEPTIONS)
    return ("an " if vowel or lw.startswith("hour") else "a ") + word


class _Grammar:
    """Fills sentence templates; every choice goes through one seeded ``random.Random``.

    A template returns a clause in lowercase (names and places keep their capitals), ending in
    "?" for questions; :meth:`sentence` adds the capital and the final punctuation.
    """

    def __init__(self, rng: random.Random, lex: Lexicon) -> None:
        self.rng = rng
        self.lex = lex
        templates: list[tuple[float, Callable[[], str]]] = [
            (6, self.t_past),
            (4, self.t_future),
            (3, self.t_progressive),
            (3, self.t_habit),
            (4, self.t_intransitive),
            (3, self.t_description),
            (3, self.t_there_is),
            (3, self.t_request),
            (4, self.t_question),
            (2, self.t_feeling),
            (2, self.t_event_time),
            (2, self.t_price),
            (2, self.t_life),
            (2, self.t_travel),
            (2, self.t_have),
            (1, self.t_digits),
            (1, self.t_weather),
            (2, self.t_ordinal),
            (2, self.t_want),
            (2, self.t_short),
            (2, self.t_reported),
            (3, self.t_compound),
        ]
        self._active = tuple(v for v in lex.transitive if v.base not in _STATIVE)
        self._funcs = [f for _, f in templates]
        self._weights = [w for w, _ in templates]

    # -- choices
    def pick(self, seq: tuple[str, ...] | list[str]) -> str:
        return seq[self.rng.randrange(len(seq))]

    def maybe(self, p: float, make: Callable[[], str]) -> str:
        return make() if self.rng.random() < p else ""

    def count(self, cls: str) -> str:
        r = self.rng.random()
        if cls in _FEW_OF:
            n = self.rng.randint(2, 12) if r < 0.9 else self.rng.randint(13, 30)
        elif r < 0.55:
            n = self.rng.randint(2, 20)
        elif r < 0.9:
            n = self.rng.randint(21, 99)
        else:
            n = self.rng.randint(100, 999)
        return number_to_words(n)

    def noun(self, classes: tuple[str, ...] | None = None, *, countable: bool = False) -> Noun:
        cls = self.pick(classes or tuple(self.lex.nouns))
        pool = self.lex.nouns[cls]
        if countable:
            pool = tuple(n for n in pool if n.plural) or pool
        return pool[self.rng.randrange(len(pool))]

    def adj(self, cls: str, p: float) -> str:
        return self.maybe(p, lambda: self.pick(self.lex.adjectives[cls]) + " ")

    def np(self, noun: Noun, *, adj_p: float = 0.35) -> str:
        """A singular noun phrase: "the red apple", "an old car", "some bread"."""
        adj = self.adj(noun.cls, adj_p)
        if noun.plural is None:
            return f"{self.pick(('the', 'some', 'my', 'our', 'this', 'more'))} {adj}{noun.singular}"
        det = self.pick(("the", "the", "a", "my", "your", "our", "this", "that", "her", "his"))
        return _a(adj + noun.singular) if det == "a" else f"{det} {adj}{noun.singular}"

    def np_plural(self, noun: Noun, *, adj_p: float = 0.3, definite: bool = True) -> str:
        """A plural noun phrase with a quantity: "twenty three red apples"."""
        if noun.plural is None:
            return self.np(noun, adj_p=adj_p)
        qty = self.pick(("NUM", "NUM", "NUM", "some", "a few", "many", "two", "three"))
        if definite and self.rng.random() < 0.2:
            qty = self.pick(("the", "all the", "my", "our"))
        qty = self.count(noun.cls) if qty == "NUM" else qty
        return f"{qty} {self.adj(noun.cls, adj_p)}{noun.plural}"

    def obj(self, verb: Verb) -> str:
        cls = self.pick(verb.objects)
        if cls == "person" and self.rng.random() < 0.35:
            return self.pick(self.lex.names)
        noun = self.noun((cls,))
        return self.np_plural(noun) if noun.plural and self.rng.random() < 0.3 else self.np(noun)

    def subject(self) -> tuple[str, str]:
        """A subject and its agreement class ("1sg", "3sg" or "pl")."""
        r = self.rng.random()
        if r < 0.4:
            return self.pick(self.lex.names), "3sg"
        if r < 0.7:
            return _PRONOUNS[self.rng.randrange(len(_PRONOUNS))]
        if r < 0.85:
            person = self.noun(("person",))
            return f"{self.pick(('my', 'the', 'our', 'your'))} {person.singular}", "3sg"
        if r < 0.93:
            a, b = self.rng.sample(self.lex.names, 2)
            return f"{a} and {b}", "pl"
        return f"the {self.noun(('person',), countable=True).plural}", "pl"

    def loc(self, p: float) -> str:
        return self.maybe(p, lambda: " " + self.pick(self.lex.locations))

    def time(self, p: float, tense: str = "any") -> str:
        """An optional time phrase that suits a clause in ``tense`` (past/future/habit/any)."""
        if self.rng.random() >= p:
            return ""
        pool = self.lex.times["any"] + (self.lex.times[tense] if tense != "any" else ())
        return " " + self.pick(pool)

    def adverb(self, p: float) -> str:
        return self.maybe(p, lambda: " " + self.pick(self.lex.adverbs))

    def clock(self) -> str:
        hour = self.rng.randint(1, 12)
        style = self.rng.random()
        if style < 0.25:
            return f"half past {number_to_words(hour)}"
        if style < 0.4:
            return f"quarter {self.pick(('past', 'to'))} {number_to_words(hour)}"
        return clock_to_words(hour, self.rng.choice((0, 0, 5, 10, 15, 20, 30, 40, 45, 50)))

    def money(self) -> str:
        unit, sub = self.rng.choice((("dollar", "cents"), ("pound", "pence"), ("euro", "cents")))
        words = f"{self.count('thing')} {unit}s"
        if self.rng.random() < 0.4:
            cents = self.rng.choice((10, 20, 25, 50, 75, 95, 99))
            words += f" and {number_to_words(cents)} {sub}"
        return words

    # -- declarative clauses
    def t_past(self) -> str:
        subj, _ = self.subject()
        verb = self.pick_verb()
        pre = self.maybe(0.12, lambda: " " + self.pick(_PRE_VERB))
        return f"{subj}{pre} {verb.past} {self.obj(verb)}{self.loc(0.4)}{self.time(0.5, 'past')}"

    def pick_verb(self, *, active: bool = False) -> Verb:
        """A transitive verb; ``active`` leaves out stative ones ("want", "see") that sound
        wrong in orders and in the progressive."""
        pool = self._active if active else self.lex.transitive
        return pool[self.rng.randrange(len(pool))]

    def t_future(self) -> str:
        subj, agr = self.subject()
        verb = self.pick_verb(active=True)
        aux = self.pick(("will", "will", "can", "should", "might", "must", "GOING"))
        aux = f"{_BE_PRESENT[agr]} going to" if aux == "GOING" else aux
        return f"{subj} {aux} {verb.base} {self.obj(verb)}{self.loc(0.3)}{self.time(0.6, 'future')}"

    def t_progressive(self) -> str:
        subj, agr = self.subject()
        verb = self.pick_verb(active=True)
        past = self.rng.random() < 0.3
        be = (_BE_PAST if past else _BE_PRESENT)[agr]
        tense = "past" if past else "any"
        return f"{subj} {be} {verb.ing} {self.obj(verb)}{self.loc(0.5)}{self.time(0.2, tense)}"

    def t_habit(self) -> str:
        subj, agr = self.subject()
        verb = self.pick_verb()
        freq = self.maybe(0.5, lambda: self.pick(_FREQUENCY) + " ")
        form = verb.third if agr == "3sg" else verb.base
        return f"{subj} {freq}{form} {self.obj(verb)}{self.time(0.4, 'habit')}"

    def t_intransitive(self) -> str:
        subj, _ = self.subject()
        verb = self.lex.intransitive[self.rng.randrange(len(self.lex.intransitive))]
        return f"{subj} {verb.past}{self.adverb(0.35)}{self.loc(0.6)}{self.time(0.5, 'past')}"

    def t_description(self) -> str:
        noun = self.noun()
        adj = self.pick(self.lex.adjectives[noun.cls])
        inten = self.maybe(0.5, lambda: self.pick(_INTENSIFIERS) + " ")
        plural = noun.plural is not None and self.rng.random() < 0.4
        word = noun.plural if plural else noun.singular
        be = (("are", "were") if plural else ("is", "was"))[self.rng.random() < 0.4]
        det = self.pick(("the", "my", "your", "these" if plural else "this", "our"))
        return f"{det} {word}{self.loc(0.25)} {be} {inten}{adj}"

    def t_there_is(self) -> str:
        noun = self.noun(countable=True)
        loc = " " + self.pick(self.lex.locations)
        if noun.plural and self.rng.random() < 0.6:
            return f"there {self.pick(('are', 'were'))} {self.np_plural(noun, definite=False)}{loc}"
        if noun.plural is None:
            return f"there {self.pick(('is', 'was'))} some {noun.singular}{loc}"
        return (
            f"there {self.pick(('is', 'was'))} {_a(self.adj(noun.cls, 0.4) + noun.singular)}{loc}"
        )

    def t_feeling(self) -> str:
        subj, agr = self.subject()
        verb = self.pick((_BE_PRESENT[agr], _BE_PAST[agr], "felt", "looked", "seemed"))
        tense = "any" if verb == _BE_PRESENT[agr] else "past"
        inten = self.maybe(0.4, lambda: self.pick(_INTENSIFIERS) + " ")
        when = self.pick(("before", "after", "during"))
        after = self.maybe(0.4, lambda: f" {when} the {self.pick(self.lex.events)}")
        return (
            f"{subj} {verb} {inten}{self.pick(self.lex.feelings)}{after or self.time(0.4, tense)}"
        )

    def t_event_time(self) -> str:
        event = self.pick(self.lex.events)
        verb = self.pick(("starts", "begins", "ends", "finishes", "started", "will start"))
        day = self.maybe(0.4, lambda: f" on {self.pick(_WEEKDAYS)}")
        return f"the {event} {verb} at {self.clock()}{day}"

    def t_price(self) -> str:
        noun = self.noun(("food", "drink", "thing", "clothes"))
        if self.rng.random() < 0.5:
            costs = self.pick(("costs", "cost", "was"))
            return f"the {self.adj(noun.cls, 0.3)}{noun.singular} {costs} {self.money()}"
        subj, _ = self.subject()
        return f"{subj} paid {self.money()} for {self.np(noun, adj_p=0.3)}"

    def t_life(self) -> str:
        name = self.pick(self.lex.names)
        place = self.pick(self.lex.places)
        year = year_to_words(self.rng.randint(1930, 2024))
        form = self.rng.random()
        if form < 0.3:
            return f"{name} was born in {place}" + self.maybe(0.6, lambda: f" in {year}")
        if form < 0.6:
            return f"{name} moved to {place} in {year}"
        person = self.noun(("person",)).singular
        does = self.pick(("lives", "works", "studies"))
        return f"{self.pick(('my', 'our', 'her', 'his'))} {person} {does} in {place}"

    def t_travel(self) -> str:
        place = self.pick(self.lex.places)
        if self.rng.random() < 0.5:
            vehicle = self.pick(("train", "bus", "boat", "plane", "flight", "coach"))
            nth = self.maybe(0.4, lambda: ordinal_to_words(self.rng.randint(1, 5)) + " ")
            leaves = self.pick(("leaves", "arrives", "left"))
            return f"the {nth}{vehicle} to {place} {leaves} at {self.clock()}"
        subj, _ = self.subject()
        verb = self.pick(("went", "flew", "drove", "travelled", "came back", "walked"))
        return f"{subj} {verb} to {place}{self.time(0.6, 'past')}"

    def t_have(self) -> str:
        subj, agr = self.subject()
        have = self.pick(("has" if agr == "3sg" else "have", "had"))
        noun = self.noun(("thing", "animal", "clothes", "food", "vehicle"), countable=True)
        return f"{subj} {have} {self.np_plural(noun)}{self.loc(0.4)}"

    def t_digits(self) -> str:
        digits = " ".join(number_to_words(self.rng.randint(0, 9)) for _ in range(self.rng.randint(3, 7)))
        lead = self.pick(("my phone number ends in", "the code is", "the password is",
                          "call me on", "my room number is", "the order number is"))  # fmt: skip
        return f"{lead} {digits}"

    def t_weather(self) -> str:
        deg = number_to_words(self.rng.randint(-5, 40))
        where = self.pick(("outside", f"in {self.pick(self.lex.places)}", "in the garden", "today"))
        return f"it {self.pick(('is', 'was'))} {deg} degrees {where}"

    def t_ordinal(self) -> str:
        form = self.rng.random()
        if form < 0.35:
            nth = ordinal_to_words(self.rng.randint(1, 6))
            what = self.pick(("street", "turning", "exit", "door"))
            return f"take the {nth} {what} on the {self.pick(('left', 'right'))}"
        if form < 0.7:
            nth = ordinal_to_words(self.rng.randint(1, 31))
            return f"the {self.pick(self.lex.events)} is on the {nth} of {self.pick(_MONTHS)}"
        nth = ordinal_to_words(self.rng.randint(1, 40))
        return f"{self.pick(self.lex.names)} finished {nth} in the race"

    def t_want(self) -> str:
        subj, agr = self.subject()
        verb = self.pick_verb()
        s = "s" if agr == "3sg" else ""
        want = self.pick((f"want{s}", f"need{s}", f"hope{s}", "would like", "forgot", "tried"))
        return f"{subj} {want} to {verb.base} {self.obj(verb)}{self.time(0.4, 'future')}"

    def t_state(self) -> str:
        subj, agr = self.subject()
        return f"{subj} {_BE_PRESENT[agr]} {self.pick(self.lex.feelings)}"

    def t_did(self) -> str:
        subj, _ = self.subject()
        verb = self.lex.intransitive[self.rng.randrange(len(self.lex.intransitive))]
        return f"{subj} {verb.past}{self.adverb(0.6)}"

    def t_short(self) -> str:
        if self.rng.random() < 0.4:
            verb = self.pick_verb(active=True)
            return f"{verb.base} the {self.noun(verb.objects).singular}"  # an order
        return self.t_state() if self.rng.random() < 0.5 else self.t_did()

    def t_reported(self) -> str:
        lead = self.pick(("I think", "I know", "she said", "he said", "we heard", "I hope"))
        lead = f"{self.pick(self.lex.names)} said" if self.rng.random() < 0.3 else lead
        clause = self.rng.choice((self.t_past, self.t_future, self.t_description, self.t_state))()
        return f"{lead} that {clause}" if self.rng.random() < 0.5 else f"{lead} {clause}"

    def t_compound(self) -> str:
        simple = (self.t_past, self.t_intransitive, self.t_did, self.t_state, self.t_feeling,
                  self.t_description)  # fmt: skip
        first = self.rng.choice(simple)()
        second = self.rng.choice(simple)()
        link = self.pick(("and", "but", "because", "so", "and then", "while"))
        return f"{first} {link} {second}"

    # -- requests and questions
    def t_request(self) -> str:
        verb = self.pick_verb(active=True)
        form = self.rng.random()
        if form < 0.45:
            lead = self.pick(("can you", "could you", "would you", "could you please", "will you"))
            return f"{lead} {verb.base} {self.obj(verb)}{self.time(0.4, 'future')}?"
        if form < 0.8:
            return f"please {verb.base} {self.obj(verb)}{self.loc(0.3)}{self.time(0.3, 'future')}"
        return f"don't {verb.base} {self.obj(verb)}{self.loc(0.3)}"

    def t_question(self) -> str:
        subj, agr = self.subject()
        verb = self.pick_verb()
        form = self.rng.random()
        if form < 0.3:
            wh = self.pick(("where", "when", "why", "how"))
            return f"{wh} did {subj} {verb.base} {self.obj(verb)}?"
        if form < 0.5:
            return f"did {subj} {verb.base} {self.obj(verb)}{self.time(0.6, 'past')}?"
        if form < 0.7:
            noun = self.noun(verb.objects, countable=True)
            if noun.plural:
                return f"how many {noun.plural} did {subj} {verb.base}{self.time(0.4, 'past')}?"
            return f"who {verb.past} {self.np(noun)}{self.time(0.4, 'past')}?"
        if form < 0.85 and verb.base not in _STATIVE:
            return f"{_BE_PRESENT[agr]} {subj} {verb.ing} {self.obj(verb)}{self.loc(0.4)}?"
        return f"what time does the {self.pick(self.lex.events)} start?"

    def sentence(self) -> str:
        template = self.rng.choices(self._funcs, weights=self._weights)[0]
        clause = " ".join(template().split())
        body, end = (clause[:-1].rstrip(), "?") if clause.endswith("?") else (clause, ".")
        return body[:1].upper() + body[1:] + end


def generate_sentences(n: int, *, seed: int, min_words: int = 3, max_words: int = 16) -> list[str]:
    """Generates ``n`` distinct everyday English sentences.

    Sentences are written with capitals and final punctuation (good input for a synthesiser)
    and numbers in words; they are distinct after :func:`normalize_text`, and their normalised
    word counts lie in ``[min_words, max_words]``.

    Args:
        n: How many sentences.
        seed: The same seed (and word lists) gives the same sentences in the same order.
        min_words: Fewest words per sentence.
        max_words: Most words per sentence.

    Raises:
        ValueError: bad arguments, or the grammar cannot produce ``n`` distinct sentences
            within the word-count bounds.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    grammar = _Grammar(random.Random(seed), load_lexicon())
    seen: set[str] = set()
    out: list[str] = []
    for _ in range(50 * n + 10_000):
        if len(out) >= n:
            break
        sentence = grammar.sentence()
        key = normalize_text(sentence)
        if key in seen or not min_words <= len(key.split()) <= max_words:
            continue
        seen.add(key)
        out.append(sentence)
    if len(out) < n:
        raise ValueError(
            f"could only generate {len(out)} of {n} distinct sentences with "
            f"{min_words}..{max_words} words; widen the bounds"
        )
    return out
