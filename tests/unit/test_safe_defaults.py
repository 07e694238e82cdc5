"""Safe defaults (issue 13, item 6): loopback unless told otherwise; the audit spool is owner-only."""

from __future__ import annotations

import os
import stat

from proxy.audit.writer import AuditWriter
from proxy.cli import build_parser


def test_serve_listens_on_loopback_unless_told_otherwise():
    assert build_parser().parse_args(["serve", "--config", "c.yaml"]).host == "127.0.0.1"
    assert build_parser().parse_args(["serve", "--config", "c.yaml", "--host", "0.0.0.0"]).host == "0.0.0.0"


def test_the_audit_spool_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "state" / "audit.spool"
    w = AuditWriter(b"k" * 32, "mgtest:", str(path), 1000)
    w._spool([{"id": "r1"}])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    path.chmod(0o644)  # left by an older version
    w._spool([{"id": "r2"}])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes().count(b"\n") == 2


def test_failed_admin_sign_ins_are_limited_per_client():
    from proxy.audit.web import SignInFailures

    f = SignInFailures()
    for _ in range(SignInFailures.MAX):
        assert f.retry_after("10.0.0.1") == 0
        f.failed("10.0.0.1")
    wait = f.retry_after("10.0.0.1")
    assert 1 <= wait <= SignInFailures.WINDOW_S + 1
    assert f.retry_after("10.0.0.2") == 0  # another client is not held back
    f.succeeded("10.0.0.2")
    assert f.retry_after("10.0.0.1") == wait or f.retry_after("10.0.0.1") == wait - 1
