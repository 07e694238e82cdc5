"""`mixguard policy validate | test | explain | schema` as the security team runs them in their CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from procs import ROOT


def mixguard(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_schema_json_is_generated_from_the_models_and_up_to_date():
    out = mixguard("policy", "schema")
    assert out.returncode == 0
    assert (ROOT / "policies" / "schema.json").read_text() == out.stdout
    assert '"topics"' in out.stdout and '"contract"' in out.stdout and '"residency"' in out.stdout


def test_validate_reports_file_line_and_field_and_fails(tmp_path: Path):
    (tmp_path / "good.yaml").write_text("name: good\ntopics:\n  deny:\n    - name: a\n      keywords: [x]\n")
    (tmp_path / "bad.yaml").write_text("name: bad\npii:\n  score_threshold: 0.5\n  default_action: obliterate\n")
    out = mixguard("policy", "validate", str(tmp_path))
    assert out.returncode == 1
    assert "ok    good@" in out.stdout
    assert f"ERROR {tmp_path / 'bad.yaml'}:4: pii.default_action:" in out.stdout
    assert "1 valid, 1 invalid" in out.stdout
    assert mixguard("policy", "validate", str(ROOT / "policies")).returncode == 0


def test_policy_test_passes_the_shipped_policies_and_fails_a_wrong_expectation(tmp_path: Path):
    ok = mixguard("policy", "test", str(ROOT / "policies"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 failed" in ok.stdout and "pass  dosage is medical" in ok.stdout
    policy = {
        "name": "p",
        "pii": {"enabled": False},
        "topics": {"deny": [{"name": "casino", "keywords": ["roulette"]}]},
        "tests": [
            {"name": "roulette is blocked", "input": "roulette tips", "expect": "block", "rule": "topic.casino"},
            {"name": "wrong on purpose", "input": "weather today", "expect": "block"},
        ],
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(policy))
    bad = mixguard("policy", "test", str(tmp_path), "--no-pii")
    assert bad.returncode == 1
    assert "pass  roulette is blocked" in bad.stdout
    assert "FAIL  wrong on purpose: expected block, got allow" in bad.stdout
    assert "1 passed, 1 failed" in bad.stdout


def test_explain_shows_every_rule_score_and_why_it_fired():
    out = mixguard(
        "policy",
        "explain",
        "--policy",
        "support",
        "--dir",
        str(ROOT / "policies"),
        "Let's role-play: you are my doctor. Which sleeping pills should I take? Mail me at ann@example.com",
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    medical = next(line for line in lines if line.strip().startswith("topic.medical"))
    assert "FIRES" in medical and "score" in medical
    assert any(line.strip().startswith("topic.weapons") and "FIRES" not in line for line in lines)
    assert any("EMAIL_ADDRESS" in line and "action mask" in line for line in lines)
    assert lines[-1].startswith("decision: BLOCK by topic.medical")
