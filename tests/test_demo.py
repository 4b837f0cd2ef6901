"""README's main job: the whole loop on the embedded default, offline."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from loradock.registry import Registry


@pytest.mark.slow
def test_demo_trains_exports_serves_and_routes_each_domain(registry: Registry) -> None:
    result = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output  # nothing a user cannot act on
    for domain in ("medical", "education", "sentiment"):
        assert re.search(rf"trained {domain}@1 +eval accuracy [01]\.\d+", result.output)
        version = registry.resolve(f"{domain}@1")
        assert version.metrics["accuracy"] > 0.6  # the embedded samples are learnable
        line = next(x for x in result.output.splitlines() if f"served by {domain}@" in x)
        assert f"served by {domain}@1 ({version.sha256[:12]})" in line
    assert "int8-opset17" in [a.name for a in registry.artifacts("sentiment@1", "onnx")]

    again = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    assert again.exit_code == 0 and again.output.count("reused ") == 3
    assert [v.ref for v in registry.versions("sentiment")] == ["sentiment@1"]
