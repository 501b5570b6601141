"""A deployment's desired state: the document the store keeps and every replica converges on.

It names versions, never loaded objects, so it can travel between processes: each slot is a
``Target`` pinned to one immutable URI (an alias is resolved once, by the writer), so replicas
that load at different moments still load the same version. The rules of how a rollout moves
slots and weights live here as plain functions on this document, which the controller, a
person's action through any replica and the tests all apply alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conveyor.core.rollout import Rollout, State, Strategy

STABLE, CANARY, SHADOW, STAGING = "stable", "canary", "shadow", "staging"
SLOTS = (STABLE, CANARY, SHADOW, STAGING)
MAX_EVENTS = 200


@dataclass(frozen=True)
class Target:
    uri: str  # as the user gave it (``models:/m@champion``): what ``reload`` re-resolves
    pinned: str  # the immutable URI every replica loads (``models:/m/7``)
    version: str

    def to_dict(self) -> dict[str, str]:
        return {"uri": self.uri, "pinned": self.pinned, "version": self.version}

    @classmethod
    def from_dict(cls, values: dict[str, str] | None) -> Target | None:
        return None if values is None else cls(values["uri"], values["pinned"], values["version"])


@dataclass
class Desired:
    created_at: float = field(default_factory=time.time)
    slots: dict[str, Target] = field(default_factory=dict)
    canary_weight: int = 0
    shadow_fraction: float = 0.0
    previous: Target | None = None  # the last stable, kept loaded for an instant rollback
    previous_until: float | None = None  # wall time it may be released; None: until a rollout says
    incoming: Target | None = None  # the running rollout's new version, loaded before traffic
    rollout: dict[str, Any] | None = None  # ``Rollout.to_dict()``: state, spec, every transition
    measured_at: float | None = None  # end of the rollout's last analysis window
    events: list[dict[str, Any]] = field(default_factory=list)

    # ---- the document --------------------------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        return {
            "created_at": self.created_at,
            "slots": {slot: target.to_dict() for slot, target in self.slots.items()},
            "canary_weight": self.canary_weight,
            "shadow_fraction": self.shadow_fraction,
            "previous": self.previous.to_dict() if self.previous else None,
            "previous_until": self.previous_until,
            "incoming": self.incoming.to_dict() if self.incoming else None,
            "rollout": self.rollout,
            "measured_at": self.measured_at,
            "events": self.events[-MAX_EVENTS:],
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Desired:
        return cls(
            created_at=doc["created_at"],
            slots={slot: Target.from_dict(t) for slot, t in doc["slots"].items()},
            canary_weight=doc["canary_weight"],
            shadow_fraction=doc["shadow_fraction"],
            previous=Target.from_dict(doc["previous"]),
            previous_until=doc["previous_until"],
            incoming=Target.from_dict(doc["incoming"]),
            rollout=doc["rollout"],
            measured_at=doc["measured_at"],
            events=list(doc["events"]),
        )

    # ---- what replicas load --------------------------------------------------------------------
    def warm_previous(self, now: float | None = None) -> Target | None:
        """The previous version while it is still kept; after its time it is as good as gone."""
        if self.previous is None:
            return None
        if self.previous_until is not None and self.previous_until <= (now or time.time()):
            return None
        return self.previous

    def wanted(self, now: float | None = None) -> set[str]:
        """Pinned URIs a replica must hold: the slots, the warm previous, a rollout's new version."""
        wanted = {target.pinned for target in self.slots.values()}
        previous = self.warm_previous(now)
        if previous is not None:
            wanted.add(previous.pinned)
        if self.incoming is not None and self.running_rollout() is not None:
            wanted.add(self.incoming.pinned)
        return wanted

    def running_rollout(self) -> Rollout | None:
        if self.rollout is None:
            return None
        rollout = Rollout.from_dict(self.rollout)
        return None if rollout.done else rollout

    # ---- changes -------------------------------------------------------------------------------
    def record(self, event: str, reason: str) -> None:
        """Admin actions outside a rollout (slot loads, weights, rollbacks), with time and reason."""
        self.events.append({"at": datetime.now(UTC).isoformat(), "event": event, "reason": reason})
        del self.events[:-MAX_EVENTS]

    def put(self, slot: str, target: Target) -> None:
        self.slots[slot] = target

    def remove(self, slot: str) -> None:
        self.slots.pop(slot, None)
        if slot == CANARY:
            self.canary_weight = 0
        if slot == SHADOW:
            self.shadow_fraction = 0.0

    def switch_stable(self, new: Target, keep_previous_s: float | None) -> None:
        """The next request goes to ``new``; the old stable stays loaded for a rollback.

        ``keep_previous_s=None`` keeps it until ``release_previous`` (blue-green, whose rollout
        decides when the old version may go).
        """
        old = self.slots.get(STABLE)
        self.slots[STABLE] = new
        if old is not None and old != new:
            self.previous = old
            self.previous_until = None if keep_previous_s is None else time.time() + keep_previous_s

    def release_previous(self) -> None:
        self.previous = None
        self.previous_until = None

    def weights(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for slot in self.slots:
            if slot == STABLE:
                out[slot] = 100 - (self.canary_weight if CANARY in self.slots else 0)
            elif slot == CANARY:
                out[slot] = self.canary_weight
            elif slot == SHADOW:
                out[slot] = round(self.shadow_fraction * 100, 2)
            else:
                out[slot] = 0
        return out


def can_roll_back(desired: Desired, rollout: Rollout) -> bool:
    """Whether a person's rollback of this rollout can restore the previous version instantly."""
    if rollout.state is State.SUCCEEDED:
        return desired.warm_previous() is not None and desired.slots.get(STABLE) == desired.incoming
    return rollout.state in (State.PROGRESSING, State.PAUSED, State.SWITCHED)


def follow(desired: Desired, rollout: Rollout) -> None:
    """Make slots and weights match the rollout's state, and keep the rollout in the document."""
    desired.rollout = rollout.to_dict()
    new = desired.incoming
    if new is None or rollout.state in (State.PENDING, State.LOADING, State.FAILED):
        return
    strategy, state, keep = rollout.spec.strategy, rollout.state, rollout.spec.keep_previous_s
    if state in (State.PROGRESSING, State.PAUSED) and strategy is Strategy.CANARY:
        desired.put(CANARY, new)
        desired.canary_weight = rollout.canary_weight
    elif state is State.PROGRESSING and strategy is Strategy.SHADOW:
        desired.put(SHADOW, new)
        desired.shadow_fraction = rollout.shadow_fraction
    elif state is State.SWITCHED and desired.slots.get(STABLE) != new:
        desired.switch_stable(new, keep_previous_s=None)
    elif state is State.SUCCEEDED:
        _succeeded(desired, strategy, keep)
    elif state is State.ROLLED_BACK:
        _rolled_back(desired, keep)


def _succeeded(desired: Desired, strategy: Strategy, keep: float) -> None:
    new = desired.incoming
    assert new is not None
    if strategy is Strategy.SHADOW:
        desired.remove(SHADOW)
    elif strategy is Strategy.BLUE_GREEN:
        if desired.slots.get(STABLE) != new:  # promoted before the switch finished
            desired.switch_stable(new, keep_previous_s=None)
        desired.release_previous()
    elif desired.slots.get(STABLE) != new:
        desired.remove(CANARY)
        desired.switch_stable(new, keep_previous_s=keep)


def _rolled_back(desired: Desired, keep: float) -> None:
    new = desired.incoming
    for slot in (CANARY, SHADOW):
        if desired.slots.get(slot) == new:
            desired.remove(slot)
    previous = desired.warm_previous()
    if desired.slots.get(STABLE) == new and previous is not None:
        desired.switch_stable(previous, keep_previous_s=keep)
