"""README's main job: the whole loop on the embedded default, offline, with the same outcome on every CPU."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from loradock.registry import DEFAULT_BASE, PRESETS, Registry, VersionInfo
from tests.export_support import FlippingQuantizer, register_version, train_on_sample


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
    # Whether int8 is kept depends on this CPU's int8 kernels; that one line says which, and fp32 is always there.
    names = [a.name for a in registry.artifacts("sentiment@1", "onnx")]
    assert "fp32-opset17" in names
    (note,) = [x for x in result.output.splitlines() if x.startswith("  int8 ")]
    assert ("int8-opset17" in names) is note.startswith("  int8 kept: ")

    again = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    assert again.exit_code == 0 and again.output.count("reused ") == 3
    assert [v.ref for v in registry.versions("sentiment")] == ["sentiment@1"]


@pytest.mark.slow
def test_demo_keeps_fp32_and_says_why_when_int8_fails_its_gate(registry: Registry, tmp_path, monkeypatch) -> None:
    """A stand-in int8 that flips every prediction: the demo still exits 0, exports and serves fp32, in one line."""
    from loradock.adapters.base import base_info
    from loradock.adapters.export import onnx_export

    fingerprint = base_info(DEFAULT_BASE)["base_fingerprint"]
    for domain in PRESETS:  # versions the demo reuses (as if trained on the embedded samples): no minutes of training
        info = VersionInfo(base_model=DEFAULT_BASE, base_fingerprint=fingerprint, data={"source": f"embedded:{domain}"})
        register_version(
            registry,
            train_on_sample(tmp_path / domain, steps=100, domain=domain),
            domain,
            eval_data=domain == "sentiment",
            info=info,
        )
    monkeypatch.setitem(onnx_export.QUANTIZERS, "int8", FlippingQuantizer())

    result = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    exported = next(x for x in lines if x.startswith("exported sentiment@1"))
    assert "to ONNX fp32 at " in exported and exported.split(" at ")[1].split(":")[0].endswith("onnx-fp32")
    (note,) = [x for x in lines if x.startswith("  int8 ")]
    assert re.fullmatch(r"  int8 not kept, serving fp32: \d+ of 100 eval texts changed .*; refused", note), note
    assert [a.name for a in registry.artifacts("sentiment@1", "onnx")] == ["fp32-opset17"]
    for domain in PRESETS:
        assert any(f"served by {domain}@1 " in x for x in lines), result.output
