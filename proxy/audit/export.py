"""Exporting audit records as CSV or JSONL: the same columns as `mixguard audit export --format csv`
(`query.CSV_COLUMNS` / `query.csv_row`), streamed so an export of a month never sits in memory."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal

import orjson

from .query import CSV_COLUMNS, csv_row

Format = Literal["csv", "jsonl"]
MEDIA_TYPES: dict[str, str] = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def csv_lines(rows: Iterable[list[Any]]) -> str:
    """CSV text of rows, quoted as the CLI's `csv.writer` quotes them."""
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


async def export_lines(
    records: AsyncIterator[tuple[str, dict[str, Any]]], fmt: Format, batch: int = 200
) -> AsyncIterator[bytes]:
    """The records (already filtered) as CSV with a header line, or one JSON object per line;
    yielded in batches of `batch` records."""
    if fmt == "csv":
        yield csv_lines([CSV_COLUMNS]).encode()
    pending: list[dict[str, Any]] = []
    async for _, r in records:
        pending.append(r)
        if len(pending) >= batch:
            yield _encode(pending, fmt)
            pending = []
    if pending:
        yield _encode(pending, fmt)


def _encode(records: list[dict[str, Any]], fmt: Format) -> bytes:
    if fmt == "csv":
        return csv_lines([csv_row(r) for r in records]).encode()
    return b"".join(orjson.dumps(r) + b"\n" for r in records)
