"""Drift and performance sensors over the inference log (deferrable by default, poke as an option).

While waiting for data a deferred sensor holds no worker slot: ``InferenceLogTrigger`` counts
rows in the triggerer. Once there is enough, the worker runs the check of
``conveyor.core.drift.monitor`` (statistics, MLflow report, Pushgateway) and the task returns its
plain-JSON payload as XCom: ``{"kind", "decision", "reason", "window", "mlflow_run_id", "result", ...}``.

A sensor that cannot read its data fails with the reason (missing or empty log URL, a log file
that is not complete Parquet, a storage error, no reference sample in MLflow); it never reports
"no drift" or "too few rows" for it. Too little traffic before ``timeout`` is the one outcome a
DAG may choose to skip (``on_too_few_rows="skip"``). Airflow's ``soft_fail``/``never_fail``/
``silent_fail`` are refused: they would turn every failure, read errors included, into a skip.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException

from conveyor.triggers.inference_log import InferenceLogTrigger, LogCheck

# A triggerer that never answered: the deferral's own timeout, this much after the trigger's.
DEFERRAL_GRACE_S = 120.0


class _InferenceLogSensor(BaseSensorOperator):
    """Shared waiting logic: window, readiness, defer/poke, re-check until drift or window close.

    :param inference_log_url: fsspec URL of the inference log root (templated).
    :param model_name: registered model (templated).
    :param model_version: version number or alias, e.g. ``champion`` (templated); resolved once.
    :param window_hours: length of the window (templated).
    :param window_end: fixed end of the window (templated, e.g. ``{{ data_interval_end }}``); the
        window then "closes" at that time. ``None`` slides the window with the current time.
    :param min_rows: rows to wait for before testing.
    :param complete_on: ``check`` completes after the first test, whatever it says; ``drift`` keeps
        watching (re-testing after ``recheck_rows`` new rows) until the test fires or the window closes.
    :param deferrable: wait in the triggerer (default) instead of poking from a worker slot.
    :param on_too_few_rows: ``fail`` (default) or ``skip`` when ``timeout`` passes before the
        window holds ``min_rows`` (a quiet signal); read errors always fail.
    """

    template_fields = (
        "inference_log_url",
        "model_name",
        "model_version",
        "window_hours",
        "window_end",
        "slot",
        "pushgateway_url",
    )
    count_kind = "predictions"
    ui_color = "#e4f0e8"

    def __init__(
        self,
        *,
        inference_log_url: str,
        model_name: str,
        model_version: str = "champion",
        window_hours: float = 24.0,
        window_end: str | None = None,
        min_rows: int = 500,
        slot: str | None = "stable",
        complete_on: Literal["check", "drift"] = "check",
        recheck_rows: int | None = None,
        mlflow_conn_id: str = "mlflow_default",
        monitoring_experiment: str = "conveyor-monitoring",
        pushgateway_url: str | None = None,
        storage_options: dict | None = None,
        deferrable: bool = True,
        on_too_few_rows: Literal["fail", "skip"] = "fail",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 60.0)
        super().__init__(**kwargs)
        for flag in ("soft_fail", "never_fail", "silent_fail"):
            if getattr(self, flag, False):
                raise ValueError(
                    f"{flag} would turn a sensor that cannot read its data into a skip (no drift "
                    "reported); use on_too_few_rows='skip' to skip only a quiet window"
                )
        if on_too_few_rows not in ("fail", "skip"):
            raise ValueError(f"on_too_few_rows must be 'fail' or 'skip', got {on_too_few_rows!r}")
        if complete_on not in ("check", "drift"):
            raise ValueError(f"complete_on must be 'check' or 'drift', got {complete_on!r}")
        if min_rows < 1:
            raise ValueError(f"min_rows must be at least 1, got {min_rows}")
        self.inference_log_url = inference_log_url
        self.model_name = model_name
        self.model_version = model_version
        self.window_hours = window_hours
        self.window_end = window_end
        self.min_rows = min_rows
        self.slot = slot
        self.complete_on = complete_on
        self.recheck_rows = recheck_rows or max(1, min_rows // 2)
        self.mlflow_conn_id = mlflow_conn_id
        self.monitoring_experiment = monitoring_experiment
        self.pushgateway_url = pushgateway_url
        self.storage_options = storage_options
        self.deferrable = deferrable
        self.on_too_few_rows = on_too_few_rows
        self._state: dict[str, Any] | None = None
        self._log_check: LogCheck | None = None
        self._last_ready: dict[str, Any] | None = None

    # -- the check itself (subclasses) -------------------------------------------------------
    def _check(self, client: Any, version: str, window: Any) -> dict[str, Any]:
        """Test one window and return the JSON payload; each sensor says what it tests."""
        raise NotImplementedError(f"{type(self).__name__} must implement _check")

    def _kinds_read(self) -> dict[str, bool]:
        """Log kinds the check reads -> whether up to now (labels arrive later) or the window end."""
        return {"predictions": False}

    # -- shared machinery ----------------------------------------------------------------------
    def _check_log(self, kind: str, start: Any, end: Any) -> None:
        """Fail, naming the cause, when the log (root or a file of the window) cannot be read."""
        if self._log_check is None:
            self._log_check = LogCheck(self.inference_log_url, self.storage_options)
        self._log_check.check(kind, start, end)

    def _client(self) -> Any:
        from conveyor.hooks.mlflow import MlflowHook

        return MlflowHook(self.mlflow_conn_id).get_conn()

    def _initial_state(self) -> dict[str, Any]:
        """Resolve the alias and freeze the window end once, so re-checks test the same version."""
        from conveyor.core.gate import resolve_version

        version = resolve_version(self._client(), self.model_name, str(self.model_version))
        if version is None:
            raise AirflowException(
                f"model {self.model_name!r} has no version {self.model_version!r}: "
                "nothing deployed to monitor"
            )
        end = str(self.window_end) if self.window_end not in (None, "", "None") else None
        return {"version": str(version), "window_end": end, "since": None, "min_new_rows": 0}

    def _readiness(self, state: dict[str, Any]) -> dict[str, Any]:
        from conveyor.core.drift.window import RowCounter, Window, readiness

        window = Window.ending(state["window_end"] or _utcnow(), float(self.window_hours))
        self._check_log(self.count_kind, window.start, window.end)

        counter = RowCounter(
            self.inference_log_url,
            self.count_kind,
            state["version"] if self.count_kind == "predictions" else None,
            self.slot if self.count_kind == "predictions" else None,
            self.storage_options,
        )
        self._last_ready = readiness(
            counter,
            window_hours=float(self.window_hours),
            window_end=state["window_end"],
            min_rows=self.min_rows,
            since=state["since"],
            min_new_rows=state["min_new_rows"],
        )
        return self._last_ready

    def _too_few_rows(self, ready: dict[str, Any] | None) -> None:
        """The window stayed too quiet until ``timeout``: skip or fail, as the DAG chose."""
        counted = (
            f"{ready['rows']}/{self.min_rows} rows in {ready['window_start']}..{ready['window_end']}"
            if ready
            else f"fewer than {self.min_rows} rows"
        )
        message = f"{self.task_id}: only {counted} after {self.timeout:.0f}s: too little traffic to test"
        if self.on_too_few_rows == "skip":
            raise AirflowSkipException(message)
        raise AirflowSensorTimeout(message)

    def _evaluate(self, state: dict[str, Any], ready: dict[str, Any]) -> dict[str, Any] | None:
        """Run the check; ``None`` means "keep watching" (complete_on=drift, no drift, window open)."""
        from conveyor.core.drift.window import Window

        window = Window(_ts(ready["window_start"]), _ts(ready["window_end"]))
        self.log.info(
            "checking %s v%s on %s..%s (%d rows%s)",
            self.model_name,
            state["version"],
            window.start,
            window.end,
            ready["rows"],
            ", window closed" if ready["closed"] else "",
        )
        for kind, until_now in self._kinds_read().items():
            self._check_log(kind, window.start, _utcnow() if until_now else window.end)
        payload = self._check(self._client(), state["version"], window)
        self.log.info(
            "decision=%s reason=%s mlflow_run=%s",
            payload["decision"],
            payload["reason"],
            payload["mlflow_run_id"],
        )
        if self.complete_on == "drift" and not payload["decision"] and not ready["closed"]:
            state.update(since=ready["window_end"], min_new_rows=self.recheck_rows)
            return None
        return payload

    def _trigger(self, state: dict[str, Any]) -> InferenceLogTrigger:
        return InferenceLogTrigger(
            log_url=self.inference_log_url,
            window_hours=float(self.window_hours),
            min_rows=self.min_rows,
            kind=self.count_kind,
            window_end=state["window_end"],
            model_version=state["version"] if self.count_kind == "predictions" else None,
            slot=self.slot if self.count_kind == "predictions" else None,
            since=state["since"],
            min_new_rows=state["min_new_rows"],
            poll_interval=float(self.poke_interval),
            storage_options=self.storage_options,
            echo=state,
            give_up_at=(_utcnow() + timedelta(seconds=self.timeout)).isoformat(),
        )

    def _defer(self, state: dict[str, Any]) -> None:
        # The trigger reports a quiet window itself at ``timeout`` (with its counts); the
        # deferral's timeout only catches a triggerer that never answered, and fails.
        self.defer(
            trigger=self._trigger(state),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + max(DEFERRAL_GRACE_S, 2 * self.poke_interval)),
        )

    def execute(self, context: Any) -> Any:
        self._state = self._initial_state()
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout:
                self._too_few_rows(self._last_ready)
        ready = self._readiness(self._state)
        if ready["ready"]:
            payload = self._evaluate(self._state, ready)
            if payload is not None:
                return payload
        self._defer(self._state)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if event.get("status") == "error":
            raise AirflowException(
                f"{self.task_id}: could not read the inference log: {event.get('message')}"
            )
        if event.get("status") == "too_few_rows":
            self._too_few_rows(event)
        state = dict(event["echo"])  # what the trigger waited for: version, window end, re-check point
        payload = self._evaluate(state, event)
        if payload is None:
            self._defer(state)
        return payload

    def poke(self, context: Any) -> PokeReturnValue:
        state = self._state if self._state is not None else self._initial_state()
        self._state = state
        ready = self._readiness(state)
        if not ready["ready"]:
            self.log.info(
                "%d/%d rows in the window, %d new; waiting", ready["rows"], self.min_rows, ready["new_rows"]
            )
            return PokeReturnValue(is_done=False)
        payload = self._evaluate(state, ready)
        return PokeReturnValue(is_done=payload is not None, xcom_value=payload)


def _ts(value: str) -> Any:
    import pandas as pd

    return pd.Timestamp(value)


def _utcnow() -> Any:
    import pandas as pd

    return pd.Timestamp.now(tz="UTC")


class DataDriftSensor(_InferenceLogSensor):
    """Covariate drift of the served inputs against the version's training reference sample.

    :param drift_config: ``conveyor.core.drift.DriftConfig`` fields as a dict (templated), e.g.
        ``{"backend": "scipy"}`` for the permissive backend or ``{"method": "mmd"}``.
    :param max_rows: test only the latest ``max_rows`` rows of the window ("last N rows").
    """

    template_fields = (*_InferenceLogSensor.template_fields, "drift_config")
    template_fields_renderers = {"drift_config": "json"}
    target = "features"

    def __init__(
        self, *, drift_config: dict | None = None, max_rows: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.drift_config = drift_config
        self.max_rows = max_rows

    def _check(self, client: Any, version: str, window: Any) -> dict[str, Any]:
        from conveyor.core.drift import DriftConfig
        from conveyor.core.drift.monitor import drift_check

        return drift_check(
            client,
            model_name=self.model_name,
            model_version=version,
            log_url=self.inference_log_url,
            window=window,
            target=self.target,
            config=DriftConfig.from_dict(self.drift_config),
            slot=self.slot,
            max_rows=self.max_rows,
            experiment=self.monitoring_experiment,
            pushgateway_url=self.pushgateway_url,
            storage_options=self.storage_options,
        )


class PredictionDriftSensor(DataDriftSensor):
    """Label-free concept-drift signal: the distribution of the contract's score column against the
    version's own predictions on its reference sample (a shift with stable inputs points at the
    relation between features and target, or at the model itself)."""

    target = "predictions"


class ModelPerformanceSensor(_InferenceLogSensor):
    """Performance decay on labelled feedback: metrics worse than their thresholds or than the
    training reference, each in its own direction, scored under the version's contract.

    :param thresholds: absolute bounds, a floor where higher is better and a ceiling where lower
        is (``{"roc_auc": 0.6}``, ``{"rmse": 4.0}``; templated). Default: the contract's gate
        thresholds.
    :param tolerance: how much worse than the training run's held-out metrics is allowed.
    :param metrics: what to measure; default the contract's gate metrics.
    :param min_rows: labels to wait for (feedback rows counted in the window).
    :param min_labelled: labelled predictions needed to score; fewer fails the task, never fires.
    """

    template_fields = (*_InferenceLogSensor.template_fields, "thresholds")
    template_fields_renderers = {"thresholds": "json"}
    count_kind = "feedback"

    def __init__(
        self,
        *,
        thresholds: dict[str, float] | None = None,
        tolerance: float = 0.05,
        metrics: tuple[str, ...] | None = None,
        freq: str = "1D",
        min_labelled: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.min_labelled = min_labelled
        self.thresholds = thresholds
        self.tolerance = tolerance
        self.metrics = tuple(metrics) if metrics else None
        self.freq = freq

    def _kinds_read(self) -> dict[str, bool]:
        return {"predictions": False, "feedback": True}

    def _check(self, client: Any, version: str, window: Any) -> dict[str, Any]:
        from conveyor.core.drift.monitor import performance_check

        return performance_check(
            client,
            model_name=self.model_name,
            model_version=version,
            log_url=self.inference_log_url,
            window=window,
            thresholds=self.thresholds,
            tolerance=self.tolerance,
            metrics=self.metrics,
            min_labelled=self.min_labelled,
            slot=self.slot,
            freq=self.freq,
            experiment=self.monitoring_experiment,
            pushgateway_url=self.pushgateway_url,
            storage_options=self.storage_options,
        )
