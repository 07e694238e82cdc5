"""Policy mistakes cannot weaken the guard (issue 13, item 3): a name defined twice, a missing or
empty policies_dir, a key naming a missing policy, a reload that removes a policy in use, YAML
alias bombs and oversized files. Each refuses the start or the whole reload; the last good set
stays active, and PII stays masked."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from procs import ROOT, Gateway, Standin, gateway_config

EMAIL = "ines.okafor@example.org"
HEADERS = {"Authorization": f"Bearer {Gateway.KEY}"}
ADMIN = {"Authorization": f"Bearer {Gateway.ADMIN}"}
SHADOW = {"name": "default", "pii": {"enabled": False}}  # would switch the guard off
BOMB = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
    f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)


@pytest.fixture(scope="module")
def standin():
    s = Standin()
    yield s
    s.stop()


def serve_fails(config: dict, tmp: Path) -> str:
    """Start `mixguard serve` on a config that must be refused: its one-line reason."""
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "serve", "--config", str(path), "--host", "127.0.0.1", "--port", "9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    return out.stderr


def shipped_default() -> dict:
    return yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())


def masked(g: Gateway, standin: Standin) -> str:
    r = httpx.post(
        g.url + "/v1/chat/completions",
        headers=HEADERS,
        timeout=30,
        json={"model": "mixtral", "messages": [{"role": "user", "content": f"write to {EMAIL}"}]},
    )
    assert r.status_code == 200, r.text
    return standin.last_request()["messages"][0]["content"]


def reload(g: Gateway) -> httpx.Response:
    return httpx.post(g.url + "/admin/policies/reload", headers=ADMIN, timeout=30)


def test_a_second_file_named_default_is_refused_at_start(standin, tmp_path):
    d = tmp_path / "pol"
    d.mkdir()
    (d / "default.yaml").write_text(yaml.safe_dump(shipped_default()))
    (d / "a-shadow.yaml").write_text(yaml.safe_dump(SHADOW))  # sorts first: it used to win
    cfg = gateway_config({"model": "openai/mixtral", "api_base": f"{standin.url}/v1"}, extra={"policies_dir": str(d)})
    err = serve_fails(cfg, tmp_path)
    assert "'default' is defined in" in err and "a-shadow.yaml" in err


def test_a_shadow_added_by_reload_is_refused_and_pii_stays_masked(standin, redis_server, tmp_path):
    d = tmp_path / "pol"
    d.mkdir()
    (d / "default.yaml").write_text(yaml.safe_dump(shipped_default()))
    g = Gateway(
        gateway_config(
            {"model": "openai/mixtral", "api_base": f"{standin.url}/v1"},
            redis_url=redis_server.url,
            extra={"policies_dir": str(d)},
        )
    )
    try:
        assert EMAIL not in masked(g, standin)
        (d / "a-shadow.yaml").write_text(yaml.safe_dump(SHADOW))
        r = reload(g)
        assert r.status_code == 422 and any("defined in" in m for m in r.json()["errors"].values())
        assert EMAIL not in masked(g, standin)  # the last good set is still the active one
        time.sleep(1.2)  # the file watcher (1 s) sees the change too: still refused
        assert EMAIL not in masked(g, standin)
        (d / "a-shadow.yaml").unlink()
        assert reload(g).status_code == 200
    finally:
        g.stop()


def test_a_missing_or_empty_policies_dir_stops_the_start(standin, tmp_path):
    primary = {"model": "openai/mixtral", "api_base": f"{standin.url}/v1"}
    err = serve_fails(gateway_config(primary, extra={"policies_dir": str(tmp_path / "nope")}), tmp_path)
    assert "does not exist" in err
    (tmp_path / "empty").mkdir()
    err = serve_fails(gateway_config(primary, extra={"policies_dir": str(tmp_path / "empty")}), tmp_path)
    assert "holds no valid policy file" in err


def test_a_relative_policies_dir_is_found_beside_the_config_not_in_the_working_directory(standin, redis_server):
    cfg = gateway_config(
        {"model": "openai/mixtral", "api_base": f"{standin.url}/v1"},
        redis_url=redis_server.url,
        extra={"policies_dir": "team-policies"},
    )
    cfg["mixguard"]["api_keys"].append({"key": "sk-team", "app": "team", "policy": "team-default"})
    # the gateway runs in the repository (which has a policies/ of its own); the config lives elsewhere
    g = Gateway(cfg, before_start=lambda cfg_dir: _team_policies(cfg_dir / "team-policies"))
    try:
        r = httpx.post(
            g.url + "/v1/chat/completions",
            headers={"Authorization": "Bearer sk-team"},
            timeout=30,
            json={"model": "mixtral", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.headers["x-mixguard-policy"].startswith("team-default@")
    finally:
        g.stop()


def _team_policies(d: Path) -> None:
    d.mkdir()
    (d / "default.yaml").write_text(yaml.safe_dump({**shipped_default(), "name": "default"}))
    (d / "team.yaml").write_text(yaml.safe_dump({"name": "team-default"}))


def test_unset_policies_dir_means_the_shipped_policies(standin, redis_server):
    g = Gateway(
        gateway_config({"model": "openai/mixtral", "api_base": f"{standin.url}/v1"}, redis_url=redis_server.url)
    )
    try:
        r = httpx.post(
            g.url + "/v1/chat/completions",
            headers=HEADERS,
            timeout=30,
            json={"model": "mixtral", "messages": [{"role": "user", "content": "my SSN is 536-22-8146"}]},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "pii_blocked"  # the shipped rule, not built-in
    finally:
        g.stop()


def test_a_key_naming_a_missing_policy_stops_the_start(standin, tmp_path):
    cfg = gateway_config({"model": "openai/mixtral", "api_base": f"{standin.url}/v1"})
    cfg["mixguard"]["api_keys"].append({"key": "sk-x", "app": "x", "policy": "no-such-policy"})
    assert "no-such-policy" in serve_fails(cfg, tmp_path)


def test_a_reload_that_removes_a_policy_in_use_is_refused(standin, redis_server, tmp_path):
    d = tmp_path / "pol"
    d.mkdir()
    (d / "default.yaml").write_text(yaml.safe_dump(shipped_default()))
    (d / "strict.yaml").write_text(yaml.safe_dump({"name": "strict"}))
    cfg = gateway_config(
        {"model": "openai/mixtral", "api_base": f"{standin.url}/v1"},
        redis_url=redis_server.url,
        extra={"policies_dir": str(d)},
    )
    cfg["mixguard"]["api_keys"].append({"key": "sk-strict", "app": "s", "policy": "strict"})
    g = Gateway(cfg)
    try:
        (d / "strict.yaml").unlink()
        r = reload(g)
        assert r.status_code == 422 and "strict" in r.json()["active"]
        assert any("named by an API key" in m for m in r.json()["errors"].values())
    finally:
        g.stop()


@pytest.mark.parametrize("kind", ["alias bomb", "oversized"])
def test_alias_bombs_and_oversized_files_are_rejected_fast(kind, tmp_path):
    d = tmp_path / "pol"
    d.mkdir()
    (d / "default.yaml").write_text(yaml.safe_dump(shipped_default()))
    if kind == "alias bomb":
        (d / "bomb.yaml").write_text(BOMB)
        assert len(BOMB) < 1000
    else:
        (d / "big.yaml").write_text("name: big\ndescription: '" + "x" * (3 * 1024 * 1024) + "'\n")
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "policy", "validate", str(d)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert ("YAML aliases" if kind == "alias bomb" else "at most") in out.stdout
    from policies.loader import PolicyError, load_policy_file

    t = time.perf_counter()
    with pytest.raises(PolicyError):
        load_policy_file(d / ("bomb.yaml" if kind == "alias bomb" else "big.yaml"))
    assert time.perf_counter() - t < 1.0


def test_per_policy_request_size_limits_are_413_before_any_guardrail(standin, redis_server, tmp_path):
    d = tmp_path / "pol"
    d.mkdir()
    (d / "default.yaml").write_text(
        yaml.safe_dump({**shipped_default(), "request": {"max_messages": 3, "max_text_chars": 200}})
    )
    g = Gateway(
        gateway_config(
            {"model": "openai/mixtral", "api_base": f"{standin.url}/v1"},
            redis_url=redis_server.url,
            extra={"policies_dir": str(d)},
        )
    )
    try:

        def send(messages: list) -> httpx.Response:
            return httpx.post(
                g.url + "/v1/chat/completions",
                headers=HEADERS,
                json={"model": "mixtral", "messages": messages},
                timeout=30,
            )

        user = {"role": "user", "content": "hi"}
        assert send([user] * 3).status_code == 200
        r = send([user] * 4)
        assert r.status_code == 413 and r.json()["error"]["param"] == "messages", r.text
        assert "allows 3" in r.json()["error"]["message"]
        r = send([{"role": "user", "content": "x" * 150, "name": "y" * 60}])  # every text field counts
        assert r.status_code == 413 and "characters of text" in r.json()["error"]["message"], r.text
        r = httpx.post(
            g.url + "/v1/responses", headers=HEADERS, json={"model": "mixtral", "input": "z" * 201}, timeout=30
        )
        assert r.status_code == 413, r.text
    finally:
        g.stop()
