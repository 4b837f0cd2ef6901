"""`adapters domains gate | edit | rm` and the registry calls under them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from loradock.registry import Domain, Registry
from loradock.registry.errors import DomainInUseError
from loradock.registry.gates import QualityGate
from tests.synthetic_adapters import write_adapter


def _run(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_gate_is_set_shown_and_cleared(registry: Registry) -> None:
    result = _run("domains", "gate", "medical", "--min-accuracy", "0.9", "--min-macro-f1", "0.85")
    assert result.exit_code == 0, result.output
    assert "beat the majority class, accuracy >= 0.9, macro-F1 >= 0.85" in result.output
    assert Registry(registry.home).domain("medical").gate == QualityGate(0.9, 0.85)
    assert "gate         beat the majority class, accuracy >= 0.9" in _run("domains", "show", "medical").output
    assert _run("domains", "gate", "medical", "--min-accuracy", "1.5").exit_code == 5
    _run("domains", "gate", "medical", "--clear")
    assert Registry(registry.home).domain("medical").gate == QualityGate()


def test_edit_labels_only_while_no_versions(registry: Registry, tmp_path: Path) -> None:
    registry.add_domain(Domain("tickets", ("billing", "technical")))
    result = _run("domains", "edit", "tickets", "--labels", "billing,technical,shipping", "--description", "support")
    assert result.exit_code == 0, result.output
    edited = Registry(registry.home).domain("tickets")
    assert edited.labels == ("billing", "technical", "shipping") and edited.description == "support"

    registry.register("tickets", write_adapter(tmp_path / "a", labels=3))
    result = _run("domains", "edit", "tickets", "--labels", "a,b")
    assert result.exit_code == 4 and "1 version(s) trained on labels billing, technical, shipping" in result.output
    assert _run("domains", "edit", "tickets", "--description", "still editable").exit_code == 0
    assert _run("domains", "edit", "tickets").exit_code == 2


def test_rm_is_refused_while_versions_exist_and_force_removes_everything(registry: Registry, tmp_path: Path) -> None:
    registry.add_domain(Domain("tickets", ("billing", "technical")))
    version = registry.register("tickets", write_adapter(tmp_path / "a"), aliases=["production"])
    registry.add_artifact(version.ref, "report", "notes", {"notes.txt": _file(tmp_path / "notes.txt")})
    result = _run("domains", "rm", "tickets")
    assert result.exit_code == 4 and "has 1 version(s); nothing was removed" in result.output
    assert Registry(registry.home).resolve("tickets@production").number == 1

    result = _run("domains", "rm", "tickets", "--force")
    assert result.exit_code == 0 and "and its 1 version(s)" in result.output
    fresh = Registry(registry.home)
    assert "tickets" not in fresh.domain_names()
    for table in ("versions", "aliases", "artifacts", "domains"):
        column = "name" if table == "domains" else "domain"
        assert fresh._rows(f"select * from {table} where {column} = 'tickets'") == []
    assert _run("domains", "rm", "tickets").exit_code == 3


def test_rm_that_fails_midway_removes_nothing(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.add_domain(Domain("tickets", ("billing", "technical")))
    registry.register("tickets", write_adapter(tmp_path / "a"), aliases=["production"])
    real = registry.db.execute
    calls = []

    def flaky(sql: str, *args):
        calls.append(sql)
        if sql.startswith("delete from domains"):
            raise OSError("disk error")
        return real(sql, *args)

    monkeypatch.setattr(registry.db, "execute", flaky)
    with pytest.raises(OSError):
        registry.remove_domain("tickets", force=True)
    assert any(c.startswith("delete from versions") for c in calls)  # it got that far, and rolled back
    monkeypatch.undo()
    assert registry.resolve("tickets@production").number == 1


def test_removing_a_domain_with_versions_raises_a_conflict(registry: Registry, tmp_path: Path) -> None:
    registry.register("sentiment", write_adapter(tmp_path / "a"))
    with pytest.raises(DomainInUseError):
        registry.remove_domain("sentiment")


def _file(path: Path) -> Path:
    path.write_text("notes")
    return path
