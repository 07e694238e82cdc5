"""Regenerates pii_labeled.jsonl with presidio-evaluator's PresidioSentenceFaker (offline, seeded).

    pip install presidio-evaluator && python tests/data/make_pii_set.py
"""
import json
import random
from pathlib import Path

from presidio_evaluator.data_generator import PresidioSentenceFaker

random.seed(42)
faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.0, random_seed=42)
records = faker.generate_new_fake_sentences(600)
out = Path(__file__).with_name("pii_labeled.jsonl")
with out.open("w") as f:
    for r in records:
        f.write(json.dumps({"text": r.full_text, "spans": [
            {"type": s.entity_type, "value": s.entity_value, "start": s.start_position, "end": s.end_position}
            for s in r.spans]}) + "\n")
print(f"wrote {len(records)} sentences to {out}")
