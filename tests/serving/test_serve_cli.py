"""`adapters serve`: flags become a ServeConfig; bad flags fail before anything loads."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli


def test_serve_builds_config_from_flags(monkeypatch) -> None:
    from loradock.serving import config as serving_config
    from loradock.serving import server as serving_server

    seen = {}
    monkeypatch.setattr(serving_server, "run", lambda config, registry, announce: seen.update(config=config))
    monkeypatch.setattr(serving_config, "base_for", lambda registry, refs, base=None: "some/base")
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--domains",
            "medical@production,sentiment",
            "--port",
            "8123",
            "--max-batch-size",
            "8",
            "--max-wait-ms",
            "3",
            "--max-loaded",
            "4",
            "--api-key-env",
            "MY_KEY",
            "--poll-interval",
            "0.5",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert config.domains == ("medical@production", "sentiment@latest") and config.host == "127.0.0.1"
    assert (config.port, config.max_batch_size, config.max_wait_ms, config.max_loaded) == (8123, 8, 3.0, 4)
    assert config.api_key_env == "MY_KEY" and config.poll_interval == 0.5


@pytest.mark.parametrize(
    "args, message",
    [
        (["--domains", "medical,education", "--max-loaded", "1"], "raise --max-loaded to at least 2"),
        (["--domains", "medical@1,medical@2"], "named twice"),
        (["--domains", "medical@@x"], "Malformed ref"),
        (["--max-batch-size", "0", "--domains", "medical"], "max_batch_size must be at least 1, got 0"),
        ([], "Nothing to serve"),
        (["--domains", "medical", "--max-queue", "10"], "max_queue (10) must be at least max_inputs (64)"),
    ],
)
def test_bad_flags_fail_with_one_line(args, message) -> None:
    result = CliRunner().invoke(cli, ["serve", *args])
    assert result.exit_code == 5 and message in result.output, result.output  # invalid input (contract 1)


def test_serve_refuses_unset_api_key_variable(registry, make_peft_folder, monkeypatch) -> None:
    from loradock.serving.app import create_app
    from loradock.serving.errors import ServeConfigError
    from tests.serve_support import serve_config

    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ServeConfigError, match="export NO_SUCH_KEY_VAR"):
        create_app(serve_config(api_key_env="NO_SUCH_KEY_VAR"), registry)


def test_serve_operation_flags_reach_the_config(monkeypatch) -> None:
    from loradock.serving import config as serving_config
    from loradock.serving import server as serving_server

    seen = {}
    monkeypatch.setattr(serving_server, "run", lambda config, registry, announce: seen.update(config=config))
    monkeypatch.setattr(serving_config, "base_for", lambda registry, refs, base=None: base or "derived-base")
    result = CliRunner().invoke(
        cli,
        [
            "--log-level",
            "debug",
            "serve",
            "--domains",
            "medical",
            "--log-format",
            "json",
            "--access-log",
            "--max-body-bytes",
            "1000",
            "--public-metrics",
            "--public-docs",
            "--allow-unverified-base",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert (config.log_level, config.log_format, config.access_log, config.max_body_bytes) == (
        "debug",
        "json",
        True,
        1000,
    )
    assert config.public_metrics and config.public_docs and config.allow_unverified_base
    assert config.base_model == "derived-base"
    CliRunner().invoke(cli, ["serve", "--domains", "medical", "--base", "my/base"], catch_exceptions=False)
    config = seen["config"]
    assert config.base_model == "my/base" and config.log_level == "info" and config.log_format == "text"
    assert not (config.access_log or config.public_metrics or config.public_docs or config.allow_unverified_base)
