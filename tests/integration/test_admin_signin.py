"""Failed admin sign-ins are limited per client (issue 13, item 6)."""

from __future__ import annotations

import httpx

from procs import Gateway, Standin, gateway_config


def test_the_sixth_wrong_admin_key_in_a_row_waits(redis_server):
    s = Standin()
    g = Gateway(gateway_config({"model": "openai/mixtral", "api_base": f"{s.url}/v1"}, redis_url=redis_server.url))
    try:

        def sign_in(key: str) -> httpx.Response:
            return httpx.post(g.url + "/admin/login", data={"key": key}, timeout=10, follow_redirects=False)

        assert [sign_in("guess").status_code for _ in range(5)] == [401] * 5
        r = sign_in("guess")
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert sign_in(Gateway.ADMIN).status_code == 429  # even the right key waits: no oracle while blocked
    finally:
        g.stop()
        s.stop()
