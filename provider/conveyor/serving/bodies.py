"""One typed schema per body-taking endpoint, checked before the gateway changes anything.

Each ``parse`` takes the decoded JSON and returns a frozen dataclass of checked values, or raises
``InvalidInput`` naming the field (HTTP 422) with at most a short prefix of the offending value.
Plain dataclasses with explicit checks rather than a validation library: the rules are few, the
messages read like the rest of the gateway's, and the scoring path keeps its own faster checks
(``serving/schema.py``). JSON that does not decode is a ``MalformedBody`` (HTTP 400).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from conveyor.core.rollout import MAX_URI_LENGTH, InvalidSetting, RolloutSpec
from conveyor.serving.deployment import CANARY, SHADOW, STAGING
from conveyor.serving.schema import InvalidInput, preview

# A request id (the ``x-request-id`` header) is logged with every row it names: printable ASCII
# without spaces, at most 128 characters. Row ids of multi-row requests add ``-<row>``.
REQUEST_ID = re.compile(r"[!-~]{1,128}")
ROW_ID = re.compile(r"[!-~]{1,128}(?:-[0-9]{1,9})?")
_INT64 = (-(1 << 63), (1 << 63) - 1)


class MalformedBody(ValueError):
    """The body is not JSON at all (HTTP 400)."""


def decode_json(body: bytes) -> Any:
    """The decoded body; bad UTF-8, bad syntax and nesting too deep for the parser are all 400s.

    ``NaN`` and ``Infinity`` literals decode (Python's parser accepts them) and are refused later
    by the field they sit in, with a message naming that field.
    """
    try:
        return json.loads(body)
    except RecursionError:
        raise MalformedBody("malformed JSON: nested too deeply") from None
    except ValueError as exc:
        raise MalformedBody(f"malformed JSON: {exc}") from None


def request_id_problem(value: str, pattern: re.Pattern[str] = REQUEST_ID) -> str | None:
    """Why a client's request id may not be used, or None when it may."""
    if pattern.fullmatch(value):
        return None
    return f"must be 1-128 printable ASCII characters without spaces, got {preview(value)}"


def _object(payload: Any, allowed: Iterable[str], what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidInput(f"{what} must be a JSON object, got {type(payload).__name__}")
    allowed = tuple(allowed)
    for key in payload:
        if key not in allowed:
            raise InvalidInput(
                f"unknown field {preview(key)} in {what}; fields are {list(allowed)}", field=key[:64]
            )
    return payload


def _uri(value: Any, name: str = "model_uri") -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_URI_LENGTH:
        raise InvalidInput(
            f"'{name}' must be a model URI (a non-empty string of at most {MAX_URI_LENGTH} characters), "
            f"got {preview(value)}",
            field=name,
        )
    return value


@dataclass(frozen=True)
class SlotBody:
    """``PUT /admin/deployments/<name>/slots/<slot>``: the version to load."""

    model_uri: str

    @classmethod
    def parse(cls, payload: Any) -> SlotBody:
        payload = _object(payload, ("model_uri",), "a slot body")
        if "model_uri" not in payload:
            raise InvalidInput("missing field 'model_uri'", field="model_uri")
        return cls(_uri(payload["model_uri"]))


@dataclass(frozen=True)
class WeightsBody:
    """``PUT .../weights``: the canary's percent of traffic and/or the shadow's mirrored fraction."""

    canary: int | None
    shadow: float | None

    @classmethod
    def parse(cls, payload: Any) -> WeightsBody:
        payload = _object(payload, ("canary", "shadow"), "a weights body")
        canary, shadow = payload.get("canary"), payload.get("shadow")
        if canary is None and shadow is None:
            raise InvalidInput("a weights body sets 'canary' (percent) and/or 'shadow' (fraction)")
        if canary is not None and (type(canary) is not int or not 0 <= canary <= 100):
            raise InvalidInput(
                f"canary weight must be an integer percent 0..100, got {preview(canary)}", field="canary"
            )
        if shadow is not None and (
            type(shadow) not in (int, float) or not math.isfinite(shadow) or not 0 <= shadow <= 1
        ):
            raise InvalidInput(
                f"shadow fraction must be a number in 0..1, got {preview(shadow)}", field="shadow"
            )
        return cls(canary, None if shadow is None else float(shadow))


@dataclass(frozen=True)
class PromoteBody:
    """``POST .../promote``: which slot becomes stable (default the canary)."""

    slot: str = CANARY

    @classmethod
    def parse(cls, payload: Any) -> PromoteBody:
        payload = _object(payload, ("slot",), "a promote body")
        slot = payload.get("slot", CANARY)
        if slot not in (CANARY, SHADOW, STAGING):
            raise InvalidInput(
                f"'slot' must be one of {[CANARY, SHADOW, STAGING]}, got {preview(slot)}", field="slot"
            )
        return cls(slot)


@dataclass(frozen=True)
class RollbackBody:
    """``POST .../rollback``: optionally the version to load when the previous one is not warm."""

    model_uri: str | None = None

    @classmethod
    def parse(cls, payload: Any) -> RollbackBody:
        payload = _object(payload, ("model_uri",), "a rollback body")
        uri = payload.get("model_uri")
        return cls(None if uri is None else _uri(uri))


def parse_rollout(payload: Any) -> RolloutSpec:
    """``POST .../rollouts``: a rollout spec, typed by ``RolloutSpec.from_dict`` (shared with the CLI)."""
    if not isinstance(payload, dict):
        raise InvalidInput(f"a rollout spec must be a JSON object, got {type(payload).__name__}")
    try:
        return RolloutSpec.from_dict(payload)
    except InvalidSetting as exc:
        raise InvalidInput(str(exc), field=exc.field) from None


@dataclass(frozen=True)
class FeedbackBody:
    """``POST /feedback``: ``{"request_id", "label"}``, ``{"feedback": [...]}`` or a bare list."""

    request_ids: list[str]
    labels: list[int | float]

    @classmethod
    def parse(cls, payload: Any) -> FeedbackBody:
        if isinstance(payload, dict) and "feedback" in payload:
            items = _object(payload, ("feedback",), "a feedback body")["feedback"]
        else:
            items = [payload] if isinstance(payload, dict) else payload
        if not isinstance(items, list) or not items:
            raise InvalidInput("feedback must be {'request_id', 'label'} or {'feedback': [...]}")
        ids, labels = [], []
        for i, item in enumerate(items):
            item = _object(item, ("request_id", "label"), f"feedback item {i}")
            row_id, label = item.get("request_id"), item.get("label")
            if not isinstance(row_id, str):
                raise InvalidInput(
                    f"feedback item {i}: 'request_id' (string) is required", field="request_id"
                )
            problem = request_id_problem(row_id, ROW_ID)
            if problem is not None:
                raise InvalidInput(f"feedback item {i}: 'request_id' {problem}", field="request_id")
            if not _label(label):
                raise InvalidInput(
                    f"feedback item {i}: 'label' must be a 64-bit integer (a class) or a finite number "
                    f"(a regression target), got {preview(label)}",
                    field="label",
                )
            ids.append(row_id)
            labels.append(label)
        return cls(ids, labels)


def _label(value: Any) -> bool:
    """A truth the inference log can store and an online metric can use: a class id or a target."""
    if type(value) is int:
        return _INT64[0] <= value <= _INT64[1]
    return type(value) is float and math.isfinite(value)
