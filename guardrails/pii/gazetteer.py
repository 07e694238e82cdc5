"""Word lists for the gazetteer recognizers, built once per process from installed packages
(nothing is downloaded):

* given and family names of every locale Faker ships (about 60,000, Latin and romanised), the
  largest maintained multilingual name list on PyPI: en_core_web_sm misses most names that are
  not English ("Csanád", "Jóhannsdóttir", "Tsukihiko");
* English country names, also from Faker;
* an English lexicon from the spaCy model's lemmatizer tables, to tell the name "Rose" from the
  word "rose" and "Will" from "will".
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from functools import lru_cache
from typing import Any

log = logging.getLogger("mixguard.pii")

#: Names that are far more often words of our users' trade than people: programming languages,
#: products and tools. A policy's allow_list adds its own.
TECH_TERMS = frozenset(
    {
        "Ada",
        "Crystal",
        "Elixir",
        "Julia",
        "Pascal",
        "Ruby",
        "Rust",
        "Swift",
        "Dart",
        "Go",
        "Scala",
        "Kotlin",
        "Django",
        "Flask",
        "Jenkins",
        "Ansible",
        "Hadoop",
        "Spark",
        "Kafka",
        "Cassandra",
        "Debian",
        "Ubuntu",
        "Alpine",
        "Mint",
        "Fedora",
        "Arch",
        "Maven",
        "Gradle",
        "Sentry",
        "Grafana",
        "Jest",
        "Mocha",
        "Chai",
        "Karma",
        "Jasmine",
        "Alexa",
        "Siri",
        "Cortana",
        "Copilot",
        "Claude",
        "Gemini",
        "Mistral",
        "Mixtral",
        "Llama",
        "Galaxy",
        "Pixel",
        "Echo",
        "Kindle",
        "Ring",
        "Nest",
        "Okta",
        "Stripe",
        "Twilio",
        "Vercel",
        "Heroku",
        "Netlify",
        "Docker",
        "Kubernetes",
        "Helm",
        "Jira",
        "Confluence",
        "Slack",
        "Teams",
        "Zoom",
        "Excel",
        "Word",
        "Outlook",
        "Traceback",
        "Stacktrace",
        "Java",
        "Python",
        "Perl",
        "Node",
        "Deno",
        "Bun",
        "Lua",
        "Haskell",
        "Erlang",
    }
)

#: Months and weekdays: capitalised mid-sentence and some are given names ("June", "August").
CALENDAR = frozenset(
    {
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    }
)


def _provider_lists(package: str, attrs: tuple[str, ...], prefixes: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """Every string in the named list attributes of Faker's locale providers of one kind."""
    mod = importlib.import_module(package)
    out: dict[str, set[str]] = {}
    for info in pkgutil.iter_modules(mod.__path__):
        try:
            provider = importlib.import_module(f"{package}.{info.name}").Provider
        except Exception:  # a locale module without a Provider
            continue
        for attr in dir(provider):
            if attr not in attrs and not attr.startswith(prefixes):
                continue
            value = getattr(provider, attr)
            if isinstance(value, dict):
                value = list(value)
            if isinstance(value, (list, tuple)):
                out.setdefault(attr, set()).update(v for v in value if isinstance(v, str))
    return out


@lru_cache(maxsize=1)
def person_names() -> frozenset[str]:
    """Single-word given and family names ("Jakob", "Jóhannsdóttir"), two letters or more."""
    try:
        lists = _provider_lists(
            "faker.providers.person", ("first_romanized_names", "last_romanized_names"), ("first_names", "last_names")
        )
    except ImportError:
        log.warning("faker is not installed: the name gazetteer is empty")
        return frozenset()
    names = {
        w
        for words in lists.values()
        for name in words
        for w in name.split()
        if len(w) > 1 and w[0].isupper() and w.replace("-", "").replace("'", "").isalpha()
    }
    return frozenset(names - TECH_TERMS - CALENDAR)


@lru_cache(maxsize=1)
def country_names() -> frozenset[str]:
    """English country and territory names ("Czech Republic", "Brazil")."""
    try:
        from faker.providers.address.en_US import Provider
    except ImportError:
        log.warning("faker is not installed: the country gazetteer is empty")
        return frozenset()
    names = {c for c in Provider.countries if "," not in c}
    return frozenset(
        names
        | {
            "Czechia",
            "Czech Republic",
            "United States",
            "USA",
            "UK",
            "Great Britain",
            "England",
            "Scotland",
            "Wales",
            "Northern Ireland",
            "Holland",
            "Macedonia",
        }
    )


_LEXICON: tuple[frozenset[str], frozenset[str], frozenset[str]] | None = None


def prime_lexicon(nlp: Any) -> None:
    """Take the lexicon from a spaCy pipeline that is already loaded (the analyzer's), instead of
    loading the model a second time in every process."""
    global _LEXICON
    if _LEXICON is None:
        _LEXICON = _lexicon_of(nlp)


def _lexicon_of(nlp: Any) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(every English word, the words that are no noun only, verbs) from a spaCy pipeline's
    lemmatizer lookup tables. The noun table holds WordNet's proper nouns too ("martin",
    "cynthia"), so a name that is only a noun there may still be a name."""
    try:
        lookups = nlp.get_pipe("lemmatizer").lookups
        index, exc = lookups.get_table("lemma_index"), lookups.get_table("lemma_exc")
    except Exception:  # a model without lookup tables: a small fallback
        verbs = frozenset(
            {
                "convert",
                "compare",
                "explain",
                "write",
                "summarise",
                "summarize",
                "generate",
                "translate",
                "describe",
                "calculate",
                "sort",
                "fix",
                "list",
                "set",
                "upgrade",
                "refund",
                "call",
                "update",
            }
        )
        return verbs, verbs, verbs
    table = {pos: set(index.get(pos, [])) | set(exc.get(pos, {})) for pos in ("noun", "verb", "adj", "adv")}
    not_noun = table["verb"] | table["adj"] | table["adv"] | set(nlp.Defaults.stop_words)
    return frozenset(not_noun | table["noun"]), frozenset(not_noun), frozenset(table["verb"])


def _lexicon() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    global _LEXICON
    if _LEXICON is None:
        try:
            import spacy

            from .engine import DEFAULT_SPACY_MODEL

            nlp = spacy.load(DEFAULT_SPACY_MODEL, enable=[], disable=[])
        except Exception:  # no model: _lexicon_of falls back to a small list
            nlp = None
        _LEXICON = _lexicon_of(nlp)
    return _LEXICON


def english_words() -> frozenset[str]:
    return _lexicon()[0]


def common_words() -> frozenset[str]:
    """English words that are verbs, adjectives, adverbs or stop words ("will", "grant", "rose")."""
    return _lexicon()[1]


def english_verbs() -> frozenset[str]:
    return _lexicon()[2]
