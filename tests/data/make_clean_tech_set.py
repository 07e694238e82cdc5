"""Clean technical texts for over-masking, from what is installed on this machine (no personal data;
every text that is changed by the guardrail counts as over-masked):

* docstrings of third-party packages (whole, with their Args/Returns/Raises sections, or their
  first paragraphs up to 1,200 characters);
* README paragraphs from the packages' METADATA long descriptions;
* code questions: a question written here for this set, then a real function's source from one
  of those packages in a fenced block;
* real stack traces, from running small failing snippets against installed libraries;
* log lines from /var/log (dpkg, apt, service logs), a few consecutive lines per text;
* config snippets from /etc and /usr/share/doc/*/examples (comments and settings).

Four disjoint sets: `clean_tech_dev.jsonl`, `clean_tech_dev2.jsonl` and `clean_tech_dev3.jsonl`,
each from its own group of packages and config files (tuning sets: their over-masks may be read to
improve the detector; dev2 and dev3 reuse dev's log files), and `untuned_clean_tech.jsonl` from the
others (never tuned on). Texts that name or credit people (copyright, author, thanks,
e-mail addresses, GitHub user URLs, eponyms like "Dijkstra's algorithm") are left out, so that
every change the guardrail makes is an over-mask.

    python tests/data/make_clean_tech_set.py [--seed 14]
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

from _setlib import write_jsonl

SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

DEV = {
    "packages": ["click", "httpx", "jsonschema", "attr", "tqdm", "requests", "uvicorn", "sortedcontainers", "pluggy"],
    "logs": ["/var/log/apt/history.log", "/var/log/alternatives.log", "/var/log/fontconfig.log"],
    "configs": ["/etc/adduser.conf", "/etc/logrotate.conf", "/etc/sysctl.conf", "/etc/gai.conf", "/etc/mke2fs.conf"],
    "sizes": {"docstring": 60, "readme": 15, "question": 15, "trace": 10, "log": 15, "config": 15},
}
UNTUNED = {
    "packages": ["starlette", "aiohttp", "pydantic", "redis", "numpy", "anyio", "rich", "urllib3", "pygments",
                 "jinja2", "trio", "packaging", "fsspec", "huggingface_hub", "yarl", "watchfiles"],
    "logs": ["/var/log/dpkg.log", "/var/log/nats-server.log", "/var/log/redis", "/var/log/postgresql",
             "/var/log/mysql", "/var/log/rabbitmq", "/var/log/mosquitto"],
    "configs": ["/etc/debconf.conf", "/etc/nsswitch.conf", "/etc/pam.conf", "/etc/nftables.conf",
                "/etc/deluser.conf", "/etc/e2scrub.conf", "/etc/nats-server.conf", "/etc/redis", "/etc/postgresql",
                "/etc/mysql", "/usr/share/doc/apt/examples", "/usr/share/doc/adduser/examples"],
    "sizes": {"docstring": 130, "readme": 40, "question": 40, "trace": 25, "log": 35, "config": 30},
}  # fmt: skip
#: A second tuning set (issue 14, third round), disjoint from both: written because the first one's
#: over-masks were all read and fixed (2.5% left) while the untuned set still read 5.0%.
DEV2 = {
    "packages": ["fastapi", "openai", "markdown_it", "pyparsing", "multidict", "h11", "httpcore", "websockets",
                 "dotenv", "_pytest", "filelock", "dateutil", "wrapt", "referencing", "jmespath", "idna"],
    "logs": ["/var/log/apt/history.log", "/var/log/alternatives.log"],
    "configs": ["/etc/appstream.conf", "/etc/host.conf", "/etc/ld.so.conf", "/etc/libaudit.conf",
                "/etc/sensors3.conf", "/etc/ucf.conf", "/etc/xattr.conf", "/etc/ca-certificates.conf",
                "/etc/login.defs", "/etc/security"],
    "sizes": {"docstring": 100, "readme": 30, "question": 30, "trace": 10, "log": 15, "config": 25},
}  # fmt: skip

#: A third tuning set (issue 14, third round): dev2's rules did not move the untuned figure.
DEV3 = {
    "packages": ["botocore", "boto3", "onnxruntime", "thinc", "srsly", "catalogue", "typer", "tldextract",
                 "prometheus_client", "opentelemetry", "yaml", "iniconfig", "mdurl", "frozenlist", "sniffio",
                 "markupsafe", "importlib_metadata"],
    "logs": ["/var/log/apt/history.log", "/var/log/alternatives.log", "/var/log/fontconfig.log"],
    "configs": ["/etc/systemd", "/etc/avahi", "/etc/fonts/fonts.conf", "/etc/ldap", "/etc/PackageKit",
                "/etc/UPower", "/etc/pulse", "/etc/maven"],
    "sizes": {"docstring": 100, "readme": 30, "question": 30, "trace": 10, "log": 10, "config": 30},
}  # fmt: skip

#: Texts that credit or name people, or link to someone's account: not clean, left out.
NOT_CLEAN = re.compile(
    r"(?i)copyright|\bauthor|written by|\bthanks?\b|credit|contribut|maintain|©|\(c\)\s*\d|[\w.+-]+@[\w-]+\.\w"
    r"|github\.com/|gitlab\.com/|bitbucket\.org/|twitter\.com/|mastodon|sponsor|funding"
    r"|['’]s (?:algorithm|method|rule|law|theorem|formula|distance|test|notation|conjecture)"
    r"|\bproposed by|\bdesigned by|\bcreated by|\bdeveloped by|\bbased on (?:the )?(?:work|code|paper) (?:of|by)"
)

#: Names found by reading the candidate texts before the first run (a postal address in a config
#: comment, a placeholder person in a README example, a mathematician in numpy's polynomial docs): left out too.
REVIEWED_OUT = ("John Zaitseff", "John Doe", "Jane Doe", "Legendre")

QUESTIONS = [
    "Can you explain what this function does, step by step?",
    "I found this in a library we depend on. Is there a bug in it?",
    "Why would this raise an exception when the input is empty?",
    "How would you write a unit test for this function?",
    "Could you rewrite this to be easier to read without changing its behaviour?",
    "What is the time complexity of this code?",
    "Is this function thread-safe? If not, what would you change?",
    "Add type hints to this function and explain your choices.",
    "Our linter complains about this function. What could it be?",
    "Translate this function into idiomatic TypeScript.",
    "What happens here if one of the arguments is None?",
    "Please review this code for performance problems.",
    "Explain the purpose of each parameter in this function.",
    "Why does this code use a try/except here instead of checking first?",
    "Can this be simplified with a comprehension or a standard library helper?",
    "Write a docstring for this function in Google style.",
    "How does this behave with very large inputs?",
    "Is there any edge case this function misses?",
    "What would break if I removed the early return?",
    "Convert this to an async function; what else has to change?",
]

#: Failing snippets run against installed libraries: their real tracebacks become texts.
TRACES = {
    "dev": [
        "import json; json.loads('{\"a\": 1,}')",
        "import httpx; httpx.URL('http://exa mple.com:99999')",
        "import jsonschema; jsonschema.validate({'n': 'x'}, {'type': 'object', 'properties': {'n': {'type': 'integer'}}})",
        "import click\n@click.command()\n@click.argument('n', type=int)\ndef main(n): pass\nmain(['abc'], standalone_mode=False)",
        "d = {'order_id': 1}; print(d['customer_id'])",
        "import attr\n@attr.s\nclass P:\n    x = attr.ib(validator=attr.validators.instance_of(int))\nP('1')",
        "def f(n): return f(n + 1)\nf(0)",
        "import requests; requests.get('http://127.0.0.1:9/health', timeout=1)",
        "from tqdm import tqdm; list(tqdm(range(3), total='x'))",
        "x = [1, 2, 3]; x[10]",
    ],
    "untuned": [
        "import yaml; yaml.safe_load('a: [1, 2\\nb: 3')",
        "import numpy as np; np.ones((3, 4)) @ np.ones((3, 4))",
        "from pydantic import BaseModel\nclass Order(BaseModel):\n    qty: int\nOrder(qty='many')",
        "import redis; redis.Redis(port=9, socket_connect_timeout=0.5).ping()",
        "import asyncio\nasync def main():\n    await asyncio.wait_for(asyncio.sleep(1), 0.01)\nasyncio.run(main())",
        "import urllib3; urllib3.PoolManager().request('GET', 'http://127.0.0.1:9/', retries=False)",
        "from packaging.version import Version; Version('1.2.x')",
        "import jinja2; jinja2.Template('{% for x in items %}{{ x }').render(items=[1])",
        "from starlette.applications import Starlette\nfrom starlette.testclient import TestClient\n"
        "async def boom(request): raise RuntimeError('cache backend not configured')\n"
        "from starlette.routing import Route\nTestClient(Starlette(routes=[Route('/', boom)])).get('/')",
        "import anyio\nasync def main():\n    with anyio.fail_after(0.01):\n        await anyio.sleep(1)\nanyio.run(main)",
        "int('12a')",
        "open('/nonexistent/config/settings.toml')",
        "import decimal; decimal.Decimal('1') / decimal.Decimal('0')",
        "class Node:\n    pass\nNode().parent.name",
        "import rich.console; rich.console.Console().print('[bold]unclosed', markup=True); raise ValueError('bad column width: -1')",
        "import re; re.compile('(?P<year>\\\\d{4}')",
        "import datetime; datetime.datetime.strptime('2024-13-01', '%Y-%m-%d')",
        "import fsspec; fsspec.filesystem('file').open('/no/such/dir/data.parquet')",
        "from yarl import URL; URL('http://[::1') ",
        "import numpy as np; np.array([1, 2, 3]).reshape(2, 2)",
        "import pydantic\nclass C(pydantic.BaseModel):\n    email: str\n    age: int\nC.model_validate({'email': None})",
        "import sqlite3; sqlite3.connect(':memory:').execute('SELEC 1')",
        "import pathlib; pathlib.Path('/etc/hostname').write_text('x') if False else {}['missing']",
        "import struct; struct.unpack('<I', b'ab')",
        "import importlib; importlib.import_module('mixguard_missing_plugin')",
    ],
    "dev2": [
        "import h11; h11.Request(method='GET', target='/', headers=[])",
        "from dateutil import parser; parser.parse('32nd of Smarch')",
        "import jmespath; jmespath.search('foo[?bar==', {})",
        "from fastapi import FastAPI\nfrom fastapi.testclient import TestClient\napp = FastAPI()\n"
        "@app.get('/items/{item_id}')\ndef read(item_id: int): return {'id': item_id}\n"
        "r = TestClient(app).get('/items/abc'); r.raise_for_status()",
        "import httpcore; httpcore.request('GET', 'http://127.0.0.1:9/')",
        "from filelock import FileLock; FileLock('/proc/no-such/lockfile', timeout=0).acquire()",
        "import idna; idna.encode('xn--a.example..com')",
        "from markdown_it import MarkdownIt; MarkdownIt('no-such-preset')",
        "import pyparsing as pp; pp.Word(pp.nums).parse_string('abc')",
        "import base64; base64.b64decode('abc', validate=True)",
        "import json; json.dumps({'when': object()})",
        "import ipaddress; ipaddress.ip_address('300.1.2.3')",
    ],
    "dev3": [
        "import yaml; yaml.safe_load('key: [unclosed')",
        "import srsly; srsly.json_loads('{bad json}')",
        "import tldextract; tldextract.TLDExtract(suffix_list_urls=())(None)",
        "import typer\napp = typer.Typer()\n@app.command()\ndef main(count: int): pass\n"
        "app(['many'], standalone_mode=False)",
        "from prometheus_client import Counter; Counter('requests total', 'bad name')",
        "import onnxruntime as ort; ort.InferenceSession('/no/such/model.onnx')",
        "from markupsafe import Markup; Markup('<b>%s</b>') % ()",
        "import importlib.metadata as m; m.version('no-such-distribution-xyz')",
        "import botocore.session; botocore.session.get_session().create_client('s3', region_name='')",
        "import catalogue; catalogue.create('mixguard', 'things').get('missing')",
        "from frozenlist import FrozenList; f = FrozenList([1]); f.freeze(); f.append(2)",
    ],
}


def _clean(text: str) -> bool:
    return not NOT_CLEAN.search(text) and not any(name in text for name in REVIEWED_OUT)


def trim_doc(doc: str, limit: int = 1200) -> str:
    """A long docstring cut to its first paragraphs that fit in `limit` characters."""
    if len(doc) <= limit:
        return doc
    out = ""
    for p in doc.split("\n\n"):
        if len(out) + len(p) > limit:
            break
        out += ("\n\n" if out else "") + p
    return out


def _py_files(pkg: str) -> list[Path]:
    root = SITE / pkg
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*.py") if "tests" not in p.parts and "test" not in p.parts)


def python_pieces(src: str, min_doc: int = 80) -> Iterator[tuple[str, str]]:
    """("docstring", text) for each docstring of `min_doc` characters or more (cut by trim_doc) and
    ("function", source) for each function of 5 to 23 lines, in the module's walk order."""
    tree = ast.parse(src)
    lines = src.split("\n")
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        doc = ast.get_docstring(node)
        if doc and len(doc) >= min_doc:
            doc = trim_doc(doc)
            if len(doc) >= min_doc:
                yield "docstring", doc
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno:
            body = textwrap.dedent("\n".join(lines[node.lineno - 1 : node.end_lineno]))
            if 4 <= body.count("\n") <= 22 and len(body) <= 1200:
                yield "function", body


def docstrings_and_functions(packages: list[str]) -> tuple[list[str], list[str]]:
    docs, funcs = [], []
    for pkg in packages:
        for path in _py_files(pkg):
            try:
                pieces = list(python_pieces(path.read_text()))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for kind, text in pieces:
                (docs if kind == "docstring" else funcs).append(text)
    return [d for d in docs if _clean(d)], [f for f in funcs if _clean(f)]


def readme_paragraphs(packages: list[str]) -> list[str]:
    out = []
    for pkg in packages:
        for meta in SITE.glob("*.dist-info/METADATA"):
            head, _, body = meta.read_text(errors="replace").partition("\n\n")
            name = re.search(r"^Name: (.+)$", head, re.MULTILINE)
            if not name or name.group(1).strip().lower().replace("-", "_") != pkg.lower().replace("-", "_"):
                continue
            for para in re.split(r"\n\s*\n", body):
                p = para.strip()
                if 120 <= len(p) <= 1000 and not p.startswith(("[![", "<", "|", "![")) and _clean(p):
                    out.append(p)
    return out


def traces(snippets: list[str]) -> list[str]:
    out = []
    for code in snippets:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        tb = r.stderr.strip()
        if "Traceback" in tb:
            out.append(tb[tb.index("Traceback") :][-2500:])
    return out


def _files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            files.append(p)
    return files


def log_chunks(paths: list[str], rng: random.Random) -> list[str]:
    out = []
    for f in _files(paths):
        try:
            lines = [ln for ln in f.read_text(errors="strict").split("\n") if ln.strip()]
        except (UnicodeDecodeError, OSError):
            continue
        for i in range(0, len(lines), 40):  # a few consecutive lines from every 40
            n = rng.randint(2, 6)
            chunk = "\n".join(lines[i : i + n])
            if 40 <= len(chunk) <= 1500 and _clean(chunk):
                out.append(chunk)
    return out


def config_paragraphs(paths: list[str]) -> list[str]:
    out = []
    for f in _files(paths):
        try:
            text = f.read_text(errors="strict")
        except (UnicodeDecodeError, OSError):
            continue
        for para in re.split(r"\n\s*\n", text):
            p = para.strip("\n")
            if 60 <= len(p) <= 1200 and _clean(p):
                out.append(p)
    return out


def build(spec: dict, trace_snippets: list[str], tag: str, rng: random.Random) -> list[dict]:
    docs, funcs = docstrings_and_functions(spec["packages"])
    pools = {
        "docstring": docs,
        "readme": readme_paragraphs(spec["packages"]),
        "question": [f"{rng.choice(QUESTIONS)}\n\n```python\n{f}\n```" for f in funcs],
        "trace": traces(trace_snippets),
        "log": log_chunks(spec["logs"], rng),
        "config": config_paragraphs(spec["configs"]),
    }
    records = []
    for kind, texts in pools.items():
        texts = list(dict.fromkeys(texts))  # no duplicates
        rng.shuffle(texts)
        picked = texts[: spec["sizes"][kind]]
        print(f"  {tag} {kind}: {len(texts)} candidates, {len(picked)} taken")
        records += [{"text": t, "spans": [], "source": f"{kind}"} for t in picked]
    return records


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    for name, spec, tag in (
        ("clean_tech_dev.jsonl", DEV, "dev"),
        ("untuned_clean_tech.jsonl", UNTUNED, "untuned"),
        ("clean_tech_dev2.jsonl", DEV2, "dev2"),
        ("clean_tech_dev3.jsonl", DEV3, "dev3"),
    ):
        records = build(spec, TRACES[tag], tag, rng)
        path = write_jsonl(name, records)
        print(f"{path.name}: {len(records)} clean texts")


if __name__ == "__main__":
    main()
