"""The running agent: wires config, scheduler, probes, state, store, metrics and the HTTP server.

Data flows one way: scheduler -> probe -> state -> (metrics, store, incidents). In a cluster
the agent's membership (``monitor.cluster``) decides which targets it probes (the roster
follows its slots), fences its writes and gates its sends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from aiohttp import web

from checks import HttpClients, ProbeResult
from monitor import __version__, cluster, heap
from monitor.clock import Clock, SystemClock
from monitor.cluster.ownership import Alone, Ownership
from monitor.config import Config, TargetConfig
from monitor.config.secrets import read_api_token
from monitor.delivery.integrations import Integrations, IntegrationsSlot, integrations_changed
from monitor.delivery.outbox import Outbox
from monitor.errors import ConfigError, SecretError
from monitor.faults import crash_point
from monitor.housekeeping import Housekeeping
from monitor.metrics import Metrics
from monitor.offloop import read_config
from monitor.policies import build_policies
from monitor.probing import log_transition, run_probe
from monitor.reporting.sender import ReportScheduler
from monitor.roster import Roster
from monitor.scheduler import Scheduler
from monitor.sdnotify import Notifier
from monitor.state import TargetState, Transition, advance
from monitor.statebook import StateBook
from monitor.store import StateRow, Store
from monitor.store.factory import make_store
from monitor.web.server import make_app
from monitor.web.views import status_rows

log = logging.getLogger("watchdesk")

FLUSH_INTERVAL = 1.0


# How long the scheduler loop may go without a beat before /healthz says it is stuck.
HEALTH_STALL_SECONDS = 10.0


class Agent:
    def __init__(
        self, config: Config, config_path: str | None = None, clock: Clock | None = None
    ) -> None:
        self.config = config
        self.config_path = config_path or config.source
        self.clock: Clock = clock or SystemClock()
        self.metrics = Metrics(__version__)
        self.member = cluster.join(config, self.metrics, lambda: self.integrations.current.pagers)
        self.ownership: Ownership = self.member or Alone()
        self.store: Store = make_store(config, self.member)
        self.clients = HttpClients(user_agent=f"watchdesk/{__version__}")
        self.scheduler = Scheduler(
            self._probe_and_apply,
            on_skip=self._on_skip,
            max_concurrent=config.agent.max_concurrent_probes,
        )
        self.book = StateBook(self.store)
        self.states = self.book.states
        self.identities = self.book.identities
        self.api_token: str | None = None
        # Every state change gets the next number; the store keeps only the newest row.
        self._stop = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.started_at = time.time()
        self.reload_count = 0
        self.integrations = IntegrationsSlot(Integrations.build(config))
        claim_ttl = config.cluster.claim_ttl if config.cluster else None
        self.outbox = Outbox(
            self.store, self.integrations, self.clock, self.metrics, 8, self.ownership, claim_ttl
        )
        built = build_policies(
            self.store,
            self.clock,
            self.metrics,
            config,
            self.states,
            self.integrations,
            self.outbox.notify,
        )
        self.incidents, self.policy, self.desk = built.incidents, built.policy, built.desk
        self.incidents.follow_owner(self.ownership.here)
        self.reports = ReportScheduler(
            self.store, self.clock, lambda: self.config, self.integrations, self.metrics
        )
        self.housekeeping = Housekeeping(
            self.incidents.sweep,
            self.policy.sweep,
            self.policy.follow_up.sweep,
            self.reports,
            self.ownership,
        )
        self.roster = Roster(
            self.store,
            self.book,
            self.metrics,
            self.scheduler,
            self.incidents,
            self.clock,
            self.ownership,
        )
        if self.member is not None:
            self.member.handoff = self.roster
            self.member.on_database_back = self.store.reconnect
            self.member.give_up.also(self.store.abandon)
            self.roster.on_unsaved = self.member.metrics.fenced["lost"].inc
            self.roster.catch_up_window = self.member.ttl + 2 * self.member.every
        self.systemd = Notifier()
        self._watchdog: asyncio.Task[None] | None = None
        # One reload at a time: SIGHUPs that come together are applied one after the other.
        self._reload_lock = asyncio.Lock()
        # Transitions being acted on: they finish even when their probe is cancelled.
        self._transitions: set[asyncio.Task[None]] = set()

    # ---- lifecycle -------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Open the store, load the stored state and the targets: everything but the network
        and the timers."""
        self.api_token = read_api_token(self.config)
        await self.store.open()
        await self.book.load()
        await self.incidents.reload_open()
        await self.desk.load()
        # In a cluster the targets come with their slots (``ClusterMember.join``).
        stored = await self.store.load_states() if self.member is None else {}
        await self.roster.apply(self.config, stored)
        await self.roster.settle()
        if self.member is not None:
            await self.member.join()  # the first renew: this agent's share of the slots
        requeued = await self.store.requeue_failed(self.clock.now())
        if requeued:
            log.info(
                "retrying %d ticket/page actions that were refused before the restart", requeued
            )

    @property
    def targets(self) -> dict[str, TargetConfig]:
        """Every configured target, by name (``roster.probed()``: those probed here)."""
        return self.roster.targets

    async def start(self) -> None:
        heap.tune()  # before the load: 50,000 targets' state and series are lasting objects
        await self.prepare()
        heap.settle()
        if self.member is not None:
            self.member.start()
        self.metrics.config_reload_success.set(1)
        self.metrics.config_reload_timestamp.set(time.time())
        self._runner = web.AppRunner(make_app(self), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.config.agent.host, self.config.agent.port, reuse_address=True
        )
        await site.start()
        self.scheduler.start()
        self._flusher = asyncio.create_task(self.book.flush_loop(), name="watchdesk-flusher")
        await self.incidents.sweep()
        self.incidents.start_timers()
        self.outbox.start()
        self.housekeeping.start(self.config)
        self.systemd.ready(f"watching {len(self.targets)} targets")
        if self.systemd.watchdog_interval is not None:
            self._watchdog = asyncio.create_task(self._watchdog_loop(), name="watchdesk-watchdog")
        log.info(
            "watchdesk %s started: %d targets, listening on %s",
            __version__,
            len(self.targets),
            self.config.agent.listen,
        )

    def request_stop(self, since: float | None = None) -> None:
        """The signal handler: the scheduler halts now (``Scheduler.halt``: the probes' grace
        counts from ``since``, the signal's ``time.monotonic()``), the rest in ``stop``."""
        self._stop.set()
        self.scheduler.halt(since)

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        """Stop within a few seconds: probes get 2 s, the last state is flushed, then close."""
        log.info("stopping")
        self.systemd.stopping()
        if self.member is not None:
            self.member.give_up.arm()  # a database that does not answer is not waited for long
        # Side by side, within the probes' grace: an overloaded loop takes most of a second
        # per turn, and one after the other these cost turns each (2.6 s at mixed 20k).
        # In a cluster another agent probes these targets in a moment: no long grace.
        grace = 2.0 if self.member is None else 0.5
        stopping = asyncio.gather(
            self.housekeeping.stop(), self.incidents.stop_timers(), self.scheduler.stop(grace)
        )
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        await stopping
        if self._transitions:
            await asyncio.gather(*self._transitions, return_exceptions=True)
        async with self.incidents.decisions:
            pass  # a sweep still deciding finishes before the store closes
        await self.outbox.stop()
        await self.integrations.aclose()
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.book.flush()
        if self.member is not None:
            await self.member.leave()  # after the flush: the others take over now
        if self._runner is not None:
            await self._runner.cleanup()
        await self.clients.close()
        await self.store.close()
        if self.member is not None:
            self.member.give_up.disarm()
        self.systemd.close()
        log.info("stopped")

    async def run(self) -> None:
        await self.start()
        try:
            await self.wait_stopped()
        finally:
            await self.stop()

    # ---- config ----------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Apply the config file again; a broken one is refused and the running one stays."""
        async with self._reload_lock:
            self.systemd.reloading()
            try:
                return await self._reload()
            finally:
                self.systemd.ready(f"watching {len(self.targets)} targets")

    async def _reload(self) -> bool:
        started = time.perf_counter()
        try:
            config = await read_config(self.config_path, self.config)
            parsed = time.perf_counter()
            api_token = read_api_token(config)
        except ConfigError as error:
            self.metrics.config_reload_success.set(0)
            for problem in error.problems:
                log.error("config reload refused: %s", problem)
            log.error("config reload refused; the running config stays in force")
            return False
        except SecretError as error:
            self.metrics.config_reload_success.set(0)
            log.error("config reload refused: agent.api_token: %s", error)
            return False
        if (
            config.agent.listen != self.config.agent.listen
            or config.agent.state_dir != self.config.agent.state_dir
            or config.cluster != self.config.cluster
        ):
            log.warning("agent.listen, agent.state_dir and [cluster] take effect at a restart")
        if integrations_changed(self.config, config):
            try:
                integrations = Integrations.build(config)
            except SecretError as error:
                self.metrics.config_reload_success.set(0)
                log.error("config reload refused: %s", error)
                return False
            # Calls still running on the old set get their time limit before it is closed.
            self.integrations.replace(integrations, grace=self.config.ticketing.request_timeout)
            self.outbox.reset_channels()
        self.api_token = api_token
        if self.member is not None:
            self.member.set_config(config)
        await self.roster.apply(config, {})
        # An unchanged target's state ran on across the reload: only those brought in afresh
        # start from what the store's incidents say.
        await self.roster.settle(self.roster.changes.arrived)
        self.config = config
        self.incidents.set_config(config)
        self.policy.set_config(config)
        await self.incidents.follow_priorities(self.clock.now())
        self.housekeeping.resize(config)
        if await self.store.requeue_failed(self.clock.now()):
            self.outbox.notify()
        await self.incidents.sweep()
        heap.settle(collect=False)
        self.reload_count += 1
        self.metrics.config_reload_success.set(1)
        self.metrics.config_reload_timestamp.set(time.time())
        log.info(
            "config reloaded: %d targets (%s); read in %.2f s, applied in %.2f s",
            len(self.targets),
            self.roster.changes,
            parsed - started,
            time.perf_counter() - parsed,
        )
        return True

    # ---- probes ----------------------------------------------------------------------------

    async def _probe_and_apply(self, target: TargetConfig, due: float) -> None:
        lateness = asyncio.get_running_loop().time() - due
        self.metrics.schedule_lateness.observe(max(0.0, lateness))
        result = await run_probe(target, self.clients)
        if not self.ownership.here(target.name):
            return  # its slot went to another agent meanwhile: that one probes it now
        current = self.targets.get(target.name)
        # A reload during the probe may have replaced the target: apply the result under the
        # new settings only if it still checks the same thing.
        if current is not None and (
            current is target or current.probe_identity() == target.probe_identity()
        ):
            await self.apply_result(current, result)

    async def apply_result(self, target: TargetConfig, result: ProbeResult) -> Transition | None:
        previous = self.states.get(target.name, TargetState())
        state, transition = advance(
            previous,
            result.ok,
            result.reason,
            self.clock.now(),
            target.failure_threshold,
            target.recovery_threshold,
            result.duration_seconds,
        )
        self.states[target.name] = state
        crash_point("after_probe_result")
        self.metrics.record(target.name, result, state.consecutive_failures)
        self.incidents.on_result(target.name, result.ok, self.clock.now() - result.duration_seconds)
        if transition is not None:
            # Held from now (no await before) until its transaction is done; a decision once
            # begun is finished even if this probe is cancelled (stop() waits for it).
            row = self.book.row(target.name)
            self.book.hold(target.name)
            self.incidents.expect_transition(target.name)
            task = asyncio.ensure_future(self._on_transition(target, transition, state, row))
            self._transitions.add(task)
            task.add_done_callback(self._transitions.discard)
            await asyncio.shield(task)
        elif previous.last_ok is not None and previous.last_ok != result.ok:
            # The streak turned around: stored now, so a restart never adds a failure from
            # before a success (or the reverse) to what it sees.
            await self.book.write_now(self.book.row(target.name))
        elif self.member is None or not (result.ok and state.status == "up"):
            # In a cluster a healthy target writes nothing (the database takes only changes);
            # failing streaks and a down target's checks are flushed once a second.
            self.book.touch(target.name)
        return transition

    async def _on_transition(
        self, target: TargetConfig, transition: Transition, state: TargetState, row: StateRow
    ) -> None:
        self.metrics.set_up(target.name, state.status)
        log_transition(target.name, transition)
        try:
            await self.incidents.on_transition(target, transition, state, row)
        except Exception:
            # Nothing of it was stored: the flush stores the state and the transition, and the
            # next sweep acts on the state again.
            log.exception("acting on the transition of %s failed; the sweep retries", target.name)
            self.book.retry_later(target.name, transition)
        finally:
            self.book.release(target.name)

    def _on_skip(self, target: TargetConfig) -> None:
        self.metrics.skipped(target.name)

    async def _watchdog_loop(self) -> None:
        interval = self.systemd.watchdog_interval or 1.0
        while True:
            self.watchdog_tick()
            await asyncio.sleep(interval)

    def watchdog_tick(self) -> bool:
        """Ping systemd's watchdog only while the scheduler makes progress: a wedged agent
        stops pinging and systemd restarts it."""
        if not self.healthy():
            log.error(
                "scheduler stalled for %.0fs: not pinging the systemd watchdog",
                self.scheduler.seconds_since_beat(),
            )
            return False
        self.systemd.watchdog()
        return True

    # ---- views -----------------------------------------------------------------------------

    def healthy(self) -> bool:
        return self.seconds_since_beat() < HEALTH_STALL_SECONDS

    def seconds_since_beat(self) -> float:
        return self.scheduler.seconds_since_beat()

    @property
    def listen_host(self) -> str:
        return self.config.agent.host

    def metrics_text(self) -> bytes:
        return self.metrics.exposition()

    def status_view(self) -> list[dict[str, object]]:
        probed = {target.name: target for target in self.roster.probed()}
        return status_rows(probed, self.states, self.incidents, self.ownership.slot)

    @property
    def state_dir(self) -> Path:
        return Path(self.config.agent.state_dir)
