"""Permissive drift backend (scipy only: BSD) for users who cannot accept alibi-detect's BSL.

KS statistics and p-values are those of ``scipy.stats.ks_2samp(reference, window,
method="asymp")`` (the method alibi-detect hard-codes, so both backends agree), computed against
reference columns sorted once at fit time (``conveyor.core.drift.ks``); the sorted columns are
rebuilt from the saved reference when a detector is loaded, not stored.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from conveyor.core.drift.interface import DriftDetector, DriftResult, Encoded
from conveyor.core.drift.ks import SortedReference


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
        # PSI needs only the profile's bins; sorting a large reference for it would be wasted.
        self._sorted = SortedReference(self.reference.numeric) if self.config.method == "univariate" else None
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
        statistics[:n_num], p_values[:n_num] = self._sorted.test(encoded.numeric, method="asymp")
        for j, counts in enumerate(self._counts):
            window_counts = np.bincount(encoded.codes[:, j], minlength=len(counts))
            statistics[n_num + j], p_values[n_num + j] = chi_square(counts, window_counts)
        tests = ["ks"] * n_num + ["chi2"] * len(self._counts)
        return self._univariate_result(encoded, statistics, p_values, tests)
