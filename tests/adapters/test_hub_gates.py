"""A pull carries the gate result it can trust: a remote 'failed' is believed, a remote 'passed' is not."""

from __future__ import annotations

import pytest

from loradock.adapters.errors import HubRecordError
from loradock.adapters.hub.pull import pull
from loradock.adapters.hub.push import push
from loradock.registry import Registry
from loradock.registry.errors import GateError
from tests.adapters.test_security_pull import hostile, snapshot  # noqa: F401  (fixture)

pytest_plugins = ["tests.hub_server"]

FAILED = {"passed": False, "reasons": ["does not beat the majority-class baseline"], "baseline": {"accuracy": 0.5}}


def test_a_version_that_failed_where_it_was_trained_arrives_failed(hub, hostile, tmp_path):
    repo = hostile("alice/failed", lambda m, f: m["record"].update(gate=FAILED))
    fresh = Registry(tmp_path / "fresh")
    version = pull(fresh, repo).version
    assert version.failed
    assert version.gate["source"] == "remote"
    assert "majority-class" in version.gate["reasons"][0]
    with pytest.raises(LookupError):  # `latest` skips it: a server following latest never moves to it
        fresh.resolve("sentiment@latest")


def test_a_failed_remote_version_cannot_take_an_alias_on_pull(hub, hostile, sentiment_versions):
    repo = hostile("alice/failed-alias", lambda m, f: m["record"].update(gate=FAILED))
    before = snapshot(sentiment_versions)
    with pytest.raises(GateError):
        pull(sentiment_versions, repo, aliases=["production"])
    assert snapshot(sentiment_versions) == before
    assert sentiment_versions.resolve("sentiment@production").number == 2


def test_a_remote_pass_is_kept_as_a_claim_and_the_version_arrives_unchecked(hub, hostile, tmp_path):
    repo = hostile("alice/passed", lambda m, f: m["record"].update(gate={"passed": True, "reasons": []}))
    version = pull(Registry(tmp_path / "fresh"), repo).version
    assert not version.failed and "passed" not in version.gate
    assert version.gate["remote"] == {"passed": True}


def test_a_malformed_gate_is_refused_before_anything_is_written(hub, hostile, sentiment_versions):
    repo = hostile("alice/bad-gate", lambda m, f: m["record"].update(gate={"passed": "yes"}))
    before = snapshot(sentiment_versions)
    with pytest.raises(HubRecordError, match="passed='yes'"):
        pull(sentiment_versions, repo)
    assert snapshot(sentiment_versions) == before


def test_push_carries_the_gate_result_and_a_pull_keeps_the_failure(hub, sentiment_versions, make_peft_folder, tmp_path):
    from loradock.registry import VersionInfo

    base = sentiment_versions.resolve("sentiment@2")
    failed = sentiment_versions.register(
        "sentiment",
        make_peft_folder(seed=5),
        VersionInfo(base_model=base.base_model, base_fingerprint=base.base_fingerprint, gate=FAILED),
    )
    push(sentiment_versions, failed.ref, "alice/pushed-gate")
    fresh = Registry(tmp_path / "fresh")
    assert pull(fresh, "alice/pushed-gate@v3").version.failed
