"""The gateway's state and behaviour, independent of HTTP: scoring, slots, weights, rollouts, feedback.

Everything that changes traffic runs on the event loop, so a switch of weights or slots is a
plain assignment between two requests: atomic without locks, and requests already queued on the
old version still finish on it (it is retired after a grace period, never torn down at once).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from conveyor.core.inference_log import InferenceLogWriter
from conveyor.core.rollout import Rollout, RolloutError, RolloutSpec
from conveyor.core.scoring import decisions_agree
from conveyor.serving.bodies import FeedbackBody, MalformedBody, decode_json, request_id_problem
from conveyor.serving.controller import ACTIONS, RolloutController
from conveyor.serving.deployment import CANARY, SHADOW, SLOTS, STABLE, Deployment, Slot, name_problem
from conveyor.serving.metrics import GatewayMetrics
from conveyor.serving.models import BatchOutput, LoadedModel, ModelLoadError
from conveyor.serving.schema import (
    MAX_STRING_BYTES,
    Columns,
    InvalidInput,
    parse_payload,
    preview,
    validate_free,
)

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
        self.default: str | None = None
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
        self._controllers: dict[str, RolloutController] = {}
        self._shadow_tasks: set[asyncio.Task] = set()
        self._recent: OrderedDict[str, tuple[str, str, Any]] = (
            OrderedDict()
        )  # row id -> deployment, slot, label
        self.started = time.time()

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
        request_id = sent if sent and bad_id is None else uuid.uuid4().hex
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
        held.stats.record(latency, False, scores)
        self._count(deployment, slot, held, 200)
        self.metrics.latency.labels(deployment.name, slot, held.model.version).observe(latency)
        self.metrics.observe_scores(deployment.name, slot, held.model.version, held.model.contract, scores)
        row_ids = [request_id] if rows == 1 else [f"{request_id}-{i}" for i in range(rows)]
        decisions = output.decisions(held.model.contract)
        self._remember(deployment.name, slot, row_ids, decisions)
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
        held.stats.record(time.perf_counter() - started, True, [])
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

    def _remember(self, deployment: str, slot: str, row_ids: list[str], decisions: list[Any]) -> None:
        """Recent decisions by row id, so labels posted to /feedback score each slot online."""
        for row_id, decision in zip(row_ids, decisions, strict=False):
            self._recent[row_id] = (deployment, slot, decision)
        while len(self._recent) > 100_000:
            self._recent.popitem(last=False)

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
            output = await held.batcher.predict(columns, rows)
        except Exception as exc:
            stats.errors += 1
            held.stats.record(time.perf_counter() - started, True, [])
            self.metrics.requests.labels(deployment.name, SHADOW, held.model.version, "500").inc()
            log.info("shadow %s failed (never seen by the caller): %s", held.model.version, exc)
            return
        latency = time.perf_counter() - started
        stats.latencies_s.append(latency)
        held.stats.record(latency, False, output.scores(held.model.contract))
        self.metrics.requests.labels(deployment.name, SHADOW, held.model.version, "200").inc()
        self.metrics.latency.labels(deployment.name, SHADOW, held.model.version).observe(latency)
        contract = held.model.contract
        pairs = list(zip(output.decisions(contract), answered, strict=False))
        stats.compared_rows += len(pairs)
        stats.agreed_rows += sum(decisions_agree(contract, a, b) for a, b in pairs)
        if stats.agreement is not None:
            self.metrics.shadow_agreement.labels(deployment.name).set(stats.agreement)
        self._log(deployment, SHADOW, held.model, columns, row_ids, output)

    # ---- feedback ----------------------------------------------------------------------------
    def feedback(self, body: FeedbackBody) -> dict[str, int]:
        """Labels for answered rows: logged, and kept with the answering slot's decision for its
        online metric."""
        ids, labels, matched = body.request_ids, body.labels, 0
        for row_id, label in zip(ids, labels, strict=True):
            seen = self._recent.get(row_id)
            if seen is None:
                continue
            deployment = self.deployments.get(seen[0])
            held = deployment.slots.get(seen[1]) if deployment else None
            if held is not None:
                held.stats.record_label(seen[2], label)
                matched += 1
        if self.log is not None:
            self.log.append_feedback({"request_id": ids, "label": labels})
        return {"accepted": len(ids), "matched": matched}

    # ---- admin: slots and weights ------------------------------------------------------------
    async def load(self, uri: str) -> Slot:
        """Load and warm a version off the event loop: serving continues meanwhile."""
        model = await asyncio.to_thread(LoadedModel.load, uri)
        return Slot(model, self.config.max_batch_rows)

    async def deploy_slot(self, name: str, slot: str, uri: str) -> Deployment:
        """Load ``uri`` into a slot; loading the stable slot of an unknown name creates the deployment.

        Everything that can be refused is refused before the load, which takes seconds and memory.
        """
        if slot not in SLOTS:
            raise GatewayError(422, f"unknown slot {preview(slot)}; slots are {list(SLOTS)}", field="slot")
        if name not in self.deployments:
            problem = name_problem(name)
            if problem is not None:
                raise GatewayError(422, problem, field="name")
            if slot != STABLE:
                raise GatewayError(404, f"unknown deployment '{name}': load its stable slot first")
        self._refuse_during_rollout(name)
        try:
            held = await self.load(uri)
        except ModelLoadError as exc:
            raise GatewayError(422, f"{exc}; the current version keeps serving", field="model_uri") from None
        deployment = self.deployments.get(name)
        if deployment is None:
            if slot != STABLE:  # deleted while loading
                held.retire()
                raise GatewayError(404, f"unknown deployment '{name}': load its stable slot first")
            deployment = self.deployments[name] = Deployment(name)
            self.default = self.default or name
        if slot == STABLE:
            deployment.switch_stable(held, self.config.keep_previous_s)
        else:
            deployment.put(slot, held)
        deployment.record("deploy", f"{uri} (version {held.model.version}) loaded into {slot}")
        self.publish(deployment)
        return deployment

    def remove_slot(self, name: str, slot: str) -> Deployment:
        deployment = self.deployment(name)
        self._refuse_during_rollout(name)
        if slot == STABLE:
            raise GatewayError(409, "the stable slot cannot be emptied; delete the deployment instead")
        if slot not in deployment.slots:
            raise GatewayError(404, f"slot '{slot}' of '{name}' holds no model")
        deployment.remove(slot)
        deployment.record("remove", f"{slot} emptied")
        self.publish(deployment)
        return deployment

    def set_weights(self, name: str, canary: int | None = None, shadow: float | None = None) -> Deployment:
        """Set the canary percent and/or shadow fraction (typed and ranged by ``WeightsBody``).

        Both are checked before either is applied: a refused request changes nothing.
        """
        deployment = self.deployment(name)
        self._refuse_during_rollout(name)
        if canary and CANARY not in deployment.slots:
            raise GatewayError(409, f"'{name}' has no canary loaded to send traffic to")
        if shadow and SHADOW not in deployment.slots:
            raise GatewayError(409, f"'{name}' has no shadow loaded to mirror to")
        if canary is not None:
            deployment.canary_weight = canary
        if shadow is not None:
            deployment.shadow_fraction = shadow
        deployment.record(
            "weights", f"canary {deployment.canary_weight}%, shadow {deployment.shadow_fraction:.0%}"
        )
        self.publish(deployment)
        return deployment

    def promote(self, name: str, slot: str = CANARY) -> Deployment:
        """Make the canary (or staging) version stable at once; the old stable stays warm."""
        deployment = self.deployment(name)
        controller = self._controllers.get(name)
        if controller is not None and not controller.rollout.done:
            _act(controller, "promote")
            return deployment
        held = deployment.slots.get(slot)
        if held is None or slot == STABLE:
            raise GatewayError(409, f"'{name}' has no {slot} version to promote")
        deployment.slots.pop(slot)
        if slot == CANARY:
            deployment.canary_weight = 0
        deployment.switch_stable(held, self.config.keep_previous_s)
        deployment.record("promote", f"{slot} version {held.model.version} promoted to stable")
        self.publish(deployment)
        return deployment

    async def rollback(self, name: str, model_uri: str | None = None) -> Deployment:
        """Back to the previous version: abort a running rollout, else swap the warm previous back.

        With ``model_uri`` (the previous version is no longer warm, e.g. after a restart) that
        version is loaded and switched in instead.
        """
        deployment = self.deployment(name)
        controller = self._controllers.get(name)
        if model_uri is None and controller is not None and controller.can_roll_back:
            controller.act("rollback")
            return deployment
        if model_uri is not None:
            try:
                held = await self.load(model_uri)
            except ModelLoadError as exc:
                raise GatewayError(
                    422, f"{exc}; the current version keeps serving", field="model_uri"
                ) from None
        elif deployment.previous is not None:
            held = deployment.previous
            deployment.previous = None
        else:
            raise GatewayError(
                409, f"'{name}' has no previous version kept warm; pass model_uri to roll back to"
            )
        current = deployment.slots.get(STABLE)
        for slot in (CANARY, SHADOW):
            deployment.remove(slot)
        deployment.switch_stable(held, self.config.keep_previous_s)
        reason = (
            f"rolled back from version {current.model.version if current else '-'} to {held.model.version}"
        )
        deployment.record("rollback", reason)
        self.publish(deployment)
        return deployment

    async def reload(self, name: str) -> Deployment:
        """Re-resolve each slot's URI (an alias may have moved) and switch slots whose version changed."""
        deployment = self.deployment(name)
        self._refuse_during_rollout(name)
        for slot, held in list(deployment.slots.items()):
            try:
                fresh = await self.load(held.model.uri)
            except ModelLoadError as exc:
                deployment.record("reload", f"{slot}: {exc}; kept version {held.model.version}")
                continue
            if fresh.model.version == held.model.version:
                fresh.retire()
                continue
            if slot == STABLE:
                deployment.switch_stable(fresh, self.config.keep_previous_s)
            else:
                deployment.put(slot, fresh)
            deployment.record("reload", f"{slot}: {held.model.uri} now version {fresh.model.version}")
        self.publish(deployment)
        return deployment

    def delete(self, name: str) -> None:
        deployment = self.deployment(name)
        controller = self._controllers.pop(name, None)
        if controller is not None:
            controller.cancel()
        for held in deployment.slots.values():
            held.retire()
        del self.deployments[name]
        if self.default == name:
            self.default = next(iter(self.deployments), None)
        self.metrics.set_weights(name, {})

    # ---- admin: rollouts -----------------------------------------------------------------------
    def start_rollout(self, name: str, spec: RolloutSpec) -> Rollout:
        deployment = self.deployment(name)
        if STABLE not in deployment.slots:
            raise GatewayError(409, f"'{name}' has no stable version to roll out against")
        self._refuse_during_rollout(name)
        rollout = Rollout(name, spec)
        deployment.rollout = rollout
        controller = RolloutController(self, deployment, rollout)
        self._controllers[name] = controller
        controller.start()
        return rollout

    def rollout_action(self, name: str, action: str) -> Rollout:
        deployment = self.deployment(name)
        controller = self._controllers.get(name)
        if action not in ACTIONS:
            raise GatewayError(404, f"unknown rollout action {preview(action)}; actions are {list(ACTIONS)}")
        if controller is None or deployment.rollout is None:
            raise GatewayError(409, f"'{name}' has no rollout")
        _act(controller, action)
        return deployment.rollout

    def _refuse_during_rollout(self, name: str) -> None:
        controller = self._controllers.get(name)
        if controller is not None and not controller.rollout.done:
            raise GatewayError(
                409,
                f"'{name}' has a {controller.rollout.state.value} rollout; promote, roll back or wait for it",
            )

    # ---- status --------------------------------------------------------------------------------
    def publish(self, deployment: Deployment) -> None:
        """Mirror a deployment's traffic and rollout state into the metrics."""
        self.metrics.set_weights(deployment.name, deployment.weights())
        if deployment.rollout is not None:
            rollout = deployment.rollout
            self.metrics.set_rollout_state(deployment.name, rollout.spec.strategy.value, rollout.state)

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "default": self.default,
            "uptime_s": round(time.time() - self.started, 1),
            "deployments": {name: d.to_dict() for name, d in self.deployments.items()},
        }

    async def close(self) -> None:
        for controller in self._controllers.values():
            controller.cancel()
        if self.log is not None:
            await asyncio.to_thread(self.log.close)


def _act(controller: RolloutController, action: str) -> None:
    """A person's decision on a running rollout; one its state does not allow is a 409."""
    try:
        controller.act(action)
    except RolloutError as exc:
        raise GatewayError(409, str(exc)) from None


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
