"""untuned_handwritten.jsonl from handwritten_messages.txt: messages written by hand for issue 14
(support tickets, e-mails, chats; names of many cultures), labels inline.

    python tests/data/make_handwritten_set.py
"""

from __future__ import annotations

from _setlib import HERE, from_markup, write_jsonl


def main() -> None:
    lines = [ln for ln in (HERE / "handwritten_messages.txt").read_text().splitlines() if not ln.startswith("#")]
    blocks = [b.strip("\n") for b in "\n".join(lines).split("\n---\n")]
    records = []
    for i, block in enumerate(b for b in blocks if b.strip() and b.strip() != "---"):
        clean = block.startswith("@clean\n")
        rec = from_markup(block.removeprefix("@clean\n"), f"handwritten:{i + 1}")
        assert clean == (not rec["spans"]), block[:60]
        records.append(rec)
    path = write_jsonl("untuned_handwritten.jsonl", records)
    n_pii = sum(1 for r in records if r["spans"])
    print(f"{path.name}: {n_pii} messages with labeled values, {len(records) - n_pii} clean")


if __name__ == "__main__":
    main()
