"""Spool replay writes each record once (chaos finding): a batch whose MULTI/EXEC timed out on the
gateway's side may still have been applied by Redis; the records were spooled too, and replaying
them blindly stored them twice."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import redis.asyncio as aioredis

from proxy.audit.writer import AuditWriter


def test_replay_skips_records_the_server_already_applied(redis_server, tmp_path):
    prefix = f"t-replay-{uuid.uuid4().hex[:8]}:"

    async def main() -> list[int]:
        client = aioredis.from_url(redis_server.url)
        writer = AuditWriter(b"k" * 32, prefix, tmp_path / "audit.spool", 10_000)
        writer.redis = client
        first = [writer.chain.stamp({"id": f"req-{i:04d}"}) for i in range(3)]
        await writer._append(first)  # applied by the server ...
        writer._spool(first)  # ... but the gateway saw a timeout and spooled the batch too
        later = [writer.chain.stamp({"id": f"req-{i:04d}"}) for i in range(3, 5)]
        writer._spool(later)  # written while Redis was away
        writer.spooling = True
        await writer._replay()
        seqs = [orjson.loads(f[b"r"])["seq"] for _, f in await client.xrange(f"{prefix}audit")]
        await client.delete(f"{prefix}audit", f"{prefix}audit:heads")
        await client.aclose()
        return seqs

    seqs = asyncio.run(main())
    assert seqs == [0, 1, 2, 3, 4]  # in order, each once
    assert (tmp_path / "audit.spool").read_bytes() == b""
