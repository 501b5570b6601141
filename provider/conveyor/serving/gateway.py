"""The gateway's state and behaviour, independent of HTTP: scoring, slots, weights, rollouts, feedback.

A gateway is one replica of the data plane. What it serves is what the state store says
(``conveyor.serving.store``): an admin call is a transaction on the store's document of that
deployment (refused with 409 when another call changed it first), which this replica applies at
once and every other replica within a poll interval. Applying runs on the event loop, so a
switch of weights or slots is a plain assignment between two requests: atomic without locks,
and requests already queued on the old version still finish on it (it is retired after a grace
period, never torn down at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import itertools
import json
import logging
import math
import os
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.core.analysis import online_metric
from conveyor.core.inference_log import InferenceLogWriter
from conveyor.core.rollout import Rollout, RolloutError, RolloutSpec, State
from conveyor.core.scoring import decisions_agree
from conveyor.serving.bodies import FeedbackBody, MalformedBody, decode_json, request_id_problem
from conveyor.serving.controller import ACTIONS, REPLICA_FRESH_S, RolloutController, transition_line
from conveyor.serving.deployment import CANARY, SHADOW, SLOTS, STABLE, Deployment, Slot, name_problem
from conveyor.serving.desired import Desired, Target, can_roll_back, follow
from conveyor.serving.metrics import GatewayMetrics
from conveyor.serving.models import BatchOutput, LoadedModel, ModelLoadError, resolve
from conveyor.serving.schema import (
    MAX_STRING_BYTES,
    Columns,
    InvalidInput,
    parse_payload,
    preview,
    validate_free,
)
from conveyor.serving.store import Decision, Record, Sample, StaleWrite, StateStore

log = logging.getLogger(__name__)


_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "METHOD_NOT_ALLOWED",
    409: "INVALID_STATE",
    413: "REQUEST_LIMIT_EXCEEDED",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID_PARAMETER_VALUE",
    503: "TEMPORARILY_UNAVAILABLE",
}


class GatewayError(Exception):
    """An admin or scoring request the gateway refuses; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """``error_code`` and ``message`` always; ``field`` (and other extras) where one is at fault."""
        code = _ERROR_CODES.get(self.status, "INTERNAL_ERROR")
        extra = {key: value for key, value in self.extra.items() if value is not None}
        return {"error_code": code, "message": str(self), **extra}


@dataclass
class GatewayConfig:
    admin_token: str
    log_url: str | None = None
    # A SIGKILL loses at most the rows queued in the last flush interval, unless the spool is on.
    log_flush_interval_s: float = 1.0
    log_max_queued_rows: int = 100_000  # past it rows are dropped (counted), the request never waits
    log_spool_dir: str | None = None  # durable mode: each answered row is on local disk first
    log_fsync: bool = False  # durable mode: fsync the spool per request (survives power loss too)
    max_body_bytes: int = 1 << 20
    max_string_bytes: int = MAX_STRING_BYTES  # per string feature value (and column name)
    max_batch_rows: int = 2048
    max_shadow_in_flight: int = 64
    keep_previous_s: float = 300.0
    key_header: str = "x-conveyor-key"
    slot_header: str = "x-conveyor-slot"
    # The desired state; in memory unless given: a file for one process, PostgreSQL for several.
    store_url: str = "sqlite://"
    replica_id: str = dataclasses.field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    poll_interval_s: float = 0.2  # how soon a replica applies another replica's (or the controller's) write
    flush_interval_s: float = 0.5  # how often analysis samples of a running rollout reach the store


@dataclass
class Scored:
    status: int
    body: bytes
    headers: dict[str, str]


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        if not config.admin_token:
            raise ValueError("the gateway needs an admin token")
        self.config = config
        self.metrics = GatewayMetrics()
        self.deployments: dict[str, Deployment] = {}
        self.log = (
            InferenceLogWriter(
                config.log_url,
                flush_interval_s=config.log_flush_interval_s,
                max_queued_rows=config.log_max_queued_rows,
                spool_dir=config.log_spool_dir,
                fsync=config.log_fsync,
                events=self.metrics.inference_log,
            )
            if config.log_url
            else None
        )
        if self.log is not None:
            self.metrics.inference_log.track_queue(lambda: self.log.queued_rows)
        self.store = StateStore(config.store_url)
        self._shadow_tasks: set[asyncio.Task] = set()
        self._recent: OrderedDict[str, tuple[str, str, Any]] = (
            OrderedDict()
        )  # row id -> deployment, slot, decision
        self._decisions: list[Decision] = []  # to share with the replica a label may reach
        self._sampled: dict[str, str | None] = {}  # deployment in a rollout -> online metric
        self._loaded: dict[tuple[str, str], Slot] = {}  # (deployment, pinned uri) -> loaded slot
        self._loading: dict[tuple[str, str], asyncio.Future] = {}
        self._load_errors: dict[str, str] = {}  # pinned uri -> why it did not load here
        self._loops: list[asyncio.Task] = []
        self._poll_now = asyncio.Event()
        self.on_write: Callable[[str], None] | None = None  # the in-process controller's wake-up
        self.started = time.time()
        # Request ids: 64 random bits per process and a counter, 32 hex digits like a uuid4's,
        # unique across replicas; uuid4 costs a getrandom() system call on every request.
        self._id_prefix, self._ids = secrets.token_hex(8), itertools.count()

    # ---- lookups ---------------------------------------------------------------------------------
    def deployment(self, name: str | None) -> Deployment:
        if name is None:
            if self.default is None:
                raise GatewayError(404, "no deployment exists yet; deploy a model first")
            name = self.default
        found = self.deployments.get(name)
        if found is None:
            raise GatewayError(404, f"unknown deployment {preview(name)}; known: {sorted(self.deployments)}")
        return found

    @property
    def ready(self) -> bool:
        return bool(self.deployments) and all(STABLE in d.slots for d in self.deployments.values())

    # ---- scoring -----------------------------------------------------------------------------
    async def score(self, name: str | None, body: bytes, headers: dict[str, str]) -> Scored:
        sent = headers.get("x-request-id")
        bad_id = request_id_problem(sent) if sent else None
        request_id = sent if sent and bad_id is None else f"{self._id_prefix}{next(self._ids):016x}"
        try:
            deployment = self.deployment(name)
            stable = deployment.slots.get(STABLE)
            if stable is None:
                raise GatewayError(503, f"deployment '{deployment.name}' has no stable model loaded")
        except GatewayError as exc:
            return self._error(exc, request_id)
        slot = self._pick(deployment, headers)
        held = deployment.slots[slot]
        started = time.perf_counter()
        try:
            if bad_id is not None:
                raise GatewayError(422, f"header 'x-request-id' {bad_id}", field="x-request-id")
            try:
                payload = decode_json(body)
            except MalformedBody as exc:
                raise GatewayError(400, str(exc)) from None
            columns, rows = self._parse(payload, held.model)
        except GatewayError as exc:
            self._count(deployment, slot, held, exc.status)
            return self._error(exc, request_id)
        try:
            output, answer = await self._predict(held, columns, rows)
        except Exception as exc:
            self._failed(deployment, slot, held, started, exc)
            if slot == STABLE:
                return self._error(_prediction_failed(exc), request_id)
            # A failing canary or staging version must not cost the caller: stable answers instead.
            slot, held = STABLE, stable
            try:
                columns, rows = self._parse(payload, held.model)
                output, answer = await self._predict(held, columns, rows)
            except GatewayError as retry_exc:
                self._count(deployment, slot, held, retry_exc.status)
                return self._error(retry_exc, request_id)
            except Exception as retry_exc:
                self._failed(deployment, slot, held, started, retry_exc)
                return self._error(_prediction_failed(retry_exc), request_id)
        latency = time.perf_counter() - started
        scores = output.scores(held.model.contract)
        deployment.stats_for(slot, held).record(latency, False, scores)
        series = self.metrics.slot_series(deployment.name, slot, held.model.version, held.model.contract)
        series.observe(latency, scores)
        row_ids = [request_id] if rows == 1 else [f"{request_id}-{i}" for i in range(rows)]
        decisions = output.decisions(held.model.contract)
        self._remember(deployment.name, slot, held.model.version, row_ids, decisions)
        self._log(deployment, slot, held.model, columns, row_ids, output)
        if deployment.mirror():
            self._mirror(deployment, columns, rows, row_ids, decisions)
        return Scored(
            200,
            answer,
            {
                "x-request-id": request_id,
                "x-model-name": held.model.name,
                "x-model-version": held.model.version,
                "x-model-slot": slot,
            },
        )

    @staticmethod
    async def _predict(held: Slot, columns: Columns, rows: int) -> tuple[BatchOutput, bytes]:
        """The slot's output and the answer's JSON; an output that cannot be answered raises."""
        output = await held.batcher.predict(columns, rows)
        return output, _predictions_json(output)

    def _failed(self, deployment: Deployment, slot: str, held: Slot, started: float, exc: Exception) -> None:
        """A prediction that raised or returned what cannot be answered counts against its slot."""
        deployment.stats_for(slot, held).record(time.perf_counter() - started, True, [])
        self._count(deployment, slot, held, 500)
        if slot == STABLE:
            log.error(
                "stable version %s of %s failed: %s", held.model.version, deployment.name, exc, exc_info=exc
            )
        else:
            log.warning("%s version %s failed (%s); stable answers", slot, held.model.version, exc)

    def _pick(self, deployment: Deployment, headers: dict[str, str]) -> str:
        explicit = headers.get(self.config.slot_header)
        if explicit and explicit in deployment.slots and explicit != SHADOW:
            return explicit
        return deployment.route(headers.get(self.config.key_header))

    def _parse(self, payload: Any, model: LoadedModel) -> tuple[Columns, int]:
        try:
            columns, rows = parse_payload(payload, model.schema.names if model.schema else None)
            if model.schema is not None:
                model.schema.validate(columns, self.config.max_string_bytes)
            else:
                validate_free(columns, self.config.max_string_bytes)
        except InvalidInput as exc:
            raise GatewayError(422, str(exc), field=exc.field) from None
        return columns, rows

    def _count(self, deployment: Deployment, slot: str, held: Slot, status: int) -> None:
        self.metrics.requests.labels(deployment.name, slot, held.model.version, str(status)).inc()

    @staticmethod
    def _error(exc: GatewayError, request_id: str) -> Scored:
        return Scored(exc.status, json.dumps(exc.body()).encode(), {"x-request-id": request_id})

    def _remember(
        self, deployment: str, slot: str, version: str, row_ids: list[str], decisions: list[Any]
    ) -> None:
        """Recent decisions by row id, so labels posted to /feedback score each slot online;
        during a rollout they are shared through the store, since a label may reach any replica."""
        for row_id, decision in zip(row_ids, decisions, strict=False):
            self._recent[row_id] = (deployment, slot, decision)
        while len(self._recent) > 100_000:
            self._recent.popitem(last=False)
        if deployment in self._sampled and len(self._decisions) < 100_000:
            now = time.time()
            self._decisions.extend(
                Decision(row_id, deployment, slot, version, decision, now)
                for row_id, decision in zip(row_ids, decisions, strict=False)
            )

    def _log(
        self,
        deployment: Deployment,
        slot: str,
        model: LoadedModel,
        columns: Columns,
        row_ids: list[str],
        output: BatchOutput,
    ) -> None:
        if self.log is None:
            return
        self.log.append_predictions(
            {
                **columns,
                "request_id": row_ids,
                "deployment": deployment.name,
                "slot": slot,
                "model_name": model.name,
                "model_version": model.version,
                **output.as_log_columns(),
            }
        )

    def _mirror(
        self, deployment: Deployment, columns: Columns, rows: int, row_ids: list, answered: list[Any]
    ) -> None:
        """Copy a request to the shadow without the caller ever waiting for it or seeing its answer."""
        if len(self._shadow_tasks) >= self.config.max_shadow_in_flight:
            deployment.shadow.skipped += 1
            return
        task = asyncio.get_running_loop().create_task(
            self._shadow(deployment, columns, rows, row_ids, answered)
        )
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(
        self, deployment: Deployment, columns: Columns, rows: int, row_ids: list, answered: list[Any]
    ) -> None:
        """Score a mirrored request on the shadow; its decisions are compared with ``answered``,
        the decisions the caller got."""
        held = deployment.slots.get(SHADOW)
        if held is None:
            return
        stats = deployment.shadow
        stats.mirrored += 1
        started = time.perf_counter()
        try:
            if held.model.schema is not None:
                held.model.schema.validate(columns, self.config.max_string_bytes)
            output, latency = await held.batcher.predict_patiently(columns, rows)
        except Exception as exc:
            stats.errors += 1
            deployment.stats_for(SHADOW, held).record(time.perf_counter() - started, True, [])
            self.metrics.requests.labels(deployment.name, SHADOW, held.model.version, "500").inc()
            log.info("shadow %s failed (never seen by the caller): %s", held.model.version, exc)
            return
        stats.latencies_s.append(latency)
        deployment.stats_for(SHADOW, held).record(latency, False, output.scores(held.model.contract))
        self.metrics.slot_series(deployment.name, SHADOW, held.model.version, None).observe(latency, [])
        contract = held.model.contract
        pairs = list(zip(output.decisions(contract), answered, strict=False))
        stats.compared_rows += len(pairs)
        stats.agreed_rows += sum(decisions_agree(contract, a, b) for a, b in pairs)
        if stats.agreement is not None:
            self.metrics.shadow_agreement.labels(deployment.name).set(stats.agreement)
        self._log(deployment, SHADOW, held.model, columns, row_ids, output)

    # ---- feedback ----------------------------------------------------------------------------
    async def feedback(self, body: FeedbackBody) -> dict[str, int]:
        """Labels for answered rows: logged, and kept with the answering slot's decision for its
        online metric. A row answered by another replica is found in the store."""
        ids, labels, matched = body.request_ids, body.labels, 0
        seen = {row_id: self._recent.get(row_id) for row_id in ids}
        missing = [row_id for row_id, found in seen.items() if found is None]
        if missing:
            shared = await asyncio.to_thread(self.store.decisions, missing)
            for row_id, decision in shared.items():
                seen[row_id] = (decision.deployment, decision.slot, decision.decision)
        for row_id, label in zip(ids, labels, strict=True):
            found = seen.get(row_id)
            if found is None:
                continue
            deployment = self.deployments.get(found[0])
            held = deployment.slots.get(found[1]) if deployment else None
            if held is not None:
                deployment.stats_for(found[1], held).record_label(found[2], label)
                matched += 1
        if self.log is not None:
            self.log.append_feedback({"request_id": ids, "label": labels})
        return {"accepted": len(ids), "matched": matched}

    # ---- the desired state: read, change, apply ----------------------------------------------
    @property
    def default(self) -> str | None:
        """The deployment ``/invocations`` answers for: the oldest one."""
        if not self.deployments:
            return None
        return min(self.deployments.values(), key=lambda d: d.desired.created_at).name

    async def start(self, controller: bool = False) -> None:
        """Serve what the store holds (a restart resumes), then follow it; with ``controller``
        this process also drives the rollouts (the one-process default)."""
        for record in (await asyncio.to_thread(self.store.load)).values():
            await self._converge(record)
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._follow_store()), loop.create_task(self._report())]
        if controller:
            driver = RolloutController(self.store, self.config.replica_id, on_write=self._applied_elsewhere)
            self.on_write = lambda _name: driver.wake()
            self._loops.append(loop.create_task(driver.run()))

    def _applied_elsewhere(self, _name: str) -> None:
        """The in-process controller wrote a step: apply it now rather than at the next poll."""
        self._poll_now.set()

    async def _refresh(self, name: str) -> None:
        record = await asyncio.to_thread(self.store.get, name)
        if record is not None:
            await self._converge(record)

    async def _read(self, name: str) -> Record:
        record = await asyncio.to_thread(self.store.get, name)
        if record is None:
            raise GatewayError(404, f"unknown deployment {preview(name)}; known: {sorted(self.deployments)}")
        return record

    async def _write(
        self,
        name: str,
        desired: Desired,
        expected: int | None,
        loaded: dict[str, Slot] | None = None,
    ) -> Deployment:
        """Store the change if nobody changed ``name`` since ``expected``, and apply it here now."""
        try:
            generation = await asyncio.to_thread(self.store.put, name, desired.to_doc(), expected)
        except StaleWrite as exc:
            for held in (loaded or {}).values():
                held.retire()
            raise GatewayError(409, f"{exc}; nothing was changed: read it again and retry") from None
        for pinned, held in (loaded or {}).items():
            self._loaded.setdefault((name, pinned), held)
        await self._converge(Record(name, generation, desired.to_doc()))
        if self.on_write is not None and desired.running_rollout() is not None:
            self.on_write(name)
        return self.deployments[name]

    @staticmethod
    def _expect(record: Record, expected: int | None) -> int:
        """The generation a write must find: the caller's (``If-Match``) or the one just read."""
        if expected is not None and expected != record.generation:
            raise GatewayError(
                409,
                f"deployment '{record.name}' is at generation {record.generation}, not {expected}; "
                "nothing was changed: read it again and retry",
            )
        return record.generation

    async def _follow_store(self) -> None:
        """Apply what others wrote: another replica's admin call, the controller's next step."""
        while True:
            self._poll_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_now.wait(), self.config.poll_interval_s)
            try:
                held_before = set(self.deployments)
                generations = await asyncio.to_thread(self.store.generations)
                # Only what was held before the read and is missing from it was deleted: one
                # created here while the store was read (an admin call on this replica) is not
                # in that read, and dropping it answered 404 until the next poll.
                for name in (held_before & set(self.deployments)) - set(generations):
                    self._drop(name)
                for name, generation in generations.items():
                    held = self.deployments.get(name)
                    if held is None or held.generation < generation:
                        await self._refresh(name)
                self._release_expired()
            except Exception:  # the store may be briefly away; keep serving what is loaded
                log.exception("reading the state store failed; serving what is loaded")

    async def _converge(self, record: Record) -> None:
        """Load what ``record`` wants (off the loop), then switch to it in one step."""
        name, desired = record.name, Desired.from_doc(record.doc)
        wanted = desired.wanted()
        targets = {t.pinned: t for t in [*desired.slots.values(), desired.previous, desired.incoming] if t}
        known = self.deployments.get(name)
        if known is None or known.generation < record.generation:
            for pinned in wanted:  # a new generation asks again: a failed load may work now
                self._load_errors.pop(pinned, None)
        await asyncio.gather(*(self._ensure(name, targets[pinned]) for pinned in wanted))
        current = self.deployments.get(name)
        if current is not None and current.generation >= record.generation:
            return  # a newer generation was applied while this one loaded
        live = current or Deployment(name)
        slots: dict[str, Slot] = {}
        for slot, target in desired.slots.items():
            held = self._loaded.get((name, target.pinned))
            if held is None and current is not None and slot == STABLE and STABLE in current.slots:
                held = current.slots[STABLE]  # it failed to load here: keep answering
            if held is not None:
                slots[slot] = held
        previous = desired.warm_previous()
        live.previous = self._loaded.get((name, previous.pinned)) if previous else None
        live.desired, live.generation, live.slots = desired, record.generation, slots
        live.keep_stats_of_current_slots()
        self.deployments[name] = live
        rollout = desired.running_rollout()
        if rollout is None:
            self._sampled.pop(name, None)
        else:
            incoming = self._loaded.get((name, desired.incoming.pinned)) if desired.incoming else None
            metric = online_metric(incoming.model.contract if incoming else None)
            self._sampled[name] = metric.name if metric else None
        self._release_unused(name)
        self.publish(live)

    async def _ensure(self, name: str, target: Target) -> None:
        """``target`` loaded for ``name``, once however many writes ask for it meanwhile."""
        key = (name, target.pinned)
        if key in self._loaded or target.pinned in self._load_errors:
            return
        pending = self._loading.get(key)
        if pending is None:
            pending = self._loading[key] = asyncio.ensure_future(self.load(target))
        try:
            self._loaded.setdefault(key, await pending)
        except ModelLoadError as exc:
            self._load_errors[target.pinned] = str(exc)
            log.error("deployment %s: %s", name, exc)
        finally:
            self._loading.pop(key, None)

    def _release_unused(self, name: str) -> None:
        live = self.deployments.get(name)
        wanted = live.desired.wanted() if live else set()
        for key in [k for k in self._loaded if k[0] == name and k[1] not in wanted]:
            held = self._loaded.pop(key)
            if live is None or held not in live.slots.values():
                held.retire()

    def _release_expired(self) -> None:
        """A previous version past its keep-warm time is let go on every replica alike."""
        for live in self.deployments.values():
            if live.previous is not None and live.desired.warm_previous() is None:
                live.previous = None
                self._release_unused(live.name)

    def _drop(self, name: str) -> None:
        live = self.deployments.pop(name, None)
        self._sampled.pop(name, None)
        for key in [k for k in self._loaded if k[0] == name]:
            self._loaded.pop(key).retire()
        if live is not None:
            self.metrics.set_weights(name, {})

    async def _report(self) -> None:
        """Heartbeat with what is loaded here, and the analysis samples of running rollouts."""
        last_beat, last_observed = 0.0, None
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            try:
                samples, decisions, self._decisions = self._drain(), self._decisions, []
                await asyncio.to_thread(self.store.add_samples, samples)
                await asyncio.to_thread(self.store.add_decisions, decisions)
                observed = self.observed()
                # at once when something loaded (a rollout waits on it), else once a second
                if observed != last_observed or time.monotonic() - last_beat >= 1.0:
                    last_beat, last_observed = time.monotonic(), observed
                    await asyncio.to_thread(self.store.heartbeat, self.config.replica_id, observed)
            except Exception:
                log.exception("reporting to the state store failed")

    def _drain(self) -> list[Sample]:
        now, rows = time.time(), []
        for name, live in self.deployments.items():
            metric = self._sampled.get(name)
            for slot, held in live.slots.items():
                sample = live.stats_for(slot, held).drain(metric)
                if name in self._sampled and (sample.requests or sample.online):
                    rows.append(
                        Sample(
                            name,
                            slot,
                            held.model.version,
                            self.config.replica_id,
                            now,
                            sample.requests,
                            sample.errors,
                            list(sample.latencies_s),
                            list(sample.scores),
                            list(sample.online),
                        )
                    )
        return rows

    def observed(self) -> dict[str, Any]:
        """What this replica has loaded (and failed to), for the controller to wait on."""
        return {
            "generations": {name: live.generation for name, live in self.deployments.items()},
            "loaded": sorted({pinned for _, pinned in self._loaded}),
            "errors": dict(self._load_errors),
        }

    # ---- admin: slots and weights ------------------------------------------------------------
    async def load(self, target: Target) -> Slot:
        """Load and warm a version off the event loop: serving continues meanwhile."""
        model = await asyncio.to_thread(_load_and_freeze, target.pinned)
        return Slot(dataclasses.replace(model, uri=target.uri), self.config.max_batch_rows)

    @staticmethod
    async def pin(uri: str) -> Target:
        """The immutable version ``uri`` names now; every replica loads that one."""
        try:
            _, version, pinned = await asyncio.to_thread(resolve, uri)
        except Exception as exc:
            raise ModelLoadError(f"cannot load {uri}: {type(exc).__name__}: {exc}") from exc
        return Target(uri, pinned, version)

    async def _load_checked(self, uri: str) -> tuple[Target, Slot]:
        try:
            target = await self.pin(uri)
            return target, await self.load(target)
        except ModelLoadError as exc:
            raise GatewayError(422, f"{exc}; the current version keeps serving", field="model_uri") from None

    async def deploy_slot(self, name: str, slot: str, uri: str, expected: int | None = None) -> Deployment:
        """Load ``uri`` into a slot; loading the stable slot of an unknown name creates the deployment.

        Everything that can be refused is refused before the load, which takes seconds and memory;
        a change by someone else while it loaded is refused after it (409).
        """
        if slot not in SLOTS:
            raise GatewayError(422, f"unknown slot {preview(slot)}; slots are {list(SLOTS)}", field="slot")
        record = await asyncio.to_thread(self.store.get, name)
        if record is None:
            problem = name_problem(name)
            if problem is not None:
                raise GatewayError(422, problem, field="name")
            if slot != STABLE:
                raise GatewayError(404, f"unknown deployment '{name}': load its stable slot first")
            desired, generation = Desired(), None
            if expected is not None:
                raise GatewayError(409, f"deployment '{name}' does not exist (yet); nothing was changed")
        else:
            desired, generation = Desired.from_doc(record.doc), self._expect(record, expected)
            _refuse_during_rollout(name, desired)
        target, held = await self._load_checked(uri)
        if slot == STABLE:
            desired.switch_stable(target, self.config.keep_previous_s)
        else:
            desired.put(slot, target)
        desired.record("deploy", f"{uri} (version {target.version}) loaded into {slot}")
        return await self._write(name, desired, generation, {target.pinned: held})

    async def remove_slot(self, name: str, slot: str, expected: int | None = None) -> Deployment:
        record = await self._read(name)
        desired = Desired.from_doc(record.doc)
        generation = self._expect(record, expected)
        _refuse_during_rollout(name, desired)
        if slot == STABLE:
            raise GatewayError(409, "the stable slot cannot be emptied; delete the deployment instead")
        if slot not in desired.slots:
            raise GatewayError(404, f"slot '{slot}' of '{name}' holds no model")
        desired.remove(slot)
        desired.record("remove", f"{slot} emptied")
        return await self._write(name, desired, generation)

    async def set_weights(
        self, name: str, canary: int | None = None, shadow: float | None = None, expected: int | None = None
    ) -> Deployment:
        """Set the canary percent and/or shadow fraction (typed and ranged by ``WeightsBody``).

        Both are checked before either is applied: a refused request changes nothing.
        """
        record = await self._read(name)
        desired = Desired.from_doc(record.doc)
        generation = self._expect(record, expected)
        _refuse_during_rollout(name, desired)
        if canary and CANARY not in desired.slots:
            raise GatewayError(409, f"'{name}' has no canary loaded to send traffic to")
        if shadow and SHADOW not in desired.slots:
            raise GatewayError(409, f"'{name}' has no shadow loaded to mirror to")
        if canary is not None:
            desired.canary_weight = canary
        if shadow is not None:
            desired.shadow_fraction = shadow
        desired.record("weights", f"canary {desired.canary_weight}%, shadow {desired.shadow_fraction:.0%}")
        return await self._write(name, desired, generation)

    async def promote(self, name: str, slot: str = CANARY, expected: int | None = None) -> Deployment:
        """Make the canary (or staging) version stable at once; the old stable stays warm."""
        record = await self._read(name)
        desired = Desired.from_doc(record.doc)
        generation = self._expect(record, expected)
        rollout = desired.running_rollout()
        if rollout is not None:
            _act(rollout, "promote", desired)
            follow(desired, rollout)
            return await self._write(name, desired, generation)
        target = desired.slots.get(slot)
        if target is None or slot == STABLE:
            raise GatewayError(409, f"'{name}' has no {slot} version to promote")
        desired.remove(slot)
        desired.switch_stable(target, self.config.keep_previous_s)
        desired.record("promote", f"{slot} version {target.version} promoted to stable")
        return await self._write(name, desired, generation)

    async def rollback(
        self, name: str, model_uri: str | None = None, expected: int | None = None
    ) -> Deployment:
        """Back to the previous version: abort a running rollout, else swap the warm previous back.

        With ``model_uri`` (the previous version is no longer warm, e.g. after a restart) that
        version is loaded and switched in instead.
        """
        record = await self._read(name)
        desired = Desired.from_doc(record.doc)
        generation = self._expect(record, expected)
        rollout = Rollout.from_dict(desired.rollout) if desired.rollout else None
        if model_uri is None and rollout is not None and can_roll_back(desired, rollout):
            _act(rollout, "rollback", desired)
            follow(desired, rollout)
            return await self._write(name, desired, generation)
        loaded: dict[str, Slot] = {}
        if model_uri is not None:
            target, held = await self._load_checked(model_uri)
            loaded[target.pinned] = held
        elif desired.warm_previous() is not None:
            target = desired.warm_previous()
            assert target is not None
        else:
            raise GatewayError(
                409, f"'{name}' has no previous version kept warm; pass model_uri to roll back to"
            )
        current = desired.slots.get(STABLE)
        for slot in (CANARY, SHADOW):
            desired.remove(slot)
        desired.release_previous()
        desired.switch_stable(target, self.config.keep_previous_s)
        desired.record(
            "rollback", f"rolled back from version {current.version if current else '-'} to {target.version}"
        )
        return await self._write(name, desired, generation, loaded)

    async def reload(self, name: str, expected: int | None = None) -> Deployment:
        """Re-resolve each slot's URI (an alias may have moved) and switch slots whose version changed."""
        record = await self._read(name)
        desired = Desired.from_doc(record.doc)
        generation = self._expect(record, expected)
        _refuse_during_rollout(name, desired)
        loaded: dict[str, Slot] = {}
        for slot, target in list(desired.slots.items()):
            try:
                fresh = await self.pin(target.uri)
                if fresh.version == target.version:
                    continue
                loaded[fresh.pinned] = await self.load(fresh)
            except ModelLoadError as exc:
                desired.record("reload", f"{slot}: {exc}; kept version {target.version}")
                continue
            if slot == STABLE:
                desired.switch_stable(fresh, self.config.keep_previous_s)
            else:
                desired.put(slot, fresh)
            desired.record("reload", f"{slot}: {target.uri} now version {fresh.version}")
        return await self._write(name, desired, generation, loaded)

    async def delete(self, name: str, expected: int | None = None) -> None:
        record = await self._read(name)
        try:
            await asyncio.to_thread(self.store.delete, name, self._expect(record, expected))
        except StaleWrite as exc:
            raise GatewayError(409, f"{exc}; nothing was deleted: read it again and retry") from None
        self._drop(name)

    # ---- admin: rollouts -----------------------------------------------------------------------
    async def start_rollout(
        self, name: str, spec: RolloutSpec, expected: int | None = None
    ) -> dict[str, Any]:
        """Record a pending rollout; the controller drives it from there (here or elsewhere)."""
        record = await self._read(name)
        desired = Desired.from_doc(record.doc)
        generation = self._expect(record, expected)
        if STABLE not in desired.slots:
            raise GatewayError(409, f"'{name}' has no stable version to roll out against")
        _refuse_during_rollout(name, desired)
        rollout = Rollout(name, spec)
        desired.incoming, desired.measured_at = None, None
        follow(desired, rollout)
        await self._write(name, desired, generation)
        return rollout.to_dict()

    async def rollout_action(self, name: str, action: str, expected: int | None = None) -> dict[str, Any]:
        record = await self._read(name)
        desired = Desired.from_doc(record.doc)
        generation = self._expect(record, expected)
        if action not in ACTIONS:
            raise GatewayError(404, f"unknown rollout action {preview(action)}; actions are {list(ACTIONS)}")
        if desired.rollout is None:
            raise GatewayError(409, f"'{name}' has no rollout")
        rollout = Rollout.from_dict(desired.rollout)
        if action == "rollback" and not can_roll_back(desired, rollout):
            raise GatewayError(409, f"nothing to roll back to: rollout is {rollout.state.value}")
        _act(rollout, action, desired)
        follow(desired, rollout)
        await self._write(name, desired, generation)
        return rollout.to_dict()

    # ---- status --------------------------------------------------------------------------------
    async def describe(self, name: str) -> dict[str, Any]:
        """One deployment as the store has it now (read your writes through any replica: the
        rollout a client just started is there even before this replica applied it), with the
        slots this replica has loaded."""
        record = await self._read(name)
        desired = Desired.from_doc(record.doc)
        live = self.deployments.get(name)
        view = live.to_dict() if live is not None else Deployment(name, desired).to_dict()
        percents, loaded = desired.weights(), view["slots"]
        view["slots"] = {
            slot: {**loaded[slot], "loaded": True}
            if slot in loaded and loaded[slot]["model_version"] == target.version
            else {
                "model_uri": target.uri,
                "model_version": target.version,
                "weight": percents[slot],
                "loaded": False,  # the store has it; this replica is still loading it
            }
            for slot, target in desired.slots.items()
        }
        serving = await self._serving(name)
        view.update(
            generation=record.generation,
            # what this replica serves: behind the store's generation while it loads
            replica={"id": self.config.replica_id, "generation": serving[self.config.replica_id]},
            # what each live replica serves, and whether all of them serve this generation: a
            # rollout state read here is the store's, which replicas apply a moment later
            replicas=serving,
            converged=all(g is not None and g >= record.generation for g in serving.values()),
            canary_weight=desired.canary_weight,
            shadow_fraction=desired.shadow_fraction,
            rollout=desired.rollout,
            events=desired.events[-50:],
        )
        return view

    async def _serving(self, name: str) -> dict[str, int | None]:
        """Replica -> the generation of ``name`` it serves: its last heartbeat, and this
        replica's own live value (fresher than its heartbeat)."""
        seen = await asyncio.to_thread(self.store.replicas, REPLICA_FRESH_S)
        serving = {replica: observed.get("generations", {}).get(name) for replica, observed in seen.items()}
        live = self.deployments.get(name)
        serving[self.config.replica_id] = live.generation if live else None
        return serving

    def publish(self, deployment: Deployment) -> None:
        """Mirror a deployment's traffic and rollout state into the metrics."""
        self.metrics.set_weights(deployment.name, deployment.weights())
        rollout = deployment.desired.rollout
        if rollout is not None:
            self.metrics.set_rollout_state(
                deployment.name, rollout["spec"]["strategy"], State(rollout["state"])
            )

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "default": self.default,
            "replica": self.config.replica_id,
            "uptime_s": round(time.time() - self.started, 1),
            "deployments": {name: d.to_dict() for name, d in self.deployments.items()},
        }

    async def close(self) -> None:
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        try:
            # what was measured since the last flush still counts in the rollout's analysis
            await asyncio.to_thread(self.store.add_samples, self._drain())
            await asyncio.to_thread(self.store.add_decisions, self._decisions)
            await asyncio.to_thread(self.store.forget_replica, self.config.replica_id)
        except Exception:
            log.exception("could not sign this replica off the state store")
        if self.log is not None:
            await asyncio.to_thread(self.log.close)
        self.store.close()


def _load_and_freeze(uri: str) -> LoadedModel:
    """Load a version, then move every live object out of the garbage collector's sight.

    A loaded model brings hundreds of thousands of objects (torch, MLflow, pandas); each full
    collection would walk them all, a pause of ~100 ms on the event loop every few seconds of
    traffic. Frozen, they are never walked; what a retired version left behind is collected
    here, at the next load: one full collection per load, where loads already cost seconds.
    """
    model = LoadedModel.load(uri)
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return model


def _refuse_during_rollout(name: str, desired: Desired) -> None:
    rollout = desired.running_rollout()
    if rollout is not None:
        raise GatewayError(
            409, f"'{name}' has a {rollout.state.value} rollout; promote, roll back or wait for it"
        )


def _act(rollout: Rollout, action: str, desired: Desired) -> None:
    """A person's decision on a rollout; one its state does not allow is a 409."""
    try:
        if action == "resume":
            rollout.resume()
            desired.measured_at = None
        elif action == "promote":
            rollout.promote()
        else:
            rollout.rollback()
    except RolloutError as exc:
        raise GatewayError(409, str(exc)) from None
    log.info(transition_line(rollout.deployment, rollout))


class ModelOutputError(ValueError):
    """The model answered what cannot be served: a missing or non-finite value, or no JSON at all."""


def _prediction_failed(exc: Exception) -> GatewayError:
    return GatewayError(500, f"prediction failed: {type(exc).__name__}: {exc}")


def _predictions_json(output: BatchOutput) -> bytes:
    """The scoring server's answer, refused whole if any value is missing or not finite.

    A null or NaN score answered 200 would be a silent wrong answer; it fails the slot the way
    an exception in ``predict`` does (stable: an error; canary or staging: stable answers).
    """
    names = output.columns or ["prediction"]
    for name, values in zip(names, output.values, strict=True):
        for row, value in enumerate(values):
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                raise ModelOutputError(f"output '{name}' row {row} is {value!r}, not a finite value")
    try:
        return json.dumps({"predictions": output.records()}, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:  # non-finite numbers nested in a value, or no JSON type
        raise ModelOutputError(f"the output cannot be answered as JSON: {exc}") from None
