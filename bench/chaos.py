"""The chaos table (issue 13, item 7): each fault scenario of `tests/chaos/scenarios.py` under load,
then a soak through the full guardrail path.

    python bench/chaos.py                       # every scenario, then a 5-minute soak at concurrency 32
    python bench/chaos.py --only redis-sigkill --soak-seconds 0
    python bench/chaos.py --soak-seconds 60 --concurrency 16 --json out.json

Each row: requests sent, answered, failed the documented way (a clear 503, an error event), anything
else, audit records expected (one per request) and found, time from the end of the fault to the
first success, the slowest request. The soak row adds p50/p99, the error rate, and the gateway's
RSS, open file descriptors and threads at the first and last sample (growth under 5% is the target).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "chaos"), str(ROOT)]
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from scenarios import SCENARIOS, Load, Row, judge, stack  # noqa: E402

from procs import RedisProc  # noqa: E402


def proc_sample(pid: int) -> dict[str, int]:
    """RSS (KiB), open file descriptors and threads of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_kib": int(fields["VmRSS"].split()[0]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
    }


def soak(seconds: float, concurrency: int) -> tuple[Row, dict[str, object]]:
    """`concurrency` clients through the full guardrail path (PII masking, topics, audit) for `seconds`."""
    server = RedisProc().start()
    try:
        with stack(server.url) as (gateway, _, _):
            assert gateway.proc is not None
            pid = gateway.proc.pid
            # warm-up at full concurrency: connection pools, caches and threads reach their working size,
            # so growth after it is what the soak measures
            with Load(gateway, "warm", workers=concurrency, timeout=30):
                time.sleep(20)
            samples = [proc_sample(pid)]
            load = Load(gateway, "soak", workers=concurrency, timeout=30)
            with load:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    time.sleep(min(10.0, max(0.0, end - time.monotonic())))
                    samples.append(proc_sample(pid))
            row = judge(Row(f"soak {seconds:g} s @ {concurrency}"), load.outcomes, {}, server.url, None)
            ok = sorted(o.elapsed for o in load.outcomes if o.status == 200)
            first, last = samples[0], samples[-1]
            stats: dict[str, object] = {
                "p50_ms": round(statistics.median(ok) * 1000, 1) if ok else None,
                "p99_ms": round(ok[int(0.99 * (len(ok) - 1))] * 1000, 1) if ok else None,
                "req_per_s": round(len(load.outcomes) / seconds, 1),
                "error_rate": round(1 - row.answered / max(1, row.sent), 4),
                "rss_growth": round(last["rss_kib"] / first["rss_kib"] - 1, 4),
                "first": first,
                "last": last,
                "samples": samples,
            }
            row.notes = (
                f"p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms, {stats['req_per_s']} req/s, errors "
                f"{stats['error_rate']:.2%}; RSS {first['rss_kib'] // 1024}->{last['rss_kib'] // 1024} MiB "
                f"({stats['rss_growth']:+.1%}), fds {first['fds']}->{last['fds']}, threads "
                f"{first['threads']}->{last['threads']}"
            )
            return row, stats
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=list(SCENARIOS), help="scenarios to run (default: all)")
    ap.add_argument("--soak-seconds", type=float, default=300.0, help="0: no soak")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    rows: list[Row] = []
    extra: dict[str, object] = {}
    for name in args.only or list(SCENARIOS):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.append(SCENARIOS[name]())
    if args.soak_seconds > 0:
        print(f"soak: {args.soak_seconds:g} s at concurrency {args.concurrency} ...", file=sys.stderr, flush=True)
        row, extra = soak(args.soak_seconds, args.concurrency)
        rows.append(row)
    head = "| scenario | sent | answered | failed as configured | other | audit expected / found (dup) | recovery | slowest |"
    print(head)
    print("|" + "---|" * 8)
    for r in rows:
        rec = "-" if r.recovery_s is None else f"{r.recovery_s:.2f} s"
        print(
            f"| {r.scenario} | {r.sent} | {r.answered} | {r.failed_as_configured} | {len(r.unexpected)} | "
            f"{r.audit_expected} / {r.audit_found} ({r.audit_duplicates}) | {rec} | {r.max_latency_s:.2f} s |"
        )
    for r in rows:
        if r.notes:
            print(f"- {r.scenario}: {r.notes}")
        for u in r.unexpected[:5]:
            print(f"  - unexpected: {u}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": [r.__dict__ for r in rows], "soak": extra}, indent=1, default=str)
        )


if __name__ == "__main__":
    main()
