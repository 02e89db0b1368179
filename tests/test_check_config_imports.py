"""`watchdesk check-config` loads what validating a config needs and nothing else: at 50,000
targets every import it can skip is time a deploy script waits (issue 13: under 1.5 s)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("aiohttp", "apprise", "psycopg", "jinja2", "requests", "dns.resolver", "monitor.agent")

PROGRAM = """
import sys
from monitor.cli.main import main
code = main(["check-config", "-c", sys.argv[1]])
print(code)
print("loaded:" + ",".join(name for name in sys.argv[2].split(",") if name in sys.modules))
"""


def test_check_config_imports_no_network_or_store_code(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[targets]]\nname = "web"\nkind = "http"\nurl = "https://example.com/"\n'
        '[[targets]]\nname = "ns"\nkind = "dns"\nhost = "example.com"\nnameserver = "127.0.0.1"\n'
        '[[targets]]\nname = "db"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 5432\n'
    )
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(config), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    code, loaded = done.stdout.strip().splitlines()[-2:]
    assert code == "0", done.stdout + done.stderr
    assert loaded == "loaded:", f"check-config imported {loaded}"
