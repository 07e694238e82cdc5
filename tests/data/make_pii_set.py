"""Regenerates the labeled PII sets with presidio-evaluator's PresidioSentenceFaker (offline, seeded).

pip install presidio-evaluator
python tests/data/make_pii_set.py                                   # pii_labeled.jsonl, seed 42
python tests/data/make_pii_set.py --seed 7 --out pii_heldout.jsonl  # the held-out set
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
    fixed = [
        {
            **s,
            "start": mapping[s["start"]],
            "end": mapping[s["end"]],
            "value": new[mapping[s["start"]] : mapping[s["end"]]],
        }
        for s in spans
    ]
    return new, fixed


if __name__ == "__main__":
    import argparse

    from presidio_evaluator.data_generator import PresidioSentenceFaker

    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--out", default="pii_labeled.jsonl")
    args = ap.parse_args()
    random.seed(args.seed)
    records = PresidioSentenceFaker("en_US", lower_case_ratio=0.0, random_seed=args.seed).generate_new_fake_sentences(
        args.n
    )
    out = Path(__file__).with_name(args.out)
    with out.open("w") as f:
        for r in records:
            spans = [
                {"type": s.entity_type, "value": s.entity_value, "start": s.start_position, "end": s.end_position}
                for s in r.spans
            ]
            text, spans = unescape_newlines(r.full_text, spans)
            f.write(json.dumps({"text": text, "spans": spans}) + "\n")
    print(f"wrote {len(records)} sentences to {out}")
