"""The gateway's state store on both backends it supports: a SQLite file and a real PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.core.rollout import Rollout, RolloutSpec
from conveyor.local.postgres import LocalPostgres
from conveyor.serving.desired import CANARY, STABLE, Desired, Target, can_roll_back, follow
from conveyor.serving.store import Decision, Sample, StaleWrite, StateStore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    server = LocalPostgres(tmp_path_factory.mktemp("pg") / "data").start()
    server.create_database("store_tests")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("postgres").sqlalchemy_url("store_tests")
    opened = StateStore(url)
    yield opened
    with opened.engine.begin() as conn:  # the PostgreSQL database outlives the test
        for table in ("conveyor_deployments", "conveyor_samples", "conveyor_decisions", "conveyor_leases"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    opened.close()


def test_a_write_names_the_generation_it_read_and_a_lost_race_changes_nothing(store: StateStore) -> None:
    assert store.put("flights", {"v": 1}, expected=None) == 1
    with pytest.raises(StaleWrite, match="created meanwhile"):
        store.put("flights", {"v": "other"}, expected=None)
    assert store.put("flights", {"v": 2}, expected=1) == 2
    with pytest.raises(StaleWrite, match="since generation 1"):
        store.put("flights", {"v": "late"}, expected=1)
    record = store.get("flights")
    assert record is not None and (record.generation, record.doc) == (2, {"v": 2})
    with pytest.raises(StaleWrite):
        store.delete("flights", expected=1)
    store.delete("flights", expected=2)
    assert store.get("flights") is None and store.generations() == {}


def test_writers_racing_on_one_generation_get_exactly_one_success(store: StateStore) -> None:
    store.put("flights", {"writer": None}, expected=None)
    barrier, outcomes = threading.Barrier(8), []

    def write(writer: int) -> None:
        barrier.wait()
        try:
            store.put("flights", {"writer": writer}, expected=1)
            outcomes.append(("ok", writer))
        except StaleWrite:
            outcomes.append(("stale", writer))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [w for outcome, w in outcomes if outcome == "ok"]
    assert len(winners) == 1 and len(outcomes) == 8
    assert store.get("flights").doc == {"writer": winners[0]}


def test_the_lease_has_one_holder_until_it_expires(store: StateStore) -> None:
    assert store.lead("a", ttl_s=0.5)
    assert not store.lead("b", ttl_s=0.5)
    assert store.lead("a", ttl_s=0.5)  # renewal
    time.sleep(0.6)
    assert store.lead("b", ttl_s=5)
    assert not store.lead("a", ttl_s=5)
    store.resign("b")
    assert store.lead("a", ttl_s=5)


def test_samples_are_read_by_window_and_decisions_by_row(store: StateStore) -> None:
    def sample(replica: str, at: float, requests: int) -> Sample:
        return Sample("flights", CANARY, "3", replica, at, requests, 0, [0.01] * requests, [0.5], [1.0])

    store.add_samples([sample("r1", 10.0, 1), sample("r2", 11.0, 2), sample("r1", 12.0, 4)])
    window = store.samples("flights", since=10.0, until=12.0)
    assert sorted((s.replica, s.requests) for s in window) == [("r1", 4), ("r2", 2)]
    store.add_decisions([Decision("row-1", "flights", CANARY, "3", 1, 10.0)])
    store.add_decisions([Decision("row-1", "flights", STABLE, "2", 0, 11.0)])  # first answer wins
    assert store.decisions(["row-1", "row-2"]) == {
        "row-1": Decision("row-1", "flights", CANARY, "3", 1, 10.0)
    }
    store.prune(before=11.5)
    assert [s.at for s in store.samples("flights", 0, 100)] == [12.0]
    assert store.decisions(["row-1"]) == {}


def test_replicas_report_what_they_loaded_and_age_out(store: StateStore) -> None:
    store.heartbeat("r1", {"loaded": ["models:/m/1"]})
    store.heartbeat("r1", {"loaded": ["models:/m/1", "models:/m/2"]})
    assert store.replicas(fresh_s=5) == {"r1": {"loaded": ["models:/m/1", "models:/m/2"]}}
    time.sleep(0.3)
    assert store.replicas(fresh_s=0.2) == {}
    store.forget_replica("r1")
    assert store.replicas(fresh_s=5) == {}


def test_an_unknown_backend_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="sqlite:/// or postgresql://"):
        StateStore("mysql://u@h/db")


# ---- the document --------------------------------------------------------------------------------
targets = st.builds(
    Target,
    uri=st.text(min_size=1, max_size=30),
    pinned=st.text(min_size=1, max_size=30),
    version=st.integers(1, 999).map(str),
)
desired_states = st.builds(
    Desired,
    created_at=st.floats(0, 2e9),
    slots=st.dictionaries(st.sampled_from(["stable", "canary", "shadow", "staging"]), targets),
    canary_weight=st.integers(0, 100),
    shadow_fraction=st.floats(0, 1),
    previous=st.none() | targets,
    previous_until=st.none() | st.floats(0, 2e9),
    incoming=st.none() | targets,
    measured_at=st.none() | st.floats(0, 2e9),
    events=st.lists(
        st.fixed_dictionaries({"event": st.text(max_size=10), "reason": st.text(max_size=30)}), max_size=5
    ),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(desired_states)
def test_the_desired_state_survives_the_store_document_unchanged(desired: Desired) -> None:
    assert Desired.from_doc(json.loads(json.dumps(desired.to_doc()))) == desired


def test_a_canary_rollout_moves_slots_through_the_document_and_back_on_rollback() -> None:
    desired = Desired(slots={STABLE: Target("models:/m@champion", "models:/m/1", "1")})
    rollout = Rollout("flights", RolloutSpec("models:/m/2", steps=(10, 50, 100)))
    rollout.start()
    desired.incoming = Target("models:/m/2", "models:/m/2", "2")
    rollout.loaded("2")
    follow(desired, rollout)
    assert desired.slots[CANARY].version == "2" and desired.canary_weight == 10
    assert desired.wanted() == {"models:/m/1", "models:/m/2"}
    restored = Rollout.from_dict(desired.rollout)
    assert restored.to_dict() == rollout.to_dict()
    assert can_roll_back(desired, restored)
    restored.rollback()
    follow(desired, restored)
    assert CANARY not in desired.slots and desired.canary_weight == 0
    assert desired.slots[STABLE].version == "1" and desired.running_rollout() is None
