"""The chaos suite (issue 13, item 7): each scenario injects one fault under load and checks that the
gateway answers or fails the documented way, recovers by itself, and loses no audit record.
`bench/chaos.py` runs the same scenarios (plus a soak) and prints the table."""

from __future__ import annotations

import pytest
from scenarios import SCENARIOS, Row


def _explain(row: Row) -> str:
    return f"{row}"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(name: str) -> None:
    row = SCENARIOS[name]()
    assert row.sent >= 10, _explain(row)  # the load really ran through the fault
    assert not row.unexpected, _explain(row)
    assert row.audit_found == row.audit_expected, _explain(row)  # one record per request, none lost
    assert row.audit_duplicates == 0, _explain(row)
    if name.startswith("redis"):
        assert row.failed_as_configured >= 1, _explain(row)  # the fault was felt, and answered with a clear 503
        assert row.recovery_s is not None and row.recovery_s < 5, _explain(row)
        assert row.max_latency_s < 3, _explain(row)  # no request waits out the outage
    if name == "pii-worker-killed":
        assert row.recovery_s is not None and row.recovery_s < 5, _explain(row)  # threads serve while the pool restarts
    if name.startswith("backend-") and name != "backend-drop":
        assert row.answered == row.sent, _explain(row)  # the fallback answered every request
