"""Promotion, rollback and their history in the MLflow registry.

MLflow keeps no history of aliases (mlflow#2169): once ``champion`` moves, nobody can tell which
version served before, when, or why. Conveyor appends one entry per promotion or rollback to a
*ledger*: an MLflow run (experiment ``conveyor-registry``, one run per registered model) whose
params hold the entries as ``history.000001``, ``history.000002``, ... Params are write-once in
MLflow's stores (the database rejects a second, different value for a key), which gives two
things tags and aliases cannot:

* the history is append-only: an entry cannot be edited through the API, and
* compare-and-set: two promotions that read the same history both try to write entry N+1;
  exactly one succeeds, the other gets :class:`ConcurrentPromotionError` *before* it touches the
  alias.

Every entry is mirrored as a ``conveyor.history.NNNNNN`` tag on the registered model so people
see it in the registry UI; the ledger stays the source of truth.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from conveyor.core.experiments import experiment_id as _experiment_id
from conveyor.core.gate import GATE_ID_TAG, STATUS_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
LEDGER_EXPERIMENT = "conveyor-registry"
LEDGER_TAG = "conveyor.ledger_for"
LEDGER_RUN_TAG = "conveyor.ledger_run_id"
HISTORY_PREFIX = "history."
HISTORY_TAG_PREFIX = "conveyor.history."
PROMOTABLE = ("passed", "forced")

Action = Literal["promote", "rollback"]


class RegistryError(RuntimeError):
    """A promotion or rollback was refused; nothing was changed."""


class GateNotPassedError(RegistryError):
    """The version has no passed (or forced) gate decision."""


class ConcurrentPromotionError(RegistryError):
    """Someone else changed the champion or the history between our read and our write."""


@dataclass(frozen=True)
class HistoryEntry:
    """One line of the audit trail: who moved which alias to what, from what, when and why."""

    seq: int
    action: Action
    model_name: str
    alias: str
    version: str
    previous_version: str | None
    reason: str
    actor: str
    at: str
    gate_id: str | None = None
    gate_status: str | None = None
    key: str | None = None
    token: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> HistoryEntry:
        return cls(**json.loads(text))


def _slot(seq: int) -> str:
    return f"{HISTORY_PREFIX}{seq:06d}"


def _ledger_run_id(client: MlflowClient, name: str, tags: dict[str, str] | None = None) -> str:
    """The ledger run of ``name``, created on first use and remembered in a registered-model tag.

    Two first-ever promotions may both create a run; both then pick the oldest one (and tag it),
    so they still compete for the same history slots.
    """
    if tags is None:
        tags = client.get_registered_model(name).tags
    if tags.get(LEDGER_RUN_TAG):
        return tags[LEDGER_RUN_TAG]
    experiment_id = _experiment_id(client, LEDGER_EXPERIMENT)

    def find() -> list:
        runs = client.search_runs(
            [experiment_id], filter_string=f"tags.`{LEDGER_TAG}` = '{_quote(name)}'", max_results=50
        )
        return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

    runs = find()
    if not runs:
        created = client.create_run(experiment_id, tags={LEDGER_TAG: name}, run_name=f"ledger:{name}")
        client.set_terminated(created.info.run_id)  # params stay writable; the UI shows no endless run
        runs = find()
    run_id = runs[0].info.run_id
    client.set_registered_model_tag(name, LEDGER_RUN_TAG, run_id)
    return run_id


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


@dataclass(frozen=True)
class _State:
    ledger: str
    entries: list[HistoryEntry]
    champion: str | None


def _read(client: MlflowClient, name: str, alias: str) -> _State:
    """Ledger, history and alias in three requests: every decision starts from one consistent read."""
    model = client.get_registered_model(name)
    ledger = _ledger_run_id(client, name, model.tags)
    params = client.get_run(ledger).data.params
    entries = sorted(
        (HistoryEntry.from_json(v) for k, v in params.items() if k.startswith(HISTORY_PREFIX)),
        key=lambda e: e.seq,
    )
    champion = model.aliases.get(alias)
    return _State(ledger, entries, None if champion is None else str(champion))


def history(client: MlflowClient, name: str) -> list[HistoryEntry]:
    """Every promotion and rollback of ``name``, oldest first."""
    return _read(client, name, CHAMPION).entries


def current_version(client: MlflowClient, name: str, alias: str = CHAMPION) -> str | None:
    """The version ``alias`` points at, or ``None`` when it is not set."""
    version = client.get_registered_model(name).aliases.get(alias)
    return None if version is None else str(version)


def _champion_stack(entries: list[HistoryEntry], alias: str) -> list[str]:
    """The champions in force, oldest first: a promotion pushes, a rollback pops.

    Rolling back twice therefore walks back two promotions instead of toggling between the
    last two versions.
    """
    stack: list[str] = []
    for e in entries:
        if e.alias != alias:
            continue
        if e.action == "promote":
            stack.append(e.version)
        elif stack:
            stack.pop()
    return stack


def _append(client: MlflowClient, ledger: str, entry: HistoryEntry) -> None:
    """Claim slot ``entry.seq``; the loser of a race learns who won it."""
    from mlflow.exceptions import MlflowException

    try:
        client.log_param(ledger, _slot(entry.seq), entry.to_json())
    except MlflowException as exc:
        if exc.error_code != "INVALID_PARAMETER_VALUE":
            raise
        winner = HistoryEntry.from_json(client.get_run(ledger).data.params[_slot(entry.seq)])
        raise ConcurrentPromotionError(
            f"concurrent change of {entry.model_name}@{entry.alias}: history entry {entry.seq} was written "
            f"first by {winner.actor} ({winner.action} to v{winner.version} at {winner.at}); "
            f"your {entry.action} to v{entry.version} was not applied. Re-read the champion and retry "
            "if it is still wanted."
        ) from exc


def _commit(client: MlflowClient, entry: HistoryEntry) -> None:
    """Move the alias and mirror the entry on the registered model, then verify the alias."""
    client.set_registered_model_alias(entry.model_name, entry.alias, entry.version)
    client.set_registered_model_tag(entry.model_name, f"{HISTORY_TAG_PREFIX}{entry.seq:06d}", entry.to_json())
    now = current_version(client, entry.model_name, entry.alias)
    if now != entry.version:
        raise ConcurrentPromotionError(
            f"{entry.model_name}@{entry.alias} points at v{now} right after history entry {entry.seq} "
            f"moved it to v{entry.version}: something outside Conveyor is moving the alias"
        )


def _pending(entries: list[HistoryEntry], champion: str | None, alias: str) -> HistoryEntry | None:
    """The last entry if it was written but its alias move never happened (a crash in between)."""
    mine = [e for e in entries if e.alias == alias]
    if mine and mine[-1].version != champion:
        return mine[-1]
    return None


def _new_entry(
    entries: list[HistoryEntry],
    action: Action,
    name: str,
    alias: str,
    version: str,
    previous: str | None,
    **kw,
) -> HistoryEntry:
    return HistoryEntry(
        seq=(entries[-1].seq if entries else 0) + 1,
        action=action,
        model_name=name,
        alias=alias,
        version=version,
        previous_version=previous,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        token=uuid.uuid4().hex,
        **kw,
    )


def _check_text(reason: str, actor: str) -> None:
    if not reason or not reason.strip():
        raise RegistryError("a reason is required: it goes into the audit trail")
    if not actor or not actor.strip():
        raise RegistryError("an actor is required: it goes into the audit trail")


def promote(
    client: MlflowClient,
    name: str,
    version: str | int,
    *,
    reason: str,
    actor: str,
    expected_champion: str | None,
    key: str | None = None,
    alias: str = CHAMPION,
) -> HistoryEntry:
    """Move ``alias`` to ``version`` if its gate passed and the champion is still ``expected_champion``.

    ``expected_champion`` is the version the caller's decision was based on (the gate's baseline;
    ``None`` = "there is no champion"); if the champion moved since, the promotion is refused.
    Promoting the version that already is champion returns its entry without writing anything,
    so retried or cleared tasks never promote twice. ``key`` (e.g. the Airflow task instance)
    is stored for audit.
    """
    version = str(version)
    _check_text(reason, actor)
    mv = client.get_model_version(name, version)
    status = mv.tags.get(STATUS_TAG)
    if status not in PROMOTABLE:
        raise GateNotPassedError(
            f"{name} v{version} cannot be promoted: its gate status is {status or 'missing'} "
            f"(needs one of {', '.join(PROMOTABLE)}); run the model gate or force it with a reason"
        )
    state = _read(client, name, alias)
    ledger, entries, champion = state.ledger, state.entries, state.champion
    pending = _pending(entries, champion, alias)
    if pending is not None:
        if (
            pending.version == version
            and pending.action == "promote"
            and pending.previous_version == champion
        ):
            _commit(client, pending)  # a crashed earlier attempt of this very promotion: finish it
            return pending
        raise ConcurrentPromotionError(
            f"history entry {pending.seq} ({pending.action} of {name} to v{pending.version} "
            f"by {pending.actor}) "
            f"is recorded but {name}@{alias} still points at v{champion}: that change is in progress or was "
            "interrupted; retry it (it completes) or wait"
        )
    if champion == version:
        done = [e for e in entries if e.alias == alias and e.version == version and e.action == "promote"]
        if done:
            return done[-1]
    if champion != (None if expected_champion is None else str(expected_champion)):
        raise ConcurrentPromotionError(
            f"{name}@{alias} is v{champion} but this promotion expected "
            f"{'no champion' if expected_champion is None else 'v' + str(expected_champion)}: "
            "the champion changed since the gate compared against it; re-run the gate"
        )
    entry = _new_entry(
        entries,
        "promote",
        name,
        alias,
        version,
        champion,
        reason=reason.strip(),
        actor=actor,
        gate_id=mv.tags.get(GATE_ID_TAG),
        gate_status=status,
        key=key,
    )
    _append(client, ledger, entry)
    _commit(client, entry)
    return entry


def rollback(
    client: MlflowClient, name: str, *, reason: str, actor: str, key: str | None = None, alias: str = CHAMPION
) -> HistoryEntry:
    """Put the champion from before the current one back, in one step, and record why.

    With ``key`` (e.g. the Airflow task instance id) a retried rollback returns the entry it wrote
    the first time instead of rolling back a second version.
    """
    _check_text(reason, actor)
    state = _read(client, name, alias)
    ledger, entries, champion = state.ledger, state.entries, state.champion
    if key is not None:
        again = [e for e in entries if e.key == key and e.action == "rollback" and e.alias == alias]
        if again:
            return again[-1]
    if _pending(entries, champion, alias) is not None:
        raise ConcurrentPromotionError(
            f"the last history entry of {name}@{alias} was never applied (alias at v{champion}); "
            "finish that change before rolling back"
        )
    stack = _champion_stack(entries, alias)
    if champion is None:
        raise RegistryError(f"{name} has no {alias}: nothing to roll back")
    if not stack or stack[-1] != champion:
        raise RegistryError(
            f"{name}@{alias} is v{champion} but Conveyor's history does not say how it got there; "
            "refusing to guess the previous version"
        )
    if len(stack) < 2:
        raise RegistryError(
            f"{name}@{alias} v{champion} is the first champion in the history: no earlier version"
        )
    target = stack[-2]
    client.get_model_version(name, target)  # fails clearly if that version was deleted
    entry = _new_entry(
        entries, "rollback", name, alias, target, champion, reason=reason.strip(), actor=actor, key=key
    )
    _append(client, ledger, entry)
    _commit(client, entry)
    client.set_model_version_tag(
        name, champion, "conveyor.rolled_back", f"{entry.at} by {actor}: {entry.reason}"
    )
    return entry
