"""`loradock.Client` against a running server (tiny base): the README snippet as written, answers, typed errors."""

from __future__ import annotations

import sys

import pytest

from tests.api_support import DOMAINS, KEY, TEXTS, api_config, tiny_home
from tests.readme_snippets import python_block

# The README's snippet, run exactly as written.
SNIPPET = python_block("loradock.Client(")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from loradock.serving.server import BackgroundServer

    with tiny_home(tmp_path_factory, "client") as (registry, base):
        with BackgroundServer(api_config(base), registry) as running:
            running.registry = registry
            yield running


def test_readme_snippet_runs_as_written(server, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LORADOCK_URL", server.url)
    monkeypatch.setenv("LORADOCK_TOKEN", KEY)
    exec(compile(SNIPPET, "README.md:Client", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("tickets tickets@1 ") for line in out), out
    assert any(line.endswith(" tickets@1") and line.split()[0] in DOMAINS["tickets"] for line in out), out
    assert sum(1 for line in out if line.split()[0] in DOMAINS["tickets"]) >= 3, out


def test_one_text_or_many(server) -> None:
    import loradock

    with loradock.Client(server.url, token=KEY) as client:
        one = client.classify("tickets", TEXTS[0])
        many = client.classify("tickets@2", TEXTS)
        top = client.classify("reviews", TEXTS[:2], top_k=1)
        models = client.models()
        domains = client.domains()
    version = server.registry.resolve("tickets@1")
    assert one.version == "tickets@1" and one.sha256 == version.sha256 and one.domain == "tickets"
    assert set(one.scores) == set(DOMAINS["tickets"]) and one.label == max(one.scores, key=one.scores.get)
    assert [c.version for c in many] == ["tickets@2"] * len(TEXTS)
    assert all(len(c.scores) == 1 for c in top)
    assert {m.id for m in models} == set(DOMAINS) and all(m.base_model for m in models)
    assert {row["domain"] for row in domains["domains"]} == set(DOMAINS)


def test_errors_are_typed(server) -> None:
    import loradock
    from loradock.client import AuthError, InvalidRequestError, NotFoundError, TooLargeError, UnreachableError

    with pytest.raises(AuthError) as denied:
        loradock.Client(server.url, token="wrong").models()
    assert isinstance(denied.value, PermissionError) and denied.value.status == 401
    client = loradock.Client(server.url, token=KEY)
    with pytest.raises(NotFoundError, match="legal") as missing:
        client.classify("legal", "x")
    assert missing.value.body["served"] == sorted(DOMAINS)
    with pytest.raises(NotFoundError, match="tickets@9"):
        client.classify("tickets@9", "x")
    with pytest.raises(InvalidRequestError) as bad:
        client.classify("tickets@@", "x")
    assert bad.value.field == "model" and isinstance(bad.value, ValueError)
    with pytest.raises(TooLargeError, match="limit is 8"):
        client.classify("tickets", ["x"] * 9)
    with pytest.raises(UnreachableError, match="adapters serve"):
        loradock.Client("http://127.0.0.1:9", timeout=2).health()


def test_import_loradock_stays_light() -> None:
    import subprocess

    code = "import sys, loradock; print('httpx' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
