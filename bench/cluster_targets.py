"""The targets the cluster bench probes, and the local servers that answer them.

``http`` (the default): every target a plain-http path of ``probe_log_server.py``, which
records the time of each probe, so that duplicates, unprobed targets and a failover are read at
the targets themselves. ``mixed``: issue 13's mix, the same kinds in the same interleaving and
the same target entries as ``scale_matrix.py --mix mixed`` (70 % https verified against the
test CA's file, 20 % http, 4 % tcp, 3 % icmp, 3 % dns), one ``probe_servers.py`` process per
kind; its http share goes to ``probe_log_server.py`` as well, so the figures read at the
targets cover that share only (the other kinds' servers keep no probe times).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from http_targets import _free_port, _proc_cpu_seconds
from probe_kinds import Server, target_text
from scale_matrix import kinds_of

HERE = Path(__file__).resolve().parent
MIXES = ("http", "mixed")


class Targets:
    """The servers of one run: the probe log server (always) and, for ``mixed``, one
    ``probe_servers.py`` process per other kind (icmp needs none: the kernel answers)."""

    def __init__(self, mix: str, count: int, work: Path) -> None:
        self.mix, self.count, self.work = mix, count, work
        self.kinds = kinds_of(mix, count)
        self.times_file = work / "probes.json"
        self.port = _free_port()
        self.log_server = subprocess.Popen(
            [sys.executable, str(HERE / "probe_log_server.py"), str(self.port), str(count),
             str(self.times_file)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.log_server.stdout is not None
        if self.log_server.stdout.readline().strip() != "READY":
            raise SystemExit("cluster bench: the target server did not start")
        self.servers: dict[str, Server] = {}
        if mix == "mixed":
            for kind in sorted(set(self.kinds) - {"http"}):
                self.servers[kind] = Server(kind, str(work))

    @property
    def logged(self) -> list[int]:
        """Indexes of the targets whose probe times the log server records."""
        return [i for i, kind in enumerate(self.kinds) if kind == "http"]

    def config_text(self) -> str:
        if self.mix == "http":
            width = len(str(self.count))
            return "".join(
                f'[[targets]]\nname = "t{i:0{width}d}"\nkind = "http"\n'
                f'url = "http://127.0.0.1:{self.port}/t/{i}"\n'
                for i in range(self.count)
            )
        ports = {"http": self.port, **{kind: s.port for kind, s in self.servers.items()}}
        ca_file = str(self.work / "ca.pem")  # written by the https server
        return "".join(
            target_text(kind, i, ports.get(kind, 0), ca_file) for i, kind in enumerate(self.kinds)
        )

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds of each kind's server so far (``http``: the probe log server's)."""
        found = {kind: server.cpu_seconds() for kind, server in self.servers.items()}
        found["http"] = _proc_cpu_seconds(self.log_server.pid)
        return found

    def stop(self) -> tuple[dict[str, Any], list[list[float]]]:
        """Stop every server: the log server's totals and the probe times of the logged
        targets (in ``logged`` order)."""
        for server in self.servers.values():
            server.stop()
        self.log_server.send_signal(signal.SIGTERM)
        out, _ = self.log_server.communicate(timeout=120)
        times = json.loads(self.times_file.read_text())["times"]
        return json.loads(out.strip().splitlines()[-1]), [times[i] for i in self.logged]
