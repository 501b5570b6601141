"""Drives one ``conveyor.core.rollout.Rollout`` inside the gateway: load, measure, apply, wait.

The gateway runs the analysis itself, on the outcomes it records per slot, so a failing canary is
rolled back within one analysis interval even if nobody (Airflow included) is watching. Airflow's
``DeployModelOperator`` starts a rollout and then only polls its state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from conveyor.core.analysis import measure, online_metric
from conveyor.core.rollout import ROLLBACKABLE, Rollout, RolloutError, State, Strategy
from conveyor.serving.deployment import CANARY, SHADOW, STABLE, Deployment, Slot
from conveyor.serving.models import ModelLoadError

if TYPE_CHECKING:
    from conveyor.serving.gateway import Gateway

log = logging.getLogger(__name__)
ACTIONS = ("resume", "promote", "rollback")


class RolloutController:
    def __init__(self, gateway: Gateway, deployment: Deployment, rollout: Rollout) -> None:
        self.gateway = gateway
        self.deployment = deployment
        self.rollout = rollout
        self.new: Slot | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    @property
    def can_roll_back(self) -> bool:
        state = self.rollout.state
        if state is State.SUCCEEDED:
            return self.deployment.previous is not None and self.deployment.slots.get(STABLE) is self.new
        return state in ROLLBACKABLE

    def act(self, action: str) -> None:
        """A person's decision: ``resume`` (after a pause), ``promote`` now, or ``rollback``."""
        if action not in ACTIONS:
            raise RolloutError(f"unknown rollout action '{action}'; actions are {list(ACTIONS)}")
        if action == "resume":
            self.rollout.resume()
        elif action == "promote":
            self.rollout.promote()
        elif not self.can_roll_back:
            raise RolloutError(f"nothing to roll back to: rollout is {self.rollout.state.value}")
        else:
            self.rollout.rollback()
        self._apply()
        self._wake.set()

    async def _sleep(self, seconds: float | None) -> bool:
        """Wait ``seconds`` (None: until woken); True when a person's action woke us early."""
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        rollout, spec = self.rollout, self.rollout.spec
        rollout.start()
        self._apply()
        try:
            self.new = await self.gateway.load(spec.model_uri)
        except ModelLoadError as exc:
            rollout.load_failed(str(exc))
            self._apply()
            return
        rollout.loaded(self.new.model.version)
        self._apply()
        while not rollout.done:
            if rollout.state is State.PROGRESSING:
                since = time.monotonic()
                if await self._sleep(spec.analysis.interval_s) or rollout.state is not State.PROGRESSING:
                    continue
                stable = self.deployment.slots[STABLE]
                online = online_metric(self.new.model.contract)
                metric = online.name if online else None
                rollout.measured(
                    measure(
                        self.new.stats.sample(since, metric),
                        stable.stats.sample(since, metric),
                        spec.analysis,
                        online,
                    )
                )
                self._apply()
            elif rollout.state is State.SWITCHED:
                if not await self._sleep(spec.keep_previous_s) and rollout.state is State.SWITCHED:
                    rollout.previous_released()
                    self._apply()
            else:  # paused: only a person moves it on
                await self._sleep(None)

    def _apply(self) -> None:
        """Make the deployment's slots and weights match the rollout's state."""
        rollout, deployment, new = self.rollout, self.deployment, self.new
        strategy, state = rollout.spec.strategy, rollout.state
        keep = rollout.spec.keep_previous_s
        if new is not None:
            if state in (State.PROGRESSING, State.PAUSED) and strategy is Strategy.CANARY:
                if deployment.slots.get(CANARY) is not new:
                    deployment.put(CANARY, new)
                deployment.canary_weight = rollout.canary_weight
            elif state is State.PROGRESSING and strategy is Strategy.SHADOW:
                if deployment.slots.get(SHADOW) is not new:
                    deployment.put(SHADOW, new)
                deployment.shadow_fraction = rollout.shadow_fraction
            elif state is State.SWITCHED and deployment.slots.get(STABLE) is not new:
                deployment.switch_stable(new, keep_previous_s=None)
            elif state is State.SUCCEEDED:
                self._succeeded(strategy, keep)
            elif state is State.ROLLED_BACK:
                self._rolled_back(keep)
        last = rollout.transitions[-1] if rollout.transitions else None
        if last is not None:
            log.info("rollout %s: %s -> %s: %s", deployment.name, last.source, last.target, last.reason)
        self.gateway.publish(deployment)

    def _succeeded(self, strategy: Strategy, keep: float) -> None:
        deployment, new = self.deployment, self.new
        if strategy is Strategy.SHADOW:
            deployment.remove(SHADOW)
        elif strategy is Strategy.BLUE_GREEN:
            if deployment.slots.get(STABLE) is not new:  # promoted before the switch finished
                deployment.switch_stable(new, keep_previous_s=None)
            deployment.release_previous()
        elif deployment.slots.get(STABLE) is not new:
            deployment.slots.pop(CANARY, None)
            deployment.canary_weight = 0
            deployment.switch_stable(new, keep_previous_s=keep)

    def _rolled_back(self, keep: float) -> None:
        deployment, new = self.deployment, self.new
        for slot in (CANARY, SHADOW):
            if deployment.slots.get(slot) is new:
                deployment.remove(slot)
        if deployment.slots.get(STABLE) is new and deployment.previous is not None:
            previous, deployment.previous = deployment.previous, None
            deployment.switch_stable(previous, keep_previous_s=keep)
