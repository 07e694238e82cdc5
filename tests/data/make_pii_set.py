"""Regenerates pii_labeled.jsonl with presidio-evaluator's PresidioSentenceFaker (offline, seeded).

    pip install presidio-evaluator && python tests/data/make_pii_set.py
"""
import json
import random
from pathlib import Path



def unescape_newlines(text: str, spans: list[dict]) -> tuple[str, list[dict]]:
    """Some of the faker's templates (addresses, dialogues) hold a literal backslash-n where a
    line break is meant; prompts carry real line breaks, so turn them into one and move offsets."""
    out, shift, mapping = [], 0, {}
    i = 0
    while i <= len(text):
        mapping[i] = i - shift
        if text.startswith("\\n", i):
            out.append("\n")
            shift += 1
            mapping[i + 1] = i - shift + 1
            i += 2
            continue
        if i < len(text):
            out.append(text[i])
        i += 1
    new = "".join(out)
    fixed = [{**s, "start": mapping[s["start"]], "end": mapping[s["end"]],
              "value": new[mapping[s["start"]]:mapping[s["end"]]]} for s in spans]
    return new, fixed


if __name__ == "__main__":
    from presidio_evaluator.data_generator import PresidioSentenceFaker

    random.seed(42)
    records = PresidioSentenceFaker("en_US", lower_case_ratio=0.0, random_seed=42).generate_new_fake_sentences(600)
    out = Path(__file__).with_name("pii_labeled.jsonl")
    with out.open("w") as f:
        for r in records:
            spans = [{"type": s.entity_type, "value": s.entity_value, "start": s.start_position, "end": s.end_position}
                     for s in r.spans]
            text, spans = unescape_newlines(r.full_text, spans)
            f.write(json.dumps({"text": text, "spans": spans}) + "\n")
    print(f"wrote {len(records)} sentences to {out}")
