"""untuned_debian.jsonl: real text with real people in it, from this Debian machine, labeled from
its structure (never by a detector):

* DEP-5 `/usr/share/doc/*/copyright` files: each `Files:` paragraph; the `YEARS NAME <EMAIL>`
  entries of its `Copyright:` field give the labels;
* `/var/lib/dpkg/status`: a package stanza (package, version, maintainer, description); the
  `Maintainer:` and `Original-Maintainer:` fields give them;
* Python packages' `METADATA` (`Author`, `Author-email`, `Maintainer`, `Maintainer-email`) in the
  site-packages directories given;
* man pages' AUTHOR(S) sections (groff markup stripped): a name right before an e-mail in angle
  brackets or parentheses, the names of "Written by A, B and C." and "was written by A".

A name counts as a person's when it is two to four capitalised words with no digits and no
organisation word ("Team", "Project", "Foundation", ...); e-mails are labeled only beside such a
name (a mailing list address is no one's personal data). Each person appears in at most two
records, so the maintainers of many packages do not dominate. Sampled with a fixed seed.

    python tests/data/make_debian_set.py [--site-packages DIR ...] [--seed 14]
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
from collections import Counter
from pathlib import Path

from _setlib import write_jsonl

ORG_WORDS = {
    "team", "teams", "maintainers", "maintainer", "project", "projects", "foundation", "inc", "ltd", "software",
    "developers", "developer", "contributors", "authors", "author", "corporation", "corp", "university", "group",
    "association", "debian", "google", "microsoft", "community", "consortium", "systems", "technologies", "labs",
    "company", "gmbh", "llc", "institute", "the", "and", "others", "strike", "force", "packaging", "packagers",
    "python", "perl", "rust", "java", "gnome", "kde", "qt", "mozilla", "apache", "ubuntu", "canonical", "red",
    "hat", "oracle", "ibm", "intel", "apple", "facebook", "meta", "amazon", "limited", "trust", "council", "board",
    "list", "lists", "org", "net", "com", "center", "centre", "laboratory", "x", "gcc", "llvm", "free", "gnu",
    "research", "national", "regents", "california", "members", "individual", "various", "unknown", "copyright",
    "holders", "holder", "all", "rights", "reserved", "et", "al", "de", "fsf", "pypa", "psf", "sun", "netscape",
    "oy", "ab", "bv", "nv", "sarl", "sas", "ag", "kg", "plc", "pty", "srl", "spa", "co", "studio", "studios",
}  # fmt: skip
PARTICLES = {"van", "von", "der", "den", "de", "da", "del", "di", "le", "la", "du", "dos", "bin", "al", "ten", "ter"}
EMAIL = r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+"
NAME_WORD = r"[A-ZÀ-ÖØ-ÞĀ-Ž][\w'’\-]*\.?"
PERSON_RUN = rf"{NAME_WORD}(?:[ ]+(?:(?:{'|'.join(sorted(PARTICLES))})[ ]+)?{NAME_WORD}){{1,3}}"


def person_like(name: str) -> bool:
    words = name.split()
    if not 2 <= len(words) <= 5 or any(ch.isdigit() for ch in name):
        return False
    if any(w.strip(".,").lower() in ORG_WORDS - PARTICLES for w in words):
        return False
    caps = [w for w in words if w.lower() not in PARTICLES]
    return len(caps) >= 2 and all(w[:1].isupper() for w in caps) and not all(len(w.rstrip(".")) == 1 for w in caps)


def _label(text: str, start: int, value: str, kind: str) -> dict:
    assert text[start : start + len(value)] == value
    return {"type": kind, "value": value, "start": start, "end": start + len(value)}


def name_email_labels(text: str) -> list[dict]:
    """`NAME <EMAIL>` and `NAME (EMAIL)` pairs where NAME is a person's."""
    out = []
    for m in re.finditer(rf"({PERSON_RUN})[ \t]*[<(]({EMAIL})[>)]", text):
        name = m.group(1)
        # drop leading words that are not part of the name ("by Jane Doe", "Copyright Jane Doe")
        words = list(re.finditer(r"\S+", name))
        while words and words[0].group().lower() in ORG_WORDS | {"by", "written", "maintained"}:
            words.pop(0)
        if not words:
            continue
        name2 = name[words[0].start() :]
        if not person_like(name2):
            continue
        out.append(_label(text, m.start(1) + words[0].start(), name2, "PERSON"))
        out.append(_label(text, m.start(2), m.group(2), "EMAIL_ADDRESS"))
    return out


def copyright_records(doc: Path) -> list[dict]:
    out = []
    for path in sorted(doc.glob("*/copyright")):
        try:
            text = path.read_text(errors="strict")
        except (UnicodeDecodeError, OSError):
            continue
        if not text.startswith("Format:") or "copyright-format" not in text.split("\n", 1)[0]:
            continue
        for para in re.split(r"\n\s*\n", text):
            if not re.match(r"Files:", para):
                continue
            lines, keep = para.split("\n"), []
            in_license_text = False
            for ln in lines:
                if ln.startswith("License:"):
                    keep.append(ln)
                    in_license_text = True
                elif in_license_text:
                    continue
                else:
                    keep.append(ln)
            record_text = "\n".join(keep).strip()
            labels = name_email_labels(record_text)
            if labels:
                out.append({"text": record_text, "spans": labels, "source": f"copyright:{path.parent.name}"})
    return out


def dpkg_records(status: Path) -> list[dict]:
    out = []
    for stanza in status.read_text(errors="replace").split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for ln in stanza.split("\n"):
            if ln[:1] in (" ", "\t") and key:
                fields[key] += "\n" + ln
            elif ":" in ln:
                key, _, value = ln.partition(":")
                fields[key] = value.strip()
        if "Package" not in fields or "Maintainer" not in fields:
            continue
        desc = fields.get("Description", "").split("\n")
        parts = [f"Package: {fields['Package']}", f"Version: {fields.get('Version', '')}"]
        parts.append(f"Maintainer: {fields['Maintainer']}")
        if "Original-Maintainer" in fields:
            parts.append(f"Original-Maintainer: {fields['Original-Maintainer']}")
        parts.append("Description: " + "\n".join(desc[:4]))
        text = "\n".join(parts)
        labels = name_email_labels(text)
        if labels:
            out.append({"text": text, "spans": labels, "source": f"dpkg:{fields['Package']}"})
    return out


def metadata_records(site_packages: list[Path]) -> list[dict]:
    out = []
    seen = set()
    for sp in site_packages:
        for meta in sorted(sp.glob("*.dist-info/METADATA")):
            head = meta.read_text(errors="replace").split("\n\n", 1)[0]
            fields = [
                ln
                for ln in head.split("\n")
                if re.match(
                    r"(Name|Version|Summary|Home-page|Author|Author-email|Maintainer|Maintainer-email|License):", ln
                )
            ]
            text = "\n".join(fields)
            name = next((ln for ln in fields if ln.startswith("Name:")), "")
            if name in seen:
                continue
            seen.add(name)
            labels = name_email_labels(text)
            for m in re.finditer(r"^(?:Author|Maintainer): (.+)$", text, re.MULTILINE):
                for part in re.split(r",\s*|\s+and\s+", m.group(1)):
                    part = part.strip()
                    if person_like(part) and "@" not in part:
                        labels.append(_label(text, text.index(part, m.start(1)), part, "PERSON"))
            for m in re.finditer(r"^(?:Author|Maintainer)-email: (.+)$", text, re.MULTILINE):
                for em in re.finditer(EMAIL, m.group(1)):
                    # an address alone counts when its field names one person ("Jane Doe <...>" is covered above)
                    if "<" not in m.group(1) and re.match(r"[a-z]+[._]?[a-z]+@", em.group()):
                        labels.append(_label(text, m.start(1) + em.start(), em.group(), "EMAIL_ADDRESS"))
            labels = _dedupe(labels)
            if any(s["type"] == "PERSON" for s in labels):
                out.append({"text": text, "spans": labels, "source": f"metadata:{meta.parent.name}"})
    return out


_GROFF_ESCAPES = [
    (r"\\f[BIRP]|\\f\(..|\\&|\\c", ""),
    (r"\\-", "-"),
    (r"\\\(co", "©"),
    (r"\\\(em", "—"),
    (r"\\e", r"\\\\"),
]


def degroff(src: str) -> str:
    lines = []
    for ln in src.split("\n"):
        if ln.startswith(('.\\"', "'\\\"")):
            continue
        if ln.startswith("."):
            m = re.match(r"\.(?:B|I|BI|BR|IR|RB|RI)\s+(.*)", ln)
            if not m:
                continue
            ln = m.group(1).replace('"', "")
        for pat, rep in _GROFF_ESCAPES:
            ln = re.sub(pat, rep, ln)
        lines.append(ln)
    return re.sub(r"[ \t]+", " ", " ".join(x.strip() for x in lines)).strip()


def man_records(man: Path, limit_files: int, rng: random.Random) -> list[dict]:
    files = sorted(man.glob("man[1-8]/*.gz"))
    rng.shuffle(files)
    out = []
    seen_texts = set()
    for f in files[:limit_files]:
        try:
            src = gzip.decompress(f.read_bytes()).decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError):
            continue
        m = re.search(r'^\.SH\s+"?AUTHORS?"?\s*$(.*?)(?=^\.SH|\Z)', src, re.MULTILINE | re.DOTALL)
        if not m:
            continue
        text = degroff(m.group(1))
        if not text or text in seen_texts or len(text) > 1500:
            continue
        seen_texts.add(text)
        labels = name_email_labels(text)
        for w in re.finditer(r"\b[Ww]ritten by ((?:[^.<(]|\.(?=\S))+?)(?=\s*(?:[.<(]|$| for | and others))", text):
            for part in re.split(r",\s*(?:and\s+)?|\s+and\s+", w.group(1)):
                part = part.strip()
                if person_like(part):
                    labels.append(_label(text, text.index(part, w.start(1)), part, "PERSON"))
        labels = _dedupe(labels)
        if labels:
            out.append({"text": text, "spans": labels, "source": f"man:{f.parent.name}/{f.name[:-3]}"})
    return out


def _dedupe(labels: list[dict]) -> list[dict]:
    seen, out = set(), []
    for s in sorted(labels, key=lambda s: (s["start"], -s["end"])):
        if (s["start"], s["end"]) in seen or any(o["start"] <= s["start"] < o["end"] for o in out):
            continue
        seen.add((s["start"], s["end"]))
        out.append(s)
    return out


def cap_people(records: list[dict], per_person: int = 2) -> list[dict]:
    """Records in order, skipping those whose every person already appeared `per_person` times."""
    counts: Counter[str] = Counter()
    out = []
    for r in records:
        people = {s["value"] for s in r["spans"] if s["type"] == "PERSON"}
        if people and all(counts[p] >= per_person for p in people):
            continue
        counts.update(people)
        out.append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--site-packages", type=Path, action="append", default=[])
    ap.add_argument("--out", default="untuned_debian.jsonl")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    parts = {
        "copyright": (copyright_records(Path("/usr/share/doc")), 300),
        "dpkg": (dpkg_records(Path("/var/lib/dpkg/status")), 100),
        "metadata": (metadata_records(args.site_packages), 120),
        "man": (man_records(Path("/usr/share/man"), 6000, rng), 180),
    }
    records: list[dict] = []
    for name, (recs, n) in parts.items():
        rng.shuffle(recs)
        recs = [r for r in recs if len(r["text"]) <= 3000]
        picked = cap_people(recs)[:n]
        print(f"{name}: {len(recs)} candidate records, {len(picked)} taken")
        records += picked
    records = cap_people(records, per_person=3)
    path = write_jsonl(args.out, records)
    print(f"{path.name}: {len(records)} records, {sum(len(r['spans']) for r in records)} labeled values")


if __name__ == "__main__":
    main()
