"""The rollout controller: drives every running rollout through the state store.

It is the control plane the way Argo Rollouts' controller is: it loads no model and answers no
request. It resolves the new version, waits until every live replica has it loaded, moves
weights step by step, and judges each step on the samples all replicas flushed to the store,
so a canary is measured on all of its traffic whichever replica served it. Its own state is the
store's: a controller that restarts, or a standby that takes the lease over, reads the rollout
where the last one wrote it and carries on. One ``conveyor serve`` runs it in-process; with
several replicas it is one ``conveyor controller`` process (a standby may wait on the lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
import uuid
from collections.abc import Callable, Iterable

from conveyor.core.analysis import SlotSample, measure, online_metric
from conveyor.core.rollout import Rollout, State, Strategy
from conveyor.serving.desired import CANARY, SHADOW, STABLE, Desired, Target, follow
from conveyor.serving.store import Record, Sample, StaleWrite, StateStore

log = logging.getLogger(__name__)
ACTIONS = ("resume", "promote", "rollback")
# A replica not heard from for this long is presumed gone: the controller stops waiting for it.
REPLICA_FRESH_S = 3.0
# Samples and decisions older than this serve no analysis window (intervals are seconds to minutes).
KEEP_SAMPLES_S = 2 * 3600.0
PRUNE_EVERY_S = 60.0


def transition_line(name: str, rollout: Rollout) -> str:
    last = rollout.transitions[-1]
    return f"rollout {name}: {last.source} -> {last.target}: {last.reason}"


class RolloutController:
    def __init__(
        self,
        store: StateStore,
        holder: str | None = None,
        *,
        tick_s: float = 0.2,
        lease_s: float = 3.0,
        on_write: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.holder = holder or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.tick_s = tick_s
        self.lease_s = lease_s
        self.leading: bool | None = None  # None until the first lease call: a standby says so too
        self._on_write = on_write
        self._contracts: dict[str, object] = {}
        self._wake = asyncio.Event()
        self._pruned_at = time.monotonic()

    def wake(self) -> None:
        """Something changed (a rollout was started or acted on): look now, not at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        try:
            renewed = -math.inf
            while True:
                try:
                    # A leader renews its lease every third of the lease's time, not every tick:
                    # a write per tick would cost a commit five times a second for nothing.
                    if time.monotonic() - renewed >= self.lease_s / 3:
                        asked = time.monotonic()
                        leading = await asyncio.to_thread(self.store.lead, self.holder, self.lease_s)
                        renewed = asked if leading else -math.inf
                        if leading != self.leading:
                            log.info("controller %s %s", self.holder, "leads" if leading else "stands by")
                            self.leading = leading
                    if self.leading:
                        await self.tick()
                except Exception:  # a store hiccup must not end the control loop
                    log.exception("controller tick failed; retrying")
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.tick_s)
        finally:
            if self.leading:
                await asyncio.to_thread(self.store.resign, self.holder)

    async def tick(self) -> None:
        records = await asyncio.to_thread(self.store.load)
        for record in records.values():
            rollout = record.doc.get("rollout")
            if rollout is not None and State(rollout["state"]) not in (
                State.SUCCEEDED,
                State.ROLLED_BACK,
                State.FAILED,
            ):
                try:
                    await self._drive(record)
                except Exception:  # one deployment's trouble must not stall the others' rollouts
                    log.exception("rollout of %s: this step failed; retrying", record.name)
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = time.monotonic()
            await asyncio.to_thread(self.store.prune, time.time() - KEEP_SAMPLES_S)

    async def _drive(self, record: Record) -> None:
        desired = Desired.from_doc(record.doc)
        rollout = Rollout.from_dict(desired.rollout)
        before = len(rollout.transitions)
        now = time.time()
        if rollout.state is State.PENDING:
            await self._resolve(desired, rollout)
        elif rollout.state is State.LOADING:
            await self._await_replicas(desired, rollout)
        elif rollout.state is State.PROGRESSING:
            window_start = self._window_start(desired, rollout)
            if now - window_start < rollout.spec.analysis.interval_s:
                return
            await self._measure(record.name, desired, rollout, window_start, now)
            desired.measured_at = now
        elif rollout.state is State.SWITCHED:
            switched = rollout.transitions[-1].at.timestamp()
            if now - switched < rollout.spec.keep_previous_s:
                return
            rollout.previous_released()
        else:  # paused: only a person moves it on
            return
        follow(desired, rollout)
        try:
            await asyncio.to_thread(self.store.put, record.name, desired.to_doc(), record.generation)
        except StaleWrite:
            return  # a person acted meanwhile: the next tick reads their change
        for _ in rollout.transitions[before:]:
            log.info(transition_line(record.name, rollout))
        if self._on_write is not None:
            self._on_write(record.name)

    async def _resolve(self, desired: Desired, rollout: Rollout) -> None:
        from conveyor.serving.models import resolve

        rollout.start()
        uri = rollout.spec.model_uri
        try:
            _name, version, pinned = await asyncio.to_thread(resolve, uri)
        except Exception as exc:
            rollout.load_failed(f"cannot resolve {uri}: {type(exc).__name__}: {exc}")
            return
        desired.incoming = Target(uri, pinned, version)

    async def _await_replicas(self, desired: Desired, rollout: Rollout) -> None:
        """Traffic moves only once every live replica holds the new version, so no replica
        answers from stable a share the weights give to the canary."""
        incoming = desired.incoming
        assert incoming is not None
        seen = await asyncio.to_thread(self.store.replicas, REPLICA_FRESH_S)
        if not seen:
            return
        for replica, observed in seen.items():
            error = observed.get("errors", {}).get(incoming.pinned)
            if error is not None:
                rollout.load_failed(f"{error} (replica {replica})")
                return
        if all(incoming.pinned in observed.get("loaded", []) for observed in seen.values()):
            rollout.loaded(incoming.version)

    @staticmethod
    def _window_start(desired: Desired, rollout: Rollout) -> float:
        entered = rollout.transitions[-1].at.timestamp()
        return max(entered, desired.measured_at or 0.0)

    async def _measure(
        self, name: str, desired: Desired, rollout: Rollout, since: float, until: float
    ) -> None:
        incoming = desired.incoming
        assert incoming is not None
        rows = await asyncio.to_thread(self.store.samples, name, since, until)
        new_slot = SHADOW if rollout.spec.strategy is Strategy.SHADOW else CANARY
        stable = desired.slots.get(STABLE)
        new = _merge(r for r in rows if r.slot == new_slot and r.model_version == incoming.version)
        old = _merge(r for r in rows if r.slot == STABLE and stable and r.model_version == stable.version)
        contract = await asyncio.to_thread(self._contract, incoming)
        rollout.measured(measure(new, old, rollout.spec.analysis, online_metric(contract)))

    def _contract(self, target: Target):
        """The new version's contract (its online metric), read once per version."""
        if target.pinned not in self._contracts:
            from mlflow import MlflowClient

            from conveyor.core.contract import version_contract
            from conveyor.serving.models import resolve

            name, version, _ = resolve(target.pinned)
            self._contracts[target.pinned] = version_contract(MlflowClient(), name, version) if name else None
        return self._contracts[target.pinned]


def _merge(rows: Iterable[Sample]) -> SlotSample:
    """One slot's samples from every replica as one, for ``measure``."""
    requests = errors = 0
    latencies: list[float] = []
    scores: list[float] = []
    online: list[float] = []
    for row in rows:
        requests += row.requests
        errors += row.errors
        latencies.extend(row.latencies_s)
        scores.extend(row.scores)
        online.extend(row.online)
    return SlotSample(requests, errors, latencies, scores, online)
