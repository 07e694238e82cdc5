"""Hash chain and signatures of audit records.

Each gateway process writes its own chain (`chain` id, `seq` from 0). A record's `mac` is
HMAC-SHA256(key, prev_mac || canonical JSON of the record without `mac`), and `prev` repeats the
previous record's mac, so editing a record breaks its mac, and deleting, inserting or reordering
records breaks `prev`/`seq` continuity. The newest (seq, mac) of each chain is also kept in a
signed head key, so cutting records off the end is detected too. Without the key (from the
environment) nobody can forge a valid record.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

GENESIS = "0" * 64


def canonical(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "mac"}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def sign(key: bytes, record: dict[str, Any]) -> str:
    return hmac.new(key, record["prev"].encode() + canonical(record), hashlib.sha256).hexdigest()


def sign_head(key: bytes, chain: str, seq: int, mac: str) -> str:
    return hmac.new(key, f"head:{chain}:{seq}:{mac}".encode(), hashlib.sha256).hexdigest()


class Chain:
    """The writer's side: stamps records with chain, seq, prev and mac, in order."""

    def __init__(self, key: bytes, chain_id: str) -> None:
        self.key, self.id = key, chain_id
        self.seq, self.prev = -1, GENESIS

    def stamp(self, record: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        record["chain"], record["seq"], record["prev"] = self.id, self.seq, self.prev
        record["mac"] = sign(self.key, record)
        self.prev = record["mac"]
        return record


@dataclass
class ChainStatus:
    chain: str
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    chains: dict[str, ChainStatus] = field(default_factory=dict)
    records: int = 0

    @property
    def ok(self) -> bool:
        return all(not c.problems for c in self.chains.values())

    @property
    def problems(self) -> list[str]:
        return [f"chain {c.chain}: {p}" for c in self.chains.values() for p in c.problems]

    def summary(self) -> str:
        if self.ok:
            return f"OK: {self.records} records in {len(self.chains)} chain(s) verified"
        return f"FAILED: {len(self.problems)} problems in {self.records} records"


class Verifier:
    """Give the signed heads (read before the records), then feed records in stream order."""

    def __init__(
        self, key: bytes, heads: dict[str, dict[str, Any]], anchors: dict[str, dict[str, Any]] | None = None
    ) -> None:
        """`anchors`: per chain, the last record `mixguard audit archive` moved out of the stream
        (signed): the only reason a chain may start after seq 0 or end before its head."""
        self.key = key
        self.report = VerifyReport()
        self._last: dict[str, tuple[int, str]] = {}
        self._heads = self._signed(heads, "head")
        self._anchors = self._signed(anchors or {}, "archive anchor")
        self._head_seen: set[str] = set()

    def _signed(self, marks: dict[str, dict[str, Any]], what: str) -> dict[str, tuple[int, str]]:
        out = {}
        for chain, mark in marks.items():
            st = self.report.chains.setdefault(chain, ChainStatus(chain))
            try:
                seq, mac, sig = int(mark["seq"]), str(mark["mac"]), str(mark["sig"])
            except (KeyError, ValueError, TypeError):
                st.problems.append(f"{what} unreadable")
                continue
            name = chain if what == "head" else anchor_name(chain)
            if not hmac.compare_digest(sign_head(self.key, name, seq, mac), sig):
                st.problems.append(f"{what} signature mismatch: {what} edited")
                continue
            out[chain] = (seq, mac)
        return out

    def feed(self, record: dict[str, Any], where: str) -> None:
        self.report.records += 1
        chain = str(record.get("chain"))
        st = self.report.chains.setdefault(chain, ChainStatus(chain))
        st.records += 1
        seq, prev, mac = record.get("seq"), record.get("prev"), record.get("mac")
        if not isinstance(seq, int) or not isinstance(prev, str) or not isinstance(mac, str):
            st.problems.append(f"{where}: not a signed record")
            return
        if not hmac.compare_digest(sign(self.key, record), mac):
            st.problems.append(f"{where} (seq {seq}): signature mismatch: record edited or forged")
        last = self._last.get(chain)
        if last is None:
            st.first_seq = seq
            anchor = self._anchors.get(chain)
            if seq != 0 and anchor is not None and anchor == (seq - 1, prev):
                st.notes.append(f"starts at seq {seq}: seq 0..{seq - 1} archived (anchor checked)")
            elif seq != 0:
                st.problems.append(
                    f"{where}: starts at seq {seq}: records 0..{seq - 1} are missing and no archive anchor covers "
                    "them (lost with Redis, or trimmed by retention before `mixguard audit archive`)"
                )
        elif seq != last[0] + 1:
            st.problems.append(f"{where}: seq {seq} follows {last[0]}: records deleted, inserted or reordered")
        elif prev != last[1]:
            st.problems.append(f"{where} (seq {seq}): prev does not match the previous record: chain broken")
        head = self._heads.get(chain)
        if head is not None and head[0] == seq:
            self._head_seen.add(chain)
            if head[1] != mac:
                st.problems.append(f"{where} (seq {seq}): differs from the signed head: record replaced")
        self._last[chain] = (seq, mac)
        st.last_seq = seq

    def finish(self) -> VerifyReport:
        for chain in self._last.keys() - self._heads.keys():
            st = self.report.chains[chain]
            if not any("head" in p for p in st.problems):
                st.problems.append("no signed head: it was lost, so records at the chain's end may be missing too")
        for chain, (seq, _) in self._heads.items():
            st = self.report.chains[chain]
            if chain in self._head_seen:
                continue
            last = self._last.get(chain)
            anchor = self._anchors.get(chain)
            if last is None and anchor is not None and anchor[0] == seq:
                st.notes.append(f"all {seq + 1} records archived (anchor checked)")
            elif last is None:
                st.problems.append(f"no records, but the signed head says seq {seq}: records missing")
            elif last[0] < seq:
                st.problems.append(
                    f"last record is seq {last[0]} but the signed head says {seq}: records cut off the end"
                )
        return self.report


def anchor_name(chain: str) -> str:
    """Anchors are signed like heads, under another name, so one can never pass for the other."""
    return f"archive-anchor:{chain}"


def verify(records: Iterable[tuple[str, dict[str, Any]]], key: bytes, heads: dict[str, dict[str, Any]]) -> VerifyReport:
    v = Verifier(key, heads)
    for where, rec in records:
        v.feed(rec, where)
    return v.finish()


def resolve_key(env: str, key_file: str) -> tuple[bytes, str]:
    """The signing key: from the environment, else from `key_file` (created, mode 600, if absent).

    Every replica (and the reviewer's `mixguard audit verify`) must use the same key; in
    production set the env var from a secret store.
    """
    v = os.environ.get(env)
    if v:
        return v.encode(), f"env {env}"
    path = os.path.expanduser(key_file)
    try:
        with open(path, "rb") as f:
            data = f.read().strip()
        if data:
            return data, path
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    data = os.urandom(32).hex().encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data + b"\n")
    return data, f"{path} (created)"
