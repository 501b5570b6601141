"""The gateway's state store: what every replica should serve, and what each one saw.

One database holds the desired state of each deployment (slots, weights, the rollout with its
transition history) as a JSON document with a ``generation`` column, the way Kubernetes keeps a
``resourceVersion``: every write names the generation it read, and a write that lost a race is
refused (``StaleWrite`` -> HTTP 409) instead of silently overwriting the winner. The same
database carries what the control plane needs from the data plane: per-slot analysis samples
from every replica (so a canary is judged on all of its traffic), the decisions that labels are
matched to, replica heartbeats with what each one has loaded, and the controller's lease.

SQLite is the embedded default (one ``conveyor serve``); PostgreSQL is the store for several
replicas and a controller on other hosts. Both go through SQLAlchemy Core with the same tables.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

_meta = sa.MetaData()

deployments = sa.Table(
    "conveyor_deployments",
    _meta,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("doc", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
samples = sa.Table(
    "conveyor_samples",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment", sa.String(63), nullable=False),
    sa.Column("slot", sa.String(16), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("replica", sa.String(128), nullable=False),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("errors", sa.Integer, nullable=False),
    sa.Column("latencies_s", sa.JSON, nullable=False),
    sa.Column("scores", sa.JSON, nullable=False),
    sa.Column("online", sa.JSON, nullable=False),
)
decisions = sa.Table(
    "conveyor_decisions",
    _meta,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("deployment", sa.String(63), nullable=False),
    sa.Column("slot", sa.String(16), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("decision", sa.JSON),
    sa.Column("at", sa.Float, nullable=False, index=True),
)
replicas = sa.Table(
    "conveyor_replicas",
    _meta,
    sa.Column("replica", sa.String(128), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False),
    sa.Column("observed", sa.JSON, nullable=False),
)
leases = sa.Table(
    "conveyor_leases",
    _meta,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)


class StaleWrite(Exception):
    """The deployment changed (or appeared, or went) since the caller read it."""


@dataclass(frozen=True)
class Record:
    name: str
    generation: int
    doc: dict[str, Any]


@dataclass(frozen=True)
class Sample:
    """What one replica's slot did between two flushes."""

    deployment: str
    slot: str
    model_version: str
    replica: str
    at: float
    requests: int
    errors: int
    latencies_s: list[float]
    scores: list[float]
    online: list[float]


@dataclass(frozen=True)
class Decision:
    request_id: str
    deployment: str
    slot: str
    model_version: str
    decision: Any
    at: float


class StateStore:
    """Short transactions only: every call is one round trip a replica can afford each second."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = sa.engine.make_url(url).get_backend_name()
        if self.kind not in ("sqlite", "postgresql"):
            raise ValueError(f"the gateway store is sqlite:/// or postgresql://, got {self.kind}://")
        self._scratch: tempfile.TemporaryDirectory | None = None
        if self.kind == "sqlite" and sa.engine.make_url(url).database in (None, "", ":memory:"):
            # No file named (an embedded gateway, tests): a private file that goes with the store.
            # Not SQLite's :memory:, whose one connection cannot serve the gateway's threads at once.
            self._scratch = tempfile.TemporaryDirectory(prefix="conveyor-store-")
            url = f"sqlite:///{Path(self._scratch.name) / 'state.db'}"
        if self.kind == "sqlite":
            self.engine = sa.create_engine(url, connect_args={"timeout": 10})
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)
        _meta.create_all(self.engine, checkfirst=True)

    def close(self) -> None:
        self.engine.dispose()
        if self._scratch is not None:
            self._scratch.cleanup()

    # ---- desired state ---------------------------------------------------------------------------
    def load(self) -> dict[str, Record]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(deployments.c.name, deployments.c.generation, deployments.c.doc))
            return {name: Record(name, generation, doc) for name, generation, doc in rows}

    def generations(self) -> dict[str, int]:
        """Name -> generation: the cheap poll by which replicas notice a change."""
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(deployments.c.name, deployments.c.generation)).all())

    def get(self, name: str) -> Record | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(deployments.c.generation, deployments.c.doc).where(deployments.c.name == name)
            ).first()
        return None if row is None else Record(name, row.generation, row.doc)

    def put(self, name: str, doc: Mapping[str, Any], expected: int | None) -> int:
        """Write ``doc`` if the stored generation is still ``expected`` (None: the name is new).

        Returns the new generation; a lost race raises ``StaleWrite`` and changes nothing.
        """
        now = time.time()
        with self.engine.begin() as conn:
            if expected is None:
                try:
                    conn.execute(
                        deployments.insert().values(name=name, generation=1, doc=doc, updated_at=now)
                    )
                except IntegrityError:
                    raise StaleWrite(f"deployment '{name}' was created meanwhile") from None
                return 1
            done = conn.execute(
                deployments.update()
                .where(deployments.c.name == name, deployments.c.generation == expected)
                .values(generation=expected + 1, doc=doc, updated_at=now)
            )
            if done.rowcount != 1:
                raise StaleWrite(f"deployment '{name}' changed since generation {expected}")
        return expected + 1

    def delete(self, name: str, expected: int) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                deployments.delete().where(deployments.c.name == name, deployments.c.generation == expected)
            )
            if done.rowcount != 1:
                raise StaleWrite(f"deployment '{name}' changed since generation {expected}")

    # ---- what the data plane saw -----------------------------------------------------------------
    def add_samples(self, rows: Iterable[Sample]) -> None:
        values = [row.__dict__ for row in rows]
        if values:
            with self.engine.begin() as conn:
                conn.execute(samples.insert(), values)

    def samples(self, deployment: str, since: float, until: float) -> list[Sample]:
        """Every replica's samples of ``deployment`` flushed in ``(since, until]``."""
        query = sa.select(*[samples.c[f] for f in Sample.__dataclass_fields__]).where(
            samples.c.deployment == deployment, samples.c.at > since, samples.c.at <= until
        )
        with self.engine.connect() as conn:
            return [Sample(**row._mapping) for row in conn.execute(query)]

    def add_decisions(self, rows: Iterable[Decision]) -> None:
        values = [row.__dict__ for row in rows]
        if not values:
            return
        with self.engine.begin() as conn:
            if self.kind == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            conn.execute(insert(decisions).on_conflict_do_nothing(index_elements=["request_id"]), values)

    def decisions(self, request_ids: list[str]) -> dict[str, Decision]:
        """The decisions answered for these rows by any replica (labels arrive anywhere)."""
        found: dict[str, Decision] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(request_ids), 500):
                chunk = request_ids[start : start + 500]
                query = sa.select(*[decisions.c[f] for f in Decision.__dataclass_fields__]).where(
                    decisions.c.request_id.in_(chunk)
                )
                found.update({row.request_id: Decision(**row._mapping) for row in conn.execute(query)})
        return found

    def prune(self, before: float) -> None:
        """Samples and decisions older than any analysis window still open are of no further use."""
        with self.engine.begin() as conn:
            conn.execute(samples.delete().where(samples.c.at < before))
            conn.execute(decisions.delete().where(decisions.c.at < before))

    # ---- replicas and the controller's lease -----------------------------------------------------
    def heartbeat(self, replica: str, observed: Mapping[str, Any]) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            done = conn.execute(
                replicas.update().where(replicas.c.replica == replica).values(seen_at=now, observed=observed)
            )
            if done.rowcount == 0:
                conn.execute(replicas.insert().values(replica=replica, seen_at=now, observed=observed))

    def replicas(self, fresh_s: float) -> dict[str, dict[str, Any]]:
        """Replica -> what it has loaded, for those heard from in the last ``fresh_s`` seconds."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(replicas.c.replica, replicas.c.observed).where(
                    replicas.c.seen_at >= time.time() - fresh_s
                )
            )
            return {replica: observed for replica, observed in rows}

    def forget_replica(self, replica: str) -> None:
        """A replica shutting down cleanly leaves at once instead of after its heartbeat ages out."""
        with self.engine.begin() as conn:
            conn.execute(replicas.delete().where(replicas.c.replica == replica))

    def lead(self, holder: str, ttl_s: float) -> bool:
        """Take or renew the controller lease; True while ``holder`` leads.

        A lease (as Kubernetes leader election keeps one) works the same on SQLite and
        PostgreSQL; a leader that dies is replaced once its lease expires.
        """
        now = time.time()
        with self.engine.begin() as conn:
            done = conn.execute(
                leases.update()
                .where(leases.c.name == "controller")
                .where(sa.or_(leases.c.holder == holder, leases.c.expires_at < now))
                .values(holder=holder, expires_at=now + ttl_s)
            )
            if done.rowcount == 1:
                return True
            try:
                with conn.begin_nested():
                    conn.execute(
                        leases.insert().values(name="controller", holder=holder, expires_at=now + ttl_s)
                    )
            except IntegrityError:
                return False
            return True

    def resign(self, holder: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(leases.delete().where(leases.c.name == "controller", leases.c.holder == holder))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets replicas poll while a writer commits; a busy database waits instead of failing.

    ``synchronous=NORMAL`` (SQLite's advice for WAL): a commit survives the process being killed,
    only the last ones may be lost to a power cut, and heartbeats and samples cost no fsync each.
    """
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
