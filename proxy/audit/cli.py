"""`mixguard audit tail | search | show | export | verify | archive`: review from the terminal."""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from .chain import Verifier, anchor_name, resolve_key, sign_head
from .query import CSV_COLUMNS, Filters, csv_row, decode_heads, iter_stream, parse_time


class Target:
    """Where the audit stream is: from --redis-url, the gateway's --config, or the running
    embedded server of a local gateway."""

    def __init__(self, args: argparse.Namespace) -> None:
        import redis

        from ..redis_store import embedded_url_file

        prefix, url = args.prefix, args.redis_url or os.environ.get("MIXGUARD_REDIS_URL")
        key_env, key_file = "MIXGUARD_AUDIT_KEY", "~/.config/mixguard/audit.key"
        source = None
        if args.config:
            from ..settings import load_config

            config = load_config(args.config)
            cfg, source = config.mixguard, config._source
            url = url or cfg.redis_url
            prefix = prefix or cfg.redis_prefix
            key_env, key_file = cfg.audit.key_env, cfg.audit.key_file
        if not url:  # the embedded server of the gateway started from this config (or the last one)
            p = Path(embedded_url_file(source))
            if p.is_file():
                url = p.read_text().strip()
        if not url:
            where = (
                f"no gateway started from {args.config} noted an embedded server" if args.config else "nothing given"
            )
            raise SystemExit(
                f"mixguard audit: no Redis to read ({where}): give --redis-url, --config or MIXGUARD_REDIS_URL"
            )
        self.url = url
        prefix = prefix or "mixguard:"
        self.client = redis.Redis.from_url(url, socket_timeout=10)
        self.stream, self.heads = f"{prefix}audit", f"{prefix}audit:heads"
        self.anchors = f"{prefix}audit:anchors"  # the last record of each chain that `archive` moved out
        self.key_env, self.key_file = key_env, key_file

    def key(self) -> bytes:
        return resolve_key(self.key_env, self.key_file)[0]


def _filters(args: argparse.Namespace) -> Filters:
    return Filters(
        since=args.since,
        until=args.until,
        app=args.app,
        key=args.key,
        outcome=args.decision,
        rule=args.rule,
        entity=args.entity,
        backend=args.backend,
        status=args.status,
        policy=args.policy,
    )


def _line(r: dict[str, Any]) -> str:
    rules = ",".join(f"{d['rule']}:{d['action']}" for d in r.get("decisions") or []) or "-"
    pii = ",".join(f"{k}={v}" for k, v in sorted((r.get("pii") or {}).items())) or "-"
    lat = (r.get("latency_ms") or {}).get("total")
    return (
        f"{str(r.get('time'))[:23]}  {r.get('id')}  {r.get('app')}  {r.get('endpoint')}  "
        f"{r.get('model')}->{r.get('backend')}  {r.get('outcome')} {r.get('status')}  rules={rules}  pii={pii}  "
        f"{'' if lat is None else f'{lat:.1f}ms'}"
    )


def _matching(t: Target, f: Filters, reverse: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    lo, hi = f.bounds_ms()
    for sid, r in iter_stream(t.client, t.stream, lo, hi, reverse=reverse):
        if f.match(r):
            yield sid, r


def cmd_tail(args: argparse.Namespace) -> int:
    t, f = Target(args), _filters(args)
    recent = []
    for item in _matching(t, f, reverse=True):
        recent.append(item)
        if len(recent) >= args.n:
            break
    last = recent[0][0] if recent else "0-0"
    for _, r in reversed(recent):
        print(_line(r), flush=True)
    while args.follow:
        rows = t.client.xread({t.stream: last}, block=1000, count=500) or []
        for _, entries in rows:
            for sid, fields in entries:
                last = sid.decode()
                r = orjson.loads(fields[b"r"])
                if f.match(r):
                    print(_line(r), flush=True)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    t, f = Target(args), _filters(args)
    n = 0
    for _, r in _matching(t, f, reverse=True):
        print(orjson.dumps(r).decode() if args.json else _line(r))
        n += 1
        if n >= args.limit:
            break
    print(f"{n} records", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    t = Target(args)
    for sid, r in iter_stream(t.client, t.stream, reverse=True):
        if r.get("id") == args.id or sid == args.id:
            print(orjson.dumps({"stream_id": sid, **r}, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
            return 0
    print(f"mixguard audit: no record {args.id}", file=sys.stderr)
    return 1


def _progress(total: int | None, desc: str, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="rec", file=sys.stderr, disable=quiet or None, mininterval=0.5)


def _archived(directory: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    if not directory:
        return
    files = sorted(
        Path(directory).glob("audit-*.jsonl.gz"),
        key=lambda p: tuple(int(x) for x in p.name[6:].split("_")[0].split("-")),
    )
    for p in files:
        with gzip.open(p, "rb") as fh:
            for line in fh:
                if line.strip():
                    row = orjson.loads(line)
                    yield f"{p.name}:{row['sid']}", row["r"]


def cmd_export(args: argparse.Namespace) -> int:
    t, f = Target(args), _filters(args)
    out = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115 (closed below)
    total = t.client.xlen(t.stream)
    n = 0
    try:
        writer = csv.writer(out) if args.format == "csv" else None
        if writer:
            writer.writerow(CSV_COLUMNS)
        with _progress(total, "export", args.quiet or not args.output) as bar:
            lo, hi = f.bounds_ms()
            for _, r in iter_stream(t.client, t.stream, lo, hi):
                bar.update(1)
                if not f.match(r):
                    continue
                n += 1
                if writer:
                    writer.writerow(csv_row(r))
                else:
                    out.write(orjson.dumps(r).decode() + "\n")
    finally:
        if args.output:
            out.close()
    print(f"exported {n} records" + (f" to {args.output}" if args.output else ""), file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    t = Target(args)
    heads = decode_heads(t.client.hgetall(t.heads))  # read before the records: see chain.Verifier
    v = Verifier(t.key(), heads, decode_heads(t.client.hgetall(t.anchors)))
    with _progress(t.client.xlen(t.stream), "verify", args.quiet) as bar:
        for where, r in _archived(args.archive):
            v.feed(r, where)
        for sid, r in iter_stream(t.client, t.stream):
            v.feed(r, sid)
            bar.update(1)
    report = v.finish()
    for c in report.chains.values():
        state = "ok" if not c.problems else "BROKEN"
        print(f"chain {c.chain}: {c.records} records, seq {c.first_seq}..{c.last_seq}: {state}")
        for note in c.notes:
            print(f"  note: {note}")
        for p in c.problems:
            print(f"  PROBLEM: {p}")
    print(report.summary())
    return 0 if report.ok else 1


def cmd_archive(args: argparse.Namespace) -> int:
    """Move records older than --older-than into a gzip JSONL file, then trim them from the stream."""
    t = Target(args)
    cutoff = parse_time(args.older_than)
    assert cutoff is not None
    hi = f"{int(cutoff * 1000)}-0"
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".archive-{os.getpid()}.tmp"
    first = last = None
    n = 0
    ends: dict[str, tuple[int, str]] = {}  # per chain, the last record archived: its anchor
    with gzip.open(tmp, "wb") as fh, _progress(None, "archive", args.quiet) as bar:
        for sid, r in iter_stream(t.client, t.stream, "-", "(" + hi):
            first = first or sid
            last = sid
            if isinstance(r.get("seq"), int) and isinstance(r.get("mac"), str):
                ends[str(r.get("chain"))] = (r["seq"], r["mac"])
            fh.write(orjson.dumps({"sid": sid, "r": r}) + b"\n")
            n += 1
            bar.update(1)
    if not n:
        tmp.unlink()
        print("nothing to archive", file=sys.stderr)
        return 0
    final = d / f"audit-{first}_{last}.jsonl.gz"
    os.replace(tmp, final)
    key = t.key()
    old = decode_heads(t.client.hgetall(t.anchors))
    for chain, (seq, mac) in ends.items():  # anchors before trimming: verify accepts the gap they explain
        if int(old.get(chain, {}).get("seq", -1)) < seq:
            mark = {"seq": seq, "mac": mac, "sig": sign_head(key, anchor_name(chain), seq, mac)}
            t.client.hset(t.anchors, chain, orjson.dumps(mark))
    # Trim exactly what was written: entries up to and including `last`.
    removed = t.client.execute_command("XTRIM", t.stream, "MINID", "=", _next_id(last))
    print(f"archived {n} records to {final}; {removed} removed from the stream", file=sys.stderr)
    return 0


def _next_id(sid: str) -> str:
    ms, seq = sid.split("-")
    return f"{ms}-{int(seq) + 1}"


def add_parser(sub: Any) -> None:
    a = sub.add_parser("audit", help="review the audit log (tail, search, show, export, verify, archive)")
    asub = a.add_subparsers(dest="audit_cmd", required=True)

    def common(p: argparse.ArgumentParser, filters: bool = True) -> None:
        p.add_argument("--config", help="the gateway's config (Redis URL, prefix, audit key settings)")
        p.add_argument("--redis-url")
        p.add_argument("--prefix", help="key prefix (default mixguard:)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        if filters:
            p.add_argument("--since", help="ISO time, epoch, or relative (15m, 2h, 7d)")
            p.add_argument("--until")
            p.add_argument("--app")
            p.add_argument("--key", help="API key id")
            p.add_argument("--decision", help="outcome: allowed, blocked, failed, rejected, unauthorized")
            p.add_argument("--rule", help="rule id, or prefix with * (topic.*, pii.*)")
            p.add_argument("--entity", help="PII entity type, e.g. EMAIL_ADDRESS")
            p.add_argument("--backend")
            p.add_argument("--status", help="HTTP status or class (200, 4xx, 5xx)")
            p.add_argument("--policy")

    p = asub.add_parser("tail", help="latest records, one line each; -f to follow")
    common(p)
    p.add_argument("-n", type=int, default=20)
    p.add_argument("-f", "--follow", action="store_true")
    p.set_defaults(func=cmd_tail)
    p = asub.add_parser("search", help="records matching filters, newest first")
    common(p)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)
    p = asub.add_parser("show", help="one record in full (request id or stream id)")
    common(p, filters=False)
    p.add_argument("id")
    p.set_defaults(func=cmd_show)
    p = asub.add_parser("export", help="matching records as JSONL or CSV")
    common(p)
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("-o", "--output", help="file (default: stdout)")
    p.set_defaults(func=cmd_export)
    p = asub.add_parser("verify", help="check signatures and the hash chain; exit 1 if anything was altered")
    common(p, filters=False)
    p.add_argument("--archive", help="directory of archive files to verify first (chain continuity)")
    p.set_defaults(func=cmd_verify)
    p = asub.add_parser("archive", help="move old records to compressed JSONL files")
    common(p, filters=False)
    p.add_argument("--older-than", required=True, help="e.g. 30d, or an ISO time")
    p.add_argument("--dir", required=True)
    p.set_defaults(func=cmd_archive)
