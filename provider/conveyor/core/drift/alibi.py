"""alibi-detect backend (default): TabularDrift / KSDrift / ChiSquareDrift, MMDDrift, CVMDriftOnline.

alibi-detect 0.13 is under the Business Source License 1.1 (no production use without a licence
from Seldon); ``ScipyDriftDetector`` is the permissive alternative with the same result shape.
The detector is persisted with alibi-detect's own ``save_detector`` (``alibi/config.toml`` +
``x_ref.npy``) so the saved artefact is usable by anyone with alibi-detect alone.

KSDrift and TabularDrift call ``scipy.stats.ks_2samp`` per feature inside ``feature_score``,
re-sorting the fixed reference on every ``predict``. ``_PresortedScore`` replaces that method on
the instance (not by subclassing: alibi-detect names the saved config and ``meta["name"]`` after
the class, so a subclass would change its return dict and make the artefact unloadable by
alibi-detect alone). It sorts ``x_ref`` once, at fit and again at load (the sorted columns are
not saved), and returns the same float32 arrays the stock method does; ``predict``'s
preprocessing, p-value correction and return dict are untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from conveyor.core.drift.interface import DriftDetector, DriftInputError, DriftResult, Encoded
from conveyor.core.drift.ks import SortedReference

ALIBI_FOLDER = "alibi"


class AlibiDriftDetector(DriftDetector):
    """Univariate (default), multivariate MMD on the pytorch backend, or online CVM."""

    backend = "alibi"

    def _fit(self) -> None:
        self._standardise = _Standardiser(self.reference.numeric)
        self._detector = self._build()

    def _build(self) -> Any:
        from alibi_detect.cd import ChiSquareDrift, CVMDriftOnline, KSDrift, MMDDrift, TabularDrift

        cfg = self.config
        if cfg.method == "univariate":
            x_ref = self._univariate_matrix(self.reference)
            n_num = len(self.schema.numeric)
            if not self.schema.categorical:
                return presort(KSDrift(x_ref, p_val=cfg.p_val, correction=cfg.correction))
            categories = {n_num + j: None for j in range(len(self.schema.categorical))}
            if not self.schema.numeric:
                return _count_with_bincount(
                    ChiSquareDrift(
                        x_ref, p_val=cfg.p_val, categories_per_feature=categories, correction=cfg.correction
                    )
                )
            return presort(
                _count_with_bincount(
                    TabularDrift(
                        x_ref, p_val=cfg.p_val, categories_per_feature=categories, correction=cfg.correction
                    )
                )
            )
        x_ref = self._sample(self._dense(self.reference))
        if cfg.method == "mmd":
            return MMDDrift(
                x_ref, backend="pytorch", p_val=cfg.p_val, n_permutations=cfg.n_permutations, device="cpu"
            )
        if not self.schema.numeric or self.schema.categorical:
            raise DriftInputError("cvm_online tests continuous features only: name numeric features alone")
        if min(cfg.online_window_sizes) >= len(x_ref):
            raise DriftInputError(
                f"online window sizes {cfg.online_window_sizes} must be smaller than the "
                f"reference ({len(x_ref)} rows)"
            )
        return CVMDriftOnline(
            x_ref,
            ert=cfg.online_ert,
            window_sizes=list(cfg.online_window_sizes),
            n_bootstraps=cfg.online_bootstraps,
            verbose=False,
        )

    @staticmethod
    def _univariate_matrix(encoded: Encoded) -> np.ndarray:
        return np.hstack([encoded.numeric, encoded.codes.astype(np.float64)])

    def _dense(self, encoded: Encoded) -> np.ndarray:
        """Standardised numerics + one-hot categoricals (incl. the unseen bucket) for kernel tests."""
        parts = [self._standardise(encoded.numeric)]
        for j, col in enumerate(self.schema.categorical):
            width = len(self.schema.categories[col]) + 1
            parts.append(np.eye(width, dtype=np.float32)[encoded.codes[:, j]])
        return np.hstack(parts).astype(np.float32)

    def _sample(self, matrix: np.ndarray) -> np.ndarray:
        """Kernel and online tests cost O(n^2): test a seeded random subsample, not every row."""
        limit = self.config.max_reference_rows
        if len(matrix) <= limit:
            return matrix
        rows = np.random.default_rng(self.config.seed).choice(len(matrix), size=limit, replace=False)
        return matrix[np.sort(rows)]

    def _check(self, encoded: Encoded) -> DriftResult:
        cfg = self.config
        if cfg.method == "univariate":
            data = self._detector.predict(self._univariate_matrix(encoded), drift_type="batch")["data"]
            n_num = len(self.schema.numeric)
            tests = ["ks"] * n_num + ["chi2"] * len(self.schema.categorical)
            return self._univariate_result(
                encoded, np.asarray(data["distance"], float), np.asarray(data["p_val"], float), tests
            )
        window = self._sample(self._dense(encoded))
        if cfg.method == "mmd":
            data = self._detector.predict(window)["data"]
            return self._result(
                encoded,
                is_drift=bool(data["is_drift"]),
                threshold=cfg.p_val,
                statistic=float(data["distance"]),
                p_value=float(data["p_val"]),
            )
        return self._check_online(encoded, window)

    def _check_online(self, encoded: Encoded, window: np.ndarray) -> DriftResult:
        """Feed the window row by row from a fresh state; drift = the first row whose statistic
        crosses the ERT-calibrated threshold."""
        detector = self._detector
        detector.reset_state()
        peak, threshold, detected = 0.0, float("nan"), None
        try:
            for row in window:
                data = detector.predict(row, return_test_stat=True)["data"]
                stats = np.asarray(data["test_stat"], dtype=float)
                if np.isfinite(stats).any():  # NaN until the first window of rows is full
                    peak = max(peak, float(np.nanmax(stats)))
                    threshold = float(np.min(data["threshold"]))
                if data["is_drift"]:
                    detected = int(data["time"]) - 1
                    break
        finally:
            detector.reset_state()
        return self._result(
            encoded,
            is_drift=detected is not None,
            threshold=threshold,
            statistic=peak,
            detection_row=detected,
        )

    def _save(self, folder: Path) -> None:
        from alibi_detect.saving import save_detector

        save_detector(self._detector, folder / ALIBI_FOLDER)

    def _load(self, folder: Path) -> None:
        from alibi_detect.saving import load_detector

        self._standardise = _Standardiser(self.reference.numeric)
        detector = load_detector(folder / ALIBI_FOLDER)
        if self.config.method == "univariate" and self.schema.categorical:
            detector = _count_with_bincount(detector)
        if self.config.method == "univariate" and self.schema.numeric:
            detector = presort(detector)
        self._detector = detector


def _bincount_counts(x: np.ndarray, categories: dict[int, list[Any]]) -> dict[int, list[int]]:
    """Same counts as alibi-detect's ``_get_counts`` for integer category codes, in one pass.

    alibi-detect compares every row with every category in Python on each check, reference
    included: 0.1 s per check for 100k reference rows x 3 airport/carrier columns, more than the
    KS tests themselves. Our encoding makes categories small non-negative integers, so one
    ``bincount`` per column gives identical counts.
    """
    out = {}
    for f, values in categories.items():
        wanted = np.asarray(values, dtype=np.int64)
        counts = np.bincount(x[:, f].astype(np.int64), minlength=int(wanted.max()) + 1 if wanted.size else 0)
        out[f] = counts[wanted].tolist()
    return out


def _count_with_bincount(detector: Any) -> Any:
    detector._get_counts = _bincount_counts
    return detector


def presort(detector: Any) -> Any:
    """Score a KSDrift/TabularDrift's KS features against its reference sorted once, now."""
    detector.feature_score = _PresortedScore(detector)
    return detector


class _PresortedScore:
    """``feature_score`` of KSDrift/TabularDrift with the reference's numeric columns presorted.

    Same statistics and p-values as alibi-detect's own loop (``ks_2samp(x_ref[:, f], x[:, f],
    alternative, mode="asymp")``, stored as float32), and TabularDrift's chi-squared features as
    its own code computes them. When the reference is not fixed (``update_x_ref``, or
    preprocessing applied at predict time) the stock method runs instead.
    """

    def __init__(self, detector: Any) -> None:
        self._detector = detector
        self._stock = type(detector).feature_score.__get__(detector)
        self._reference = detector.x_ref
        categorical = set(getattr(detector, "cat_vars", []))
        self._numeric = [f for f in range(detector.n_features) if f not in categorical]
        x_ref = np.asarray(detector.x_ref).reshape(len(detector.x_ref), -1)
        self._sorted = SortedReference(x_ref[:, self._numeric])

    def __call__(self, x_ref: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        detector = self._detector
        if x_ref is not self._reference or detector.update_x_ref is not None:
            return self._stock(x_ref, x)
        x_ref = x_ref.reshape(x_ref.shape[0], -1)
        x = x.reshape(x.shape[0], -1)
        p_val = np.zeros(detector.n_features, dtype=np.float32)
        dist = np.zeros_like(p_val)
        ks = self._sorted.test(x[:, self._numeric], alternative=detector.alternative, method="asymp")
        dist[self._numeric], p_val[self._numeric] = ks.statistic, ks.pvalue
        cat_vars = getattr(detector, "cat_vars", [])
        if cat_vars:
            from scipy.stats import chi2_contingency

            # TabularDrift.feature_score's chi-squared branch, as alibi-detect 0.13 writes it.
            x_categories = {f: list(np.unique(x[:, f])) for f in cat_vars}
            all_categories = {
                f: list(set().union(detector.x_ref_categories[f], x_categories[f])) for f in cat_vars
            }
            x_ref_count = detector._get_counts(x_ref, all_categories)
            x_count = detector._get_counts(x, all_categories)
            for f in cat_vars:
                dist[f], p_val[f], _, _ = chi2_contingency(np.vstack((x_ref_count[f], x_count[f])))
        return p_val, dist


class _Standardiser:
    """Reference mean/std scaling, so a kernel bandwidth is not dominated by ``distance`` in miles."""

    def __init__(self, reference: np.ndarray) -> None:
        self.mean = reference.mean(axis=0) if len(reference) else 0.0
        std = reference.std(axis=0) if len(reference) else 1.0
        self.std = np.where(std > 0, std, 1.0)

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        return ((matrix - self.mean) / self.std).astype(np.float32)
