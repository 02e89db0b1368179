"""One week of the support policy, replayed minute by minute on a manual clock (issue 10).

Two customers: Acme on the "business" plan (pages only in office hours, Mon-Fri 08:00-17:00
New York time, Thanksgiving off) and BigCo on the "vip" plan (urgent issues 24/7; its other
targets count the support desk's hours, Mon-Fri 10:00-17:40 and Sat 09:30-13:30). The week is
Monday 2026-11-23 to Sunday 2026-11-29, with outages at night, at 16:55, on Thanksgiving and on
Saturday; one incident is acknowledged with ``POST /api/incidents/{id}/ack`` (what
``watchdesk ack`` sends) and one is resolved by hand with ``POST /api/incidents/{id}/resolve``.

The expected timeline below was worked out by hand from the policy as issue 10 states it, not
by asking watchdesk:

- only urgent issues page; the on-call engineer (L1) first, then the chain: senior engineer
  (L2) and IT head (L3), each after the priority's response time (urgent 1h, high 4h) of
  nobody working the ticket; every escalation is a private note for the team and a public one
  telling the requester to whom it went;
- VIP urgent issues are handled 24/7; everything else in the plan's hours: a business-hours
  customer's page waits for 08:00 and every SLA clock (response, resolution, escalation)
  counts only the plan calendar's open time;
- status updates every hour for urgent and high issues, none for medium and low;
- response 1h/4h/24h/48h, resolution 2h/4h/8h/24h (urgent, high, medium, low).

Pages reach a real HTTP receiver through the webhook pager; tickets and notes are read back
from the local helpdesk; SLA verdicts from the agent's Prometheus series and from
``watchdesk report``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.cli.report import build_report
from monitor.store import SqliteDatabase
from monitor.web.server import make_app
from tests.agent_harness import Harness
from tests.week_stand import (
    WEEK_END,
    WEEK_START,
    Outage,
    PagerReceiver,
    Week,
    differences,
    expand,
    hourly,
    in_order,
)


def week_config(pager_url: str) -> str:
    targets = [
        ("vip-web", "bigco", "urgent"),
        ("vip-api", "bigco", "high"),
        ("vip-report", "bigco", "low"),
        ("biz-web", "acme", "urgent"),
        ("biz-api", "acme", "high"),
        ("biz-blog", "acme", "medium"),
    ]
    blocks = "".join(
        f'[[targets]]\nname = "{name}"\nkind = "http"\nurl = "https://{name}.example/"\n'
        f'customer = "{customer}"\npriority = "{priority}"\n\n'
        for name, customer, priority in targets
    )
    pagers = "".join(
        f'[pagers.{name}]\ntype = "webhook"\nurl = "{pager_url}/{name}"\n\n'
        for name in ("engineer", "senior", "ithead")
    )
    return f"""
[agent]
timezone = "America/New_York"

[defaults]
interval = "1m"
failure_threshold = 2
recovery_threshold = 2

{blocks}
[customers.acme]
email = "it@acme.example"
sla = "business"

[customers.bigco]
email = "ops@bigco.example"
sla = "vip"

[calendars.office]
timezone = "America/New_York"
"mon-fri" = "08:00-17:00"
holidays = [2026-11-26]

[calendars.support]
timezone = "America/New_York"
"mon-fri" = "10:00-17:40"
sat = "09:30-13:30"
sun = "closed"
holidays = [2026-11-26]

[sla.business]
page_hours = "business"
calendar = "office"

[sla.vip]
page_hours = "always"
calendar = "support"

{pagers}
[escalation]
page_on_open = ["engineer"]

[[escalation.chain]]
tier = "L2"
role = "senior engineer"
after = {{ urgent = "1h", high = "4h" }}
page = ["senior"]

[[escalation.chain]]
tier = "L3"
role = "IT head"
after = {{ urgent = "1h", high = "4h" }}
page = ["ithead"]
"""


# (customer, priority) -> its one target here: how an SLA counter's labels name an incident.
OWNER = {
    ("bigco", "urgent"): "vip-web",
    ("bigco", "high"): "vip-api",
    ("bigco", "low"): "vip-report",
    ("acme", "urgent"): "biz-web",
    ("acme", "high"): "biz-api",
    ("acme", "medium"): "biz-blog",
}

OUTAGES = [
    Outage("biz-blog", down="Mon 09:00", up="Mon 11:00"),
    Outage("vip-report", down="Mon 20:00", up="Mon 20:30"),
    Outage("vip-web", down="Tue 02:10", up="Tue 04:40"),
    Outage("biz-web", down="Tue 02:10", up="Tue 10:30"),
    Outage("biz-api", down="Wed 16:55", up="Fri 12:30"),
    Outage("biz-web", down="Thu 10:00", up="Fri 10:40"),  # Thanksgiving
    Outage("vip-web", down="Sat 09:00", up="Sat 11:30"),  # resolved by hand at 10:20
    Outage("vip-api", down="Sat 09:40", up="Sat 13:50"),
    Outage("biz-web", down="Sat 11:00", up="Sat 12:30"),
]

BY_ITSELF = "it recovered by itself; nobody had to act on this ticket."
WHILE_WORKED = "it recovered while our team was working on it."
L2_1H = "private: Escalated to L2 (senior engineer): nobody has started working this ticket within 1h; paged senior."  # noqa: E501
L3_1H = "private: Escalated to L3 (IT head): nobody has started working this ticket within 1h; paged ithead."  # noqa: E501
L2_4H = "private: Escalated to L2 (senior engineer): nobody has started working this ticket within 4h; paged senior."  # noqa: E501

# Everything but the hourly status updates (listed after it), minute by minute.
TIMELINE = f"""
# Monday: a medium and a low issue; neither pages nor gets status updates.
Mon 09:00  biz-blog    ticket [MEDIUM] biz-blog is down
Mon 11:00  biz-blog    recovery after 2h1m: {BY_ITSELF}
Mon 11:00  biz-blog    status pending
Mon 20:00  vip-report  ticket [LOW] vip-report is down
Mon 20:30  vip-report  recovery after 31m: {BY_ITSELF}
Mon 20:30  vip-report  status pending

# Tuesday 02:10: the VIP is paged at once and climbs the chain through the night ...
Tue 02:10  vip-web     ticket [URGENT] vip-web is down
Tue 02:10  vip-web     page engineer (open)
Tue 03:10  vip-web     {L2_1H}
Tue 03:10  vip-web     told: escalated to our senior engineer
Tue 03:10  vip-web     page senior (escalation)
Tue 03:11  -           breaching response = 1
Tue 04:10  vip-web     {L3_1H}
Tue 04:10  vip-web     told: escalated to our IT head
Tue 04:10  vip-web     page ithead (escalation)
Tue 04:11  -           breaching resolution = 1
Tue 04:40  vip-web     recovery after 2h31m: {BY_ITSELF}
Tue 04:40  vip-web     status pending
Tue 04:40  vip-web     resolve engineer
Tue 04:40  vip-web     resolve senior
Tue 04:40  vip-web     resolve ithead
Tue 04:40  vip-web     SLA response breached
Tue 04:40  vip-web     SLA resolution breached
Tue 04:40  -           breaching response = 0
Tue 04:40  -           breaching resolution = 0
# ... the business customer's ticket opens at the same minute; its page waits for 08:00 and
# its clocks start then: response due 09:00, resolution 10:00, L2 09:00, L3 10:00.
Tue 02:10  biz-web     ticket [URGENT] biz-web is down
Tue 08:00  biz-web     page engineer (open)
Tue 09:00  biz-web     {L2_1H}
Tue 09:00  biz-web     told: escalated to our senior engineer
Tue 09:00  biz-web     page senior (escalation)
Tue 09:01  -           breaching response = 1
Tue 10:00  biz-web     {L3_1H}
Tue 10:00  biz-web     told: escalated to our IT head
Tue 10:00  biz-web     page ithead (escalation)
Tue 10:01  -           breaching resolution = 1
Tue 10:30  biz-web     recovery after 8h21m: {BY_ITSELF}
Tue 10:30  biz-web     status pending
Tue 10:30  biz-web     resolve engineer
Tue 10:30  biz-web     resolve senior
Tue 10:30  biz-web     resolve ithead
Tue 10:30  biz-web     SLA response breached
Tue 10:30  biz-web     SLA resolution breached
Tue 10:30  -           breaching response = 0
Tue 10:30  -           breaching resolution = 0

# Wednesday 16:55: a business high issue. No page; 5 working minutes on Wednesday, Thursday is
# Thanksgiving, so its 4 working hours (response, resolution, L2) end on Friday at 11:55.
Wed 16:55  biz-api     ticket [HIGH] biz-api is down
Fri 11:55  biz-api     {L2_4H}
Fri 11:55  biz-api     told: escalated to our senior engineer
Fri 11:55  biz-api     page senior (escalation)
Fri 11:56  -           breaching response = 1
Fri 11:56  -           breaching resolution = 1
Fri 12:30  biz-api     recovery after 1d19h36m: {BY_ITSELF}
Fri 12:30  biz-api     status pending
Fri 12:30  biz-api     resolve senior
Fri 12:30  biz-api     SLA response breached
Fri 12:30  biz-api     SLA resolution breached
Fri 12:30  -           breaching response = 0
Fri 12:30  -           breaching resolution = 0

# Thanksgiving 10:00: the business urgent issue waits for Friday 08:00 (response due 09:00,
# resolution 10:00); alice acknowledges at 09:20, so L3 (due 10:00) never comes.
Thu 10:00  biz-web     ticket [URGENT] biz-web is down
Fri 08:00  biz-web     page engineer (open)
Fri 09:00  biz-web     {L2_1H}
Fri 09:00  biz-web     told: escalated to our senior engineer
Fri 09:00  biz-web     page senior (escalation)
Fri 09:01  -           breaching response = 1
Fri 09:20  biz-web     private: Acknowledged by alice in watchdesk: the escalation chain stops here.
Fri 09:20  biz-web     SLA response breached
Fri 09:20  -           breaching response = 0
Fri 10:01  -           breaching resolution = 1
Fri 10:40  biz-web     recovery after 1d41m: {WHILE_WORKED}
Fri 10:40  biz-web     status pending
Fri 10:40  biz-web     resolve engineer
Fri 10:40  biz-web     resolve senior
Fri 10:40  biz-web     SLA resolution breached
Fri 10:40  -           breaching resolution = 0

# Saturday. The VIP's urgent issue pages at once; dave resolves it by hand at 10:20 (within
# the 2h resolution, past the 1h response); the target keeps failing until 11:30 and opens
# nothing more.
Sat 09:00  vip-web     ticket [URGENT] vip-web is down
Sat 09:00  vip-web     page engineer (open)
Sat 10:00  vip-web     {L2_1H}
Sat 10:00  vip-web     told: escalated to our senior engineer
Sat 10:00  vip-web     page senior (escalation)
Sat 10:01  -           breaching response = 1
Sat 10:20  vip-web     recovery after 1h21m: resolved by dave: restarted the load balancer
Sat 10:20  vip-web     status pending
Sat 10:20  vip-web     resolve engineer
Sat 10:20  vip-web     resolve senior
Sat 10:20  vip-web     SLA response breached
Sat 10:20  -           breaching response = 0
# The VIP's high issue counts the support desk's Saturday hours (09:30-13:30): 3h50m of its 4
# working hours by 13:30, the rest on Monday; back at 13:50, nothing breached or escalated.
Sat 09:40  vip-api     ticket [HIGH] vip-api is down
Sat 13:50  vip-api     recovery after 4h11m: {BY_ITSELF}
Sat 13:50  vip-api     status pending
# The business customer's Saturday issue: a ticket, no page (the office opens on Monday),
# nothing breached over the weekend.
Sat 11:00  biz-web     ticket [URGENT] biz-web is down
Sat 12:30  biz-web     recovery after 1h31m: {BY_ITSELF}
Sat 12:30  biz-web     status pending
"""

UPDATES = [
    hourly("vip-web", "Tue 03:10", "Tue 04:10"),
    hourly("biz-web", "Tue 03:10", "Tue 10:10"),
    hourly("biz-api", "Wed 17:55", "Fri 11:55"),
    hourly("biz-web", "Thu 11:00", "Fri 10:00"),
    hourly("vip-web", "Sat 10:00", "Sat 10:00"),
    hourly("vip-api", "Sat 10:40", "Sat 13:40"),
    hourly("biz-web", "Sat 12:00", "Sat 12:00"),
]


@pytest.fixture
async def stand(tmp_path: Path) -> AsyncIterator[tuple[Harness, PagerReceiver, TestClient]]:
    pages = PagerReceiver(lambda: h.clock.now())
    await pages.start()
    h = await Harness.create(tmp_path / "state", week_config(pages.url), start=WEEK_START)
    client = TestClient(TestServer(make_app(h.agent)))
    await client.start_server()
    yield h, pages, client
    await client.close()
    await h.close()
    await pages.stop()


async def test_a_week_of_the_support_policy_to_the_minute(
    stand: tuple[Harness, PagerReceiver, TestClient],
) -> None:
    h, pages, client = stand

    async def desk(verb: str, target: str, **query: str) -> None:
        incident = h.agent.incidents.open_incident_of(target)
        assert incident is not None, f"{target} has no open incident to {verb}"
        answer = await client.post(f"/api/incidents/{incident.id}/{verb}", params=query)
        assert answer.status == 200, await answer.text()

    async def alice_acknowledges() -> None:
        await desk("ack", "biz-web", by="alice")

    async def dave_resolves() -> None:
        await desk("resolve", "vip-web", by="dave", note="restarted the load balancer")

    acts = {"Fri 09:20": alice_acknowledges, "Sat 10:20": dave_resolves}
    week = Week(h, pages, OUTAGES, acts, OWNER)
    await week.run(WEEK_START, WEEK_END)

    expected = expand(TIMELINE) + [row for rows in UPDATES for row in rows]
    assert in_order(week.rows) == in_order(expected), differences(week.rows, expected)

    # What the requester read on Friday at 10:00, forty minutes after alice acknowledged.
    (update,) = week.texts[("Fri 10:00", "biz-web")]
    assert "it is still down, for 1d1m now (since 2026-11-26 09:59:00 EST)" in update
    assert "our team is working on it" in update
    # At night the business customer's page waits for the office: the update says so, and when
    # the team starts, instead of "the operations team has been notified".
    (night,) = [t for t in week.texts[("Tue 03:10", "biz-web")] if "An update on" in t]
    assert "outside our support hours; our team picks it up when they start, at" in night
    assert "2026-11-24 08:00:00 EST" in night
    assert "has been notified" not in night
    (vip_night,) = [t for t in week.texts[("Tue 03:10", "vip-web")] if "An update on" in t]
    assert "our operations team has been notified and will pick it up" in vip_night

    # The report's verdicts on the week: response compliance per priority, each incident
    # judged on its plan's clock (urgent: 1 of 5 in time, the Saturday business issue, which
    # no working minute had passed on; high: the VIP's Saturday issue, 3h50m of support hours).
    database = SqliteDatabase(h.agent.state_dir)
    try:
        report = build_report(database, h.config, WEEK_START, WEEK_END)
    finally:
        database.close()
    verdicts = [
        (s.priority, s.response_time_seconds / 3600, s.incidents, s.within) for s in report.sla
    ]
    assert verdicts == [
        ("urgent", 1, 5, 1),
        ("high", 4, 2, 1),
        ("medium", 24, 1, 1),
        ("low", 48, 1, 1),
    ]
    escalations = {row.target: row.escalations for row in report.targets}
    assert escalations == {
        "biz-api": 1,
        "biz-blog": 0,
        "biz-web": 2,
        "vip-api": 0,
        "vip-report": 0,
        "vip-web": 2,
    }

    # Saturday's business page was held for the office to open; the outage it was for ended on
    # Saturday, and the page was dropped then, not held over the weekend nor sent on Monday.
    skipped = {"pager": "engineer", "reason": "open", "result": "skipped"}
    assert week.sample("watchdesk_outbox_held") == 0
    assert week.sample("watchdesk_pages_total", **skipped) == 1
    seen = len(week.rows)
    await week.minute(WEEK_END + 8 * 3600)
    assert week.rows[seen:] == []  # no page
    assert week.sample("watchdesk_pages_total", **skipped) == 1
