"""A deployment: named slots holding loaded model versions, traffic weights and what each slot did."""

from __future__ import annotations

import asyncio
import random
import re
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.analysis import SlotSample
from conveyor.core.scoring import online_aggregate, online_value
from conveyor.serving.batching import MicroBatcher
from conveyor.serving.desired import CANARY, SHADOW, SLOTS, STABLE, STAGING, Desired
from conveyor.serving.models import LoadedModel

__all__ = ["CANARY", "SHADOW", "SLOTS", "STABLE", "STAGING", "Deployment", "Slot", "name_problem"]
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
    """What one slot did since the last flush to the store (for canary analysis over every
    replica), and the labels it was judged on (for the deployment view)."""

    def __init__(self, maxlen: int = 200_000) -> None:
        self._pending: list[tuple[float, bool, list[float]]] = []
        self._pending_labels: list[tuple[Any, Any]] = []
        self._labels: deque[tuple[Any, Any]] = deque(maxlen=maxlen)
        self._maxlen = maxlen

    def record(self, latency_s: float, error: bool, scores: list[float]) -> None:
        if len(self._pending) < self._maxlen:
            self._pending.append((latency_s, error, scores))

    def record_label(self, decision: Any, truth: Any) -> None:
        """A labelled row: what this slot decided and what turned out true."""
        self._labels.append((decision, truth))
        if len(self._pending_labels) < self._maxlen:
            self._pending_labels.append((decision, truth))

    def online(self, metric: str | None) -> dict[str, Any] | None:
        """The slot's online metric over every label it kept, for the deployment view."""
        if metric is None:
            return None
        values = [online_value(metric, d, y) for d, y in self._labels]
        return {
            "metric": metric,
            "labelled": len(values),
            "value": online_aggregate(metric, values),
        }

    def drain(self, online_metric: str | None) -> SlotSample:
        """Everything recorded since the last drain, labelled rows scored by ``online_metric``
        (the rollout's new version's metric, so both slots are judged alike)."""
        pending, self._pending = self._pending, []
        labels, self._pending_labels = self._pending_labels, []
        online = [online_value(online_metric, d, y) for d, y in labels] if online_metric else []
        return SlotSample(
            requests=len(pending),
            errors=sum(r[1] for r in pending),
            latencies_s=[r[0] for r in pending if not r[1]],
            scores=[s for r in pending for s in r[2]],
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

    def retire(self) -> None:
        """Release the model after a grace period; callers may still be waiting on its queue."""
        asyncio.get_running_loop().call_later(RETIRE_GRACE_S, self.batcher.close)


@dataclass
class Deployment:
    """What this replica serves for one deployment: the loaded slots of one desired generation."""

    name: str
    desired: Desired = field(default_factory=Desired)
    generation: int = 0
    slots: dict[str, Slot] = field(default_factory=dict)
    previous: Slot | None = None
    shadow: ShadowStats = field(default_factory=ShadowStats)
    # Per slot and version, not per loaded model: one version may sit in two slots (staging, then
    # canary) and each slot is judged on its own traffic.
    stats: dict[tuple[str, str], SlotStats] = field(default_factory=dict)

    def stats_for(self, slot: str, held: Slot) -> SlotStats:
        key = (slot, held.model.version)
        found = self.stats.get(key)
        if found is None:
            found = self.stats[key] = SlotStats()
        return found

    def keep_stats_of_current_slots(self) -> None:
        current = {(slot, held.model.version) for slot, held in self.slots.items()}
        self.stats = {key: value for key, value in self.stats.items() if key in current}

    @property
    def canary_weight(self) -> int:
        return self.desired.canary_weight

    @property
    def shadow_fraction(self) -> float:
        return self.desired.shadow_fraction

    def route(self, key: str | None) -> str:
        """Stable or canary for one request; a request key always lands on the same side."""
        weight = self.desired.canary_weight
        if weight <= 0 or CANARY not in self.slots:
            return STABLE
        if weight >= 100:
            return CANARY
        bucket = zlib.crc32(key.encode()) % 100 if key else random.randrange(100)
        return CANARY if bucket < weight else STABLE

    def mirror(self) -> bool:
        fraction = self.desired.shadow_fraction
        return SHADOW in self.slots and fraction > 0 and random.random() < fraction

    def weights(self) -> dict[str, tuple[str, float]]:
        """Slot -> (model version, percent) of what this replica has loaded."""
        percents = self.desired.weights()
        return {slot: (held.model.version, percents.get(slot, 0)) for slot, held in self.slots.items()}

    def to_dict(self) -> dict[str, Any]:
        weights = self.weights()
        return {
            "name": self.name,
            "generation": self.generation,
            "slots": {
                slot: {
                    **held.model.describe(),
                    "weight": weights[slot][1],
                    "batches": held.batcher.batches,
                    "online": self.stats_for(slot, held).online(
                        held.model.contract and held.model.contract.canary.online_metric
                    ),
                }
                for slot, held in self.slots.items()
            },
            "canary_weight": self.canary_weight,
            "shadow_fraction": self.shadow_fraction,
            "previous": self.previous.model.describe() if self.previous else None,
            "rollout": self.desired.rollout,
            "shadow": self.shadow.to_dict(),
            "events": self.desired.events[-50:],
        }
