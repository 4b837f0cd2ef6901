"""Exit codes are documented (README "Exit codes") and chosen by error type in cli/errors.py."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from loradock.adapters.errors import (
    ExportError,
    HubAuthError,
    HubConflictError,
    HubNetworkError,
    HubRepoNotFoundError,
    ParityError,
)
from loradock.cli.errors import Group, exit_code
from loradock.cli.main import cli
from loradock.registry.errors import DomainExistsError, InvalidRefError, UnknownVersionError


def run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_ok_is_0(registry) -> None:
    assert run("list").exit_code == 0


def test_any_other_error_is_1(tmp_path) -> None:
    result = run("predict", "--onnx", str(tmp_path), "hello")
    assert result.exit_code == 1 and "model.onnx" in result.output


def test_usage_is_2() -> None:
    result = run("list", "--no-such-flag")
    assert result.exit_code == 2 and "No such option" in result.output


def test_not_found_is_3(registry) -> None:
    result = run("show", "sentiment@9")
    assert result.exit_code == 3 and "sentiment@9" in result.output


def test_conflict_is_4(registry) -> None:
    result = run("domains", "add", "sentiment", "--labels", "a,b")
    assert result.exit_code == 4 and "already exists" in result.output


def test_invalid_input_is_5(registry) -> None:
    result = run("show", "sentiment@@2")
    assert result.exit_code == 5 and "Malformed ref 'sentiment@@2'" in result.output


def _raising(exc: BaseException) -> click.Group:
    @click.group(cls=Group)
    def root() -> None:
        pass

    @root.command()
    def boom() -> None:
        raise exc

    return root


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ParityError("export drifted"), 6),
        (HubNetworkError("endpoint unreachable"), 7),
        (HubAuthError("token refused"), 8),
        (HubConflictError("repo holds something else"), 4),
        (HubRepoNotFoundError("no such repo"), 3),
        (UnknownVersionError("medical@9", "See: adapters list"), 3),
        (DomainExistsError("taken"), 4),
        (InvalidRefError("bad ref"), 5),
        (ExportError("cannot export"), 1),
    ],
)
def test_each_library_error_type_gets_its_code(exc: BaseException, code: int) -> None:
    assert exit_code(exc) == code
    result = CliRunner().invoke(_raising(exc), ["boom"], catch_exceptions=False)
    assert result.exit_code == code and result.output.startswith("Error: ")


def test_debug_shows_the_traceback(monkeypatch) -> None:
    monkeypatch.setenv("ADAPTERS_DEBUG", "1")
    result = CliRunner().invoke(_raising(ParityError("drift")), ["boom"])
    assert isinstance(result.exception, ParityError)
