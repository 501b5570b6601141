"""A registered MLflow model loaded, warmed and wrapped for batched prediction on plain columns."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from conveyor.core.contract import ModelContract
from conveyor.serving.schema import Columns, InputSchema, frame_without_schema

log = logging.getLogger(__name__)

_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class ModelLoadError(RuntimeError):
    """The model could not be loaded or did not answer its warm-up request."""


@dataclass
class BatchOutput:
    """Predictions of one micro-batch as columns, so each request takes a slice without pandas."""

    columns: list[str] | None  # None: the model returned one value (or list) per row
    values: list[list[Any]]  # one list per column, or [per_row_values] when columns is None

    @classmethod
    def from_prediction(cls, prediction: Any, rows: int) -> BatchOutput:
        if isinstance(prediction, pd.DataFrame):
            out = cls(
                list(map(str, prediction.columns)), [prediction[c].tolist() for c in prediction.columns]
            )
        elif isinstance(prediction, pd.Series | np.ndarray):
            out = cls(None, [prediction.tolist()])
        elif isinstance(prediction, list):
            out = cls(None, [prediction])
        else:
            raise TypeError(
                f"the model returned {type(prediction).__name__}; the gateway serves row-wise outputs"
            )
        if any(len(col) != rows for col in out.values):
            raise ValueError(f"the model returned {len(out.values[0])} predictions for {rows} rows")
        return out

    def slice(self, start: int, stop: int) -> BatchOutput:
        return BatchOutput(self.columns, [col[start:stop] for col in self.values])

    def records(self) -> list[Any]:
        """Rows as the MLflow scoring server writes them (DataFrame outputs as records)."""
        if self.columns is None:
            return self.values[0]
        return [dict(zip(self.columns, row, strict=True)) for row in zip(*self.values, strict=True)]

    def column(self, name: str) -> list[Any] | None:
        if self.columns is None:
            return None
        try:
            return self.values[self.columns.index(name)]
        except ValueError:
            return None

    def scores(self, contract: ModelContract | None) -> list[float]:
        """The number that metrics, analysis and drift watch: the contract's score column, or
        the output itself when a model without a contract returns one value per row."""
        if contract is not None:
            values = self.column(contract.outputs.score)
        else:
            values = None if self.columns else self.values[0]
        if values is None:
            return []
        return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]

    def decisions(self, contract: ModelContract | None) -> list[Any]:
        """What is compared with the truth and between versions (online metric, shadow
        agreement): the decision column of a classifier (a binary one without it: score >= 0.5),
        the predicted value of a regressor; nothing without a contract."""
        if contract is None:
            return []
        if contract.outputs.decision is not None:
            return self.column(contract.outputs.decision) or []
        scores = self.scores(contract)
        return [int(s >= 0.5) for s in scores] if contract.task == "binary_classification" else scores

    def as_log_columns(self) -> dict[str, list[Any]]:
        if self.columns is None:
            return {"prediction": self.values[0]}
        return dict(zip(self.columns, self.values, strict=True))


def resolve(uri: str) -> tuple[str, str, str]:
    """``(model name, version, immutable uri)`` for a registry URI; aliases are resolved now.

    Loading the resolved version (not the alias) means that an alias moved during the load
    cannot hand us a different version than the one we report.
    """
    from mlflow import MlflowClient

    match = _REGISTRY_URI.match(uri)
    if match is None:
        return "", uri, uri
    name, alias, version = match["name"], match["alias"], match["version"]
    if alias:
        version = MlflowClient().get_model_version_by_alias(name, alias).version
    return name, str(version), f"models:/{name}/{version}"


@dataclass
class LoadedModel:
    uri: str
    name: str
    version: str
    pyfunc: Any
    schema: InputSchema | None
    contract: ModelContract | None = None
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0

    @classmethod
    def load(cls, uri: str) -> LoadedModel:
        """Load by registry URI and answer one warm-up request; any failure is a ``ModelLoadError``.

        A registered version brings its contract (what its score and decision are); one without
        is refused, since its metrics, canary analysis and monitoring would guess. Other URIs
        (``runs:/``, paths) are served without one: predictions only, no score metrics.
        """
        import mlflow.pyfunc
        from mlflow import MlflowClient

        from conveyor.core.contract import version_contract

        started = time.perf_counter()
        try:
            name, version, resolved = resolve(uri)
            contract = version_contract(MlflowClient(), name, version) if name else None
            pyfunc = mlflow.pyfunc.load_model(resolved)
            schema = InputSchema.from_mlflow(pyfunc.metadata.get_input_schema())
            model = cls(uri=uri, name=name, version=version, pyfunc=pyfunc, schema=schema, contract=contract)
            model.warm_up()
        except Exception as exc:
            raise ModelLoadError(f"cannot load {uri}: {type(exc).__name__}: {exc}") from exc
        model.load_seconds = time.perf_counter() - started
        log.info("loaded %s (version %s) in %.2fs", uri, version, model.load_seconds)
        return model

    @cached_property
    def fast(self) -> bool:
        """Our signature check already did MLflow's enforcement; call the implementation directly."""
        meta = self.pyfunc.metadata
        return (
            self.schema is not None
            and meta.get_params_schema() is None
            and not meta._is_signature_from_type_hint()
            and hasattr(self.pyfunc._model_impl, "predict")
        )

    def warm_up(self) -> None:
        """First predictions pay lazy imports and allocations; pay them before traffic arrives.

        The logged input example must score (a model that cannot answer its own example is not
        servable); a made-up row is only a best effort, since it may hold unseen categories.
        """
        example = self.pyfunc.input_example
        if isinstance(example, pd.DataFrame) and len(example):
            head = example.head(2)
            self.predict_columns({str(c): head[c].tolist() for c in head.columns}, len(head))
        elif self.schema is not None:
            try:
                self.predict_columns({f.name: [_placeholder(f.type)] for f in self.schema.fields}, 1)
            except Exception as exc:  # a warm-up on invented data may legitimately fail
                log.warning("warm-up of %s on a placeholder row failed: %s", self.uri, exc)

    def predict_frame(self, frame: pd.DataFrame) -> BatchOutput:
        prediction = self.pyfunc._model_impl.predict(frame) if self.fast else self.pyfunc.predict(frame)
        return BatchOutput.from_prediction(prediction, len(frame))

    def predict_columns(self, columns: Columns, rows: int) -> BatchOutput:
        frame = self.schema.frame(columns, rows) if self.schema is not None else frame_without_schema(columns)
        return self.predict_frame(frame)

    def describe(self) -> dict[str, Any]:
        return {
            "model_uri": self.uri,
            "model_name": self.name,
            "model_version": self.version,
            "loaded_at": self.loaded_at,
            "load_seconds": round(self.load_seconds, 3),
            "fast_path": self.fast,
            "task": self.contract.task if self.contract else None,
            "inputs": [f.__dict__ for f in self.schema.fields] if self.schema else None,
        }


def _placeholder(type_name: str) -> Any:
    return {"string": "x", "boolean": False, "long": 0, "integer": 0}.get(type_name, 0.0)
