"""The dashboard in a real browser: Debian's chromium, driven by Selenium
through chromedriver. The page must list every instance with its state,
restart one on a click and show its new pid without a reload, and ask
before acting on `all`. `make test` installs the Debian packages as root;
elsewhere this test skips and says why."""

import json
import os
import sys

import pytest

from tests.integration.harness import running_pid, wait_until
from tests.integration.http_client import HttpMaster, http_config

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900")
PY = sys.executable
TICKER = json.dumps([PY, "-u", "-c", "import time\nwhile True: print('tick', flush=True); time.sleep(0.3)"])
SERVICES = f"""
[services.db]
command = {TICKER}

[services.web]
command = ["sleep", "1000"]
after = ["db"]
numprocs = 2
"""

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (.[test])")


@pytest.fixture
def browser(tmp_path):
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("Debian's chromium and chromium-driver are not installed: `make test` as "
                    "root installs them (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def master():
    m = HttpMaster(http_config(SERVICES))
    try:
        m.start()
        m.wait_state("web:1", "RUNNING")
        yield m
    finally:
        m.close()


def cell(driver, name, column):
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f'tr.instance[data-name="{name}"] td.{column}')
    return rows[0].text if rows else None


@pytest.mark.timeout(120)
def test_the_dashboard_live_in_chromium(browser, master, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(f"{master.url}?token={master.token}")  # sets the cookie, goes to /
    assert browser.current_url == master.url
    for name in ("db", "web:0", "web:1"):
        wait_until(lambda name=name: "RUNNING" in (cell(browser, name, "state") or ""),
                   message=f"{name} RUNNING in the table", dump=master.output)
        assert cell(browser, name, "pid") == str(master.status(name)["pid"])
    old = master.status("db")["pid"]
    browser.execute_script("window.notReloaded = true")
    browser.find_element(By.CSS_SELECTOR, 'button[data-verb="restart"][data-name="db"]').click()
    new = running_pid(master, "db", other_than=old)
    wait_until(lambda: cell(browser, "db", "pid") == str(new) and "RUNNING" in cell(browser, "db", "state"),
               message="the new pid in the table", dump=master.output)
    assert browser.execute_script("return window.notReloaded") is True
    # the log view follows the merged log
    wait_until(lambda: "tick" in browser.find_element(By.ID, "log").text, message="log lines")
    # the tree, with its after link
    link = browser.find_element(By.CSS_SELECTOR, '#svc-web a[href="#svc-db"]')
    assert link.text == "db"
    # `all` asks first; saying no changes nothing
    browser.find_element(By.CSS_SELECTOR, 'button[data-verb="stop"][data-name="all"]').click()
    alert = wait_until(lambda: _alert(browser), message="the confirmation")
    assert "every service" in alert.text
    alert.dismiss()
    assert "stop" not in browser.find_element(By.ID, "message").text  # nothing was posted
    assert master.status("db")["state"] == "RUNNING"
    shot = tmp_path / "dashboard.png"
    if os.environ.get("CORRAL_SCREENSHOTS"):  # to look at them: a folder to copy them to
        shot = os.path.join(os.environ["CORRAL_SCREENSHOTS"], "dashboard.png")
    assert browser.save_screenshot(str(shot)) and os.path.getsize(shot) > 1000
    # a phone's width: still one row per instance, the state still written out
    browser.set_window_size(390, 844)
    assert "RUNNING" in cell(browser, "web:1", "state")
    browser.save_screenshot(os.path.join(os.path.dirname(shot), "dashboard-phone.png"))
    # without the cookie or a token: refused
    browser.delete_all_cookies()
    assert master.get("/", auth=False)[0] == 401
    assert master.get("/api/status", headers={"Cookie": "corral_token=wrong"}, auth=False)[0] == 401


def _alert(driver):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return driver.switch_to.alert
    except NoAlertPresentException:
        return None
