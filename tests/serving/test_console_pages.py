"""The console's pages over a registry alone (no browser): content, escaping, headers, access policy, writes."""

from __future__ import annotations

import html
import re

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from loradock.serving.console import create_console_app
from tests.console_support import XSS_LABEL, build_registry

KEY = "console-test-token"


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    registry = build_registry(tmp_path_factory.mktemp("console-pages") / "home")
    yield registry
    registry.close()


@pytest.fixture
def client(reg):
    with TestClient(create_console_app(reg), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
def keyed(reg, monkeypatch):
    monkeypatch.setenv("CONSOLE_KEY", KEY)
    with TestClient(create_console_app(reg, "CONSOLE_KEY"), base_url="http://127.0.0.1") as c:
        yield c


PAGES = [
    "/ui/",
    "/ui/domains/support",
    "/ui/versions/support/2",
    "/ui/versions/support/production",
    "/ui/compare?a=support@1&b=support@3",
    "/ui/compare",
]


@pytest.mark.parametrize("url", PAGES)
def test_every_page_renders_escaped_with_a_strict_csp(client, url) -> None:
    r = client.get(url)
    assert r.status_code == 200, r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert XSS_LABEL not in r.text and "<img src=x" not in r.text
    # No inline script: every <script> either loads a file of ours or is inert JSON data.
    for tag in re.findall(r"<script[^>]*>", r.text):
        assert 'src="/ui/static/' in tag or 'type="application/json"' in tag, tag
    assert "http://" not in r.text.replace("http://127.0.0.1", "") and "https://" not in r.text  # nothing remote


def test_overview_and_domain_show_labels_aliases_metrics_and_history(client) -> None:
    home = client.get("/ui/").text
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in home
    assert "production → 2" in home and "support@3" in home and "0.8000" in home  # newest macro-F1
    domain = client.get("/ui/domains/support").text
    assert "&lt;img src=x onerror=" in domain  # the description, as text
    assert domain.count('href="/ui/versions/support/') >= 3
    timeline = domain.split('id="alias-timeline"')[1]
    assert timeline.index("production") < timeline.index("staging")  # newest first
    assert re.search(r"1 → <strong>2</strong>", timeline)
    assert '"macro_f1": [[1, 0.6], [2, 0.7' in domain  # the chart's series, by version


def test_version_page_shows_lineage_plots_files_and_snippets(client, reg) -> None:
    page = client.get("/ui/versions/support/2").text
    v1, v2 = reg.resolve("support@1"), reg.resolve("support@2")
    assert v2.sha256[:12] in page and all(f["sha256"] in page for f in v2.files.values())
    assert 'href="/ui/versions/support/1">support@1</a>' in page  # parent
    assert 'href="/ui/versions/support/3">support@3</a>' in page  # child
    assert "adapters path support@2" in page and "PeftModel.from_pretrained" in page
    assert page.count('class="plot"') == 2 and 'id="per-class"' in page and 'class="heat-' in page
    hub = client.get("/ui/versions/support/1").text
    assert "acme/support-lora@v1" in hub
    plot = re.search(r'src="(/ui/artifacts/\d+/loss\.png)"', page).group(1)
    image = client.get(plot)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png" and image.content[:4] == b"\x89PNG"
    download = client.get("/ui/versions/support/1/files/adapter_model.safetensors")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    assert download.headers["x-content-sha256"] == v1.files["adapter_model.safetensors"]["sha256"]
    assert client.get("/ui/versions/support/1/files/%2E%2E/%2E%2E/registry.db").status_code in (400, 404)


def test_compare_shows_the_differences(client) -> None:
    page = client.get("/ui/compare?a=support@1&b=support@3").text
    assert "+0.2000" in page  # macro-F1 up by 0.2
    config = page.split('id="config-diff"')[1]
    assert re.search(r'<tr class="changed"><th>peft.r</th><td class="val">4</td><td class="val">12</td>', config)
    assert re.search(r'<tr class="changed"><th>train_args.lr</th>', config)
    assert 'id="confusion-a"' in page and 'id="confusion-b"' in page
    assert page.count('alt="confusion matrix plot of') == 2


def test_unknown_things_are_clear_404s(client) -> None:
    for url, text in [
        ("/ui/domains/nope", "Unknown domain 'nope'"),
        ("/ui/versions/support/9", "support@9"),
        ("/ui/compare?a=support@1&b=support@99", "support@99"),
        ("/ui/artifacts/9999/x.png", "9999"),
    ]:
        r = client.get(url)
        assert r.status_code == 404 and text in html.unescape(r.text), url
    assert client.get("/ui/compare?a=bad@@ref&b=support@1").status_code == 422  # as the API answers a bad ref


def test_read_only_without_a_key(client, reg) -> None:
    assert "alias-form" not in client.get("/ui/domains/support").text
    assert client.get("/ui/alias/support?alias=production&to=1").status_code == 403
    r = client.post("/ui/alias/support", data={"alias": "production", "to": "1", "confirm": "yes"})
    assert r.status_code == 403 and "read-only" in r.text
    assert reg.resolve("support@production").number == 2


def test_dns_rebinding_host_is_refused(reg) -> None:
    with TestClient(create_console_app(reg), base_url="http://evil.example") as c:
        r = c.get("/ui/")
    # TestClient's server address is not loopback; the check applies to a loopback-bound server.
    assert r.status_code == 200
    from loradock.serving.console.security import AccessPolicy

    class Req:
        scope = {"server": ("127.0.0.1", 8080)}
        headers = {"host": "evil.example:8080"}

    assert not AccessPolicy().check_host(Req())
    Req.headers = {"host": "localhost:8080"}
    assert AccessPolicy().check_host(Req())


def test_with_a_key_every_page_needs_it(keyed) -> None:
    r = keyed.get("/ui/domains/support", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next=")
    assert keyed.get("/ui/", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert keyed.get("/ui/static/console.css").status_code == 200  # assets are public
    login = keyed.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', login.text).group(1)
    wrong = keyed.post("/ui/login", data={"csrf": csrf, "token": "nope", "next": "/ui/"})
    assert wrong.status_code == 401 and "not the server" in wrong.text
    no_csrf = keyed.post("/ui/login", data={"csrf": "0" * 64, "token": KEY})
    assert no_csrf.status_code == 403
    ok = keyed.post(
        "/ui/login", data={"csrf": csrf, "token": KEY, "next": "https://evil.example/"}, follow_redirects=False
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/ui/"  # no open redirect
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert keyed.get("/ui/domains/support").status_code == 200


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]{64})"', page).group(1)


def _login(c: TestClient) -> str:
    """Sign in; the CSRF token of a signed-in page (it is bound to the session, so it changes at sign-in)."""
    before = _csrf(c.get("/ui/login").text)
    assert c.post("/ui/login", data={"csrf": before, "token": KEY}).status_code == 200
    after = _csrf(c.get("/ui/alias/support?alias=production&to=1").text)
    assert after != before
    return after


def test_alias_move_needs_token_csrf_and_confirmation(keyed, reg) -> None:
    anonymous = keyed.post(
        "/ui/alias/support", data={"alias": "production", "to": "3", "confirm": "yes"}, follow_redirects=False
    )
    assert anonymous.status_code == 401
    csrf = _login(keyed)
    review = keyed.get("/ui/alias/support?alias=production&to=3")
    assert review.status_code == 200 and "after this it points to <strong>support@3</strong>" in review.text
    assert (
        keyed.post(
            "/ui/alias/support", data={"alias": "production", "to": "3", "confirm": "yes", "csrf": "f" * 64}
        ).status_code
        == 403
    )
    assert keyed.post("/ui/alias/support", data={"alias": "production", "to": "3", "csrf": csrf}).status_code == 400
    assert reg.resolve("support@production").number == 2
    done = keyed.post(
        "/ui/alias/support",
        data={"alias": "production", "to": "3", "confirm": "yes", "csrf": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303 and reg.resolve("support@production").number == 3
    page = keyed.get(done.headers["location"]).text
    assert "support@production now points to support@3" in page
    assert 'href="/ui/alias/support?alias=production&amp;to=2">roll back to 2</a>' in page
    bad = keyed.post("/ui/alias/support", data={"alias": "latest", "to": "1", "confirm": "yes", "csrf": csrf})
    assert bad.status_code == 400 and "latest" in bad.text
    keyed.post("/ui/alias/support", data={"alias": "production", "to": "2", "confirm": "yes", "csrf": csrf})
    assert reg.resolve("support@production").number == 2


def test_gate_results_are_read_defensively() -> None:
    from types import SimpleNamespace

    from loradock.serving.console.views import gate_of

    def v(**kw):
        return SimpleNamespace(extra=kw.pop("extra", {}), metrics=kw.pop("metrics", {}), **kw)

    assert gate_of(v()) is None
    assert gate_of(v(gate={"passed": False, "reason": "accuracy 0.4 < 0.9"})) == {
        "status": "failed",
        "detail": "accuracy 0.4 < 0.9",
    }
    assert gate_of(v(extra={"gate": {"status": "passed"}}))["status"] == "passed"
    assert gate_of(v(gate='{"passed": true}'))["status"] == "passed"
    assert gate_of(v(metrics={"gate": "skipped"}))["status"] == "skipped"


def test_ui_command_help_and_bad_key_env(monkeypatch) -> None:
    from loradock.cli.main import cli

    runner = CliRunner()
    out = runner.invoke(cli, ["ui", "--help"], catch_exceptions=False)
    assert out.exit_code == 0 and "--api-key-env" in out.output and "127.0.0.1" in out.output
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    bad = runner.invoke(cli, ["ui", "--api-key-env", "NO_SUCH_KEY_VAR"], catch_exceptions=False)
    assert bad.exit_code == 5 and "NO_SUCH_KEY_VAR" in bad.output


def test_a_failed_gate_is_shown_and_the_console_cannot_alias_it(reg, keyed, tmp_path) -> None:
    from loradock.registry import VersionInfo
    from tests.synthetic_adapters import write_adapter

    assert 'class="gate gate-ok"' in keyed.get("/ui/", headers={"Authorization": f"Bearer {KEY}"}).text
    failed = reg.register(
        "support",
        write_adapter(tmp_path / "bad", labels=3, seed=9),
        VersionInfo(metrics={"accuracy": 0.3}, gate={"passed": False, "reasons": ["accuracy 0.3000 < 0.5"]}),
    )
    try:
        csrf = _login(keyed)
        page = keyed.get(f"/ui/versions/support/{failed.number}").text
        assert 'class="gate gate-bad"' in page and "accuracy 0.3000 &lt; 0.5" in page
        assert "failed its quality gate" in keyed.get(f"/ui/alias/support?alias=production&to={failed.number}").text
        r = keyed.post(
            "/ui/alias/support", data={"alias": "production", "to": str(failed.number), "confirm": "yes", "csrf": csrf}
        )
        assert r.status_code == 409 and "quality gate" in r.text
        assert reg.resolve("support@production").number == 2
    finally:
        reg.remove(failed.ref, force=True)


# -- issue 22: CSRF bound to the session, origin checks, notices from the event log ---------------


def test_a_cookie_planted_from_another_port_cannot_move_an_alias(keyed, reg) -> None:
    """Another 127.0.0.1:PORT can set our cookies; a token equal to a planted cookie proves nothing."""
    _login(keyed)
    before = reg.resolve("support@production").number
    planted = "a" * 64
    keyed.cookies.set("loradock_csrf", planted, domain="127.0.0.1", path="/ui")
    r = keyed.post(
        "/ui/alias/support",
        data={"alias": "production", "to": "1", "confirm": "yes", "csrf": planted},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "stale" in r.text
    assert reg.resolve("support@production").number == before


def test_posts_from_another_origin_are_refused_even_with_a_good_token(keyed, reg) -> None:
    csrf = _login(keyed)
    before = reg.resolve("support@production").number
    form = {"alias": "production", "to": "1", "confirm": "yes", "csrf": csrf}
    for headers in (
        {"Origin": "http://127.0.0.1:9999"},
        {"Origin": "null"},
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-site"},
        {"Origin": "http://127.0.0.1:9999", "Sec-Fetch-Site": "cross-site"},
    ):
        r = keyed.post("/ui/alias/support", data=form, headers=headers, follow_redirects=False)
        assert r.status_code == 403 and "another site or port" in r.text, headers
        assert reg.resolve("support@production").number == before
    for path in ("/ui/login", "/ui/logout"):
        assert keyed.post(path, data={"csrf": csrf}, headers={"Origin": "http://127.0.0.1:9999"}).status_code == 403
    same = keyed.post(
        "/ui/alias/support",
        data=form,
        follow_redirects=False,
        headers={"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"},
    )
    assert same.status_code == 303 and reg.resolve("support@production").number == 1
    keyed.post("/ui/alias/support", data={**form, "to": str(before)})
    assert reg.resolve("support@production").number == before


def test_a_made_up_move_notice_is_not_shown(client, reg) -> None:
    page = client.get("/ui/domains/support?moved=production&to=99").text
    assert 'id="notice"' not in page and "support@99" not in page
    for made_up in ("99999", "0", "-1", "1" * 40):
        assert 'id="notice"' not in client.get(f"/ui/domains/support?moved={made_up}").text
    first_move = reg.alias_history("support", "staging")[0]  # a real, old move: told as history
    page = client.get(f"/ui/domains/support?moved={first_move.id}").text
    assert "support@staging now points to support@1." in page
