"""Drift detection behind one small interface: alibi-detect by default, scipy as the permissive option.

``build_detector(reference, config)`` fits a detector, ``detector.check(window)`` returns a
``DriftResult``, ``detector.save(folder)`` / ``load_detector(folder)`` persist it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from conveyor.core.drift.interface import (
    STATE_FILE,
    DriftConfig,
    DriftDetector,
    DriftDetectorLoadError,
    DriftInputError,
    DriftResult,
    FeatureDrift,
    FeatureSchema,
)

__all__ = [
    "DriftConfig",
    "DriftDetector",
    "DriftDetectorLoadError",
    "DriftInputError",
    "DriftResult",
    "FeatureDrift",
    "FeatureSchema",
    "build_detector",
    "detector_class",
    "load_detector",
]


def detector_class(backend: str) -> type[DriftDetector]:
    """The implementation of a backend; alibi-detect is imported only when it is asked for."""
    if backend == "alibi":
        from conveyor.core.drift.alibi import AlibiDriftDetector

        return AlibiDriftDetector
    if backend == "scipy":
        from conveyor.core.drift.scipy_backend import ScipyDriftDetector

        return ScipyDriftDetector
    raise ValueError(f"unknown drift backend {backend!r}: expected 'alibi' or 'scipy'")


def build_detector(
    reference: pd.DataFrame,
    config: DriftConfig | None = None,
    numeric: tuple[str, ...] | list[str] | None = None,
    categorical: tuple[str, ...] | list[str] | None = None,
) -> DriftDetector:
    """Fit a detector on a reference sample; feature kinds are inferred unless named."""
    config = config or DriftConfig()
    return detector_class(config.backend).fit(reference, config, numeric=numeric, categorical=categorical)


def load_detector(path: str | Path) -> DriftDetector:
    """Read a folder written by ``DriftDetector.save``; any failure is a ``DriftDetectorLoadError``."""
    folder = Path(path)
    state_file = folder / STATE_FILE
    if not state_file.is_file():
        raise DriftDetectorLoadError(f"no drift detector at {folder}: {STATE_FILE} is missing")
    try:
        state = json.loads(state_file.read_text())
        config = DriftConfig.from_dict(state["config"])
        schema = FeatureSchema.from_dict(state["schema"])
        return detector_class(state["backend"]).restore(folder, schema, config)
    except DriftDetectorLoadError:
        raise
    except Exception as exc:
        raise DriftDetectorLoadError(
            f"drift detector at {folder} failed to load ({type(exc).__name__}: {exc}); rebuild it from the "
            "model's reference sample"
        ) from exc
