"""The chaos judge can fail: clean synthetic evidence passes, and each doctored copy fails with
the violation it was doctored for (and only that one). Also the edge cases it must forgive: an
outage nobody could see, an agent dead at both ends of an outage, two outages that were one for
an agent that was dead in between, a failure streak that spans a restart."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.chaos.checker import Figures, Violation, check, down_periods

B = 1_800_000_000.0  # a whole second, so that claimed times are easy to read
INTERVAL = 0.2


def wall(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


class World:
    """Synthetic evidence: targets' real down periods, agent lives, and what the stand-ins
    recorded, written the way the agent writes its tickets, notes and pages."""

    def __init__(self) -> None:
        self.toggles: dict[str, list[list[Any]]] = {}
        self.alive: list[list[float]] = [[B, B + 60.0]]
        self.tickets: list[dict[str, Any]] = []
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.alerts: dict[str, dict[str, Any]] = {}
        self.resolved_alerts: list[dict[str, Any]] = []
        self._note_ids = 1000

    def target(self, name: str, *downs: tuple[float, float]) -> World:
        items: list[list[Any]] = [[B, True]]
        for start, end in downs:
            items += [[B + start, False], [B + end, True]]
        self.toggles[name] = items
        return self

    def incident(
        self,
        target: str,
        first_failure: float,
        recovered: float | None,
        *,
        status: int = 3,
        note: bool = True,
        page: bool = True,
    ) -> int:
        """A ticket as the agent opens it, its recovery note, its status and its page."""
        ticket_id = len(self.tickets) + 1
        key = f"watchdesk-{ticket_id}-{ticket_id:010x}"
        self.tickets.append(
            {
                "id": ticket_id,
                "subject": f"[URGENT] {target} is down",
                "description": (
                    f"{target} is down.\n\nWhat failed: TCP connect of 127.0.0.1:1\n"
                    "Last error: connection refused\n"
                    f"Failing since: {wall(B + first_failure)} UTC (first failed check)\n"
                    "Failed checks: 2 in a row (threshold 2, every 200ms)"
                ),
                "tags": ["watchdesk", key],
                "status": status,
                "priority": 4,
            }
        )
        if recovered is not None and note:
            self.note(ticket_id, target, recovered)
        if page:
            self.alerts[key] = {
                "dedup_key": key,
                "status": "resolved" if recovered is not None else "triggered",
            }
        return ticket_id

    def note(self, ticket_id: int, target: str, recovered: float, private: bool = False) -> None:
        self._note_ids += 1
        self.notes.setdefault(str(ticket_id), []).append(
            {
                "id": self._note_ids,
                "body": (
                    f"{target} has recovered at {wall(B + recovered)} UTC. It was down for 4s "
                    "(since ..., the first failed check); 20 checks failed."
                ),
                "private": private,
            }
        )

    def key_of(self, ticket_id: int) -> str:
        return str(self.tickets[ticket_id - 1]["tags"][1])

    def evidence(self) -> dict[str, Any]:
        return copy.deepcopy(
            {
                "seed": 7,
                "config": {
                    "interval": INTERVAL,
                    "failure_threshold": 2,
                    "recovery_threshold": 2,
                    "on_recovery": "pending",
                },
                "ended_at": B + 60.0,
                "wall": 1.0,
                "kills": [end for _, end in self.alive[:-1]],
                "truth": {"toggles": self.toggles, "accepts": {}},
                "alive": self.alive,
                "freshdesk": {"tickets": self.tickets, "notes": self.notes},
                "pagerduty": {"alerts": self.alerts, "resolved_alerts": self.resolved_alerts},
            }
        )


def clean_world() -> World:
    """Two targets: a has two outages and a blip, b has two outages; one ticket each, all
    recovered (notes claim the second of the second successful probe)."""
    world = (
        World()
        .target("a", (10.3, 14.8), (20.45, 20.53), (30.1, 34.0))
        .target("b", (12.2, 17.0), (40.5, 44.0))
    )
    world.incident("a", 10.5, 15.2)  # 1
    world.incident("b", 12.4, 17.4)  # 2
    world.incident("a", 30.3, 34.4)  # 3
    world.incident("b", 40.7, 44.4)  # 4
    return world


def kinds(violations: list[Violation]) -> set[str]:
    return {v.kind for v in violations}


def test_clean_evidence_passes() -> None:
    violations, figures = check(clean_world().evidence())
    assert violations == []
    assert (figures.outages, figures.blips, figures.tickets, figures.observable) == (4, 1, 4, 4)
    assert (figures.dup, figures.lost, figures.blip_tickets, figures.pd_alerts) == (0, 0, 0, 4)


def test_the_figure_line() -> None:
    _, figures = check(clean_world().evidence())
    assert re.fullmatch(
        r"chaos: seed=7 outages=4 tickets=4 dup=0 lost=0 kills=0 missing_recovery=0 "
        r"false_recovery=0 blips=1 blip_tickets=0 pd_alerts=4 wall=1\.0s",
        figures.line(),
    ), figures.line()


def test_a_second_ticket_for_one_outage_is_a_duplicate() -> None:
    world = clean_world()
    twin = world.incident("a", 11.6, 15.2)  # a later first failure, same outage
    violations, figures = check(world.evidence())
    assert kinds(violations) == {"dup_ticket"}
    assert figures.dup == 1
    assert f"{twin} (key" in violations[0].detail


def test_two_tickets_with_one_dedup_tag_are_duplicates() -> None:
    world = clean_world()
    world.tickets.append({**copy.deepcopy(world.tickets[1]), "id": 5})
    world.notes["5"] = copy.deepcopy(world.notes["2"])
    violations, figures = check(world.evidence())
    assert kinds(violations) == {"dup_ticket"}
    assert figures.dup == 1


def test_a_ticket_whose_first_failure_is_in_an_earlier_outage_is_a_duplicate() -> None:
    world = clean_world()
    # The ticket of b's second outage says it has been failing since the first one.
    world.tickets[3]["description"] = world.tickets[1]["description"]
    violations, figures = check(world.evidence())
    assert kinds(violations) == {"dup_ticket", "lost"}
    assert figures.dup == 1


def test_a_ticket_for_a_blip_is_a_bug() -> None:
    world = clean_world()
    world.incident("a", 20.5, 20.9)
    violations, figures = check(world.evidence())
    assert kinds(violations) == {"blip_ticket"}
    assert figures.blip_tickets == 1
    assert "in blip a#1" in violations[0].detail


def test_a_ticket_while_the_target_was_up_is_a_bug() -> None:
    world = clean_world()
    world.incident("b", 25.0, 26.0)
    violations, _ = check(world.evidence())
    assert kinds(violations) == {"blip_ticket"}
    assert "while the target was up" in violations[0].detail


def test_a_recovered_ticket_needs_a_public_recovery_note() -> None:
    world = clean_world()
    del world.notes["3"]
    violations, figures = check(world.evidence())
    assert kinds(violations) == {"missing_recovery_note"}
    assert figures.missing_recovery == 1

    world = clean_world()
    world.notes["3"][0]["private"] = True
    assert kinds(check(world.evidence())[0]) == {"missing_recovery_note"}


def test_a_recovered_ticket_needs_the_on_recovery_status() -> None:
    world = clean_world()
    world.tickets[0]["status"] = 2  # still open
    violations, figures = check(world.evidence())
    assert kinds(violations) == {"missing_recovery_status"}
    assert figures.missing_recovery == 1

    evidence = world.evidence()
    evidence["config"]["on_recovery"] = "resolve"
    evidence["freshdesk"]["tickets"][0]["status"] = 4
    evidence["freshdesk"]["tickets"][1]["status"] = 5
    assert kinds(check(evidence)[0]) == {"missing_recovery_status"}  # 3 and 4 still pending


def test_a_recovery_note_while_the_target_was_down_is_false() -> None:
    world = clean_world()
    world.note(1, "a", 12.0)  # a second note, claiming a time in the middle of the outage
    violations, figures = check(world.evidence())
    assert kinds(violations) == {"false_recovery"}
    assert figures.false_recovery == 1
    assert "claims recovery at" in violations[0].detail


def test_a_recovery_note_before_the_first_failure_is_false() -> None:
    world = clean_world()
    world.notes["3"][0]["body"] = world.notes["3"][0]["body"].replace(
        wall(B + 34.4), wall(B + 25.0)
    )
    assert kinds(check(world.evidence())[0]) == {"false_recovery"}


def test_a_recovery_claim_within_the_tolerance_is_true() -> None:
    world = clean_world()
    # The target came up at 14.8: a claim of second 14 (14.0-14.999) may be the truth.
    world.notes["1"][0]["body"] = world.notes["1"][0]["body"].replace(
        wall(B + 15.2), wall(B + 14.0)
    )
    assert check(world.evidence())[0] == []


def test_a_second_pagerduty_alert_for_one_incident_is_a_bug() -> None:
    world = clean_world()
    key = world.key_of(2)
    world.resolved_alerts.append({"dedup_key": key, "status": "resolved"})
    violations, figures = check(world.evidence())
    assert kinds(violations) == {"pd_double_alert"}
    assert figures.pd_alerts == 5
    assert violations[0].target == "b"


def test_every_pagerduty_alert_is_resolved_by_the_end() -> None:
    world = clean_world()
    world.alerts[world.key_of(3)]["status"] = "triggered"
    violations, _ = check(world.evidence())
    assert kinds(violations) == {"pd_missing_resolve"}

    world.alerts[world.key_of(3)]["status"] = "acknowledged"
    assert kinds(check(world.evidence())[0]) == {"pd_missing_resolve"}


def test_every_ticket_is_paged() -> None:
    world = clean_world()
    del world.alerts[world.key_of(4)]
    assert kinds(check(world.evidence())[0]) == {"missing_page"}


def test_an_observable_outage_without_a_ticket_is_lost() -> None:
    world = clean_world()
    lost = world.tickets.pop()
    del world.notes[str(lost["id"])]
    del world.alerts[lost["tags"][1]]
    violations, figures = check(world.evidence())
    assert kinds(violations) == {"lost"}
    assert figures.lost == 1
    assert "outage b#1" in violations[0].detail


# --- what the judge must forgive ---------------------------------------------------------------


def test_an_outage_while_the_agent_was_dead_needs_no_ticket() -> None:
    world = clean_world()
    world.target("c", (50.0, 53.0))
    world.alive = [[B, B + 49.8], [B + 53.5, B + 60.0]]
    violations, figures = check(world.evidence())
    assert violations == []
    assert figures.observable == 4


def test_an_outage_seen_only_in_its_middle() -> None:
    world = clean_world()
    world.target("c", (50.0, 55.0))
    world.alive = [[B, B + 50.5], [B + 52.0, B + 53.5], [B + 56.0, B + 60.0]]
    # Alive 1.5 s in the middle: observable. A ticket whose first failure is the middle is it.
    violations, _ = check(world.evidence())
    assert kinds(violations) == {"lost"}
    world.incident("c", 52.1, 56.4)
    assert check(world.evidence())[0] == []


def test_a_ticket_created_late_still_maps_by_its_first_failure() -> None:
    world = clean_world()
    world.tickets[0]["created_at"] = wall(B + 55.0)  # the helpdesk refused it for a while
    assert check(world.evidence())[0] == []


def test_two_outages_close_together_are_two_outages() -> None:
    world = World().target("a", (10.0, 14.0), (15.5, 19.0))
    world.incident("a", 10.1, 14.4)
    world.incident("a", 15.6, 19.4)
    violations, figures = check(world.evidence())
    assert violations == []
    assert (figures.outages, figures.tickets, figures.dup) == (2, 2, 0)

    world = World().target("a", (10.0, 14.0), (15.5, 19.0))
    world.incident("a", 10.1, 19.4)  # one ticket for both, though the agent saw the gap
    assert kinds(check(world.evidence())[0]) == {"lost"}


def test_outages_the_agent_could_not_tell_apart_are_one() -> None:
    world = World().target("a", (10.0, 14.0), (15.5, 19.0))
    world.alive = [[B, B + 13.0], [B + 16.0, B + 60.0]]  # dead across the gap
    world.incident("a", 10.1, 19.4)
    violations, figures = check(world.evidence())
    assert violations == []
    assert figures.continued == 1


def test_a_failure_streak_across_a_restart() -> None:
    # One probe saw the blip; the agent died before the next one and came back during the
    # outage: for it the streak began at the blip.
    world = World().target("a", (10.0, 10.08), (14.0, 18.0))
    world.alive = [[B, B + 10.1], [B + 15.0, B + 60.0]]
    world.incident("a", 10.05, 18.4)
    violations, figures = check(world.evidence())
    assert violations == []
    assert figures.stale_streaks == 1

    # Alive in between, it saw successes: a ticket for the blip, and the outage has none.
    world.alive = [[B, B + 10.1], [B + 11.0, B + 60.0]]
    assert kinds(check(world.evidence())[0]) == {"blip_ticket", "lost"}


def test_blips_outages_and_the_gray_zone_between() -> None:
    periods = down_periods(
        {"a": [[B, True], [B + 1, False], [B + 1.1, True], [B + 2, False], [B + 2.5, True]]},
        INTERVAL,
        B + 10,
    )["a"]
    assert [p.kind for p in periods] == ["blip", "ambiguous"]


@pytest.mark.parametrize("seed", [0, 123])
def test_figures_count_violations(seed: int) -> None:
    world = clean_world()
    world.incident("a", 11.6, 15.2)
    world.tickets[0]["status"] = 2
    evidence = world.evidence()
    evidence["seed"] = seed
    _, figures = check(evidence)
    assert isinstance(figures, Figures)
    assert figures.counts == {"dup_ticket": 1, "missing_recovery_status": 1}
    assert figures.line().startswith(f"chaos: seed={seed} ")
