"""The install gains one top-level name, `loradock`, and lives beside a package that owns `adapters`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("registry", "adapters", "serving", "cli")
OFFLINE = ["--no-deps", "--no-index", "--no-build-isolation", "-q"]


def _pip(python: Path | str, *args: str, cwd: Path | None = None) -> None:
    subprocess.run([str(python), "-m", "pip", *args], check=True, cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy: an in-tree build leaves build/ and *.egg-info behind.
    src = out / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "__pycache__", "build", "*.egg-info", "bench"))
    _pip(sys.executable, "wheel", *OFFLINE, "-w", str(out), str(src))
    return next(out.glob("loradock-*.whl"))


def _expected_packages() -> set[str]:
    found = {"loradock"}
    for folder in FOLDERS:
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).as_posix().replace("/", ".")
            found.add(f"loradock.{rel}")
    return found


def test_wheel_installs_only_loradock_and_every_subpackage(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"loradock"}
    packages = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert _expected_packages() <= packages, "a package folder is missing from pyproject's packages list"
    assert any(n.startswith("loradock/adapters/samples/") and n.endswith(".jsonl") for n in names)


def _other_adapters_wheel(tmp: Path) -> Path:
    """A stand-in for AdapterHub's `adapters`: another distribution that owns the same import name."""
    src = tmp / "other"
    (src / "adapters").mkdir(parents=True)
    (src / "adapters" / "__init__.py").write_text('OWNER = "adapterhub"\n')
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "adapters"\nversion = "1.0"\n[tool.setuptools]\npackages = ["adapters"]\n'
    )
    _pip(sys.executable, "wheel", *OFFLINE, "-w", str(tmp), str(src))
    return next(tmp.glob("adapters-*.whl"))


def test_installs_beside_a_package_named_adapters(wheel: Path, tmp_path: Path) -> None:
    env = tmp_path / "venv"
    # System site-packages lends the heavy dependencies; the venv's own copies come first on sys.path.
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env)
    python = env / "bin" / "python"
    for whl in (_other_adapters_wheel(tmp_path), wheel):
        _pip(sys.executable, "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(whl))
    code = (
        "import adapters, loradock, loradock.registry, loradock.cli.main;"
        "print(adapters.OWNER, loradock.registry.__file__)"
    )
    out = subprocess.run([str(python), "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    owner, path = out.stdout.split()
    assert owner == "adapterhub"
    assert path.startswith(str(env)), path
    cmd = subprocess.run(
        [str(env / "bin" / "adapters"), "--version"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert "adapters, version" in cmd.stdout
