"""/admin/audit in a real headless browser (Debian's chromium + chromium-driver, via Selenium):
sign in, filter, open a record, see the chain's verification status. Keeps a screenshot."""

from __future__ import annotations

import shutil
import time
import uuid

import httpx
import pytest

from procs import ROOT, Gateway, RedisProc, gateway_config

ARTIFACTS = ROOT / "tests" / "artifacts"


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
        "--window-size=1400,900",
    ):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(driver_path), options=opts)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def web_gw(primary):
    rp = RedisProc().start()
    g = Gateway(gateway_config(primary.params(), redis_url=rp.url), env={"MIXGUARD_AUDIT_KEY": "browser-test"})
    yield g
    g.stop()
    rp.stop()


def test_admin_audit_page_sign_in_filter_detail_and_chain_status(browser, web_gw):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def until(condition) -> None:  # a click starts a navigation; wait for the new page
        WebDriverWait(browser, 15).until(lambda d: condition())

    def send(key: str, app_text: str) -> str:
        rid = "web-" + uuid.uuid4().hex[:10]
        httpx.post(
            web_gw.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}", "x-request-id": rid},
            json={"model": "mixtral", "messages": [{"role": "user", "content": app_text}]},
            timeout=30,
        )
        return rid

    mine = send(Gateway.KEY, "Hello from the test app, I am Rosalind Franklin")
    other = send("sk-other-app-key", "Hello from the other app")
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

    chain = browser.find_element(By.ID, "chain").text
    assert chain.startswith("Chain: OK") and "records" in chain
    rows = browser.find_elements(By.CSS_SELECTOR, "#records tr.record")
    assert len(rows) >= 2
    assert mine in browser.page_source and other in browser.page_source
    assert "Rosalind" not in browser.page_source  # masked: only placeholders and counts are shown

    browser.find_element(By.ID, "f-app").send_keys("other-app")
    browser.find_element(By.ID, "apply").click()
    until(lambda: "app=other-app" in browser.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#records tr.record")
    assert rows and all("other-app" in r.text for r in rows)
    assert mine not in browser.page_source

    browser.get(web_gw.url + "/admin/audit?app=test-app")
    browser.find_element(By.LINK_TEXT, mine).click()
    until(lambda: browser.find_elements(By.ID, "signature"))
    assert browser.find_element(By.ID, "signature").text == "Signature: valid"
    record = browser.find_element(By.ID, "record").text
    assert f'"id": "{mine}"' in record and '"PERSON": 1' in record and "<PERSON_1>" in record
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(web_gw.url + "/admin/audit")
    path = ARTIFACTS / "admin-audit.png"
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    # The same page refuses an app key, and is read-only.
    r = httpx.get(web_gw.url + "/admin/audit", headers={"Authorization": f"Bearer {Gateway.KEY}"})
    assert r.status_code == 401 and "Sign in" in r.text
    assert httpx.post(web_gw.url + "/admin/audit").status_code == 405
