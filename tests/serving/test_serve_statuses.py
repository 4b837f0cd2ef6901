"""One error-to-status table (serving/statuses.py): the API and the console answer the same status for the same error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loradock.registry.errors import AliasError, InvalidRefError, RegistryError, UnknownVersionError
from loradock.serving.errors import AllPinnedError, ServingError
from loradock.serving.ray.errors import ReplicaRefusedError, ShipmentError
from loradock.serving.statuses import LORADOCK_ERRORS, STATUSES, UNKNOWN_STATUS, status_for
from tests.api_support import api_config, assert_envelope, tiny_home


def sample(cls: type[Exception]) -> Exception:
    """A loradock error of kind `cls` (the standard marker types get RegistryError as a second base)."""
    bases = (cls,) if issubclass(cls, LORADOCK_ERRORS) else (cls, RegistryError)

    def init(self: Exception) -> None:
        Exception.__init__(self, f"refused by the test as {cls.__name__}")

    kind = type(f"Sample{cls.__name__}", bases, {"__init__": init, "retry_after": 1})
    return kind()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The API and its console in one app, no key (the console is open), the watcher idle."""
    from loradock.serving.app import create_app

    with tiny_home(tmp_path_factory, "statuses") as (registry, base):
        app = create_app(api_config(base, api_key_env=None, poll_interval=3600), registry)
        with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
            client.registry = registry  # type: ignore[attr-defined]
            yield client


@pytest.mark.parametrize("cls", list(STATUSES), ids=lambda c: c.__name__)
def test_the_api_and_the_console_give_the_same_status(both: Any, cls: type[Exception], monkeypatch) -> None:
    error = sample(cls)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(both.registry, "resolve", refuse)
    api = both.post("/v1/classify", json={"domain": "tickets", "inputs": ["x"], "version": "1"})
    console = both.get("/ui/versions/tickets/1")
    assert_envelope(api, STATUSES[cls])
    assert console.status_code == STATUSES[cls] and "refused by the test" in console.text, console.text[-400:]


def test_the_most_specific_entry_wins_and_the_rest_have_one_rule() -> None:
    assert status_for(ShipmentError("bad bytes")) == 409  # a ValueError too
    assert status_for(AllPinnedError("every slot pinned")) == 503
    assert status_for(InvalidRefError("bad@@ref")) == 422
    assert status_for(UnknownVersionError("tickets@9", "")) == 404
    assert status_for(AliasError("'latest' cannot be set")) == status_for(ServingError("x")) == UNKNOWN_STATUS == 400
    assert status_for(ReplicaRefusedError("relayed", 418)) == 418
    assert status_for(ValueError("a bug, not a refusal")) == 500
