"""The console in headless Chromium over a registry alone (`adapters ui`): pages, charts, escaping, alias moves."""

from __future__ import annotations

import threading
import time

import pytest

from tests.console_support import (
    XSS_LABEL,
    build_registry,
    canvas_ink,
    chromium_or_skip,
    console_errors,
    images_loaded,
    open_browser,
    screenshot,
)

KEY = "browser-test-token"


class _Server:
    """`adapters ui`'s app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, app) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "console did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    chromium_or_skip()
    from loradock.serving.console import create_console_app

    root = tmp_path_factory.mktemp("console-browser")
    registry = build_registry(root / "home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONSOLE_BROWSER_KEY", KEY)
        app = create_console_app(registry, "CONSOLE_BROWSER_KEY")
    with _Server(app) as url:
        driver = open_browser(root / "profile")
        try:
            yield {"url": url, "driver": driver, "registry": registry, "shots": root / "shots"}
        finally:
            driver.quit()
    registry.close()


def _visit(site, path: str):
    driver = site["driver"]
    driver.get(site["url"] + path)
    driver.execute_script("return document.readyState")  # wait for DOMContentLoaded handlers
    return driver


def _wait(driver, element_id: str):
    """The element once the page holding it has loaded (clicks that navigate return early sometimes)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 20).until(ec.presence_of_element_located((By.ID, element_id)))


def _login(site) -> None:
    from selenium.webdriver.common.by import By

    driver = _visit(site, "/ui/")
    assert "/ui/login" in driver.current_url
    driver.find_element(By.ID, "token").send_keys(KEY)
    driver.find_element(By.ID, "login-submit").click()
    _wait(driver, "domains")
    assert driver.current_url.endswith("/ui/")


@pytest.fixture(scope="module")
def signed_in(site):
    _login(site)
    console_errors(site["driver"])  # drain: a login redirect is no error, but start clean
    return site


def test_overview_shows_a_script_label_as_text(signed_in) -> None:
    from selenium.webdriver.common.by import By

    driver = _visit(signed_in, "/ui/")
    labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#domains .label")]
    assert XSS_LABEL in labels
    assert driver.execute_script("return window.__xss === undefined")
    assert console_errors(driver) == []
    screenshot(driver, "domains", signed_in["shots"])


def test_domain_page_chart_draws_and_table_sorts(signed_in) -> None:
    from selenium.webdriver.common.by import By

    driver = _visit(signed_in, "/ui/domains/support")
    assert driver.find_element(By.CSS_SELECTOR, ".description").text.startswith("<img src=x")
    assert canvas_ink(driver, "metrics-chart") > 500

    def numbers():
        return [
            r.find_element(By.CSS_SELECTOR, "td").text
            for r in driver.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
        ]

    assert numbers() == ["support@3", "support@2", "support@1"]
    driver.find_element(By.CSS_SELECTOR, "#versions th").click()
    assert numbers() == ["support@1", "support@2", "support@3"]
    assert len(driver.find_elements(By.CSS_SELECTOR, "#alias-timeline li")) == 3
    assert console_errors(driver) == []
    screenshot(driver, "domain", signed_in["shots"], scroll_to="versions-heading")


def test_version_page_plots_load(signed_in) -> None:
    from selenium.webdriver.common.by import By

    driver = _visit(signed_in, "/ui/versions/support/2")
    widths = images_loaded(driver)
    assert len(widths) == 2 and all(w > 100 for w in widths)
    assert driver.find_element(By.ID, "snippet-shell").text == "adapters path support@2"
    assert len(driver.find_elements(By.CSS_SELECTOR, "#confusion td")) == 9
    assert console_errors(driver) == []
    screenshot(driver, "version", signed_in["shots"], scroll_to="plots")


def test_compare_shows_a_real_difference(signed_in) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = _visit(signed_in, "/ui/compare")
    Select(driver.find_element(By.ID, "pick-a")).select_by_value("support@1")
    Select(driver.find_element(By.ID, "pick-b")).select_by_value("support@3")
    driver.find_element(By.ID, "compare-go").click()
    _wait(driver, "metrics-diff")
    rows = {
        r.find_element(By.TAG_NAME, "th").text: [c.text for c in r.find_elements(By.TAG_NAME, "td")]
        for r in driver.find_elements(By.CSS_SELECTOR, "#metrics-diff tbody tr")
    }
    assert rows["macro_f1"] == ["0.6000", "0.8000", "+0.2000"]
    changed = driver.find_elements(By.CSS_SELECTOR, "#config-diff tr.changed")
    assert any(r.find_element(By.TAG_NAME, "th").text == "peft.r" for r in changed)
    driver.find_element(By.ID, "only-changed").click()
    assert not any(r.is_displayed() for r in driver.find_elements(By.CSS_SELECTOR, "#config-diff tr.same"))
    assert all(w > 100 for w in images_loaded(driver)) and len(images_loaded(driver)) == 2
    assert console_errors(driver) == []
    driver.execute_script("window.scrollTo(0, 0)")
    screenshot(driver, "compare", signed_in["shots"])


def test_alias_rollback_from_the_console(signed_in) -> None:
    from selenium.webdriver.common.by import By

    registry = signed_in["registry"]
    assert registry.resolve("support@production").number == 2
    driver = _visit(signed_in, "/ui/domains/support")
    rollback = [
        a for a in driver.find_elements(By.CSS_SELECTOR, "#alias-timeline a.rollback") if a.text == "roll back to 1"
    ]
    rollback[0].click()
    assert "after this it points to support@1" in _wait(driver, "confirm-text").text
    assert registry.resolve("support@production").number == 2  # nothing moves before confirming
    screenshot(driver, "confirm", signed_in["shots"])
    driver.find_element(By.ID, "confirm-move").click()
    assert "support@production now points to support@1" in _wait(driver, "notice").text
    assert registry.resolve("support@production").number == 1
    assert console_errors(driver) == []


ATTACK_PAGE = """<!doctype html><html><body>
<form id="f" method="post" action="{console}/ui/alias/support">
<input name="alias" value="production"><input name="to" value="3"><input name="confirm" value="yes">
<input name="csrf" value="{planted}"></form>
<script>document.getElementById("f").submit();</script>
</body></html>"""


def test_a_page_on_another_port_cannot_move_an_alias(signed_in) -> None:
    """Issue 22, item 4: the signed-in browser opens a page on another 127.0.0.1 port that plants the
    CSRF cookie (with a Set-Cookie header) and posts an alias move. Cookies are not separated by port and SameSite=Strict lets
    them through (same site), so only the session-bound token and the origin check stop it."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from selenium.webdriver.common.by import By

    registry = signed_in["registry"]
    before = registry.resolve("support@production").number
    planted = "a" * 64
    page = ATTACK_PAGE.format(console=signed_in["url"], planted=planted).encode()

    class Attacker(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            # A response from any port may set (and overwrite, HttpOnly or not) 127.0.0.1's cookies.
            self.send_header("set-cookie", f"loradock_csrf={planted}; Path=/ui; HttpOnly; SameSite=Strict")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args) -> None:
            pass

    attacker = ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        driver = signed_in["driver"]
        driver.get(f"http://127.0.0.1:{attacker.server_address[1]}/")
        deadline = time.monotonic() + 20
        while not driver.current_url.startswith(signed_in["url"]):  # the form posted and its answer loaded
            assert time.monotonic() < deadline, driver.current_url
            time.sleep(0.05)
        assert registry.resolve("support@production").number == before, "the planted form moved the alias"
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "another site or port" in text, text
    finally:
        attacker.shutdown()
        attacker.server_close()
