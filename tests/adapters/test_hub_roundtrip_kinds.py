"""What we push, we pull (issue 21, item 4).

A base named by a local folder is recognised by its weight fingerprint (the
embedded default, or a base the registry already records under a Hub id) and
recorded by its Hub id. An unknown local base is registered as local, and
`adapters push` refuses it before any upload, naming --base-id as the way out.
Every kind of version the registry holds is pushed, pulled into a fresh home
and served there with the answers it gives at home.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from loradock.registry import DEFAULT_BASE, Domain, Registry, VersionInfo

pytest_plugins = ["tests.hub_server"]  # the fake Hub and its fixtures

TEXTS = ["a warm and funny film", "dull, far too long", "my invoice shows a double charge"]
LABELS = ("negative", "positive")


def adapters(home: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env={"ADAPTERS_HOME": str(home)}, catch_exceptions=False)


def ok(home: Path, *args: str) -> Any:
    result = adapters(home, *args)
    assert result.exit_code == 0, result.output
    return result


def predicted(home: Path, ref: str) -> np.ndarray:
    """The version through PEFT on its home machine (what `adapters predict` runs)."""
    from loradock.adapters.predict import predict

    with Registry(home) as registry:
        return np.stack([p.logits for p in predict(registry, ref, TEXTS)])


def served(home: Path, ref: str, base: str = DEFAULT_BASE) -> np.ndarray:
    """Logits from the serving engine (what `adapters serve` runs) serving `ref` from `home`."""
    from loradock.serving.config import ServeConfig
    from loradock.serving.engine import ServingEngine

    registry = Registry(home)
    engine = ServingEngine(
        ServeConfig(domains=(ref,), device="cpu", base_model=base, workers=1, max_wait_ms=1.0), registry
    )
    domain = ref.split("@")[0]

    async def go() -> list[Any]:
        entry = engine.route(domain)
        try:
            return await engine.predict(entry, TEXTS)
        finally:
            engine.cache.release(entry)

    engine.start()
    try:
        return np.stack([np.asarray(p.logits, dtype=np.float32) for p in asyncio.run(go())])
    finally:
        engine.close()
        registry.close()


def peft_copy(source: Path, out: Path, base_name: str) -> Path:
    """A PEFT folder whose adapter_config.json names `base_name` as its base (a path, as PEFT writes for one)."""
    shutil.copytree(source, out)
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base_name
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return out


def register_cli(home: Path, domain: str, folder: Path) -> str:
    with Registry(home) as registry:
        if domain not in registry.domain_names():
            registry.add_domain(Domain(domain, LABELS, base_model=DEFAULT_BASE))
    return str(json.loads(ok(home, "register", domain, str(folder), "--json").output)["ref"])


# -- the kinds of version a registry holds --------------------------------------------------


def trained(home: Path, tmp_path: Path, make_peft_folder: Callable[..., Path]) -> str:
    """Trained with --base pointing at the embedded MiniLM's folder inside site-packages."""
    from loradock.adapters.base import embedded_path
    from loradock.adapters.training.train import TrainOptions, train
    from tests.train_support import write_keyword_csv

    data = write_keyword_csv(tmp_path / "reviews.csv", rows_per_label=3, labels=LABELS)
    with Registry(home) as registry:
        result = train(
            registry,
            "reviews",
            TrainOptions(
                data=str(data),
                base=str(embedded_path()),
                epochs=1,
                batch_size=8,
                max_length=16,
                progress=False,
                min_accuracy=0.0,
                min_macro_f1=0.0,
            ),
        )
    return str(result.version.ref)


def from_hub_id_folder(home: Path, tmp_path: Path, make_peft_folder: Callable[..., Path]) -> str:
    return register_cli(home, "reviews", make_peft_folder(seed=3))


def from_local_path_folder(home: Path, tmp_path: Path, make_peft_folder: Callable[..., Path]) -> str:
    from loradock.adapters.base import embedded_path

    folder = peft_copy(make_peft_folder(seed=4), tmp_path / "local-peft", str(embedded_path()))
    return register_cli(home, "reviews", folder)


def pulled(home: Path, tmp_path: Path, make_peft_folder: Callable[..., Path]) -> str:
    upstream = tmp_path / "upstream-home"
    ref = register_cli(upstream, "reviews", make_peft_folder(seed=5))
    ok(upstream, "push", ref, "--repo", "alice/upstream")
    ok(home, "pull", "alice/upstream")
    with Registry(home) as registry:
        return str(registry.resolve("reviews@latest").ref)


def merged(home: Path, tmp_path: Path, make_peft_folder: Callable[..., Path]) -> str:
    ref = from_local_path_folder(home, tmp_path, make_peft_folder)
    ok(home, "merge", ref, "--out", str(tmp_path / "merged"))
    with Registry(home) as registry:
        assert registry.artifacts(ref, kind="merged")
    return ref


KINDS = {
    "trained": trained,
    "hub-id-folder": from_hub_id_folder,
    "local-path-folder": from_local_path_folder,
    "pulled": pulled,
    "merged": merged,
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_of_version_is_pushed_pulled_into_a_fresh_home_and_served(
    kind: str, hub: Any, isolated_home: Path, tmp_path: Path, make_peft_folder: Callable[..., Path]
) -> None:
    ref = KINDS[kind](isolated_home, tmp_path, make_peft_folder)
    with Registry(isolated_home) as registry:
        here = registry.resolve(ref)
    assert here.base_model == DEFAULT_BASE, "a local folder of the embedded base is recorded by its Hub id"
    expected = predicted(isolated_home, ref)

    ok(isolated_home, "push", ref, "--repo", f"alice/{kind}")
    fresh = tmp_path / "fresh-home"
    ok(fresh, "pull", f"alice/{kind}")
    with Registry(fresh) as registry:
        there = registry.resolve(f"{here.domain}@1")  # a fresh home numbers from 1; @latest skips a failed gate
    assert (there.sha256, there.base_model, there.base_fingerprint) == (
        here.sha256,
        here.base_model,
        here.base_fingerprint,
    )
    assert np.abs(served(fresh, there.ref) - expected).max() <= 1e-4


# -- local bases on a tiny encoder (fast) ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.bases_support import build_tiny_base

    return build_tiny_base("bert", tmp_path_factory.mktemp("tiny") / "tiny-bert")


@pytest.fixture(scope="module")
def tiny_peft(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PEFT folder trained (so to speak) on the tiny base: its config names the folder's path."""
    from tests.onnx_multi_support import peft_folder

    return peft_folder(str(tiny), tmp_path_factory.mktemp("tiny-peft") / "peft", LABELS, r=2, seed=0)


def test_an_unknown_local_base_is_registered_as_local(isolated_home: Path, tiny: Path, tiny_peft: Path) -> None:
    from loradock.adapters.base import fingerprint

    ref = register_cli(isolated_home, "tickets", tiny_peft)
    with Registry(isolated_home) as registry:
        version = registry.resolve(ref)
    assert version.base_model == str(tiny.resolve()) and version.base_fingerprint == fingerprint(tiny)
    assert version.provenance["base_source"] == "local" and version.provenance["base_path"] == str(tiny.resolve())


def test_a_local_base_the_registry_knows_is_recorded_by_its_hub_id(
    isolated_home: Path, tiny: Path, tiny_peft: Path, tmp_path: Path
) -> None:
    from loradock.adapters.base import fingerprint
    from tests.synthetic_adapters import write_adapter

    with Registry(isolated_home) as registry:  # a version someone registered with the base's Hub id
        registry.add_domain(Domain("tickets", LABELS, base_model="alice/tiny-bert"))
        registry.register(
            "tickets",
            write_adapter(tmp_path / "other", hidden=32, layers=2, seed=9),
            VersionInfo(base_model="alice/tiny-bert", base_revision="v1", base_fingerprint=fingerprint(tiny)),
        )
    ref = register_cli(isolated_home, "tickets", tiny_peft)
    with Registry(isolated_home) as registry:
        version = registry.resolve(ref)
    assert (version.base_model, version.base_revision) == ("alice/tiny-bert", "v1")
    assert version.provenance["base_source"] == "registry"


def test_push_refuses_a_local_base_up_front_and_base_id_publishes_it(
    hub: Any, isolated_home: Path, tiny: Path, tiny_peft: Path, tmp_path: Path
) -> None:
    ref = register_cli(isolated_home, "tickets", tiny_peft)
    refused = adapters(isolated_home, "push", ref, "--repo", "alice/tickets")
    assert refused.exit_code == 5, refused.output
    assert "--base-id ORG/NAME" in refused.output and str(tiny.resolve()) in refused.output
    assert hub.count("POST", "/api/repos/create") == 0, "nothing may reach the Hub"
    bad = adapters(isolated_home, "push", ref, "--repo", "alice/tickets", "--base-id", "../tiny")
    assert bad.exit_code == 5 and "ORG/NAME" in bad.output

    ok(isolated_home, "push", ref, "--repo", "alice/tickets", "--base-id", "alice/tiny-bert")
    record = json.loads(hub.file("alice/tickets", "loradock.json", "v1"))["record"]
    assert record["base_model"] == "alice/tiny-bert"
    fresh = tmp_path / "fresh-home"
    ok(fresh, "pull", "alice/tickets")
    with Registry(fresh) as registry:
        there = registry.resolve("tickets@latest")
        here = Registry(isolated_home).resolve(ref)
    assert there.base_model == "alice/tiny-bert" and there.base_fingerprint == here.base_fingerprint
    # The other machine holds the base as a folder of its own: served there, same answers.
    assert np.abs(served(fresh, there.ref, base=str(tiny)) - predicted(isolated_home, ref)).max() <= 1e-5
