"""Half-open connections (issue 22, item 3): a header deadline, a connection cap and the file limit.

Each half-open socket sends `GET /v1/models HTTP/1.1\\r\\nHost: x\\r\\n` and never finishes its head.
The numbers asked for (sockets held, /health latency while held, server RSS) are printed
(`pytest -s`); no time is asserted.
"""

from __future__ import annotations

import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.serve_support import register_presets

HALF_OPEN = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n"
ROOT = Path(__file__).resolve().parents[2]


def _client_fds(n: int) -> None:
    """This (client) process needs a descriptor per socket too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 512
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def open_half(host: str, port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(HALF_OPEN)
        socks.append(s)
    return socks


def still_open(socks: list[socket.socket]) -> int:
    """Sockets the server has not closed (a closed one reads EOF or a reset)."""
    count = 0
    for s in socks:
        s.setblocking(False)
        try:
            count += s.recv(1) != b""  # data before the head is complete would be a bug; count it as open
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def health_latencies(url: str, tries: int = 5, path: str = "/health") -> list[float]:
    """Seconds per complete GET on a fresh connection (a raw socket: no client set-up in the number)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    out = []
    for _ in range(tries):
        start = time.perf_counter()
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        out.append(time.perf_counter() - start)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    return out


def ms(latencies: list[float]) -> str:
    return f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 120.0, path: str = "/health") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not come up")


def low_file_limit() -> None:  # preexec_fn: the server starts under a 256-file soft limit, as in the report
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


def tiny_app() -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    return app


def background(**limits: float):
    from loradock.serving.connlimits import ConnectionLimits
    from loradock.serving.server import BackgroundServer
    from tests.serve_support import serve_config

    return BackgroundServer(serve_config(), app=tiny_app(), limits=ConnectionLimits(**limits))


@pytest.mark.slow
def test_health_answers_while_1000_half_open_sockets_are_held(registry, make_peft_folder) -> None:
    """`adapters serve` under a 256-file soft limit: 1,000 half-open sockets, /health still answers."""
    register_presets(registry, make_peft_folder)
    n = 1000
    _client_fds(n)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loradock.cli",
            "serve",
            "--domains",
            "sentiment@production",
            "--port",
            str(port),
            "--device",
            "cpu",
            "--backend",
            "torch",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=low_file_limit,
    )
    socks: list[socket.socket] = []
    try:
        wait_up(url, proc)
        idle_rss, idle = rss_mb(proc.pid), health_latencies(url)
        socks = open_half("127.0.0.1", port, n)
        latencies = health_latencies(url)
        held = still_open(socks)
        held_rss = rss_mb(proc.pid)
        print(
            f"\nhalf-open: {held}/{n} sockets held; /health {ms(latencies)} while held ({ms(idle)} before); "
            f"server RSS {idle_rss:.0f} MB before, {held_rss:.0f} MB while held"
        )
        assert held == n  # none was dropped to make room: the cap is above 1,000 once the limit is raised
    finally:
        close_all(socks)
        proc.terminate()
        proc.wait(30)


def test_the_console_answers_while_1000_half_open_sockets_are_held() -> None:
    """`adapters ui` (its own uvicorn) under the same 256-file soft limit and the same load."""
    n = 1000
    _client_fds(n)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "loradock.cli", "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=low_file_limit,
    )
    socks: list[socket.socket] = []
    try:
        wait_up(url, proc, path="/ui/")
        idle_rss, idle = rss_mb(proc.pid), health_latencies(url, path="/ui/")
        socks = open_half("127.0.0.1", port, n)
        latencies = health_latencies(url, path="/ui/")
        held = still_open(socks)
        print(
            f"\nconsole half-open: {held}/{n} sockets held; /ui/ {ms(latencies)} while held ({ms(idle)} before); "
            f"console RSS {idle_rss:.0f} MB before, {rss_mb(proc.pid):.0f} MB while held"
        )
        assert held == n
    finally:
        close_all(socks)
        proc.terminate()
        proc.wait(30)


def test_half_open_sockets_are_closed_at_the_header_deadline() -> None:
    _client_fds(200)
    with background(header_timeout_s=0.5) as server:
        socks = open_half(server.host, server.port, 200)
        try:
            assert still_open(socks) == 200
            health_latencies(server.url, tries=1)
            deadline = time.monotonic() + 20
            while still_open(socks) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert still_open(socks) == 0
            health_latencies(server.url, tries=1)  # a complete request on a fresh connection is unaffected
        finally:
            close_all(socks)


def test_a_trickled_head_does_not_extend_the_deadline() -> None:
    with background(header_timeout_s=0.5) as server:
        with socket.create_connection((server.host, server.port), timeout=10) as s:
            s.sendall(b"GET /health HTTP/1.1\r\n")
            closed_after = None
            start = time.monotonic()
            for _ in range(100):  # a header line every 0.1 s, never the blank line
                time.sleep(0.1)
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                    s.setblocking(False)
                    if s.recv(1) == b"":
                        closed_after = time.monotonic() - start
                        break
                except BlockingIOError:
                    pass
                except OSError:
                    closed_after = time.monotonic() - start
                    break
                finally:
                    s.setblocking(True)
            assert closed_after is not None


def test_keep_alive_connection_that_stalls_mid_head_is_closed() -> None:
    with background(header_timeout_s=0.5, keep_alive_s=30) as server:
        with socket.create_connection((server.host, server.port), timeout=10) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            s.sendall(HALF_OPEN)  # a second request on the same connection, never finished
            s.settimeout(10)
            assert s.recv(4096) == b""  # closed by the deadline, long before the 30 s keep-alive


def test_over_the_cap_the_oldest_half_open_connection_makes_room() -> None:
    with background(max_connections=50, header_timeout_s=60) as server:
        socks = open_half(server.host, server.port, 100)
        try:
            time.sleep(0.2)
            health_latencies(server.url, tries=3)  # answered, not 503: a half-open one was closed for it
            assert still_open(socks) <= 50
            assert still_open(socks[-20:]) == 20  # the newest were kept, the oldest closed
        finally:
            close_all(socks)


def test_an_incomplete_head_over_the_size_limit_is_refused() -> None:
    with background(max_head_bytes=1024, header_timeout_s=30) as server:
        with socket.create_connection((server.host, server.port), timeout=10) as s:
            s.sendall(HALF_OPEN + b"X-Big: " + b"a" * 4096)  # still no blank line
            assert s.recv(4096).startswith(b"HTTP/1.1 400")
