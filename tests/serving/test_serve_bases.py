"""`adapters serve` takes its base from the versions it serves; versions on two bases mean two servers."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from loradock.registry import Domain, Registry, VersionInfo
from tests.synthetic_adapters import write_adapter


def _register(registry: Registry, tmp_path, domain: str, base: str, seed: int) -> None:
    if domain not in registry.domain_names():
        registry.add_domain(Domain(name=domain, labels=("a", "b"), base_model=base))
    registry.register(
        domain,
        write_adapter(tmp_path / f"{domain}-{seed}", seed=seed),
        VersionInfo(base_model=base, base_fingerprint=f"sha256:{base}"),
        aliases=["production"],
    )


def test_the_base_comes_from_the_served_versions(registry: Registry, tmp_path) -> None:
    from loradock.serving.config import base_for

    _register(registry, tmp_path, "tickets", "org/roberta-tiny", 1)
    _register(registry, tmp_path, "reviews", "org/roberta-tiny", 2)
    assert base_for(registry, ("tickets@production", "reviews@latest")) == "org/roberta-tiny"
    assert base_for(registry, ("tickets@production",), base="other/base") == "other/base"


def test_two_bases_need_two_servers(registry: Registry, tmp_path) -> None:
    from loradock.cli.main import cli
    from loradock.serving.config import base_for
    from loradock.serving.errors import MixedBasesError

    _register(registry, tmp_path, "tickets", "org/roberta-tiny", 1)
    _register(registry, tmp_path, "legal", "org/deberta-tiny", 2)
    with pytest.raises(MixedBasesError) as err:
        base_for(registry, ("tickets@production", "legal@production"))
    message = str(err.value)
    assert "tickets@production on org/roberta-tiny" in message and "legal@production on org/deberta-tiny" in message
    assert "one server per base" in message
    assert "adapters serve --domains tickets@production --port 8000" in message
    assert "adapters serve --domains legal@production --port 8001" in message
    result = CliRunner().invoke(cli, ["serve", "--domains", "tickets@production,legal@production"])
    assert result.exit_code != 0 and "one server per base" in result.output, result.output
