"""A plain PEFT folder in, a folder plain PEFT loads out, identical logits."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from loradock.registry import DEFAULT_BASE, Registry
from loradock.registry.errors import CorruptBlobError


@pytest.mark.slow
def test_register_then_materialize_loads_with_plain_peft(make_peft_folder, registry: Registry) -> None:
    import torch
    from peft import PeftModel

    from loradock.adapters.base import fingerprint, load_classifier, load_tokenizer, resolve_base

    folder = make_peft_folder(("negative", "positive"), seed=0)
    result = CliRunner().invoke(
        cli, ["register", "sentiment", str(folder), "--alias", "production"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    version = registry.resolve("sentiment@production")
    assert version.base_model == DEFAULT_BASE
    assert version.base_fingerprint == fingerprint(resolve_base(DEFAULT_BASE))

    path = CliRunner().invoke(cli, ["path", "sentiment@production"], catch_exceptions=False).output.strip()
    tok = load_tokenizer(DEFAULT_BASE)
    batch = tok(["a quietly moving film", "dull and far too long"], return_tensors="pt", padding=True)
    logits = []
    for source in (folder, Path(path)):
        base = load_classifier(DEFAULT_BASE, ["negative", "positive"])
        model = PeftModel.from_pretrained(base, str(source)).eval()
        with torch.no_grad():
            logits.append(model(**batch).logits)
    base_only = load_classifier(DEFAULT_BASE, ["negative", "positive"]).eval()
    with torch.no_grad():
        plain = base_only(**batch).logits
    assert torch.equal(logits[0], logits[1])
    assert not torch.allclose(logits[0], plain, atol=1e-3)  # the adapter really acts


def test_flipped_byte_is_reported_and_never_served(registry: Registry, tmp_path: Path) -> None:
    from tests.synthetic_adapters import write_adapter

    version = registry.register("sentiment", write_adapter(tmp_path / "a"))
    registry.path("sentiment@1")
    blob = registry.blobs.path(version.files["adapter_model.safetensors"]["sha256"])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))

    result = CliRunner().invoke(cli, ["verify"])
    assert result.exit_code == 1
    assert "corrupt" in result.output and "sentiment@1/adapter_model.safetensors" in result.output
    with pytest.raises(CorruptBlobError, match="adapters verify"):
        registry.path("sentiment@1")
    result = CliRunner().invoke(cli, ["path", "sentiment@1"])
    assert result.exit_code == 1 and "corrupt" in result.output
