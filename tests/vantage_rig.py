"""Three vantages of one cluster as real agent processes, each probing from its own loopback
source address (127.0.0.2, .3, .4: the TCP check's ``source_ip_address``), and targets whose
stand-in refuses by peer address: the fault one vantage sees and the others do not, made the
way a real one is (a network path that fails from one place).

Built on ``tests.cluster_rig.Rig`` (the same database, helpdesk and pager stand-ins, short
lease timings); each agent's config differs only in its vantage and source address."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from pathlib import Path

from tests.cluster_rig import Rig
from tests.helpers import AgentProcess, FakeProcess, free_port

SOURCES = {"east": "127.0.0.2", "west": "127.0.0.3", "north": "127.0.0.4"}


class PeerService:
    """A TCP service that greets "OK" except to the peer addresses in ``refused``, which it
    hangs up on at once (their TCP check fails: "expected 'OK' not received")."""

    def __init__(self) -> None:
        self.port = free_port()
        self.refused: set[str] = set()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(256)
        threading.Thread(target=self._accept, daemon=True).start()

    def refuse(self, *vantages: str) -> None:
        """From now on these vantages (only) see the service down."""
        self.refused = {SOURCES[v] for v in vantages}

    def _accept(self) -> None:
        while True:
            try:
                conn, (peer, _) = self._sock.accept()
            except OSError:
                return
            with contextlib.suppress(OSError):
                if peer not in self.refused:
                    conn.sendall(b"OK\r\n")
            conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class VantageRig(Rig):
    def __init__(
        self,
        tmp: Path,
        url: str,
        stand_ins: tuple[FakeProcess, FakeProcess],
        confirmation: str,
        canaries: bool = False,
        interval: float | None = None,
    ) -> None:
        super().__init__(tmp, url, stand_ins, up=1)
        self.api = PeerService()  # type: ignore[assignment]
        self.web = PeerService()  # type: ignore[assignment]
        self.canary = PeerService()
        self.confirmation = confirmation
        self.canaries = canaries
        self.vantage = "east"
        self.interval = interval  # None: the cluster rig's INTERVAL

    def config(self, port: int) -> Path:
        path = super().config(port)
        source = SOURCES[self.vantage]
        text = re.sub(
            r"(port = \d+\n)",
            rf'\1expect = "OK"\nsource_ip_address = "{source}"\n',
            path.read_text(),
        )
        text = text.replace('vantage = "east"', f'vantage = "{self.vantage}"')
        if self.interval is not None:
            every = f'interval = "{round(self.interval * 1000)}ms"'
            text = re.sub(r'interval = "\d+ms"', every, text, count=1)
        if self.canaries:
            text = text.replace("[agent]\n", '[agent]\ncanaries = ["canary"]\n', 1)
            text += (
                f'\n[[targets]]\nname = "canary"\nkind = "tcp"\nhost = "127.0.0.1"\n'
                f'port = {self.canary.port}\nexpect = "OK"\nsource_ip_address = "{source}"\n'
            )
        # Targets are arrays of tables: [confirmation] goes before the first of them.
        head, sep, rest = text.partition("\n[[targets]]")
        text = f"{head}\n[confirmation]\n{self.confirmation}\n{sep}{rest}"
        path.write_text(text)
        return path

    def start_at(self, vantage: str) -> AgentProcess:
        self.vantage = vantage
        return self.start()

    def stop_all(self) -> None:
        super().stop_all()
        self.canary.stop()

    def open_incidents(self, kind: str = "target") -> list[tuple[str, str]]:
        """(target, last_reason) of the open incidents of ``kind``."""
        rows = self.rows(
            "SELECT target, last_reason FROM incidents WHERE status = 'open' AND kind = %s",
            (kind,),
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    def partial(self) -> list[tuple[int, str, str]]:
        """(id, kind, priority) of every incident of api, open or not."""
        rows = self.rows(
            "SELECT id, kind, priority FROM incidents WHERE target = 'api' ORDER BY id"
        )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def notes(self) -> list[str]:
        """The bodies of the notes the helpdesk was asked to add."""
        return [
            str(r["json"]["body"])
            for r in self.freshdesk.state()["requests"]
            if r["route"] == "note"
        ]

    def subjects(self) -> list[str]:
        return [
            str(r["json"]["subject"])
            for r in self.freshdesk.state()["requests"]
            if r["route"] == "create"
        ]

    def descriptions(self) -> list[str]:
        """The descriptions of the tickets the helpdesk was asked to create."""
        return [
            str(r["json"]["description"])
            for r in self.freshdesk.state()["requests"]
            if r["route"] == "create"
        ]
