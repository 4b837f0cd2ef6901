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


def test_the_cli_and_ray_build_the_same_config(registry, monkeypatch) -> None:
    """`adapters serve [--ray]` and Ray's `serve run ...:build key=value` go through one builder (issue 23)."""
    from loradock.registry import VersionInfo
    from loradock.serving import server as serving_server
    from loradock.serving.ray import app as ray_app
    from tests.synthetic_adapters import write_adapter

    registry.register(
        "sentiment",
        write_adapter(registry.home.parent / "a", labels=2),
        VersionInfo(base_model="tiny", base_fingerprint="sha256:x"),
        aliases=["production"],
    )
    seen: dict = {}
    monkeypatch.setattr(serving_server, "run", lambda config, registry, announce: seen.update(cli=config))
    monkeypatch.setattr(ray_app, "run", lambda config, options, home, announce: seen.update(cli_ray=(config, options)))
    monkeypatch.setattr(ray_app, "build_app", lambda config, options, home: seen.update(ray=(config, options)))
    values = {
        "domains": "sentiment@production",
        "host": "0.0.0.0",
        "port": "8123",
        "device": "cpu",
        "max_batch_size": "8",
        "max_wait_ms": "3",
        "max_loaded": "4",
        "max_queue": "100",
        "api_key_env": "MY_KEY",
        "poll_interval": "0.5",
        "threads": "2",
        "workers": "3",
        "backend": "onnx",
        "max_body_bytes": "1000",
        "log_format": "json",
    }
    flags = [x for k, v in values.items() for x in (f"--{k.replace('_', '-')}", v)]
    switches = ["--public-metrics", "--public-docs", "--allow-unverified-base", "--access-log"]
    for args in ([], ["--base", "my/base"]):
        result = CliRunner().invoke(cli, ["serve", *flags, *switches, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        ray_run = CliRunner().invoke(
            cli, ["serve", *flags, *switches, *args, "--ray", "--replicas", "3"], catch_exceptions=False
        )
        assert ray_run.exit_code == 0, ray_run.output
        base = {"base_model": args[1]} if args else {}
        on = {s[2:].replace("-", "_"): "true" for s in switches}
        ray_app.build({**values, **on, **base, "replicas": "3", "home": str(registry.home)})
        assert seen["cli"] == seen["cli_ray"][0] == seen["ray"][0]
        assert seen["cli"].base_model == (args[1] if args else "tiny") and seen["cli"].threads == 2
        assert seen["cli_ray"][1] == seen["ray"][1]
