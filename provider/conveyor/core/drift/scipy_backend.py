"""Permissive drift backend (scipy only: BSD) for users who cannot accept alibi-detect's BSL.

KS p-values are those of ``scipy.stats.ks_2samp(method="asymp")``, but each reference column is
sorted once at fit time instead of on every check, so a check costs a sort of the (small) window
plus two ``searchsorted`` passes per column.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from conveyor.core.drift.interface import DriftDetector, DriftResult, Encoded


def ks_two_sample(reference_sorted: np.ndarray, window: np.ndarray) -> tuple[float, float]:
    """Two-sided two-sample KS statistic and asymptotic p-value, reference already sorted."""
    current = np.sort(window)
    values = np.concatenate([reference_sorted, current])
    cdf_ref = np.searchsorted(reference_sorted, values, side="right") / len(reference_sorted)
    cdf_cur = np.searchsorted(current, values, side="right") / len(current)
    statistic = float(np.max(np.abs(cdf_ref - cdf_cur)))
    n, m = len(reference_sorted), len(current)
    p_value = float(np.clip(stats.kstwo.sf(statistic, np.round(n * m / (n + m))), 0.0, 1.0))
    return statistic, p_value


def chi_square(reference_counts: np.ndarray, window_counts: np.ndarray) -> tuple[float, float]:
    """Chi-squared test of homogeneity on the categories present in either sample."""
    table = np.vstack([reference_counts, window_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    statistic, p_value, _, _ = stats.chi2_contingency(table)
    return float(statistic), float(p_value)


class ScipyDriftDetector(DriftDetector):
    """KS for numeric and chi-squared for categorical features, or PSI for both (``method="psi"``)."""

    backend = "scipy"

    def _fit(self) -> None:
        self._sorted = [np.sort(self.reference.numeric[:, i]) for i in range(self.reference.numeric.shape[1])]
        self._counts = [
            np.bincount(self.reference.codes[:, i], minlength=len(self.schema.categories[col]) + 1)
            for i, col in enumerate(self.schema.categorical)
        ]

    def _check(self, encoded: Encoded) -> DriftResult:
        n_num = len(self.schema.numeric)
        if self.config.method == "psi":
            psi = self.profile.psi(encoded)
            return self._univariate_result(encoded, psi, None, ["psi"] * len(psi))
        statistics = np.empty(len(self.schema.features))
        p_values = np.empty(len(self.schema.features))
        for i, reference_sorted in enumerate(self._sorted):
            statistics[i], p_values[i] = ks_two_sample(reference_sorted, encoded.numeric[:, i])
        for j, counts in enumerate(self._counts):
            window_counts = np.bincount(encoded.codes[:, j], minlength=len(counts))
            statistics[n_num + j], p_values[n_num + j] = chi_square(counts, window_counts)
        tests = ["ks"] * n_num + ["chi2"] * len(self._counts)
        return self._univariate_result(encoded, statistics, p_values, tests)
