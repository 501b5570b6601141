"""The presorted two-sample KS test returns exactly what ``scipy.stats.ks_2samp`` returns.

Equality is asserted bit for bit (stronger than a tolerance): the statistic is built from the
same integer counts with the same float operations, and the p-value from scipy's own code path
for the same ``method``. Checked on the real 2013 flights (many tied values: hours, distances,
whole-degree temperatures), on synthetic data with ties, discrete values, tiny and exact-size
windows, and on arbitrary inputs drawn by Hypothesis.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from conveyor.core.drift import DriftConfig, build_detector, load_detector
from conveyor.core.drift.ks import ALTERNATIVES, METHODS, SortedReference

SMALL_VALUES = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
    st.integers(-3, 3).map(float),  # heavy ties between and within the samples
    st.sampled_from([-np.inf, np.inf, 0.0, -0.0, 1e-300]),
)


def scipy_columns(reference: np.ndarray, window: np.ndarray, alternative: str, method: str):
    """scipy's answer, one ``ks_2samp`` call per column, warnings kept for comparison."""
    reference = reference.reshape(len(reference), -1)
    window = window.reshape(len(window), -1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [
            stats.ks_2samp(reference[:, i], window[:, i], alternative=alternative, method=method)
            for i in range(reference.shape[1])
        ]
    statistic = np.array([r.statistic for r in results])
    pvalue = np.array([r.pvalue for r in results])
    return statistic, pvalue, sorted({str(w.message) for w in caught})


def assert_identical(reference: np.ndarray, window: np.ndarray, alternative: str, method: str) -> None:
    statistic, pvalue, scipy_warnings = scipy_columns(reference, window, alternative, method)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = SortedReference(reference).test(window, alternative=alternative, method=method)
    np.testing.assert_array_equal(got.statistic, statistic)
    np.testing.assert_array_equal(got.pvalue, pvalue)
    assert sorted({str(w.message) for w in caught}) == scipy_warnings


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reference=hnp.arrays(np.float64, st.integers(1, 80), elements=SMALL_VALUES),
    window=hnp.arrays(np.float64, st.integers(1, 80), elements=SMALL_VALUES),
    alternative=st.sampled_from(ALTERNATIVES),
    method=st.sampled_from(METHODS),
)
def test_any_samples_match_scipy(
    reference: np.ndarray, window: np.ndarray, alternative: str, method: str
) -> None:
    assert_identical(reference, window, alternative, method)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reference=hnp.arrays(np.int64, st.integers(1, 300), elements=st.integers(0, 6)),
    window=hnp.arrays(np.int64, st.integers(1, 300), elements=st.integers(0, 8)),
    alternative=st.sampled_from(ALTERNATIVES),
    method=st.sampled_from(METHODS),
)
def test_discrete_integer_samples_match_scipy(
    reference: np.ndarray, window: np.ndarray, alternative: str, method: str
) -> None:
    assert_identical(reference, window, alternative, method)


@pytest.fixture(scope="module")
def flight_numbers(
    winter_split: tuple[pd.DataFrame, pd.DataFrame], flights: Callable[[str], pd.DataFrame]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The numeric model inputs of the winter reference (20,000 rows) and of later months."""
    from flight_delays.schema import NUMERIC

    reference, holdout = winter_split
    columns = list(NUMERIC)
    windows = {
        "2013-04": flights("2013-04")[columns].dropna().sample(5000, random_state=2),
        "2013-07": flights("2013-07")[columns].dropna().sample(3000, random_state=3),
        "winter": holdout[columns].dropna().sample(5000, random_state=4),
    }
    return reference[columns].dropna().to_numpy(), {k: v.to_numpy() for k, v in windows.items()}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("month", ["2013-04", "2013-07", "winter"])
def test_real_flight_windows_match_scipy(
    flight_numbers: tuple[np.ndarray, dict[str, np.ndarray]], month: str, method: str
) -> None:
    """20,000 reference rows: ``auto`` is asymptotic here, ``exact`` is attempted as asked."""
    reference, windows = flight_numbers
    assert_identical(reference, windows[month], "two-sided", method)


@pytest.mark.parametrize("rows", [1, 2, 17, 500, 3000])
@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_small_real_flight_windows_where_auto_is_exact_match_scipy(
    flight_numbers: tuple[np.ndarray, dict[str, np.ndarray]], rows: int, alternative: str
) -> None:
    """An 8,000-row reference and windows down to one row: scipy's ``auto`` picks ``exact``."""
    reference, windows = flight_numbers
    assert_identical(reference[:8000], windows["2013-07"][:rows], alternative, "auto")


def test_lattice_too_large_for_exact_falls_back_to_asymp_like_scipy() -> None:
    rng = np.random.default_rng(5)
    reference, window = rng.normal(size=50021), rng.normal(0.01, 1, size=49999)  # coprime sizes
    with pytest.warns(RuntimeWarning, match="Switching to 'asymp'"):
        SortedReference(reference).test(window, method="exact")
    assert_identical(reference, window, "two-sided", "exact")


@pytest.mark.parametrize(
    ("reference", "window"),
    [
        (np.arange(10.0), np.arange(10.0)),  # the same sample: D = 0, p = 1
        (np.zeros(30), np.ones(5)),  # disjoint single values: D = 1
        (np.array([1.0]), np.array([2.0])),  # one row each
        (np.repeat([0.0, 1.0, 2.0], 400), np.repeat([0.0, 2.0], 7)),  # ties only
        (np.array([-np.inf, 0.0, np.inf]), np.array([np.inf, np.inf])),
    ],
)
@pytest.mark.parametrize("method", METHODS)
def test_edge_samples_match_scipy(reference: np.ndarray, window: np.ndarray, method: str) -> None:
    for alternative in ALTERNATIVES:
        assert_identical(reference, window, alternative, method)


def test_mixed_dtypes_compare_as_scipy_does() -> None:
    rng = np.random.default_rng(6)
    reference = rng.integers(0, 40, size=(2000, 2)).astype(np.int32)
    window = (rng.integers(0, 80, size=(300, 2)) / 2).astype(np.float32)
    assert_identical(reference, window, "two-sided", "auto")


def test_a_million_row_reference_against_a_100k_window_matches_vectorised_scipy() -> None:
    """The benchmark's shape: 1,000,000 x 20 reference, 100,000 x 20 window, 5 columns shifted."""
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((1_000_000, 20))
    window = rng.standard_normal((100_000, 20))
    window[:, :5] += 0.05
    expected = stats.ks_2samp(reference, window, axis=0, method="asymp")
    got = SortedReference(reference).test(window, method="asymp")
    np.testing.assert_array_equal(got.statistic, expected.statistic)
    np.testing.assert_array_equal(got.pvalue, expected.pvalue)
    assert (got.pvalue[:5] < 1e-10).all() and (got.pvalue[5:] > 1e-4).all()


@pytest.mark.parametrize(
    ("reference", "window", "kwargs", "message"),
    [
        (np.array([1.0, np.nan]), np.ones(3), {}, r"reference holds NaN in column\(s\) \[0\]"),
        (np.ones((4, 2)), np.array([[1.0, np.nan]]), {}, r"window holds NaN in column\(s\) \[1\]"),
        (np.ones(0), np.ones(3), {}, "reference has no rows"),
        (np.ones(4), np.ones(0), {}, "window has no rows"),
        (np.ones((4, 2)), np.ones((3, 3)), {}, "window has 3 columns, the reference 2"),
        (np.array(["a", "b"]), np.ones(3), {}, "reference must hold real numbers"),
        (np.ones((2, 2, 2)), np.ones(3), {}, "must be 1-D or 2-D"),
        (np.ones(4), np.ones(3), {"method": "approx"}, "method must be one of"),
        (np.ones(4), np.ones(3), {"alternative": "two"}, "alternative must be one of"),
    ],
)
def test_unusable_input_is_refused_with_its_reason(
    reference: np.ndarray, window: np.ndarray, kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SortedReference(reference).test(window, **kwargs)


# ---- the two drift backends -------------------------------------------------------------------


@pytest.fixture(scope="module")
def april(flights: Callable[[str], pd.DataFrame]) -> pd.DataFrame:
    return flights("2013-04").sample(4000, random_state=8)


def test_scipy_backend_reports_scipy_asymp_ks(
    winter_split: tuple[pd.DataFrame, pd.DataFrame], april: pd.DataFrame
) -> None:
    reference, _ = winter_split
    detector = build_detector(reference, DriftConfig(backend="scipy"))
    result = detector.check(april)
    encoded = detector.schema.encode(april, detector.config)
    for i, feature in enumerate(result.features[: len(detector.schema.numeric)]):
        expected = stats.ks_2samp(detector.reference.numeric[:, i], encoded.numeric[:, i], method="asymp")
        assert (feature.test, feature.statistic, feature.p_value) == (
            "ks",
            expected.statistic,
            expected.pvalue,
        )


def _stock_alibi(detector) -> object:
    """alibi-detect's own detector on the same reference, without our replaced scoring."""
    from alibi_detect.cd import KSDrift, TabularDrift

    x_ref = detector._detector.x_ref
    cfg = detector.config
    n_num = len(detector.schema.numeric)
    if not detector.schema.categorical:
        return KSDrift(x_ref, p_val=cfg.p_val, correction=cfg.correction)
    categories = {n_num + j: None for j in range(len(detector.schema.categorical))}
    return TabularDrift(x_ref, p_val=cfg.p_val, categories_per_feature=categories, correction=cfg.correction)


def _assert_same_predictions(ours: dict, stock: dict) -> None:
    # alibi-detect's loader adds ``version_warning`` to a loaded detector's meta; the rest is equal.
    assert {k: v for k, v in ours["meta"].items() if k != "version_warning"} == stock["meta"]
    assert ours["data"].keys() == stock["data"].keys()
    for key, value in stock["data"].items():
        np.testing.assert_array_equal(np.asarray(ours["data"][key]), np.asarray(value))
        assert np.asarray(ours["data"][key]).dtype == np.asarray(value).dtype


@pytest.mark.parametrize("correction", ["bonferroni", "fdr"])
@pytest.mark.parametrize("categorical", [True, False])
def test_alibi_backend_predicts_exactly_what_stock_alibi_predicts(
    winter_split: tuple[pd.DataFrame, pd.DataFrame], april: pd.DataFrame, correction: str, categorical: bool
) -> None:
    """TabularDrift (KS + chi-squared) and KSDrift: same p-values, distances, threshold, decision, meta."""
    from flight_delays.schema import NUMERIC

    reference, _ = winter_split
    numeric = list(NUMERIC)
    detector = build_detector(
        reference if categorical else reference[numeric],
        DriftConfig(backend="alibi", correction=correction),
    )
    window = detector._univariate_matrix(detector.schema.encode(april, detector.config))
    stock = _stock_alibi(detector)
    for drift_type in ("batch", "feature"):
        _assert_same_predictions(
            detector._detector.predict(window, drift_type=drift_type),
            stock.predict(window, drift_type=drift_type),
        )


def test_alibi_reference_updates_fall_back_to_stock_scoring(
    winter_split: tuple[pd.DataFrame, pd.DataFrame], flights: Callable[[str], pd.DataFrame]
) -> None:
    """With ``update_x_ref`` the reference changes after every predict: nothing may stay presorted."""
    from alibi_detect.cd import KSDrift

    from conveyor.core.drift.alibi import presort

    reference, _ = winter_split
    x_ref = reference[["temp", "dewp"]].dropna().to_numpy()[:3000]
    ours = presort(KSDrift(x_ref, update_x_ref={"last": 3000}))
    stock = KSDrift(x_ref, update_x_ref={"last": 3000})
    for month in ("2013-04", "2013-07", "2013-10"):
        window = flights(month)[["temp", "dewp"]].dropna().sample(2000, random_state=9).to_numpy()
        _assert_same_predictions(ours.predict(window), stock.predict(window))


@pytest.mark.parametrize("backend", ["alibi", "scipy"])
def test_loaded_detectors_rebuild_the_sorted_reference(
    winter_split: tuple[pd.DataFrame, pd.DataFrame], april: pd.DataFrame, tmp_path, backend: str
) -> None:
    """The sorted columns are not saved (alibi's artefact stays alibi's): loading rebuilds them."""
    from conveyor.core.drift.alibi import _PresortedScore

    reference, _ = winter_split
    detector = build_detector(reference, DriftConfig(backend=backend))
    saved = detector.save(tmp_path / backend)
    loaded = load_detector(saved)
    assert loaded.check(april).to_dict() == detector.check(april).to_dict()
    if backend == "alibi":
        assert isinstance(vars(loaded._detector)["feature_score"], _PresortedScore)
        window = loaded._univariate_matrix(loaded.schema.encode(april, loaded.config))
        _assert_same_predictions(loaded._detector.predict(window), _stock_alibi(loaded).predict(window))
