"""The test's TCP proxy (tests/tcpproxy.py) really cuts and heals: against an echo server, each
way of cutting does to a client what the network would, and against the real PostgreSQL a
psycopg connection through it fails on a cut and a new one works after the heal. The multi-agent
partition tests stand on this."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.pg import PostgresServer
from tests.tcpproxy import TcpProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", echo_port) as running:
        yield running


def connect(port: int, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def echo(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def reset_by_peer(sock: socket.socket) -> bool:
    try:
        sock.sendall(b"after")
        sock.recv(16)
    except (ConnectionResetError, BrokenPipeError):
        return True
    return False


def test_bytes_pass_both_ways_and_are_counted(proxy: TcpProxy) -> None:
    with connect(proxy.port) as sock:
        assert echo(sock, b"hello") == b"hello"
        assert echo(sock, b"x" * 100_000) == b"x" * 100_000
    assert proxy.counts.accepted == 1
    assert proxy.counts.bytes_up == proxy.counts.bytes_down == 100_005


def test_a_reset_cut_drops_open_connections_and_refuses_new_ones(proxy: TcpProxy) -> None:
    sock = connect(proxy.port)
    assert echo(sock, b"before") == b"before"
    proxy.cut("reset")
    assert reset_by_peer(sock)
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        connect(proxy.port)
    assert proxy.counts.reset == 1

    proxy.heal()
    with connect(proxy.port) as again:
        assert echo(again, b"healed") == b"healed"


def test_a_blackhole_holds_bytes_until_the_heal(proxy: TcpProxy) -> None:
    open_before = connect(proxy.port, timeout=0.3)
    assert echo(open_before, b"one") == b"one"
    proxy.cut("blackhole")
    open_before.sendall(b"two")
    with pytest.raises(TimeoutError):
        open_before.recv(16)  # nothing comes back while the link is dead
    during = connect(proxy.port, timeout=0.3)  # the kernel accepts; nobody answers
    during.sendall(b"three")
    with pytest.raises(TimeoutError):
        during.recv(16)

    proxy.heal()
    open_before.settimeout(2)
    during.settimeout(2)
    assert open_before.recv(16) == b"two"  # delayed, not lost: TCP retransmits
    assert during.recv(16) == b"three"
    open_before.close()
    during.close()


def test_heal_keeps_the_same_port_and_cuts_repeat(proxy: TcpProxy) -> None:
    port = proxy.port
    for mode in ("reset", "blackhole", "reset"):
        proxy.cut(mode)
        proxy.heal()
        assert proxy.port == port
        with connect(port) as sock:
            assert echo(sock, mode.encode()) == mode.encode()


def test_postgresql_through_the_proxy(pg_server: PostgresServer) -> None:
    """psycopg over the proxy: works, fails fast on a reset cut (the open connection and a new
    one), times out on a blackhole, and connects again once healed."""
    url = pg_server.new_database()
    database = url.split("?")[0].rsplit("/", 1)[-1]
    try:
        with TcpProxy(pg_server.host, pg_server.port) as proxy:
            through = pg_server.tcp_url(database, proxy.port)
            conn = psycopg.connect(through, autocommit=True, connect_timeout=2)
            assert conn.execute("SELECT 1").fetchone() == (1,)

            proxy.cut("reset")
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
            conn.close()
            began = time.monotonic()
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(through, connect_timeout=2)
            assert time.monotonic() - began < 1.5  # refused, not timed out

            proxy.heal()
            proxy.cut("blackhole")
            began = time.monotonic()
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(through, connect_timeout=1)
            assert time.monotonic() - began >= 0.9  # nobody answered: the client's own timeout

            proxy.heal()
            with psycopg.connect(through, autocommit=True, connect_timeout=2) as healed:
                row = healed.execute("SELECT current_database()").fetchone()
                assert row == (database,)
    finally:
        pg_server.drop(url)
