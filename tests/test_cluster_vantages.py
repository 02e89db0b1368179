"""Confirmation from several vantages with real agent processes: three vantages (east, west,
north), ``min_vantages = 2``, each agent probing from its own loopback address, and the
target's stand-in refusing by peer address.

- down from one vantage for 20 intervals: no ticket at all;
- down from a second: exactly one incident, within the window, whose ticket names both
  vantages with their errors; back up: resolved;
- ``partial = "ticket"``: down from one vantage for ``partial_after``: exactly one ticket, a
  priority lower, saying where it fails and where it works, and no page; down from a second:
  the same incident raised (one ticket still) and one page; all up: the recovery note;
- a vantage whose canaries fail is impaired: its verdicts are not counted (down from it and
  one other opens nothing; a third healthy vantage confirms, and the ticket names only the
  healthy two).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster_rig import INTERVAL, THRESHOLD, wait_until
from tests.helpers import FakeProcess, http_get
from tests.vantage_rig import VantageRig

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

WINDOW = 3.0
CONFIRMATION = f'min_vantages = 2\nwindow = "{WINDOW:g}s"\n'
VANTAGES = ("east", "west", "north")
PARTIAL_AFTER = 2.0
PARTIAL = CONFIRMATION + f'partial = "ticket"\npartial_after = "{PARTIAL_AFTER:g}s"\n'


def make(
    tmp: Path, url: str, stand_ins: tuple[FakeProcess, FakeProcess], canaries: bool
) -> VantageRig:
    rig = VantageRig(tmp, url, stand_ins, CONFIRMATION, canaries=canaries)
    for vantage in VANTAGES:
        agent = rig.start_at(vantage)
        wait_until(lambda a=agent: "api" in rig.probed(a), f"{vantage} probing api")
    return rig


@pytest.fixture
def rig(
    tmp_path: Path, pg_url: str, stand_ins: tuple[FakeProcess, FakeProcess]
) -> Iterator[VantageRig]:
    made = make(tmp_path, pg_url, stand_ins, canaries=False)
    yield made
    made.stop_all()


@pytest.fixture
def partial_rig(
    tmp_path: Path, pg_url: str, stand_ins: tuple[FakeProcess, FakeProcess]
) -> Iterator[VantageRig]:
    rig = VantageRig(tmp_path, pg_url, stand_ins, PARTIAL)
    for vantage in VANTAGES:
        agent = rig.start_at(vantage)
        wait_until(lambda a=agent: "api" in rig.probed(a), f"{vantage} probing api")
    yield rig
    rig.stop_all()


@pytest.fixture
def canary_rig(
    tmp_path: Path, pg_url: str, stand_ins: tuple[FakeProcess, FakeProcess]
) -> Iterator[VantageRig]:
    made = make(tmp_path, pg_url, stand_ins, canaries=True)
    yield made
    made.stop_all()


def test_one_vantage_wakes_nobody_two_open_exactly_one_incident(rig: VantageRig) -> None:
    rig.api.refuse("east")
    wait_until(
        lambda: rig.rows("SELECT 1 FROM verdicts WHERE target = 'api' AND down"),
        "east's down verdict",
    )
    time.sleep(20 * INTERVAL)
    assert rig.open_incidents() == []
    assert rig.creates() == 0
    assert rig.triggers() == 0

    rig.api.refuse("east", "west")
    started = time.monotonic()
    wait_until(rig.open_incidents, "the incident", timeout=THRESHOLD * INTERVAL + WINDOW + 2)
    assert time.monotonic() - started < THRESHOLD * INTERVAL + WINDOW
    wait_until(rig.creates, "the ticket")
    time.sleep(10 * INTERVAL)  # every vantage has had its say again: still one
    assert len(rig.open_incidents()) == 1
    assert rig.creates() == 1
    (description,) = rig.descriptions()
    assert "Seen down from 2 vantages:" in description
    assert "- east: expected 'OK' not received" in description
    assert "- west: expected 'OK' not received" in description
    assert "north" not in description

    _, body = http_get(rig.agents[0].base + "/api/targets/api")
    assert b'"vantage": "west"' in body.replace(b'":"', b'": "')

    rig.api.refuse()
    wait_until(lambda: not rig.open_incidents(), "the recovery", timeout=20 * INTERVAL + 5)
    assert rig.creates() == 1


def test_a_vantage_whose_canaries_fail_is_not_counted(canary_rig: VantageRig) -> None:
    rig = canary_rig
    down = "SELECT vantage FROM verdicts WHERE target = 'api' AND down ORDER BY vantage"
    rig.api.refuse("east")
    wait_until(lambda: rig.rows(down) == [("east",)], "east's down verdict")
    rig.canary.refuse("east")  # east's own uplink, as far as it can tell
    wait_until(
        lambda: rig.open_incidents("agent"), "east impaired", timeout=THRESHOLD * INTERVAL + 5
    )
    assert [t for t, _ in rig.open_incidents("agent")] == ["watchdesk:impaired:east"]

    rig.api.refuse("east", "west")
    wait_until(lambda: rig.rows(down) == [("east",), ("west",)], "west's down verdict")
    time.sleep(20 * INTERVAL)
    assert rig.open_incidents() == []  # east's word is not counted: west alone
    assert rig.creates() == 0

    rig.api.refuse("east", "west", "north")
    wait_until(rig.open_incidents, "the incident", timeout=THRESHOLD * INTERVAL + WINDOW + 2)
    wait_until(rig.creates, "the ticket")
    (description,) = rig.descriptions()
    assert "- west:" in description
    assert "- north:" in description
    assert "- east:" not in description


def test_a_partial_outage_gets_one_lower_ticket_then_is_raised_and_pages(
    partial_rig: VantageRig,
) -> None:
    rig = partial_rig
    rig.api.refuse("east")
    soon = THRESHOLD * INTERVAL + PARTIAL_AFTER + WINDOW / 3 + 3
    wait_until(rig.partial, "the partial incident", timeout=soon)
    wait_until(rig.creates, "its ticket")
    time.sleep(10 * INTERVAL)  # every vantage has had its say again: still one
    ((incident_id, kind, priority),) = rig.partial()
    assert (kind, priority) == ("partial", "high")
    assert rig.subjects() == ["[HIGH] api is down from east"]
    (html,) = rig.descriptions()
    description = html.replace("<br>", "\n")  # the helpdesk's form of a line break
    assert "Fails from:\n- east: expected 'OK' not received" in description
    assert "Works from:\n- north\n- west" in description
    assert rig.triggers() == 0

    rig.api.refuse("east", "west")
    wait_until(lambda: rig.partial()[0][1] == "target", "the raise", timeout=soon)
    wait_until(rig.triggers, "the page")
    time.sleep(10 * INTERVAL)
    assert rig.partial() == [(incident_id, "target", "urgent")]
    assert rig.creates() == 1
    assert rig.triggers() == 1
    assert any("Seen down from 2 vantages" in note for note in rig.notes())

    rig.api.refuse()
    wait_until(lambda: not rig.open_incidents(), "the recovery", timeout=20 * INTERVAL + 5)
    wait_until(lambda: any("has recovered" in note for note in rig.notes()), "the recovery note")
    assert rig.creates() == 1
