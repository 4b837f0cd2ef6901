"""No traceback from any command (issue 21.6).

Walks every command and subcommand (the walker of tests/cli/test_cli_help.py) and feeds each
argument and option, one at a time, bad values of its kind: missing and unreadable files,
folders where files are expected and files where folders are, malformed refs, unknown
domains, ports in use, hosts that do not resolve, numbers out of range, text that is not
UTF-8. Each run must end in a documented exit code and, when it fails, one `Error:` line;
never an escaping exception or `Traceback`.

Runs in-process (CliRunner). Nothing here can load a real model: the registry's domain and
version name a base that does not exist offline ("tiny-bert"), so anything that gets past
the argument checks stops at the base; uvicorn is replaced so a command that would start
serving fails the test instead of blocking it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from loradock.cli.errors import EXIT_CODES, OK, USAGE
from loradock.cli.main import cli
from tests.cli.test_cli_help import walk
from tests.synthetic_adapters import write_adapter

DOCUMENTED = {OK, USAGE, 1, *(code for _, code in EXIT_CODES)}
UNDECODABLE = os.fsdecode(b"bad\xff\xfe")  # what Python makes of a non-UTF-8 argv entry


class WouldServe(Exception):
    """Raised instead of serving: a fuzzed command got as far as starting a server."""


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def world(registry, tmp_path, taken_port, monkeypatch):
    """Good and bad values by kind; the registry holds sentiment@1 on a base that cannot load."""
    import uvicorn

    def no_serving(*args, **kwargs):
        raise WouldServe(args, kwargs)

    monkeypatch.setattr(uvicorn, "run", no_serving)
    monkeypatch.setattr(uvicorn.Server, "run", no_serving)
    registry.update_domain("sentiment", base_model="tiny-bert")  # train stops at the base, never trains
    good = write_adapter(tmp_path / "good")
    registry.register("sentiment", good)

    deep = write_adapter(tmp_path / "deep")
    (deep / "adapter_config.json").write_text("[" * 200_000)
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("just text\n")
    unreadable = tmp_path / "unreadable.csv"
    unreadable.write_text("text,label\nhi,a\n")
    unreadable.chmod(0)  # unreadable to anyone but root
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x80" * 256)
    big_field = tmp_path / "big.csv"
    big_field.write_text("text,label\n" + "x" * 200_000 + ",a\n")
    empty_dir = tmp_path / "empty-dir"
    empty_dir.mkdir()
    missing = tmp_path / "missing" / "nothing.csv"
    data = tmp_path / "data.csv"
    data.write_text("text,label\ngood,positive\nbad,negative\n")

    onnx_like = tmp_path / "onnx-like"  # an export folder whose every JSON file is 200,000 '['
    onnx_like.mkdir()
    (onnx_like / "model.onnx").write_bytes(b"not onnx")
    for name in ("labels.json", "config.json", "tokenizer_config.json", "tokenizer.json"):
        (onnx_like / name).write_text("[" * 200_000)
    paths_in = [str(missing), str(a_file), str(empty_dir), str(deep), str(onnx_like), str(unreadable), UNDECODABLE]
    files_in = [str(missing), str(empty_dir), str(unreadable), str(binary), str(big_field), "hf:", UNDECODABLE]
    return {
        "registry": registry,
        "good": {
            "ref": "sentiment@1",
            "domain": "sentiment",
            "name": "fuzzed",
            "labels": "a,b",
            "alias": "staging",
            "version": "1",
            "spec": "alice/nothing-here",
            "repo_id": "alice/nothing-here",
            "kind": "onnx",
            "path": str(good),
            "data": str(data),
            "out": None,  # a fresh folder per run
        },
        "bad": {
            "ref": [
                "sentiment@@1",
                "nosuch@1",
                "sentiment@99",
                "sentiment@",
                "@",
                "",
                "sentiment@../x",
                "s" * 300 + "@1",
                UNDECODABLE,
            ],
            "domain": ["nosuch", "Bad Name!", "", "../etc", "s" * 300, UNDECODABLE],
            "alias": ["", "Bad Alias!", "latest", "../x", UNDECODABLE],
            "labels": ["", ",", "a,a", "a," * 5000, UNDECODABLE],
            "version": ["0", "-1", "99", "x", ""],
            "spec": ["", "not a repo!", "alice/", "../x", "alice/x@@1", UNDECODABLE],
            "dir": paths_in,
            "file": files_in,
            "out": [str(a_file), str(a_file / "below"), str(registry.home), UNDECODABLE],
            "port": [str(taken_port), "-1", "70000", "abc"],
            "host": ["no.such.host.invalid", "999.1.1.1", ""],
            "int": ["-1", "0", "abc", "99999999999999999999"],
            "float": ["-1", "nan", "inf", "abc"],
            "text": ["", "x" * 10_000, UNDECODABLE, "\x00"],
        },
    }


# Which kind of value a parameter takes, by name first, then by click type.
_KIND_BY_NAME = {
    "ref": "ref",
    "args": "ref",
    "spec": "spec",
    "repo_id": "spec",
    "domain": "domain",
    "name": "domain",
    "alias": "alias",
    "aliases": "alias",
    "labels": "labels",
    "version": "version",
    "path": "dir",
    "onnx_dir": "dir",
    "file_": "file",
    "data": "file",
    "eval_data": "file",
    "out": "out",
    "port": "port",
    "host": "host",
    "parent": "ref",
    "domains": "ref",
    "base": "spec",
    "base_model": "spec",
    "address": "host",
}


def kind_of(param: click.Parameter) -> str:
    if param.name in _KIND_BY_NAME:
        return _KIND_BY_NAME[param.name]
    if isinstance(param.type, click.types.IntParamType):
        return "int"
    if isinstance(param.type, click.types.FloatParamType):
        return "float"
    return "text"


def _good(param: click.Parameter, world: dict, tmp_path: Path, serial: list[int]) -> str:
    value = world["good"].get(kind_of(param) if param.name not in world["good"] else param.name)
    if kind_of(param) == "out" or value is None:
        serial[0] += 1
        return str(tmp_path / f"out-{serial[0]}")
    return str(value)


def cases(world: dict, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """(command, argv) pairs: each value-taking parameter of each command, given each bad value of its kind."""
    serial = [0]
    for path, command in walk(cli):
        if isinstance(command, click.Group):
            yield " ".join(path), [*path, "--no-such-option"]
            continue
        params = [
            p
            for p in command.params
            if p.name != "help" and not getattr(p, "is_flag", False) and not isinstance(p.type, click.Choice)
        ]
        yield " ".join(path), [*path, "--no-such-option"]
        for target in params:
            for bad in world["bad"][kind_of(target)]:
                argv = list(path)
                for param in params:
                    value = (
                        bad if param is target else (_good(param, world, tmp_path, serial) if param.required else None)
                    )
                    if value is None:
                        continue
                    if isinstance(param, click.Argument):
                        argv.append(value)
                    else:
                        argv += [param.opts[0], value]
                if isinstance(target, click.Argument) and target.nargs == -1:
                    argv.append("some text")
                yield " ".join(path), argv


def problem(result: Result) -> str | None:
    """What is wrong with how a run ended, or None."""
    if isinstance(result.exception, WouldServe):
        return None  # the input was acceptable after all (e.g. `ui --api-key-env ''`: no token)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"escaped {type(result.exception).__name__}: {result.exception}"[:300]
    if "Traceback" in result.output:
        return "printed a traceback"
    if result.exit_code not in DOCUMENTED:
        return f"exit code {result.exit_code} is not documented"
    if result.exit_code in (OK, USAGE):
        return None
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    if len(errors) != 1 or lines[-1] != errors[0]:
        return f"not one final 'Error:' line: {result.output[-300:]!r}"
    return None


def test_no_command_prints_a_traceback(world, tmp_path, capsys) -> None:
    runner = CliRunner()
    tried, commands, failures, codes = 0, set(), [], {}
    for name, argv in cases(world, tmp_path):
        commands.add(name)
        result = runner.invoke(cli, argv)
        if name == "domains edit":  # it may have taken a fuzzed --base: pin the one that cannot load again
            world["registry"].update_domain("sentiment", base_model="tiny-bert")
        tried += 1
        codes[result.exit_code] = codes.get(result.exit_code, 0) + 1
        why = problem(result)
        if why:
            failures.append(f"adapters {' '.join(map(repr, argv[:6]))}: {why}")
    with capsys.disabled():
        print(
            f"\nCLI fuzz: {len(commands)} commands, {tried} bad inputs, {len(failures)} tracebacks; "
            f"exit codes {dict(sorted(codes.items()))}"
        )
    assert len(commands) == len(list(walk(cli))) and tried >= 300
    assert not failures, "\n".join(failures[:40])


def test_a_server_on_a_taken_port_fails_through_the_cli_error_path(registry, taken_port) -> None:
    registry.register("sentiment", write_adapter(Path(registry.home).parent / "a"))
    ray = ["serve", "--ray", "--port", str(taken_port)] if _has_ray() else []
    for argv in (
        ["serve", "--port", str(taken_port)],
        ["ui", "--port", str(taken_port)],
        ["demo", "--port", str(taken_port)],
        ray,
    ):
        if not argv:
            continue
        result = CliRunner().invoke(cli, argv)
        assert problem(result) is None and result.exit_code == 1, (argv, result.output)
        assert result.output.strip() == (
            f"Error: Port {taken_port} on 127.0.0.1 is already in use (another "
            "server?); stop that one or pass another --port."
        )


def _has_ray() -> bool:
    try:
        import ray.serve  # noqa: F401
    except ImportError:
        return False
    return True


def test_a_real_process_ends_with_one_line_too(registry, taken_port) -> None:
    """One subprocess check: the installed entry point, real argv bytes, real stderr."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for argv in (
        [b"show", b"sentiment@@1"],
        [b"serve", b"--port", str(taken_port).encode()],
        [b"export", b"sentiment@1", b"--out", b"/tmp/bad\xff\xfe"],
    ):
        done = subprocess.run(
            [sys.executable.encode(), b"-m", b"loradock.cli", *argv],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        err = done.stderr.decode("utf-8", "replace")
        assert "Traceback" not in err and done.returncode in DOCUMENTED - {OK, USAGE}, (argv, err)
        assert [line for line in err.splitlines() if line.strip()][-1].startswith("Error: "), (argv, err)
