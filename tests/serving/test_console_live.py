"""The console under `adapters serve` in headless Chromium: the live page moves, an alias move swaps the server."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from loradock.registry import Registry
from tests.console_support import canvas_ink, chromium_or_skip, console_errors, open_browser, screenshot
from tests.serve_support import TEXTS, offline, register, serve_config

pytestmark = pytest.mark.slow

KEY = "live-console-token"


@pytest.fixture(scope="module")
def live(tmp_path_factory, make_peft_folder):
    chromium_or_skip()
    from loradock.serving.server import BackgroundServer

    root = tmp_path_factory.mktemp("console-live")
    with pytest.MonkeyPatch.context() as mp:
        offline(mp)
        mp.setenv("LIVE_CONSOLE_KEY", KEY)
        registry = Registry(root / "home")
        register(registry, make_peft_folder, "medical", 1)
        register(registry, make_peft_folder, "medical", 5, aliases=())  # medical@2, not served yet
        register(registry, make_peft_folder, "sentiment", 3)
        config = serve_config(domains=("medical@production", "sentiment@production"), api_key_env="LIVE_CONSOLE_KEY")
        with BackgroundServer(config, registry) as server:
            driver = open_browser(root / "profile")
            try:
                yield {"url": server.url, "driver": driver, "registry": registry, "shots": root / "shots"}
            finally:
                driver.quit()
    registry.close()


def _wait(driver, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(lambda d: condition(d))


def _cell(driver, domain: str, css: str) -> str:
    """One cell's text, read in one script call (the page rebuilds its rows on every refresh)."""
    return driver.execute_script(
        "const c = document.querySelector(arguments[0]); return c ? c.textContent : '';",
        f'#live-domains tr[data-domain="{domain}"] td.{css}',
    )


def _classify(url: str, domain: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/classify",
        json={"domain": domain, "inputs": TEXTS[:2]},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    )


def test_live_page_numbers_move_while_requests_arrive(live) -> None:
    from selenium.webdriver.common.by import By

    driver = live["driver"]
    driver.get(live["url"] + "/ui/live")
    assert "/ui/login" in driver.current_url  # the server has a key: the console asks for it
    driver.find_element(By.ID, "token").send_keys(KEY)
    driver.find_element(By.ID, "login-submit").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "live-domains"))
    assert _cell(driver, "medical", "serving") == "medical@1"
    before = int(_cell(driver, "medical", "requests"))
    ink_before = canvas_ink(driver, "batch-chart")
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            for domain in ("medical", "sentiment"):
                _classify(live["url"], domain)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        _wait(
            driver,
            lambda d: (
                int(_cell(d, "medical", "requests") or 0) >= before + 5 and float(_cell(d, "medical", "rps") or 0) > 0
            ),
        )
    finally:
        stop.set()
        sender.join(30)
    assert canvas_ink(driver, "batch-chart") > ink_before  # bars appeared in the batch-size histogram
    assert int(driver.find_element(By.ID, "cache-device").text) >= 2
    assert console_errors(driver) == []


def test_alias_move_from_the_console_swaps_the_running_server(live) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver, url = live["driver"], live["url"]
    assert _classify(url, "medical").json()["version"] == "medical@1"
    driver.get(url + "/ui/domains/medical")
    form = driver.find_element(By.ID, "alias-form")
    alias = form.find_element(By.NAME, "alias")
    alias.clear()
    alias.send_keys("production")
    Select(form.find_element(By.NAME, "to")).select_by_visible_text("medical@2")
    driver.find_element(By.ID, "alias-review").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "confirm-move"))[0].click()
    _wait(driver, lambda d: d.find_elements(By.ID, "notice"))
    assert live["registry"].resolve("medical@production").number == 2
    deadline = time.monotonic() + 20
    while _classify(url, "medical").json()["version"] != "medical@2":
        assert time.monotonic() < deadline, "the server never swapped to medical@2"
        time.sleep(0.2)
    driver.get(url + "/ui/live")
    _wait(driver, lambda d: _cell(d, "medical", "serving") == "medical@2")
    recent = driver.find_element(By.ID, "live-recent").text
    assert "medical: medical@1 → medical@2" in recent
    assert console_errors(driver) == []
    screenshot(driver, "live", live["shots"])
