"""A deployment: named slots holding loaded model versions, traffic weights and what each slot did."""

from __future__ import annotations

import asyncio
import random
import re
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conveyor.core.analysis import SlotSample
from conveyor.core.rollout import Rollout
from conveyor.core.scoring import online_value
from conveyor.serving.batching import MicroBatcher
from conveyor.serving.models import LoadedModel

STABLE, CANARY, SHADOW, STAGING = "stable", "canary", "shadow", "staging"
SLOTS = (STABLE, CANARY, SHADOW, STAGING)
# A DNS-1123 label, as Kubernetes and KServe require of names: deployment names appear in URLs,
# metric labels and the inference log, and one rule everywhere lets a deployment move to those.
NAME_PATTERN = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a deployment, or None when it can."""
    if NAME_PATTERN.fullmatch(name):
        return None
    shown = name if len(name) <= 40 else name[:37] + "..."
    return (
        f"deployment name {shown!r} must be a DNS-1123 label: at most 63 characters of lowercase "
        "letters, digits and '-', starting and ending with a letter or digit"
    )


# A retired version keeps its thread this long, so requests already queued on it still finish.
RETIRE_GRACE_S = 30.0


class SlotStats:
    """Recent outcomes of one slot, kept in memory for canary analysis over a time window."""

    def __init__(self, maxlen: int = 200_000) -> None:
        self._requests: deque[tuple[float, float, bool, list[float]]] = deque(maxlen=maxlen)
        self._labels: deque[tuple[float, Any, Any]] = deque(maxlen=maxlen)

    def record(self, latency_s: float, error: bool, scores: list[float]) -> None:
        self._requests.append((time.monotonic(), latency_s, error, scores))

    def record_label(self, decision: Any, truth: Any) -> None:
        """A labelled row: what this slot decided and what turned out true."""
        self._labels.append((time.monotonic(), decision, truth))

    def online(self, metric: str | None) -> dict[str, Any] | None:
        """The slot's online metric over every label it kept, for the deployment view."""
        if metric is None:
            return None
        values = [online_value(metric, d, y) for _, d, y in self._labels]
        return {
            "metric": metric,
            "labelled": len(values),
            "value": sum(values) / len(values) if values else None,
        }

    def sample(self, since: float, online_metric: str | None = None) -> SlotSample:
        """Everything recorded at or after ``since`` (a ``time.monotonic()`` value), labelled rows
        scored by ``online_metric``: the canary's metric, so both slots are judged alike."""
        recent = [r for r in reversed(self._requests) if r[0] >= since]
        labelled = [(d, y) for t, d, y in reversed(self._labels) if t >= since] if online_metric else []
        online = [online_value(online_metric, d, y) for d, y in labelled] if online_metric else []
        return SlotSample(
            requests=len(recent),
            errors=sum(r[2] for r in recent),
            latencies_s=[r[1] for r in recent if not r[2]],
            scores=[s for r in recent for s in r[3]],
            online=online,
        )


@dataclass
class ShadowStats:
    mirrored: int = 0
    agreed_rows: int = 0
    compared_rows: int = 0
    errors: int = 0
    skipped: int = 0
    latencies_s: deque = field(default_factory=lambda: deque(maxlen=10_000))

    @property
    def agreement(self) -> float | None:
        return self.agreed_rows / self.compared_rows if self.compared_rows else None

    def to_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_s)
        return {
            "mirrored": self.mirrored,
            "compared_rows": self.compared_rows,
            "agreement": self.agreement,
            "errors": self.errors,
            "skipped": self.skipped,
            "p50_latency_s": lat[len(lat) // 2] if lat else None,
        }


class Slot:
    """One loaded version and the batcher in front of it."""

    def __init__(self, model: LoadedModel, max_batch_rows: int) -> None:
        self.model = model
        self.batcher = MicroBatcher(model, max_batch_rows)
        self.stats = SlotStats()

    def retire(self) -> None:
        """Release the model after a grace period; callers may still be waiting on its queue."""
        asyncio.get_running_loop().call_later(RETIRE_GRACE_S, self.batcher.close)


@dataclass
class Deployment:
    name: str
    slots: dict[str, Slot] = field(default_factory=dict)
    canary_weight: int = 0
    shadow_fraction: float = 0.0
    previous: Slot | None = None
    previous_release: asyncio.TimerHandle | None = None
    rollout: Rollout | None = None
    shadow: ShadowStats = field(default_factory=ShadowStats)
    events: list[dict[str, Any]] = field(default_factory=list)

    def route(self, key: str | None) -> str:
        """Stable or canary for one request; a request key always lands on the same side."""
        weight = self.canary_weight
        if weight <= 0 or CANARY not in self.slots:
            return STABLE
        if weight >= 100:
            return CANARY
        bucket = zlib.crc32(key.encode()) % 100 if key else random.randrange(100)
        return CANARY if bucket < weight else STABLE

    def mirror(self) -> bool:
        return SHADOW in self.slots and self.shadow_fraction > 0 and random.random() < self.shadow_fraction

    def record(self, event: str, reason: str) -> None:
        """Admin actions outside a rollout (slot loads, weights, rollbacks), with time and reason."""
        self.events.append({"at": datetime.now(UTC).isoformat(), "event": event, "reason": reason})
        del self.events[:-200]

    def put(self, slot: str, new: Slot) -> None:
        old = self.slots.get(slot)
        self.slots[slot] = new
        if old is not None and old is not new and old is not self.previous:
            old.retire()

    def remove(self, slot: str) -> None:
        old = self.slots.pop(slot, None)
        if slot == CANARY:
            self.canary_weight = 0
        if slot == SHADOW:
            self.shadow_fraction = 0.0
        if old is not None and old is not self.slots.get(STABLE) and old is not self.previous:
            old.retire()

    def switch_stable(self, new: Slot, keep_previous_s: float | None) -> None:
        """Atomic switch: the next request goes to ``new``; the old stable stays warm for rollback.

        ``keep_previous_s=None`` keeps it until someone calls ``release_previous`` (blue-green,
        whose rollout decides when the old version may go).
        """
        old = self.slots.get(STABLE)
        self.slots[STABLE] = new
        if old is not None and old is not new:
            self.keep_previous(old, keep_previous_s)

    def keep_previous(self, old: Slot, keep_previous_s: float | None) -> None:
        if self.previous is not None and self.previous is not old:
            self.previous.retire()
        if self.previous_release is not None:
            self.previous_release.cancel()
        self.previous = old
        self.previous_release = (
            None
            if keep_previous_s is None
            else asyncio.get_running_loop().call_later(keep_previous_s, self.release_previous)
        )

    def release_previous(self) -> None:
        if self.previous_release is not None:
            self.previous_release.cancel()
        if self.previous is not None and self.previous not in self.slots.values():
            self.previous.retire()
        self.previous = None
        self.previous_release = None

    def weights(self) -> dict[str, tuple[str, float]]:
        out = {}
        for slot, held in self.slots.items():
            if slot == STABLE:
                percent = 100 - (self.canary_weight if CANARY in self.slots else 0)
            elif slot == CANARY:
                percent = self.canary_weight
            elif slot == SHADOW:
                percent = round(self.shadow_fraction * 100, 2)
            else:
                percent = 0
            out[slot] = (held.model.version, percent)
        return out

    def to_dict(self) -> dict[str, Any]:
        weights = self.weights()
        return {
            "name": self.name,
            "slots": {
                slot: {
                    **held.model.describe(),
                    "weight": weights[slot][1],
                    "batches": held.batcher.batches,
                    "online": held.stats.online(
                        held.model.contract and held.model.contract.canary.online_metric
                    ),
                }
                for slot, held in self.slots.items()
            },
            "canary_weight": self.canary_weight,
            "shadow_fraction": self.shadow_fraction,
            "previous": self.previous.model.describe() if self.previous else None,
            "rollout": self.rollout.to_dict() if self.rollout else None,
            "shadow": self.shadow.to_dict(),
            "events": self.events[-50:],
        }
