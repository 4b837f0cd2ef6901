"""Registry-side findings of issue 10: names, version numbers, safetensors validation, shapes against
the base, tracebacks on malformed files, and the debris gc/verify must see."""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from loradock.registry import DEFAULT_BASE, InvalidAdapterError, InvalidNameError, InvalidRefError, Registry
from loradock.registry.names import check_name
from tests.synthetic_adapters import write_adapter


def _raw_safetensors(path: Path, header: object, body: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    return path


def _snapshot(reg: Registry) -> tuple[str, list[str]]:
    return "\n".join(reg.conn.iterdump()), sorted(p.as_posix() for p in (reg.home / "blobs").rglob("*"))


# -- finding 6: names ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["legal\n", "prod\n", "a\r", "a b", "\nx"])
def test_names_with_a_trailing_newline_are_refused(name):
    with pytest.raises(InvalidNameError):
        check_name(name)


def test_cli_refuses_newline_domain_and_alias(registry, tmp_path):
    registry.register("sentiment", write_adapter(tmp_path / "a"))
    runner = CliRunner()
    added = runner.invoke(cli, ["domains", "add", "legal\n", "--labels", "a,b"], catch_exceptions=False)
    assert added.exit_code == 5 and "Invalid domain 'legal\\n'" in added.output
    moved = runner.invoke(cli, ["alias", "set", "sentiment", "prod\n", "1"], catch_exceptions=False)
    assert moved.exit_code == 5 and "Traceback" not in moved.output
    assert registry.aliases() == [] and "legal\n" not in registry.domain_names()


@pytest.mark.parametrize(
    "ref", ["sentiment@99999999999999999999999", f"sentiment@{2**63}", "sentiment@0", "sentiment@²"]
)
def test_version_numbers_are_range_checked_before_sql(registry, ref):
    with pytest.raises(InvalidRefError):
        registry.resolve(ref)


def test_show_a_huge_version_number_is_a_clean_error(registry):
    result = CliRunner().invoke(cli, ["show", "sentiment@99999999999999999999999"], catch_exceptions=False)
    assert result.exit_code == 5 and "version numbers run from 1 to" in result.output
    assert "Traceback" not in result.output and "OverflowError" not in result.output


def test_the_largest_number_sqlite_holds_is_just_not_found(registry):
    with pytest.raises(KeyError):
        registry.resolve(f"sentiment@{2**63 - 1}")


# -- finding 7: the validator agrees with the safetensors library ---------------------


def test_overlapping_offsets_are_refused_as_safetensors_does(registry, tmp_path):
    folder = write_adapter(tmp_path / "overlap")
    from safetensors.numpy import load_file

    tensors = load_file(str(folder / "adapter_model.safetensors"))
    header, body, offset = {}, b"", 0
    for name, array in sorted(tensors.items()):
        data = array.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        body += data
        offset += len(data)
    first, second = sorted(header)[:2]
    header[second]["data_offsets"] = header[first]["data_offsets"]  # both point at the same bytes
    _raw_safetensors(folder / "adapter_model.safetensors", header, body)
    before = _snapshot(registry)
    with pytest.raises(InvalidAdapterError, match="not a valid safetensors file"):
        registry.register("sentiment", folder)
    assert _snapshot(registry) == before


def test_non_string_metadata_is_refused(registry, tmp_path):
    folder = write_adapter(tmp_path / "meta")
    path = folder / "adapter_model.safetensors"
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"] = {"format": 1}
    _raw_safetensors(path, header, data[8 + length :])
    with pytest.raises(InvalidAdapterError, match="not a valid safetensors file"):
        registry.register("sentiment", folder)
    assert registry.versions() == []


def test_lora_shapes_that_do_not_fit_the_base_are_refused_at_register(registry, tmp_path):
    folder = write_adapter(tmp_path / "narrow", hidden=8)  # MiniLM is 384 wide
    result = CliRunner().invoke(
        cli, ["register", "sentiment", str(folder), "--base", DEFAULT_BASE], catch_exceptions=False
    )
    assert result.exit_code == 5, result.output
    assert "map 8 -> 8 features" in result.output and "384 -> 384" in result.output
    assert registry.versions() == []
    fits = write_adapter(tmp_path / "wide", hidden=384, layers=1)
    ok = CliRunner().invoke(cli, ["register", "sentiment", str(fits), "--base", DEFAULT_BASE], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output


# -- finding 8: malformed files are errors, never tracebacks ---------------------------


@pytest.mark.parametrize(
    "header",
    [
        [1, 2, 3],
        {"base_model.model.x.lora_A.weight": {"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 16]}},
        {"base_model.model.x.lora_A.weight": {"dtype": "F32", "shape": [2**64, 1], "data_offsets": [0, 16]}},
        {"base_model.model.x.lora_A.weight": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 16]}},
        {"base_model.model.x.lora_A.weight": {"dtype": "F32", "shape": ["4"], "data_offsets": [0, 16]}},
        {
            "base_model.model.x.lora_A.weight": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
            "base_model.model.x.lora_B.weight": {"dtype": "F32", "shape": [], "data_offsets": [4, 8]},
        },
    ],
    ids=["list", "negative", "overflow", "product-overflow", "string", "scalar-lora"],
)
def test_malformed_headers_are_clean_errors(registry, tmp_path, header):
    folder = write_adapter(tmp_path / "bad")
    body = b"\0" * max([0] + [e["data_offsets"][1] for e in (header if isinstance(header, dict) else {}).values()])
    _raw_safetensors(folder / "adapter_model.safetensors", header, body)
    result = CliRunner().invoke(
        cli, ["register", "sentiment", str(folder), "--base", DEFAULT_BASE], catch_exceptions=False
    )
    assert result.exit_code == 5, result.output
    assert "Traceback" not in result.output and "adapter_model.safetensors" in result.output
    assert registry.versions() == []


@pytest.mark.parametrize("targets", ["(unclosed", "[z-a]", 7, ["query", 3], [{"x": 1}]])
def test_bad_target_modules_are_clean_errors(registry, tmp_path, targets):
    folder = write_adapter(tmp_path / "re", config_overrides={"target_modules": targets})
    with pytest.raises(InvalidAdapterError, match="target_modules"):
        registry.register("sentiment", folder)
    assert registry.versions() == []


def test_bad_rank_pattern_is_a_clean_error(registry, tmp_path):
    folder = write_adapter(tmp_path / "rp", config_overrides={"rank_pattern": ["query"]})
    with pytest.raises(InvalidAdapterError, match="rank_pattern"):
        registry.register("sentiment", folder)


@pytest.mark.parametrize("name", ["../escape.png", "a/../../b", "/etc/passwd", "a\\b", "", "a\0b", "./x"])
def test_artifact_file_names_with_dot_dot_are_refused_before_storing(registry, tmp_path, name):
    registry.register("sentiment", write_adapter(tmp_path / "a"))
    src = tmp_path / "plot.png"
    src.write_bytes(b"png")
    before = _snapshot(registry)
    with pytest.raises(InvalidNameError):
        registry.add_artifact("sentiment@1", "plot", "loss", {name: src})
    assert _snapshot(registry) == before


# -- finding 11: leftovers ------------------------------------------------------------


def _age(path: Path, seconds: float = 7200) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_gc_cleans_stale_materialized_copies_and_partial_writes_verify_reports_them(registry, tmp_path):
    registry.register("sentiment", write_adapter(tmp_path / "a", seed=1))
    registry.register("sentiment", write_adapter(tmp_path / "b", seed=2))
    live = registry.path("sentiment@2")
    removed = registry.path("sentiment@1")
    registry.remove("sentiment@1")
    materialized = registry.home / "materialized"
    killed_path = materialized / f".{'0' * 64}.abc.incomplete"
    killed_path.mkdir()
    (killed_path / "adapter_model.safetensors").write_bytes(b"half")
    young = materialized / f".{'1' * 64}.def.incomplete"
    young.mkdir()
    killed_register = registry.blobs.tmp / "tmpxyz.incomplete"
    killed_register.write_bytes(b"x" * 1000)
    for path in (removed, killed_path, killed_register):
        _age(path)

    report = registry.verify()
    assert report.ok  # debris, not damage
    found = {Path(item["path"]) for item in report.leftovers}
    assert found == {removed, killed_path, killed_register}

    dry = registry.gc(dry_run=True)
    assert set(map(Path, dry.leftovers)) == found and removed.exists()
    gc = registry.gc()
    assert set(map(Path, gc.leftovers)) == found and gc.freed_bytes >= 1000
    assert not removed.exists() and not killed_path.exists() and not killed_register.exists()
    assert live.is_dir() and young.is_dir()  # in use / maybe still being written
    assert registry.verify().leftovers == []
    assert registry.path("sentiment@2") == live


def test_list_with_a_huge_limit_is_not_a_traceback(registry, tmp_path):
    registry.register("sentiment", write_adapter(tmp_path / "a"))
    result = CliRunner().invoke(cli, ["list", "--limit", "99999999999999999999"], catch_exceptions=False)
    assert result.exit_code == 0 and "sentiment@1" in result.output


@pytest.mark.parametrize("label", ["positive\n", "neg\x00", "a\x7f"])
def test_labels_with_control_characters_are_refused(label):
    from loradock.registry import Domain

    with pytest.raises(InvalidNameError, match="Invalid label"):
        Domain(name="legal", labels=("negative", label))
