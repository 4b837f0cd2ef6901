"""Issue 22 on the registry side: only regular files are read or stored (no links, no FIFOs),
target_modules regexes are bounded before any match, safetensors sizes are checked before a
byte is read, and a missing blob is named by its ref, never by a path on the server."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import save_file

from loradock.cli.main import cli
from loradock.registry import InvalidAdapterError, Registry
from loradock.registry.errors import CorruptBlobError, UnsafeFileError
from loradock.registry.peft_files import MAX_WEIGHTS_BYTES
from tests.synthetic_adapters import write_adapter

SECRET = '{"token": "hf_SECRETcredential0123456789"}'


def _snapshot(reg: Registry) -> tuple[str, list[str]]:
    return "\n".join(reg.conn.iterdump()), sorted(p.as_posix() for p in (reg.home / "blobs").rglob("*"))


def _stored_bytes(reg: Registry) -> bytes:
    return b"".join(p.read_bytes() for p in (reg.home / "blobs").rglob("*") if p.is_file())


# -- item 1: links and special files ---------------------------------------------------


@pytest.mark.parametrize("name", ["config.json", "adapter_config.json", "adapter_model.safetensors"])
def test_a_symlinked_file_in_the_folder_is_refused_and_nothing_is_stored(registry, tmp_path, name):
    folder = write_adapter(tmp_path / "adapter")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if name == "config.json":  # a credentials file that happens to be a JSON object
        (elsewhere / name).write_text(SECRET)
    else:  # even a link to a perfectly valid file: links are refused, not judged
        shutil.move(folder / name, elsewhere / name)
    (folder / name).symlink_to(elsewhere / name)
    before = _snapshot(registry)
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        registry.register("sentiment", folder)
    assert _snapshot(registry) == before
    assert b"SECRETcredential" not in _stored_bytes(registry)


def test_a_fifo_config_json_is_refused_without_blocking(registry, tmp_path):
    folder = write_adapter(tmp_path / "adapter")
    os.mkfifo(folder / "config.json")  # no writer: a plain open() would wait forever
    with pytest.raises(UnsafeFileError, match="named pipe"):
        registry.register("sentiment", folder)
    assert registry.versions("sentiment") == []


def test_cli_register_names_the_link_as_invalid_input(registry, tmp_path):
    folder = write_adapter(tmp_path / "adapter")
    (tmp_path / "secret.json").write_text(SECRET)
    (folder / "config.json").symlink_to(tmp_path / "secret.json")
    result = CliRunner().invoke(cli, ["register", "sentiment", str(folder)], catch_exceptions=False)
    assert result.exit_code == 5, result.output
    assert "symbolic link" in result.output and "Traceback" not in result.output
    assert registry.versions("sentiment") == []


def test_an_artifact_file_that_is_a_link_is_refused(registry, tmp_path):
    version = registry.register("sentiment", write_adapter(tmp_path / "adapter"))
    (tmp_path / "secret.json").write_text(SECRET)
    (tmp_path / "report.json").symlink_to(tmp_path / "secret.json")
    with pytest.raises(UnsafeFileError):
        registry.add_artifact(version.ref, "report", "metrics", {"metrics.json": tmp_path / "report.json"})
    assert registry.artifacts(version.ref) == []
    assert b"SECRETcredential" not in _stored_bytes(registry)


def test_a_folder_given_through_a_link_still_registers(registry, tmp_path):
    """Only the files inside are checked: naming the folder through a link is the user's choice."""
    folder = write_adapter(tmp_path / "adapter")
    (tmp_path / "link").symlink_to(folder, target_is_directory=True)
    assert registry.register("sentiment", tmp_path / "link").number == 1


# -- item 2: target_modules regexes ------------------------------------------------------


def _regex_adapter(folder: Path, pattern: str, modules: list[str]) -> Path:
    rng = np.random.default_rng(0)
    tensors = {}
    for module in modules:
        tensors[f"{module}.lora_A.weight"] = rng.standard_normal((2, 4)).astype(np.float32)
        tensors[f"{module}.lora_B.weight"] = rng.standard_normal((4, 2)).astype(np.float32)
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "target_modules": pattern}))
    return folder


@pytest.mark.parametrize("pattern", ["(a+)+b", "(a|aa)*b", "(a?){40}a{40}", "(a*)*b"])
def test_an_exponential_regex_is_refused_before_it_runs(registry, tmp_path, pattern):
    # 40 `a`s: unbounded, `(a+)+b` would backtrack 2**40 times (hours); refusing it never runs the match.
    folder = _regex_adapter(tmp_path / "adapter", pattern, ["a" * 40, "a" * 39])
    with pytest.raises(InvalidAdapterError, match="nested repeats"):
        registry.register("sentiment", folder)
    assert registry.versions("sentiment") == []


def test_a_polynomial_regex_over_long_names_is_refused_by_its_cost(registry, tmp_path):
    names = ["a" * 200 + f"{i:03d}" for i in range(50)]
    folder = _regex_adapter(tmp_path / "adapter", ".*.*.*.*.*x", names)  # ~200**5 splits a name
    with pytest.raises(InvalidAdapterError, match="steps"):
        registry.register("sentiment", folder)


def test_module_names_are_bounded_in_length(registry, tmp_path):
    folder = _regex_adapter(tmp_path / "adapter", ".*q", ["x" * 300 + "q"])
    with pytest.raises(InvalidAdapterError, match="301 characters long"):
        registry.register("sentiment", folder)
    with pytest.raises(InvalidAdapterError, match="characters long"):
        registry.check_folder("sentiment", _regex_adapter(tmp_path / "list", "q", ["x" * 300 + ".q"]))


def test_peft_style_regexes_still_register(registry, tmp_path):
    for i, pattern in enumerate(
        [r".*\.(query|value)", r".*encoder.*(query|value)$", r"^(?!.*classifier).*\.layer\.\d+\..*\.(query|value)"]
    ):
        folder = write_adapter(tmp_path / f"a{i}", seed=i, config_overrides={"target_modules": pattern})
        assert registry.register("sentiment", folder).peft_config["target_modules"] == pattern


# -- item 8: size before reading ---------------------------------------------------------


def test_weights_over_the_cap_are_refused_from_their_size_alone(registry, tmp_path):
    folder = write_adapter(tmp_path / "adapter")
    weights = folder / "adapter_model.safetensors"
    with open(weights, "r+b") as fh:  # sparse: no disk, and never read
        fh.truncate(MAX_WEIGHTS_BYTES + 1)
    with pytest.raises(InvalidAdapterError, match=f"over the {MAX_WEIGHTS_BYTES}-byte limit"):
        registry.register("sentiment", folder)
    assert registry.versions("sentiment") == []


def test_a_huge_adapter_config_is_refused_from_its_size(registry, tmp_path):
    folder = write_adapter(tmp_path / "adapter")
    config = json.loads((folder / "adapter_config.json").read_text())
    config["padding"] = "x" * (5 << 20)
    (folder / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidAdapterError, match="byte limit for a PEFT config file"):
        registry.register("sentiment", folder)


# -- item 7 (part): blob errors name refs ------------------------------------------------


def test_a_missing_blob_is_named_by_its_ref_never_by_its_path(registry, tmp_path):
    version = registry.register("sentiment", write_adapter(tmp_path / "adapter"))
    registry.blobs.path(version.files["adapter_model.safetensors"]["sha256"]).unlink()
    with pytest.raises(CorruptBlobError) as caught:
        registry.path(version.ref)
    message = str(caught.value)
    assert f"{version.ref}/adapter_model.safetensors" in message and "missing" in message
    assert str(registry.home) not in message and "blobs/" not in message


@pytest.mark.parametrize("field", ["rank_pattern", "alpha_pattern"])
def test_rank_and_alpha_pattern_keys_are_bounded_like_target_modules(registry, tmp_path, field):
    # PEFT and the server's scaling both run these keys as regexes over module names.
    folder = write_adapter(tmp_path / "adapter", config_overrides={field: {"(a+)+": 4}})
    with pytest.raises(InvalidAdapterError, match=f"{field} key"):
        registry.register("sentiment", folder)
    assert registry.versions("sentiment") == []
