"""Two-sample Kolmogorov-Smirnov tests against a reference sorted once, with scipy's exact answers.

``scipy.stats.ks_2samp`` sorts both samples and looks up all ``n + m`` points in both on every
call, so a monitor that tests windows against one fixed reference re-sorts that reference on
every check. ``SortedReference`` sorts each reference column once; a check then sorts the window
and looks up only the window's distinct values in the sorted reference: O(m log n) instead of
O((n + m) log(n + m)).

The statistic is the same float scipy computes, not an approximation of it. Between two
consecutive distinct window values ``u[k-1] < u[k]`` the window's ECDF is constant and the
reference's only grows, so scipy's largest ``cdf_ref - cdf_win`` on that stretch is at the last
reference point below ``u[k]`` (``count(ref < u[k]) / n - count(win <= u[k-1]) / m``) and its
smallest is at ``u[k-1]`` itself (``count(ref <= u[k-1]) / n - count(win <= u[k-1]) / m``): the
same integers divided and subtracted in the same order, hence bit-identical. The p-value then
follows scipy's own code path for the given ``method`` (``auto`` takes ``exact`` when both
samples have at most 10,000 rows, else ``asymp``; ``exact`` falls back to ``asymp`` with a
``RuntimeWarning`` when the lattice is too large or the computation fails), calling scipy's
exact-distribution routine, so a scipy upgrade that changes either shows up in the tests that
compare with ``ks_2samp``.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal, NamedTuple

import numpy as np
from scipy import stats

# scipy has no public entry point for the exact two-sample distribution at a given statistic;
# this is the function ks_2samp itself calls (scipy 1.17, pinned in constraints.txt).
from scipy.stats._stats_py import _attempt_exact_2kssamp

Alternative = Literal["two-sided", "less", "greater"]
Method = Literal["auto", "exact", "asymp"]
ALTERNATIVES = ("two-sided", "less", "greater")
METHODS = ("auto", "exact", "asymp")
MAX_AUTO_N = 10_000  # scipy's ks_2samp: "auto" is exact up to this many rows in both samples


class KSResult(NamedTuple):
    """Per column: the KS statistic and p-value, as ``scipy.stats.ks_2samp(reference, window)``."""

    statistic: np.ndarray
    pvalue: np.ndarray


class SortedReference:
    """The columns of a reference sample, each sorted once, to test many windows against.

    ``reference`` is ``(n,)`` or ``(n, d)``; a window must have the same number of columns.
    NaN is refused (scipy would return NaN, which no drift decision can use).
    """

    def __init__(self, reference: np.ndarray) -> None:
        matrix = _columns(reference, "reference")
        self.sorted = _sorted_rows(matrix)
        self.n_rows, self.n_columns = matrix.shape

    def test(
        self, window: np.ndarray, alternative: Alternative = "two-sided", method: Method = "auto"
    ) -> KSResult:
        """Test every column of ``window`` against the same reference column."""
        if alternative not in ALTERNATIVES:
            raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        matrix = _columns(window, "window")
        if matrix.shape[1] != self.n_columns:
            raise ValueError(
                f"the window has {matrix.shape[1]} columns, the reference {self.n_columns}: "
                "columns are tested pairwise"
            )
        statistic = np.empty(self.n_columns)
        pvalue = np.empty(self.n_columns)
        for i, current in enumerate(_sorted_rows(matrix)):
            d = _statistic(self.sorted[i], current, alternative)
            statistic[i], pvalue[i] = _pvalue(d, self.n_rows, len(current), alternative, method)
        return KSResult(statistic, pvalue)


def _columns(data: np.ndarray, what: str) -> np.ndarray:
    matrix = np.asarray(data)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if matrix.ndim != 2:
        raise ValueError(f"the {what} must be 1-D or 2-D (rows x columns), got {matrix.ndim} dimensions")
    if not (np.issubdtype(matrix.dtype, np.integer) or np.issubdtype(matrix.dtype, np.floating)):
        raise ValueError(f"the {what} must hold real numbers, got dtype {matrix.dtype}")
    if matrix.shape[0] == 0:
        raise ValueError(f"the {what} has no rows: a KS test needs at least one value per sample")
    if np.issubdtype(matrix.dtype, np.floating) and np.isnan(matrix).any():
        columns = np.flatnonzero(np.isnan(matrix).any(axis=0)).tolist()
        raise ValueError(f"the {what} holds NaN in column(s) {columns}: drop or impute them first")
    return matrix


def _sorted_rows(matrix: np.ndarray) -> np.ndarray:
    """Each column as one sorted, contiguous row. ``np.sort`` keeps its input's memory order, so
    a C-ordered table would give rows strided by the column count: binary searches in those
    touch a cache line per probe and run several times slower."""
    rows = matrix.T.copy(order="C")
    rows.sort(axis=1)
    return rows


def _statistic(reference: np.ndarray, window: np.ndarray, alternative: str) -> float:
    """scipy's ``d`` from the sorted samples, evaluating its ECDF difference only where it peaks."""
    n, m = len(reference), len(window)
    last = np.empty(m, dtype=bool)
    np.not_equal(window[1:], window[:-1], out=last[:-1])
    last[-1] = True
    ends = np.flatnonzero(last)  # the last index of each run of equal window values
    distinct = window[ends]
    below = np.searchsorted(reference, distinct, side="left")
    # count(ref <= u) differs from count(ref < u) only where u is in the reference: look those up.
    upto = below.copy()
    tied = reference[np.minimum(below, n - 1)] == distinct
    if tied.any():
        upto[tied] = np.searchsorted(reference, distinct[tied], side="right")
    window_upto = ends + 1
    window_before = np.concatenate(([0], window_upto[:-1]))
    # 0.0 is always among scipy's differences: at the largest value of both samples, 1 - 1.
    max_s = max(float(np.max(below / n - window_before / m)), 0.0)
    min_s = float(np.clip(-np.min(upto / n - window_upto / m), 0, 1))
    if alternative == "less" or (alternative == "two-sided" and min_s > max_s):
        return min_s
    return max_s


def _pvalue(d: float, n1: int, n2: int, alternative: str, method: str) -> tuple[float, float]:
    """scipy's ``ks_2samp`` from ``d`` on: method choice, exact attempt, asymptotic fallback."""
    g = math.gcd(n1, n2)
    mode = method
    if mode == "auto":
        mode = "exact" if max(n1, n2) <= MAX_AUTO_N else "asymp"
    elif mode == "exact" and n1 // g >= np.iinfo(np.int32).max / (n2 // g):
        mode = "asymp"
        warnings.warn(
            f"Exact ks_2samp calculation not possible with samples sizes {n1} and {n2}. "
            "Switching to 'asymp'.",
            RuntimeWarning,
            stacklevel=4,
        )
    prob = -np.inf
    if mode == "exact":
        success, d, prob = _attempt_exact_2kssamp(n1, n2, g, d, alternative)
        if not success:
            mode = "asymp"
            warnings.warn(
                f"ks_2samp: Exact calculation unsuccessful. Switching to method={mode}.",
                RuntimeWarning,
                stacklevel=4,
            )
    if mode == "asymp":
        m, n = sorted([float(n1), float(n2)], reverse=True)
        en = m * n / (m + n)
        if alternative == "two-sided":
            prob = stats.kstwo.sf(d, np.round(en))
        else:
            z = np.sqrt(en) * d
            prob = np.exp(-2 * z**2 - 2 * z * (m + 2 * n) / np.sqrt(m * n * (m + n)) / 3.0)
    return float(d), float(np.clip(prob, 0, 1))
