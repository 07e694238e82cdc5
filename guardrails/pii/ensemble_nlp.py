"""An NER ensemble for the PII analyzer: several spaCy NER models, the union of their people and places
(issue 14 item 4, a candidate for a stronger detector; `bench/pii_detectors.py` compares it).

Presidio's spaCy engine loads one pipeline per language by package name or directory, and
`engine.build_analyzer` keeps only the pipe named "ner" running. So the ensemble is a spaCy
component named "ner" (factory `mixguard_ensemble_ner`) that runs the NER of each model in turn
and sets `doc.ents` to:

* every PERSON, GPE, LOC and FAC span of any model; where they overlap, the longest (on a tie, the
  earlier model's): a name one model misses and another finds is masked;
* the other labels (ORG, DATE, NORP, ...) of the first model only, where they overlap none of those.

`save_ensemble` writes such a pipeline as a model directory (the first model's tokenizer, vocab,
vectors and lemmatizer tables, and the ensemble "ner"), which `mixguard.pii.spacy_model` can name.
Loading it needs the factory registered (`register()`, done when this module is imported) in every
process that loads it, worker processes included.

The first model should be the one with static vectors (en_core_web_md), since the models' NER runs
on the pipeline's vocab and its vectors; en_core_web_sm's NER uses none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

FACTORY = "mixguard_ensemble_ner"
#: labels whose spans of every model count (Presidio maps them to PERSON and LOCATION)
UNION_LABELS = frozenset({"PERSON", "GPE", "LOC", "FAC"})


class EnsembleNer:
    """Runs the NER pipe of each of `models` (installed package names or model directories)."""

    def __init__(self, models: Sequence[str]) -> None:
        import spacy

        if not models:
            raise ValueError("an NER ensemble needs at least one model")
        self.models = list(models)
        self.pipes: list[Any] = []
        for model in self.models:
            nlp = spacy.load(model)
            self.pipes.append(nlp.get_pipe("ner"))

    def __call__(self, doc: Any) -> Any:
        from spacy.util import filter_spans

        union: list[Any] = []
        others: list[Any] = []
        for i, pipe in enumerate(self.pipes):
            doc.ents = ()  # each model predicts on its own, not around the previous model's spans
            doc = pipe(doc)
            for ent in doc.ents:
                if ent.label_ in UNION_LABELS:
                    union.append(ent)
                elif i == 0:
                    others.append(ent)
        kept = filter_spans(union)  # longest first; a stable sort keeps the earlier model's on a tie
        taken = {t for s in kept for t in range(s.start, s.end)}
        kept += [s for s in others if taken.isdisjoint(range(s.start, s.end))]
        doc.ents = sorted(kept, key=lambda s: s.start)
        return doc

    def pipe(self, docs: Iterable[Any], batch_size: int = 128) -> Iterable[Any]:
        for doc in docs:
            yield self(doc)


def _make_ensemble_ner(nlp: Any, name: str, models: list[str]) -> EnsembleNer:
    return EnsembleNer(models)


def register() -> None:
    """Register the `mixguard_ensemble_ner` factory with spaCy (once per process)."""
    from spacy.language import Language

    if not Language.has_factory(FACTORY):
        Language.factory(FACTORY, default_config={"models": []})(_make_ensemble_ner)


def save_ensemble(models: Sequence[str], path: Path) -> Path:
    """Write a pipeline whose "ner" is the ensemble of `models` to the directory `path`: the first
    model's pipeline (tokenizer, vocab and vectors, lemmatizer tables) with its NER replaced."""
    import spacy

    register()
    nlp = spacy.load(models[0])
    nlp.replace_pipe("ner", FACTORY, config={"models": list(models)})
    nlp.meta["name"] = "ensemble_" + "_".join(Path(m).name for m in models)
    nlp.to_disk(path)
    return path


register()
