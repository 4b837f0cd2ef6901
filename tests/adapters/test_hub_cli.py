"""The real `adapters` command in a fresh process reaches the Hub named by HF_ENDPOINT, nothing patched."""

from __future__ import annotations

import os
import subprocess
import sys

pytest_plugins = ["tests.hub_server"]  # the fake Hub and its fixtures


def _adapters(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from loradock.cli.main import cli; cli()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_push_and_pull_in_a_subprocess_through_hf_endpoint(hub_server, sentiment_versions, tmp_path):
    env = {
        **os.environ,
        "HF_ENDPOINT": hub_server.url,
        "HF_TOKEN": hub_server.token,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "ADAPTERS_HOME": str(sentiment_versions.home),
    }
    env.pop("HF_HUB_CACHE", None)
    pushed = _adapters("push", "sentiment@production", "--repo", "alice/cli-lora", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert "Pushed sentiment@2 to alice/cli-lora@v2" in pushed.stdout
    assert pushed.stdout.strip().endswith(f"{hub_server.url}/alice/cli-lora")

    env["ADAPTERS_HOME"] = str(tmp_path / "other")
    pulled = _adapters("pull", "alice/cli-lora@production", "--alias", "production", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert "Pulled alice/cli-lora@v2" in pulled.stdout and "as sentiment@1" in pulled.stdout
    shown = _adapters("show", "sentiment@production", env=env)
    assert "hub_repo=alice/cli-lora" in shown.stdout and "remote_ref=v2" in shown.stdout

    missing = _adapters("pull", "alice/cli-lora@v7", env=env)
    assert missing.returncode == 3  # not found
    assert "Error: Revision 'v7' not found in alice/cli-lora. Tags: v2; branches: main, production." in missing.stderr
    assert hub_server.token not in pushed.stdout + pushed.stderr + pulled.stdout + pulled.stderr
