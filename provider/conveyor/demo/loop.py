"""The story the demo tells, step by step, through Airflow's REST API, the gateway and MLflow.

1. ``ml_ci`` trains on 2013-01..03; its Asset event starts ``ml_cd``, which deploys the first
   version (approved through the HITL API) and makes it champion.
2. Real April flights flow through the gateway, their labels a few seconds later.
3. A candidate trained on shuffled labels (the champion's data and settings, the labels
   permuted): the model gate rejects it (ROC AUC below the floor, ROC AUC and log loss worse than
   the champion's), ``ml_cd`` never runs.
4. A candidate with a mis-set decision threshold (0.01: every flight "delayed"): the champion's
   weights, so ROC AUC and log loss equal the champion's, and its F1 stays within the gate's
   margin, so the gate passes it; but its decisions are wrong, the canary's online balanced
   accuracy on labelled live traffic (exactly 0.5, chance) catches it and the gateway rolls it back by itself.
5. ``ml_monitor`` finds the April data drift, asks ``ml_ci`` to retrain on April; traffic moves
   on to May (flights no model has seen), and the new version canaries in and becomes champion.

Every result shown comes from the system (task states, registry tags, the gateway's rollout
record), not from what the demo expected; the summary marks where the two differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.clients.airflow import AirflowClient
from conveyor.clients.gateway import GatewayClient
from conveyor.demo import airflow_runs
from conveyor.demo.airflow_runs import FinishedRun
from conveyor.demo.report import Outcome, Progress, StepFailed
from conveyor.demo.stack import DEPLOYMENT, DemoStack
from conveyor.local.replay import Replay

DAGS = ("ml_ci", "ml_cd", "ml_monitor")


def rollback_result(rollout_state: str | None, run_state: str) -> str:
    """The summary's words for a canary that should roll back: the rollout and the run's colour."""
    if rollout_state == "rolled_back":
        return f"rolled back: run {run_state}" + (" as expected" if run_state == "failed" else "")
    return f"rollout {rollout_state}, run {run_state}"


@dataclass(frozen=True)
class Settings:
    """The demo's knobs, chosen so the loop fits in minutes on two busy cores.

    ``max_rows`` caps the labelled rows of each ``ml_ci`` training it starts (the held-out
    evaluation set is 15% of them) and ``max_epochs`` its epochs (early stopping may end sooner);
    the retraining that ``ml_monitor`` requests uses the DAG's defaults: all rows of the month.
    """

    model_name: str = "flight_delays"
    deployment: str = DEPLOYMENT
    train_partitions: str = "2013-01,2013-02,2013-03"
    traffic_month: str = "2013-04"
    # After the retraining request, time moves on: the new model is judged on flights it never saw.
    next_month: str = "2013-05"
    max_rows: int = 6000
    max_epochs: int = 8
    # Below every probability the model gives: each flight answered "delayed". Its online
    # balanced accuracy is exactly 0.5 whatever labels the canary gets, against about 0.59 for
    # the champion's chosen threshold on April (0.05 allowed). A too-high one (0.99) fails the
    # gate instead: its F1 of 0 is below the floor.
    bad_threshold: float = 0.01
    traffic_rows: int = 6000
    # Enough that the canary's 10% step gets 30+ labelled rows per 15 s analysis interval.
    rate: float = 40.0
    feedback_delay_s: float = 3.0
    run_timeout_s: float = 900.0


class DemoLoop:
    def __init__(self, stack: DemoStack, settings: Settings, progress: Progress) -> None:
        self.stack = stack
        self.s = settings
        self.p = progress
        self.af: AirflowClient = stack.airflow.client(timeout=60.0)
        self.gw: GatewayClient = stack.gateway.client()
        self.replay: Replay | None = None
        self.replay_month_name = ""
        self.ml_ci_params: set[str] = set()
        self._client: Any = None

    # ---- helpers ------------------------------------------------------------------------------
    def _mlflow(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(
                tracking_uri=self.stack.mlflow.url, registry_uri=self.stack.mlflow.url
            )
        return self._client

    def champion(self) -> str | None:
        from mlflow.exceptions import MlflowException

        from conveyor.core.registry import current_version

        try:
            return current_version(self._mlflow(), self.s.model_name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":  # nothing registered yet
                return None
            raise

    def gate_record(self, version: str) -> tuple[str, str]:
        """The gate's verdict as recorded on the model version (the audit trail, not an XCom), its
        reason led by what the gate reports the candidate ships (its decision threshold)."""
        from conveyor.core.gate import REASON_TAG, REPORT_TAG, STATUS_TAG

        tags = self._mlflow().get_model_version(self.s.model_name, version).tags
        reason = tags.get(REASON_TAG, "")
        if tags.get(REPORT_TAG):
            reason = f"[{tags[REPORT_TAG]}] {reason}"
        return tags.get(STATUS_TAG, "no gate record"), reason

    def stable_version(self) -> str | None:
        if not self.gw.exists(self.s.deployment):
            return None
        return self.gw.deployment(self.s.deployment)["slots"]["stable"]["model_version"]

    def ml_ci_conf(self, partitions: str, **params: Any) -> dict[str, Any]:
        """The ``ml_ci`` run conf: the DAG's params (the UI's trigger form), never Kedro internals."""
        conf = {
            "partitions": partitions,
            "max_rows": self.s.max_rows,
            "max_epochs": self.s.max_epochs,
            **params,
        }
        unknown = sorted(set(conf) - self.ml_ci_params)
        if unknown:
            raise StepFailed(f"ml_ci has no param(s) {unknown}; its params: {sorted(self.ml_ci_params)}")
        return conf

    def run_ml_ci(self, conf: dict[str, Any], note: str) -> tuple[FinishedRun, str | None]:
        """Trigger ml_ci and follow it; returns the run and the version it registered."""
        run = self.af.trigger_dag_run("ml_ci", conf, note=note)
        self.p.note(f"ml_ci run {run['dag_run_id']} triggered: {note}")
        done = airflow_runs.follow(
            self.af, "ml_ci", run["dag_run_id"], self.p.note, timeout=self.s.run_timeout_s
        )
        return done, self.trained_version(done)

    def trained_version(self, run: FinishedRun) -> str | None:
        trained = airflow_runs.xcom(self.af, "ml_ci", run.run_id, "train") or {}
        version = trained.get("model_version")
        return None if version is None else str(version)

    def follow_ml_cd(self, known: set[str]) -> FinishedRun:
        run = airflow_runs.next_run(self.af, "ml_cd", known, self.p.note)
        return airflow_runs.follow(
            self.af, "ml_cd", run["dag_run_id"], self.p.note, timeout=self.s.run_timeout_s
        )

    def rollout(self) -> dict[str, Any]:
        return self.gw.deployment(self.s.deployment).get("rollout") or {}

    # ---- the story ----------------------------------------------------------------------------
    def run(self) -> list[Outcome]:
        steps: list[tuple[str, Callable[[], None], bool]] = [
            ("DAGs parsed, ml_ci and ml_cd unpaused", self.prepare, True),
            (f"ml_ci trains on {self.s.train_partitions}, ml_cd deploys it", self.first_model, True),
            (f"replay {self.s.traffic_month} flights through the gateway", self.start_traffic, True),
            ("bad candidate: trained on shuffled labels", self.rejected_candidate, False),
            ("bad candidate: mis-set decision threshold", self.canary_rolled_back, False),
            ("drift -> retrain -> canary", self.drift_and_retrain, False),
        ]
        try:
            for title, step, essential in steps:
                began = time.monotonic()
                try:
                    with self.p.step(title):
                        step()
                # Any error ends the step, not the demo: the summary and the URLs still show
                # what happened, and the services stay up to look into it.
                except Exception as exc:
                    detail = str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}"
                    self.p.record(
                        Outcome(title, "failed", False, detail=detail, seconds=time.monotonic() - began)
                    )
                    if essential:
                        break
        finally:
            self.stop_traffic()
        return self.p.outcomes

    def prepare(self) -> None:
        for dag_id in DAGS:
            self.af.wait_for_dag(dag_id, timeout=180)
        self.ml_ci_params = set(self.af.dag_details("ml_ci").get("params") or {})
        for dag_id in ("ml_ci", "ml_cd"):
            self.af.unpause_dag(dag_id)
        self.p.note(f"ml_ci params: {', '.join(sorted(self.ml_ci_params))}")

    def first_model(self) -> None:
        began = time.monotonic()
        known_cd = airflow_runs.run_ids(self.af, "ml_cd")
        conf = self.ml_ci_conf(self.s.train_partitions)
        ci, version = self.run_ml_ci(
            conf, f"the first model, {self.s.max_rows} rows of {self.s.train_partitions}"
        )
        if ci.state != "success" or version is None:
            raise StepFailed(f"ml_ci ended {ci.state} with tasks {ci.tasks}")
        status, reason = self.gate_record(version)
        self.p.record(
            Outcome(
                "train + gate", f"gate {status}", status == "passed", f"v{version}", reason[:200], ci.seconds
            )
        )
        cd = self.follow_ml_cd(known_cd)
        stable, champion = self.stable_version(), self.champion()
        self.p.record(
            Outcome(
                "first deployment",
                f"ml_cd {cd.state}",
                cd.state == "success" and stable == version == champion,
                f"v{stable}",
                f"gateway stable v{stable}, champion v{champion}",
                time.monotonic() - began,
            )
        )
        if stable != version:
            raise StepFailed(f"the gateway serves v{stable}, not the trained v{version}")

    def start_traffic(self) -> None:
        self.replay_month(self.s.traffic_month)

    def replay_month(self, month: str) -> None:
        """Replace the traffic with ``month``'s flights (looping) and wait until they flow."""
        from conveyor.demo.traffic import feature_columns, flights_traffic

        self.stop_traffic()
        rows = flights_traffic(month, max_rows=self.s.traffic_rows)
        self.replay = Replay(
            self.stack.gateway.url,
            rows,
            features=feature_columns(),
            label="delayed",
            deployment=self.s.deployment,
            rate=self.s.rate,
            feedback_delay_s=self.s.feedback_delay_s,
            repeat=True,
        ).start()
        self.replay_month_name = month
        stats = self.replay.wait_for(int(self.s.rate * 4), timeout=120)
        self.p.note(
            f"{len(rows)} real {month} flights at {self.s.rate:.0f}/s, looping; "
            f"labels {self.s.feedback_delay_s:.0f}s after each answer"
        )
        self.p.record(Outcome(f"traffic {month}", "flowing", stats.failed == 0, detail=stats.summary()))

    def stop_traffic(self) -> None:
        if self.replay is not None:
            stats = self.replay.stop()
            self.p.record(
                Outcome(
                    f"traffic {self.replay_month_name} total",
                    "stopped",
                    stats.failed == 0,
                    detail=stats.summary(),
                )
            )
            self.replay = None

    def rejected_candidate(self) -> None:
        champion_before = self.champion()
        known_cd = airflow_runs.run_ids(self.af, "ml_cd")
        # The champion's data and settings; only the labels are permuted (ml_ci's numeric field: 1).
        conf = self.ml_ci_conf(self.s.train_partitions, shuffle_labels=1)
        ci, version = self.run_ml_ci(conf, "a candidate trained on shuffled labels")
        if version is None:
            raise StepFailed(f"ml_ci registered no version (run {ci.state}, tasks {ci.tasks})")
        status, reason = self.gate_record(version)
        time.sleep(10)  # an Asset event, had there been one, starts ml_cd within seconds
        new_cd = airflow_runs.run_ids(self.af, "ml_cd") - known_cd
        champion = self.champion()
        self.p.record(
            Outcome(
                "shuffled-label candidate",
                f"gate {status}",
                status == "rejected" and not new_cd and champion == champion_before,
                f"v{version}",
                f"{reason[:200]}; ml_cd runs started: {len(new_cd)}; champion still v{champion}",
                ci.seconds,
            )
        )

    def canary_rolled_back(self) -> None:
        champion_before, stable_before = self.champion(), self.stable_version()
        known_cd = airflow_runs.run_ids(self.af, "ml_cd")
        # The champion's data and settings, only the threshold differs: the same weights, the same
        # AUC and log loss; the forced threshold overrides the one training would choose.
        conf = self.ml_ci_conf(self.s.train_partitions, decision_threshold=self.s.bad_threshold)
        began = time.monotonic()
        ci, version = self.run_ml_ci(conf, f"a candidate with decision threshold {self.s.bad_threshold}")
        if version is None:
            raise StepFailed(f"ml_ci registered no version (run {ci.state}, tasks {ci.tasks})")
        status, reason = self.gate_record(version)
        self.p.record(
            Outcome(
                f"threshold {self.s.bad_threshold}: gate",
                f"gate {status}",
                status == "passed",
                f"v{version}",
                reason[:200],
                ci.seconds,
            )
        )
        if status != "passed":
            return
        cd = self.follow_ml_cd(known_cd)
        rollout = self.rollout()
        last = (rollout.get("transitions") or [{}])[-1].get("reason", "")
        stable, champion = self.stable_version(), self.champion()
        restored = stable == stable_before and champion == champion_before
        rolled_back = rollout.get("state") == "rolled_back"
        # A rolled-back canary is a failed ml_cd run (red, alerting fires) whose restore succeeded:
        # the expected outcome here, never reported as a success.
        ok = rolled_back and restored and cd.state == "failed"
        self.p.record(
            Outcome(
                f"threshold {self.s.bad_threshold}: canary",
                rollback_result(rollout.get("state"), cd.state),
                ok and cd.task_state("restore_champion") == "success",
                f"v{version}",
                f"rollout task {cd.task_state('rollout')}, restore_champion "
                f"{cd.task_state('restore_champion')}; {last[:160]}; stable v{stable}, "
                f"champion v{champion}",
                time.monotonic() - began,
            )
        )

    def drift_and_retrain(self) -> None:
        began = time.monotonic()
        known = {dag: airflow_runs.run_ids(self.af, dag) for dag in DAGS}
        self.af.unpause_dag("ml_monitor")
        self.p.note("ml_monitor unpaused: the scheduler starts its hourly run now")
        monitor = airflow_runs.next_run(self.af, "ml_monitor", known["ml_monitor"], self.p.note)
        done = airflow_runs.follow(
            self.af, "ml_monitor", monitor["dag_run_id"], self.p.note, timeout=self.s.run_timeout_s
        )
        # One monitoring pass is the demo; the next hourly run would start another retraining.
        self.af.set_paused("ml_monitor", True)
        drift = airflow_runs.xcom(self.af, "ml_monitor", done.run_id, "data_drift") or {}
        perf = airflow_runs.xcom(self.af, "ml_monitor", done.run_id, "model_performance") or {}
        request = airflow_runs.xcom(self.af, "ml_monitor", done.run_id, "retrain_request") or {}
        self.p.record(
            Outcome(
                "monitor",
                f"drift {drift.get('decision')}, decay {perf.get('decision')}",
                bool(request),
                f"v{drift.get('model_version', '?')}",
                f"{(request.get('reason') or drift.get('reason') or 'no retraining requested')[:160]}; "
                f"partitions {request.get('partitions')}",
                done.seconds,
            )
        )
        if done.task_state("trigger_ml_ci") != "success":
            self.p.note(f"ml_monitor did not trigger ml_ci; its tasks ended {done.tasks}")
            return
        self.replay_month(self.s.next_month)
        ci_run = airflow_runs.next_run(self.af, "ml_ci", known["ml_ci"], self.p.note)
        ci = airflow_runs.follow(
            self.af, "ml_ci", ci_run["dag_run_id"], self.p.note, timeout=self.s.run_timeout_s
        )
        version = self.trained_version(ci)
        if version is None:
            raise StepFailed(f"the retraining ml_ci run registered no version ({ci.state}, {ci.tasks})")
        status, reason = self.gate_record(version)
        self.p.record(
            Outcome(
                "retrain: gate", f"gate {status}", status == "passed", f"v{version}", reason[:200], ci.seconds
            )
        )
        if status != "passed":
            return
        cd = self.follow_ml_cd(known["ml_cd"])
        rollout = self.rollout()
        stable, champion = self.stable_version(), self.champion()
        last = (rollout.get("transitions") or [{}])[-1].get("reason", "")
        self.p.record(
            Outcome(
                "retrain: canary",
                f"rollout {rollout.get('state')}",
                rollout.get("state") == "succeeded" and stable == version == champion,
                f"v{version}",
                f"rollout task {cd.task_state('rollout')}; {last[:120]}; stable v{stable}, "
                f"champion v{champion}",
                time.monotonic() - began,
            )
        )
