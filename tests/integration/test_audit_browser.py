"""/admin/audit in a real headless browser (Debian's chromium + chromium-driver, via Selenium): sign
in, the overview (totals, server-drawn SVG charts), filters as selects, a record page (masked text,
decisions, chain links), and the export of the current filter as a real download.

Screenshots go to tests/artifacts/; with MIXGUARD_DOCS_SCREENSHOTS=1 also to docs/ (the README's)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from procs import ROOT, Gateway, RedisProc, gateway_config

ARTIFACTS = ROOT / "tests" / "artifacts"
DOWNLOADS = Path(tempfile.mkdtemp(prefix="mg-downloads-"))


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "install Debian's chromium and chromium-driver (scripts/test.sh does)"
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {"download.default_directory": str(DOWNLOADS)})
    drv = webdriver.Chrome(service=Service(driver_path), options=opts)
    drv.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(DOWNLOADS)})
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def web_gw(primary):
    rp = RedisProc().start()
    g = Gateway(gateway_config(primary.params(), redis_url=rp.url), env={"MIXGUARD_AUDIT_KEY": "browser-test"})
    yield g
    g.stop()
    rp.stop()


def _screenshot(browser, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    browser.save_screenshot(str(path))
    if os.environ.get("MIXGUARD_DOCS_SCREENSHOTS") == "1":
        shutil.copy(path, ROOT / "docs" / name)
    return path


def test_admin_audit_overview_filters_record_page_and_export(browser, web_gw):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def until(condition) -> None:  # a click starts a navigation; wait for the new page
        WebDriverWait(browser, 15).until(lambda d: condition())

    def send(key: str, text: str, **kw) -> str:
        rid = "web-" + uuid.uuid4().hex[:10]
        httpx.post(
            web_gw.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}", "x-request-id": rid},
            json={"model": "mixtral", "messages": [{"role": "user", "content": text}], **kw},
            timeout=30,
        )
        return rid

    mine = send(Gateway.KEY, "Hello from the test app, I am Rosalind Franklin")
    for who in ("Ada Lovelace", "Grace Hopper", "Katherine Johnson"):
        send(Gateway.KEY, f"Please write to {who} at {who.split()[0].lower()}@example.com", stream=True)
    send(Gateway.KEY, "My SSN is 536-22-8745, file my taxes")  # blocked by the default policy
    other = send("sk-other-app-key", "Hello from the other app")
    send("sk-other-app-key", "Call Marie Curie on (415) 555-0132")
    time.sleep(0.5)

    browser.get(web_gw.url + "/admin/audit")
    assert "Sign in" in browser.page_source  # not signed in: the login form, no records
    assert mine not in browser.page_source
    browser.find_element(By.ID, "key").send_keys("wrong-key")
    browser.find_element(By.ID, "signin").click()
    until(lambda: "Wrong admin key" in browser.page_source)
    browser.find_element(By.ID, "key").send_keys(Gateway.ADMIN)
    browser.find_element(By.ID, "signin").click()
    until(lambda: browser.find_elements(By.ID, "chain"))

    # the overview: chain status, totals, charts drawn on the server
    chain = browser.find_element(By.ID, "chain").text
    assert chain.startswith("Chain: OK") and "records" in chain
    assert browser.find_element(By.CSS_SELECTOR, "#t-requests b").text == "7"
    assert browser.find_element(By.CSS_SELECTOR, "#t-blocked b").text == "1"
    assert int(browser.find_element(By.CSS_SELECTOR, "#t-pii-entities b").text) >= 7
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart-requests rect.bar")
    assert bars and bars[0].size["height"] > 0  # rendered, with a height: not blocked by the CSP
    assert browser.find_elements(By.CSS_SELECTOR, "#top-entities rect.bar")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#records tr.record")) == 7
    assert mine in browser.page_source and other in browser.page_source
    for raw in ("Rosalind", "Lovelace", "536-22-8745", "555-0132"):
        assert raw not in browser.page_source  # masked: only placeholders and counts are shown
    _screenshot(browser, "audit-overview.png")

    # filters are selects, filled with the values that occur
    app = Select(browser.find_element(By.ID, "f-app"))
    assert [o.get_attribute("value") for o in app.options] == ["", "other-app", "test-app"]
    app.select_by_value("other-app")
    Select(browser.find_element(By.ID, "f-range")).select_by_value("1h")
    browser.find_element(By.ID, "apply").click()
    until(lambda: "app=other-app" in browser.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#records tr.record")
    assert len(rows) == 2 and all("other-app" in r.text for r in rows)
    assert mine not in browser.page_source
    assert browser.find_element(By.CSS_SELECTOR, "#t-requests b").text == "2"

    # export of the current filter: a real download, the CLI's CSV columns, the filtered rows only
    browser.find_element(By.ID, "export-csv").click()
    deadline = time.time() + 15
    files: list[Path] = []
    while time.time() < deadline and not files:
        files = [p for p in DOWNLOADS.glob("mixguard-audit-*.csv") if p.stat().st_size]
        time.sleep(0.2)
    assert files, "no CSV was downloaded"
    rows_csv = list(csv.DictReader(io.StringIO(files[0].read_text())))
    assert len(rows_csv) == 2 and {r["app"] for r in rows_csv} == {"other-app"}
    assert other in {r["id"] for r in rows_csv} and "pii.PERSON:mask" in " ".join(r["rules"] for r in rows_csv)

    # the record page: masked text, decisions as a table, chain links, the signed JSON on demand
    browser.get(web_gw.url + "/admin/audit?app=test-app&entity=PERSON")
    browser.find_element(By.LINK_TEXT, mine).click()
    until(lambda: browser.find_elements(By.ID, "signature"))
    assert browser.find_element(By.ID, "signature").text == "Signature: valid"
    assert browser.find_element(By.ID, "prompt").text == "user: Hello from the test app, I am <PERSON_1>"
    decisions = browser.find_element(By.ID, "decisions").text
    assert "pii.PERSON" in decisions and "mask" in decisions
    assert "first record of its chain" in browser.find_element(By.ID, "chain-status").text
    assert not browser.find_elements(By.ID, "prev")
    _screenshot(browser, "audit-record.png")
    browser.find_element(By.ID, "show-json").click()
    record = browser.find_element(By.ID, "record").text
    assert f'"id": "{mine}"' in record and '"PERSON": 1' in record and "<PERSON_1>" in record
    browser.find_element(By.ID, "next").click()
    until(lambda: mine not in browser.find_element(By.TAG_NAME, "h1").text)
    assert "linked to the previous record" in browser.find_element(By.ID, "chain-status").text
    assert browser.find_elements(By.ID, "prev")

    for name in ("audit-overview.png", "audit-record.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
    # The same page refuses an app key, and is read-only.
    r = httpx.get(web_gw.url + "/admin/audit", headers={"Authorization": f"Bearer {Gateway.KEY}"})
    assert r.status_code == 401 and "Sign in" in r.text
    assert httpx.post(web_gw.url + "/admin/audit").status_code == 405
    r = httpx.get(web_gw.url + "/admin/audit/export?format=csv", headers={"Authorization": f"Bearer {Gateway.KEY}"})
    assert r.status_code == 401 and "other-app" not in r.text
