"""Tests of data_prep.corpora.lm_text (LM-only text: Ding's example sentences) and of how the
speech recipe's LM text takes it in (recipes/speech_ctc/lm.py, ``lm.extra_sources``)."""

from __future__ import annotations

import dataclasses

import pytest

from data_prep.corpora import lm_text
from data_prep.corpora import text_sources as ts
from recipes.speech_ctc import lm as recipe_lm

# Lines in the format of Debian's trans-de-en (/usr/share/trans/de-en).
DING_SAMPLE = """\
# Version :: devel 2023-01-30
# License :: GPL Version 2 or later; GNU General Public License
Achsel {f} [anat.] | Achseln {pl} | Er zuckte die Achseln. :: shoulder | shoulders | He shrugged his shoulders.
zu viele Anmeldungen bekommen {vt} [adm.] | An den meisten Schulen gibt es mehr Anmeldungen als Plätze. :: to be oversubscribed | Most schools are oversubscribed.
Auffassungsgabe {f} [psych.] | Er hat eine schnelle Auffassungsgabe. :: (intellectual) grasp | He has a keen sense of perception.; He is very perceptive (indeed).
jdn. bemühen {vt} | Bitte bemühen Sie sich nicht. | Darf ich Sie um den Pfeffer bitten? :: to trouble sb. for sth. | Please don’t trouble. | May I trouble you for the pepper?
jdm. etw. geben | Er gab es ihm. :: to give sb. sth. | He gave sth. to sb.
Aal {m} (auf der Speisekarte) [cook.] | Aal grün :: Eel (on a menu) | Boiled Eel served with Parsley Sauce
Keine Ahnung! :: No idea! [coll.]
Schule {f} :: school; schooling | Federal Ministry of Education and Research
"""


def test_ding_keeps_example_sentences_only():
    got = list(lm_text.ding_sentences(DING_SAMPLE))
    assert got == [
        "He shrugged his shoulders.",
        "Most schools are oversubscribed.",
        "He has a keen sense of perception.",
        "He is very perceptive.",  # the parenthesised gloss removed, no space before the stop
        "Please don’t trouble.",
        "May I trouble you for the pepper?",
        "No idea!",  # the [coll.] label removed
    ]
    # headwords, titles and phrase patterns with placeholders (sb, sth) are not sentences
    assert not any("sb" in s.split() or "Sauce" in s or "Ministry" in s for s in got)


def test_ding_cleaned_like_the_corpus(monkeypatch, tmp_path):
    (tmp_path / "de-en").write_text(DING_SAMPLE, encoding="utf-8")
    spec = dataclasses.replace(lm_text.LM_TEXT_SOURCES["ding"], root=str(tmp_path))
    monkeypatch.setitem(lm_text.LM_TEXT_SOURCES, "ding", spec)
    monkeypatch.setenv("SEQREC_TEXT_CACHE", "0")
    words = "he shrugged his shoulders most schools are oversubscribed has a keen sense of perception is very perceptive"
    monkeypatch.setattr(ts, "english_lexicon", lambda: frozenset(words.split() + ["please", "trouble", "don't"]))
    got = lm_text.load_lm_text("ding")
    assert got == ["he shrugged his shoulders", "most schools are oversubscribed",
                   "he has a keen sense of perception", "he is very perceptive"]  # fmt: skip
    # "may i trouble you ..." has too many unknown words; "please don't trouble", "no idea" are short
    assert lm_text.load_lm_text("ding", min_words=5) == ["he has a keen sense of perception"]


def test_missing_lm_source_names_package(monkeypatch, tmp_path):
    spec = dataclasses.replace(lm_text.LM_TEXT_SOURCES["ding"], root=str(tmp_path / "nowhere"))
    monkeypatch.setitem(lm_text.LM_TEXT_SOURCES, "ding", spec)
    with pytest.raises(ts.TextSourceError, match=r"install the Debian package\(s\) with `apt-get install trans-de-en`"):
        lm_text.load_lm_text("ding")
    with pytest.raises(ts.TextSourceError, match="unknown LM text source"):
        lm_text.load_lm_text("no-such-source")


def test_lm_only_text_stays_out_of_the_corpus():
    assert not set(lm_text.LM_TEXT_SOURCES) & set(ts.TEXT_SOURCES)
    assert not set(lm_text.LM_TEXT_SOURCES) & set(ts.available_sources())


def test_lm_sentences_add_extra_sources_without_dev_test_or_held_out(monkeypatch):
    import data_prep.corpora.lm_text as lt

    extra = ["the cat sat on the mat", "a dev sentence is here", "a fortune cookie says so",
             "train text is here", "the cat sat on the mat", "Brand New Words Here"]  # fmt: skip
    monkeypatch.setattr(lt, "load_lm_text", lambda name: extra if name == "ding" else [])
    monkeypatch.setattr(ts, "available_sources", lambda: ["wordnet", "fortunes"])
    monkeypatch.setattr(ts, "load_sentences", lambda name: ["A fortune cookie says so."] if name == "fortunes" else [])
    monkeypatch.setattr(ts, "load_all_sources", lambda: {"wordnet": ["Train text is here.", "more wordnet text"]})
    train = [{"text": "train text is here", "text_source": "wordnet"}]
    exclude = {"a dev sentence is here", "more wordnet text"}

    off = recipe_lm.lm_sentences(recipe_lm.LMConfig(), train, exclude)
    assert off == ["train text is here"]
    on = recipe_lm.lm_sentences(recipe_lm.LMConfig(extra_sources=("ding",)), train, exclude)
    assert on == ["train text is here", "the cat sat on the mat", "brand new words here"]
    # the text mode "train" (an imported corpus) takes the extra text too
    imported = [{"text": "train text is here"}]
    got = recipe_lm.lm_sentences(recipe_lm.LMConfig(text="train", extra_sources=("ding",)), imported, exclude)
    assert got == ["train text is here", "the cat sat on the mat", "brand new words here"]


@pytest.mark.skipif(not lm_text.LM_TEXT_SOURCES["ding"].files() or "wordnet" not in ts.available_sources(),
                    reason="trans-de-en or wordnet-base not installed (apt-get install trans-de-en wordnet-base)")
def test_installed_ding_sentences():
    sents = lm_text.load_lm_text("ding")
    assert len(sents) > 10_000
    assert len(set(sents)) == len(sents)
    assert all(ts.MIN_WORDS <= len(s.split()) <= ts.MAX_WORDS for s in sents)
    assert not any(w in ("sb", "sth", "etw", "jdn") for s in sents for w in s.split())
