"""The ``DriftDetector`` interface, its configuration and the one result shape every backend returns.

Backends differ in licence and in the tests they offer (alibi-detect is BSL-licensed, the scipy
backend is permissive), so everything a caller relies on lives here: input validation (an unusable
window must raise, never look like drift and trigger a retrain), categorical encoding against the
reference, multiple-testing correction, and a JSON-plain result for XCom, MLflow and Prometheus.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from conveyor.core import atomic

NUMERIC = "numeric"
CATEGORICAL = "categorical"
UNSEEN = "__unseen__"
STATE_FILE = "conveyor_drift.json"
REFERENCE_FILE = "reference.npz"
# Columns the inference log adds to every window, which are never model inputs. A model's own
# label and outputs are named by its contract; callers that have one drop them before fitting.
NON_FEATURE_COLUMNS = frozenset(
    {"label", "label_ts", "ts", "request_id", "deployment", "slot", "model_name", "model_version"}
)
PSI_BINS = 10
PSI_EPSILON = 1e-4


class DriftInputError(ValueError):
    """The reference or window cannot be tested; nothing was decided, so nothing may be triggered."""


class DriftDetectorLoadError(RuntimeError):
    """A saved detector is missing, corrupt or from an incompatible version."""


@dataclass(frozen=True)
class DriftConfig:
    """How to test. ``backend`` picks the implementation, ``method`` the test within it.

    alibi methods: ``univariate`` (TabularDrift: KS numeric, chi-squared categorical), ``mmd``
    (multivariate MMDDrift on the pytorch backend), ``cvm_online`` (sequential CVMDriftOnline).
    scipy methods: ``univariate`` (KS / chi-squared) and ``psi`` (population stability index).
    """

    backend: Literal["alibi", "scipy"] = "alibi"
    method: str = "univariate"
    p_val: float = 0.05
    correction: Literal["bonferroni", "fdr"] = "bonferroni"
    psi_threshold: float = 0.2
    min_window_rows: int = 100
    max_nan_share: float = 0.2
    max_unseen_share: float = 0.05
    max_reference_rows: int = 500
    n_permutations: int = 100
    online_ert: float = 100.0
    online_window_sizes: tuple[int, ...] = (20,)
    online_bootstraps: int = 2500
    seed: int = 0

    METHODS: ClassVar[dict[str, tuple[str, ...]]] = {
        "alibi": ("univariate", "mmd", "cvm_online"),
        "scipy": ("univariate", "psi"),
    }

    def __post_init__(self) -> None:
        if self.backend not in self.METHODS:
            raise ValueError(
                f"unknown drift backend {self.backend!r}: expected one of {sorted(self.METHODS)}"
            )
        if self.method not in self.METHODS[self.backend]:
            raise ValueError(
                f"backend {self.backend!r} has no method {self.method!r}: "
                f"expected one of {list(self.METHODS[self.backend])}"
            )
        if not 0 < self.p_val < 1:
            raise ValueError(f"p_val must be in (0, 1), got {self.p_val}")
        if self.correction not in ("bonferroni", "fdr"):
            raise ValueError(f"correction must be 'bonferroni' or 'fdr', got {self.correction!r}")
        if not 0 <= self.max_nan_share < 1:
            raise ValueError(f"max_nan_share must be in [0, 1), got {self.max_nan_share}")
        # 1: never refuse, for a categorical input whose new values are the drift itself (a month).
        if not 0 <= self.max_unseen_share <= 1:
            raise ValueError(f"max_unseen_share must be in [0, 1], got {self.max_unseen_share}")
        if self.min_window_rows < 2:
            raise ValueError(f"min_window_rows must be at least 2, got {self.min_window_rows}")
        object.__setattr__(self, "online_window_sizes", tuple(int(w) for w in self.online_window_sizes))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "online_window_sizes": list(self.online_window_sizes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DriftConfig:
        """Unknown keys are refused: a typo in a DAG's config must not silently fall back to a default."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown drift config key(s) {unknown}: expected some of {sorted(known)}")
        return cls(**data)


@dataclass
class FeatureDrift:
    """One feature's test: statistic and p-value (``None`` for PSI, which has no p-value)."""

    feature: str
    kind: str
    test: str
    statistic: float
    p_value: float | None
    is_drift: bool
    psi: float


@dataclass
class DriftResult:
    """Overall decision plus per-feature evidence; ``to_dict()`` is plain JSON (no numpy types).

    ``threshold`` is the per-feature p-value cut after correction (Bonferroni ``p_val / n``, or the
    Benjamini-Hochberg cut for ``fdr``); for PSI it is the PSI threshold; for online detectors the
    test-statistic threshold. ``statistic``/``p_value`` are set by multivariate and online tests.
    """

    is_drift: bool
    backend: str
    method: str
    p_val: float
    correction: str
    threshold: float
    n_reference: int
    n_window: int
    n_window_dropped: int
    features: list[FeatureDrift] = field(default_factory=list)
    statistic: float | None = None
    p_value: float | None = None
    detection_row: int | None = None
    unseen_categories: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.is_drift]

    @property
    def drift_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else float(self.is_drift)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["drift_share"] = self.drift_share
        data["drifted_features"] = self.drifted_features
        return plain_json(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftResult:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["features"] = [FeatureDrift(**f) for f in data.get("features", [])]
        return cls(**kwargs)


def plain_json(value: Any) -> Any:
    """numpy scalars/arrays to Python; NaN/inf to None so the JSON is valid everywhere."""
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain_json(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value) if math.isfinite(value) else None
    return value


def corrected_threshold(p_values: np.ndarray, p_val: float, correction: str) -> float:
    """Per-feature p-value cut: Bonferroni ``p_val/n``; FDR: the Benjamini-Hochberg step-up cut.

    Mirrors alibi-detect's batch decision (drift if any p-value is below the cut) so both backends
    flag the same features for the same p-values.
    """
    n = len(p_values)
    if n == 0:
        return p_val
    if correction == "bonferroni":
        return p_val / n
    ranks = p_val * np.arange(1, n + 1) / n
    below = np.sort(p_values) < ranks
    return float(ranks[np.nonzero(below)[0].max()]) if below.any() else p_val / n


@dataclass(frozen=True)
class Encoded:
    """A validated table: numeric matrix, categorical codes (unseen values get code ``len(categories)``)."""

    numeric: np.ndarray
    codes: np.ndarray
    n_dropped: int
    unseen: dict[str, dict[str, int]]

    @property
    def n_rows(self) -> int:
        return int(self.numeric.shape[0])


@dataclass(frozen=True)
class FeatureSchema:
    """Which columns are tested, and the reference's categories (the encoding of categoricals)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @classmethod
    def infer(
        cls,
        reference: pd.DataFrame,
        numeric: tuple[str, ...] | list[str] | None = None,
        categorical: tuple[str, ...] | list[str] | None = None,
    ) -> FeatureSchema:
        """Explicit lists win; otherwise numeric dtypes are numeric and the rest categorical,
        skipping timestamps and the log's bookkeeping columns (``NON_FEATURE_COLUMNS``)."""
        if numeric is None and categorical is None:
            candidates = [
                c
                for c in reference.columns
                if c not in NON_FEATURE_COLUMNS
                and not pd.api.types.is_datetime64_any_dtype(reference[c])
                and not pd.api.types.is_timedelta64_dtype(reference[c])
            ]
            numeric = [
                c
                for c in candidates
                if pd.api.types.is_numeric_dtype(reference[c])
                and not pd.api.types.is_bool_dtype(reference[c])
            ]
            categorical = [c for c in candidates if c not in numeric]
        schema = cls(tuple(numeric or ()), tuple(categorical or ()))
        if not schema.features:
            raise DriftInputError("no feature columns to test: the reference has none and none were named")
        return schema

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "categories": {k: list(v) for k, v in self.categories.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSchema:
        return cls(
            tuple(data["numeric"]),
            tuple(data["categorical"]),
            {k: tuple(v) for k, v in data["categories"].items()},
        )

    def fit(self, reference: pd.DataFrame, config: DriftConfig) -> tuple[FeatureSchema, Encoded]:
        """The schema with the reference's categories, and the encoded reference."""
        _check_frame(reference, self.features, "reference")
        frame = _drop_nan_rows(reference, self, config, "reference")
        categories = {c: tuple(sorted(frame[c].astype(str).unique())) for c in self.categorical}
        fitted = FeatureSchema(self.numeric, self.categorical, categories)
        return fitted, fitted._encode_clean(frame, reference, config, "reference")

    def encode(self, window: pd.DataFrame, config: DriftConfig) -> Encoded:
        """Validate and encode a window against this (fitted) schema; raises ``DriftInputError``."""
        _check_frame(window, self.features, "window")
        frame = _drop_nan_rows(window, self, config, "window")
        return self._encode_clean(frame, window, config, "window")

    def _encode_clean(
        self, frame: pd.DataFrame, original: pd.DataFrame, config: DriftConfig, what: str
    ) -> Encoded:
        if len(frame) < config.min_window_rows:
            raise DriftInputError(
                f"the {what} has {len(frame)} usable rows ({len(original) - len(frame)} dropped for NaN), "
                f"fewer than min_window_rows={config.min_window_rows}: too little data to test"
            )
        numeric = np.empty((len(frame), len(self.numeric)), dtype=np.float64)
        for i, col in enumerate(self.numeric):
            try:
                numeric[:, i] = pd.to_numeric(frame[col], errors="raise").to_numpy(dtype=np.float64)
            except (ValueError, TypeError) as exc:
                raise DriftInputError(f"{what} column {col!r} must be numeric: {exc}") from exc
        codes = np.empty((len(frame), len(self.categorical)), dtype=np.int64)
        unseen: dict[str, dict[str, int]] = {}
        for i, col in enumerate(self.categorical):
            values = frame[col].astype(str)
            known = self.categories[col]
            cat = pd.Categorical(values, categories=known)
            col_codes = np.asarray(cat.codes, dtype=np.int64)
            new = col_codes < 0
            if new.any():
                counts = values[new].value_counts()
                share = float(new.mean())
                if share > config.max_unseen_share:
                    sample = ", ".join(f"{v!r} ({n})" for v, n in counts.head(5).items())
                    raise DriftInputError(
                        f"{what} column {col!r}: {share:.1%} of rows hold categories never seen in the "
                        f"reference ({sample}); above max_unseen_share={config.max_unseen_share:.1%} this "
                        "looks like wrong input rather than drift, so nothing is tested"
                    )
                unseen[col] = {str(k): int(v) for k, v in counts.items()}
                col_codes[new] = len(known)
            codes[:, i] = col_codes
        return Encoded(numeric, codes, len(original) - len(frame), unseen)


def _check_frame(frame: Any, features: tuple[str, ...], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DriftInputError(f"the {what} must be a pandas DataFrame, got {type(frame).__name__}")
    if frame.empty:
        raise DriftInputError(f"the {what} is empty: no rows to compare, nothing is tested")
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise DriftInputError(
            f"the {what} is missing feature column(s) {missing} that the detector tests; "
            f"it has {sorted(map(str, frame.columns))}"
        )


def _drop_nan_rows(
    frame: pd.DataFrame, schema: FeatureSchema, config: DriftConfig, what: str
) -> pd.DataFrame:
    """Rows with a NaN in any tested feature are dropped, unless too many are: then the data is broken."""
    nan = frame[list(schema.features)].isna()
    rows = nan.any(axis=1)
    share = float(rows.mean())
    if share > config.max_nan_share:
        shares = nan.mean()
        worst = ", ".join(f"{c}={s:.0%}" for c, s in shares[shares > 0].sort_values(ascending=False).items())
        raise DriftInputError(
            f"{share:.1%} of {what} rows have NaN in a tested feature ({worst}), above "
            f"max_nan_share={config.max_nan_share:.0%}: the data looks broken, nothing is tested"
        )
    return frame.loc[~rows]


@dataclass
class ReferenceProfile:
    """PSI bins fitted on the reference: decile edges for numerics, category shares for categoricals."""

    edges: list[np.ndarray]
    numeric_shares: list[np.ndarray]
    category_shares: list[np.ndarray]

    @classmethod
    def fit(cls, encoded: Encoded, schema: FeatureSchema) -> ReferenceProfile:
        edges, num_shares, cat_shares = [], [], []
        for i in range(encoded.numeric.shape[1]):
            col = encoded.numeric[:, i]
            inner = np.unique(np.quantile(col, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
            edges.append(inner)
            num_shares.append(_shares(np.searchsorted(inner, col, side="right"), len(inner) + 1))
        for i, col in enumerate(schema.categorical):
            cat_shares.append(_shares(encoded.codes[:, i], len(schema.categories[col]) + 1))
        return cls(edges, num_shares, cat_shares)

    def psi(self, encoded: Encoded) -> np.ndarray:
        """PSI per feature, numerics first (schema order), then categoricals."""
        out = []
        for i, inner in enumerate(self.edges):
            current = _shares(np.searchsorted(inner, encoded.numeric[:, i], side="right"), len(inner) + 1)
            out.append(_psi(self.numeric_shares[i], current))
        for i, ref in enumerate(self.category_shares):
            out.append(_psi(ref, _shares(encoded.codes[:, i], len(ref))))
        return np.asarray(out, dtype=np.float64)


def _shares(bins: np.ndarray, n_bins: int) -> np.ndarray:
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.clip(expected, PSI_EPSILON, None)
    a = np.clip(actual, PSI_EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


class DriftDetector(ABC):
    """Fitted on a reference sample; ``check(window)`` answers "has the window drifted?".

    Subclasses implement the statistics (``_fit``/``_check``) and persistence of their own state;
    this class owns validation, encoding and the result shape so backends cannot diverge there.
    """

    backend: ClassVar[str]

    def __init__(self, schema: FeatureSchema, config: DriftConfig, reference: Encoded) -> None:
        self.schema = schema
        self.config = config
        self.reference = reference
        self.profile = ReferenceProfile.fit(reference, schema)

    @classmethod
    def fit(
        cls,
        reference: pd.DataFrame,
        config: DriftConfig | None = None,
        numeric: tuple[str, ...] | list[str] | None = None,
        categorical: tuple[str, ...] | list[str] | None = None,
    ) -> DriftDetector:
        config = config or DriftConfig(backend=cls.backend)
        if config.backend != cls.backend:
            raise ValueError(
                f"{cls.__name__} implements backend {cls.backend!r}, config asks for {config.backend!r}"
            )
        schema, encoded = FeatureSchema.infer(reference, numeric, categorical).fit(reference, config)
        detector = cls(schema, config, encoded)
        detector._fit()
        return detector

    def check(self, window: pd.DataFrame) -> DriftResult:
        encoded = self.schema.encode(window, self.config)
        result = self._check(encoded)
        result.unseen_categories = encoded.unseen
        return result

    def _result(self, encoded: Encoded, **values: Any) -> DriftResult:
        return DriftResult(
            backend=self.backend,
            method=self.config.method,
            p_val=self.config.p_val,
            correction=self.config.correction,
            n_reference=self.reference.n_rows,
            n_window=encoded.n_rows,
            n_window_dropped=encoded.n_dropped,
            **values,
        )

    def _univariate_result(
        self, encoded: Encoded, statistics: np.ndarray, p_values: np.ndarray | None, tests: list[str]
    ) -> DriftResult:
        """Per-feature decisions: p-values against the corrected cut, or PSI against its threshold."""
        psi = self.profile.psi(encoded)
        if p_values is None:
            threshold = self.config.psi_threshold
            flags = psi > threshold
        else:
            threshold = corrected_threshold(p_values, self.config.p_val, self.config.correction)
            flags = p_values < threshold
        kinds = [NUMERIC] * len(self.schema.numeric) + [CATEGORICAL] * len(self.schema.categorical)
        features = [
            FeatureDrift(
                feature=name,
                kind=kind,
                test=test,
                statistic=float(stat),
                p_value=None if p_values is None else float(p_values[i]),
                is_drift=bool(flags[i]),
                psi=float(psi[i]),
            )
            for i, (name, kind, test, stat) in enumerate(
                zip(self.schema.features, kinds, tests, statistics, strict=True)
            )
        ]
        return self._result(
            encoded, is_drift=bool(flags.any()), threshold=float(threshold), features=features
        )

    def save(self, path: str | Path) -> Path:
        """Write the detector to a folder (created); ``conveyor.core.drift.load_detector`` reads it.

        The state file goes last and atomically: ``load_detector`` refuses a folder without it,
        so a reader of a fresh folder that is still being written gets a clear error, never a
        detector restored from half its files.
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            folder / REFERENCE_FILE, numeric=self.reference.numeric, codes=self.reference.codes
        )
        self._save(folder)
        state = {"backend": self.backend, "config": self.config.to_dict(), "schema": self.schema.to_dict()}
        atomic.write_text(folder / STATE_FILE, json.dumps(state, indent=2))
        return folder

    @classmethod
    def restore(cls, folder: Path, schema: FeatureSchema, config: DriftConfig) -> DriftDetector:
        """Rebuild from ``save()``'s folder; the caller has read ``STATE_FILE``."""
        with np.load(folder / REFERENCE_FILE) as arrays:
            reference = Encoded(arrays["numeric"], arrays["codes"], 0, {})
        detector = cls(schema, config, reference)
        detector._load(folder)
        return detector

    @abstractmethod
    def _fit(self) -> None:
        """Build the statistical state from ``self.reference``."""

    @abstractmethod
    def _check(self, encoded: Encoded) -> DriftResult:
        """Test an encoded window against the reference."""

    def _save(self, folder: Path) -> None:  # noqa: B027 - optional hook, most backends keep no extra state
        """Persist state beyond the reference sample (backends that need more override this)."""

    def _load(self, folder: Path) -> None:
        """Restore state written by ``_save``; by default the state is rebuilt from the reference."""
        self._fit()
