"""Probe slots (``monitor.slots``): the order runs get a slot in, and no slot lost on a stop."""

from __future__ import annotations

import asyncio

from monitor.slots import ProbeSlots


async def _hold(slots: ProbeSlots, name: str, got: list[str], go: asyncio.Event) -> None:
    async with slots:
        got.append(name)
        await go.wait()


async def test_runs_get_slots_in_the_order_they_queued_and_cancelled_ones_are_passed_over() -> None:
    slots, go = ProbeSlots(1), asyncio.Event()
    got: list[str] = []
    first = asyncio.create_task(_hold(slots, "first", got, go))
    await asyncio.sleep(0)
    queued = {n: asyncio.create_task(_hold(slots, n, got, go)) for n in ("a", "b", "c", "d")}
    await asyncio.sleep(0)
    assert got == ["first"]
    assert slots.waiting == 4
    queued["a"].cancel()
    queued["c"].cancel()
    go.set()
    await asyncio.gather(first, *queued.values(), return_exceptions=True)
    assert got == ["first", "b", "d"]
    assert slots.waiting == 0


async def test_a_run_cancelled_just_as_it_got_its_slot_hands_the_slot_on() -> None:
    slots, go = ProbeSlots(1), asyncio.Event()
    got: list[str] = []
    tasks: dict[str, asyncio.Task[None]] = {}

    async def first() -> None:
        async with slots:
            got.append("first")
            await go.wait()
        tasks["granted"].cancel()  # the stop comes in the turn its slot was handed over

    tasks["first"] = asyncio.create_task(first())
    await asyncio.sleep(0)
    tasks["granted"] = asyncio.create_task(_hold(slots, "granted", got, go))
    tasks["after"] = asyncio.create_task(_hold(slots, "after", got, go))
    await asyncio.sleep(0)
    go.set()
    async with asyncio.timeout(2):
        await asyncio.gather(*tasks.values(), return_exceptions=True)
    assert got == ["first", "after"]
    assert tasks["granted"].cancelled()
    async with asyncio.timeout(1), slots:  # the slot is free again, not lost
        pass


async def test_a_stop_of_many_queued_runs_leaves_every_slot_usable() -> None:
    slots, go = ProbeSlots(3), asyncio.Event()
    got: list[str] = []
    running = [asyncio.create_task(_hold(slots, f"r{i}", got, go)) for i in range(3)]
    await asyncio.sleep(0)
    queued = [asyncio.create_task(_hold(slots, f"q{i}", got, go)) for i in range(2000)]
    await asyncio.sleep(0)
    for task in reversed(queued):  # any order
        task.cancel()
    go.set()
    await asyncio.gather(*running, *queued, return_exceptions=True)
    assert got == ["r0", "r1", "r2"]
    held = [asyncio.create_task(_hold(slots, f"n{i}", got, asyncio.Event())) for i in range(4)]
    await asyncio.sleep(0)
    assert got[3:] == ["n0", "n1", "n2"]
    assert slots.waiting == 1
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)
