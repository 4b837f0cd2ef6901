"""SIGKILL at random moments during register: no partial version, verify clean."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from loradock.cli.main import cli
from loradock.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
LOOP = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from loradock.registry import Registry
from tests.synthetic_adapters import write_adapter
reg = Registry({home!r})
work = Path({work!r})
i = 0
while True:
    folder = write_adapter(work / f"{{i}}", seed=int({seed}) * 100000 + i, hidden=64, layers=4)
    reg.register("sentiment", folder)
    i += 1
"""


def test_sigkill_during_register_leaves_only_complete_versions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Registry(home).close()
    rng = random.Random(7)
    for round_ in range(12):
        script = LOOP.format(root=str(ROOT), home=str(home), work=str(tmp_path / f"w{round_}"), seed=round_)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.4 + rng.random() * 0.6)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    reg = Registry(home)
    versions = reg.versions("sentiment")
    assert versions, "the loop should have registered something"
    assert sorted(v.number for v in versions) == list(range(1, len(versions) + 1))
    for v in versions:
        assert reg.path(v.ref).is_dir()
    result = CliRunner().invoke(cli, ["verify"], env={"ADAPTERS_HOME": str(home)})
    assert result.exit_code == 0, result.output
    reg.gc()  # partial blob writes are unreferenced and collectable
    assert reg.verify().ok
