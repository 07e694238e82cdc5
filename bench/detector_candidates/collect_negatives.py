"""Real technical text with no personal data, as negatives for the token classifier's training.

Issue 14's untuned clean set (docstrings, READMEs, code questions of installed packages) stayed at
5.0% altered while rules written from three tuning sets did not transfer; the classifier's own
technical negatives were all written by one generator. This collects real ones from sources that no
evaluation or tuning set uses:

* Python wheels downloaded from the package index for this (``pip download --no-deps``), none of
  them installed in the project's environment and none in ``tests/data/make_clean_tech_set.py``'s
  four package groups (checked below): module, class and function docstrings, README paragraphs of
  their METADATA, functions in a fenced block after a question written here, and the
  ``.ini/.cfg/.toml/.yaml/.conf`` files they ship;
* the CPython standard library of this machine's Python (docstrings and functions; no set uses it);
* npm packages (``npm pack``): README paragraphs and JSDoc comments.

Texts that name or credit people are left out with the clean sets' own filter (``NOT_CLEAN``) and,
more strictly, any text holding a capitalised word pair whose first word is a given name in
Faker's lists: a name labelled "no entity" would teach the classifier to miss names.

    python bench/detector_candidates/collect_negatives.py --download /tmp/negdl --out $D/_stage/negatives.jsonl
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "data"))
from make_clean_tech_set import DEV, DEV2, DEV3, NOT_CLEAN, REVIEWED_OUT, UNTUNED, python_pieces  # noqa: E402

#: Wheels to learn from: popular, documented, and disjoint from every clean set's packages.
WHEELS = [
    "django", "sqlalchemy", "celery", "tornado", "sympy", "networkx", "pandas", "psutil", "paramiko",
    "docutils", "sphinx", "marshmallow", "arrow", "peewee", "bottle", "falcon", "kombu", "dask", "toolz",
    "more-itertools", "boltons", "black", "isort", "pylint", "flake8", "tox", "virtualenv", "ansible-core",
    "scrapy", "twisted", "alembic",
]  # fmt: skip
NPM = [
    "express", "lodash", "commander", "yargs", "axios", "moment", "eslint", "mocha", "webpack", "vue",
    "rollup", "prettier", "ws", "chokidar", "ajv", "semver", "uuid", "debug",
]  # fmt: skip

#: Questions written for this file (the clean sets have their own list; these differ on purpose).
QUESTIONS = [
    "What does this do?",
    "Walk me through this code, please.",
    "Is this correct? It fails on one of our inputs.",
    "Refactor this so it is easier to test.",
    "Where would you add logging here?",
    "Explain the control flow of this function.",
    "Could this deadlock or leak a resource?",
    "Suggest better names for the variables in this snippet.",
    "How would I port this to Go?",
    "Write pytest cases covering the branches of this function.",
    "Why is this slow on big inputs, and how would you fix it?",
    "Is there a simpler way to write this?",
]

PAIR = re.compile(r"\b([A-Z][a-z]{2,})\s+([A-Z][a-z]+)\b")


def given_names() -> set[str]:
    from faker import Faker

    names: set[str] = set()
    for loc in ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "pl_PL", "sv_SE"):
        prov = Faker(loc)
        for attr in ("first_names", "first_names_male", "first_names_female"):
            for p in prov.factories[0].providers:
                v = getattr(p, attr, None)
                if v:
                    names.update(v if isinstance(v, (list, tuple, set)) else v.keys())
    return {n for n in names if n.isalpha()}


class Filter:
    def __init__(self) -> None:
        self.given = given_names()

    def __call__(self, text: str) -> bool:
        if NOT_CLEAN.search(text) or any(n in text for n in REVIEWED_OUT):
            return False
        return not any(m.group(1) in self.given for m in PAIR.finditer(text))


def excluded_packages() -> set[str]:
    names = {p.lower().replace("-", "_") for spec in (DEV, DEV2, DEV3, UNTUNED) for p in spec["packages"]}
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for meta in site.glob("*.dist-info"):
        names.add(meta.name.split("-")[0].lower().replace("-", "_"))
    return names


def python_texts(src: str, rng: random.Random) -> Iterator[tuple[str, str]]:
    try:
        pieces = list(python_pieces(src, min_doc=60))
    except (SyntaxError, ValueError):
        return
    for kind, text in pieces:
        if kind == "docstring":
            yield "docstring", text
        else:
            yield "question", f"{rng.choice(QUESTIONS)}\n\n```python\n{text}\n```"


def paragraphs(text: str, lo: int = 80, hi: int = 1000) -> Iterator[str]:
    for para in re.split(r"\n\s*\n", text):
        p = para.strip("\n")
        if lo <= len(p.strip()) <= hi and not p.lstrip().startswith(("[![", "<", "![")):
            yield p


def wheel_texts(path: Path, rng: random.Random) -> Iterator[tuple[str, str]]:
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            parts = name.split("/")
            if any(p in ("tests", "test", "testing") for p in parts):
                continue
            try:
                data = z.read(name).decode("utf-8")
            except (UnicodeDecodeError, KeyError):
                continue
            if name.endswith(".py"):
                yield from python_texts(data, rng)
            elif name.endswith(".dist-info/METADATA"):
                body = data.partition("\n\n")[2]
                yield from (("readme", p) for p in paragraphs(body))
            elif name.endswith((".ini", ".cfg", ".toml", ".yaml", ".yml", ".conf")):
                yield from (("config", p) for p in paragraphs(data, 60, 1200))


def npm_texts(path: Path) -> Iterator[tuple[str, str]]:
    with tarfile.open(path) as t:
        for m in t.getmembers():
            if not m.isfile() or "/test" in m.name or "/node_modules/" in m.name:
                continue
            low = m.name.lower()
            if not (low.endswith(("readme.md", ".js", ".ts", ".mjs", ".cjs")) and m.size < 2_000_000):
                continue
            f = t.extractfile(m)
            if f is None:
                continue
            data = io.TextIOWrapper(f, encoding="utf-8", errors="replace").read()
            if low.endswith("readme.md"):
                yield from (("readme", p) for p in paragraphs(data))
            else:
                for c in re.findall(r"/\*\*.*?\*/", data, re.DOTALL):
                    body = "\n".join(re.sub(r"^\s*\*\s?", "", ln) for ln in c[3:-2].split("\n")).strip()
                    if 60 <= len(body) <= 1200:
                        yield "jsdoc", body


def stdlib_texts(rng: random.Random) -> Iterator[tuple[str, str]]:
    root = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    for p in sorted(root.rglob("*.py")):
        if any(x in p.parts for x in ("test", "tests", "site-packages", "dist-packages", "idlelib", "lib2to3")):
            continue
        try:
            yield from python_texts(p.read_text(encoding="utf-8"), rng)
        except (UnicodeDecodeError, OSError):
            continue


def download(folder: Path) -> None:
    (folder / "wheels").mkdir(parents=True, exist_ok=True)
    (folder / "npm").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(folder / "wheels"),
         *WHEELS], check=True,
    )  # fmt: skip
    subprocess.run(["npm", "pack", "--silent", *NPM], cwd=folder / "npm", check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--download", required=True, help="folder for the wheels and npm tarballs (fetched if empty)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=14)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    folder = Path(a.download)
    if not any(folder.glob("wheels/*.whl")):
        download(folder)
    skip = excluded_packages()
    keep = Filter()
    seen: set[str] = set()
    counts: dict[str, int] = {}
    dropped = 0
    with open(a.out, "w") as out:

        def emit(source: str, items: Iterator[tuple[str, str]]) -> None:
            nonlocal dropped
            for kind, text in items:
                if text in seen:
                    continue
                seen.add(text)
                if not keep(text):
                    dropped += 1
                    continue
                counts[kind] = counts.get(kind, 0) + 1
                out.write(json.dumps({"text": text, "kind": kind, "source": source}, ensure_ascii=False) + "\n")

        for whl in sorted(folder.glob("wheels/*.whl")):
            pkg = whl.name.split("-")[0].lower()
            if pkg in skip:
                print(f"  skipped {whl.name}: installed here or in a clean set's package group")
                continue
            emit(pkg, wheel_texts(whl, rng))
        for tgz in sorted(folder.glob("npm/*.tgz")):
            emit("npm:" + tgz.name.rsplit("-", 1)[0], npm_texts(tgz))
        emit("stdlib", stdlib_texts(rng))
    print(f"{a.out}: {sum(counts.values())} texts {counts}; {dropped} left out as naming or crediting people")


if __name__ == "__main__":
    main()
