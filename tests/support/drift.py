"""A real drift check recorded the way the monitoring sensors record it, for tests of its readers."""

from __future__ import annotations

from typing import Any


def record_drift_check(client: Any, model_name: str, model_version: str) -> Any:
    """scipy backend, a warm window against a cold reference: ``temp`` drifts, ``distance`` does not.

    Returns the ``DriftResult``; the check lands in the ``conveyor-monitoring`` experiment with its
    JSON report and per-feature plot, exactly where notebooks and the panel look for it.
    """
    import numpy as np
    import pandas as pd

    from conveyor.core.drift import DriftConfig, build_detector
    from conveyor.core.drift.monitor import DATA_DRIFT, record_run
    from conveyor.core.drift.report import plot_feature_drift
    from conveyor.core.drift.window import Window

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"temp": rng.normal(35, 8, 2000), "distance": rng.normal(1000, 300, 2000)})
    window = pd.DataFrame({"temp": rng.normal(60, 8, 500), "distance": rng.normal(1000, 300, 500)})
    detector = build_detector(reference, DriftConfig(backend="scipy"))
    result = detector.check(window)
    record_run(
        client,
        kind=DATA_DRIFT,
        model_name=model_name,
        model_version=str(model_version),
        window=Window.ending("2013-04-30T00:00:00Z", hours=24),
        decision=result.is_drift,
        metrics={"drift_share": result.drift_share},
        report=result.to_dict(),
        figures={"feature_drift.png": plot_feature_drift(detector, window, result)},
    )
    return result
