"""`adapters list` and `adapters show` on a registry of 10,000 versions.

Side by side in one run: the same commands on a 10-version registry, and a bare
`python -c pass` (the interpreter's own start-up on this machine), so the table
shows what the registry size costs. Target: each command under 0.2 s.

    python bench/registry.py [--versions 10000] [--repeat 7]
    python bench/registry.py --smoke   # 30 versions, one run each: checks the bench still works
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fixtures import write_adapter
from loradock.registry import Registry

SCRIPT = Path(sysconfig.get_path("scripts")) / "adapters"


def build(home: Path, count: int, work: Path) -> float:
    reg = Registry(home)
    start = time.perf_counter()
    for i in range(count):
        domain, labels = (("medical", 5), ("education", 4), ("sentiment", 2))[i % 3]
        reg.register(
            domain, write_adapter(work / f"{i}", labels=labels, seed=i), aliases=["production"] if i % 97 == 0 else ()
        )
    reg.set_alias("sentiment", "staging", 1)
    return time.perf_counter() - start


def timed(cmd: list[str], home: Path, repeat: int) -> float:
    env = {**os.environ, "ADAPTERS_HOME": str(home)}
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="Tiny registry, one run per command.")
    args = parser.parse_args()
    if args.smoke:
        args.versions, args.repeat = 30, 1
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "small", Path(tmp) / "big"
        build(small, 10, Path(tmp) / "ws")
        took = build(big, args.versions, Path(tmp) / "wb")
        print(
            f"registered {args.versions} versions in {took:.1f} s ({args.versions / took:.0f}/s, full validation and fsync)"
        )
        mid = args.versions // 3 // 2
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "adapters list": [str(SCRIPT), "list"],
            "adapters list sentiment": [str(SCRIPT), "list", "sentiment"],
            "adapters list --limit 0 (all rows)": [str(SCRIPT), "list", "--limit", "0"],
            f"adapters show sentiment@{mid}": [str(SCRIPT), "show", f"sentiment@{mid}"],
            "adapters show medical@production": [str(SCRIPT), "show", "medical@production"],
        }
        print(f"\nmedian of {args.repeat} runs, wall seconds per process")
        print(f"{'command':40} {'10 versions':>12} {args.versions:>8} versions {'ratio':>6}  under 0.2 s")
        for name, cmd in commands.items():
            cmd_small = [c if not c.startswith("sentiment@") or "@production" in c else "sentiment@1" for c in cmd]
            a = timed(cmd_small, small, args.repeat)
            b = timed(cmd, big, args.repeat)
            print(f"{name:40} {a:12.3f} {b:17.3f} {b / a:6.2f}  {'yes' if b < 0.2 else 'no'}")


if __name__ == "__main__":
    main()
