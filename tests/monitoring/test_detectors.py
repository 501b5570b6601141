"""Drift detectors on the real 2013 flights: winter reference vs spring, summer and same-season windows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.core.drift import (
    DriftConfig,
    DriftDetector,
    DriftDetectorLoadError,
    DriftInputError,
    DriftResult,
    build_detector,
    load_detector,
)
from tests.monitoring.helpers import WINDOW_ROWS

BACKENDS = ("alibi", "scipy")
WEATHER = ["temp", "dewp", "humid", "wind_speed", "pressure", "visib"]


@pytest.fixture(scope="session")
def detectors(winter_split: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, DriftDetector]:
    reference, _ = winter_split
    return {backend: build_detector(reference, DriftConfig(backend=backend)) for backend in BACKENDS}


def _feature(result: DriftResult, name: str):
    return next(f for f in result.features if f.feature == name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("month", ["2013-04", "2013-07"])
def test_spring_and_summer_drift_in_temperature(
    detectors: dict[str, DriftDetector], flights: Callable[[str], pd.DataFrame], backend: str, month: str
) -> None:
    result = detectors[backend].check(flights(month).sample(WINDOW_ROWS, random_state=1))
    temp = _feature(result, "temp")
    assert result.is_drift
    assert temp.is_drift and temp.test == "ks" and temp.p_value < 1e-12
    assert temp.statistic > 0.5  # KS distance: April/July temperatures barely overlap January-March
    assert result.threshold == pytest.approx(0.05 / 13)  # Bonferroni over the 13 contract features
    assert result.n_reference > 17_000 and result.n_window > 4_000  # rows without weather are dropped


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_season_window_does_not_drift(
    detectors: dict[str, DriftDetector], winter_split: tuple[pd.DataFrame, pd.DataFrame], backend: str
) -> None:
    _, holdout = winter_split
    result = detectors[backend].check(holdout.sample(WINDOW_ROWS, random_state=3))
    assert not result.is_drift
    assert result.drifted_features == []
    assert all(f.p_value > result.threshold for f in result.features)


@pytest.mark.parametrize("backend", BACKENDS)
def test_false_alarm_rate_over_repeated_same_season_windows(
    detectors: dict[str, DriftDetector], winter_split: tuple[pd.DataFrame, pd.DataFrame], backend: str
) -> None:
    """30 held-out winter windows of 2,000 rows: the alarm rate stays near the nominal 5%."""
    _, holdout = winter_split
    alarms = [
        detectors[backend].check(holdout.sample(2000, random_state=100 + i)).is_drift for i in range(30)
    ]
    rate = sum(alarms) / len(alarms)
    print(f"\n{backend}: false-alarm rate {rate:.1%} over {len(alarms)} same-season windows")
    assert rate <= 0.10


def test_march_alone_is_warmer_than_the_winter_reference(
    detectors: dict[str, DriftDetector], flights: Callable[[str], pd.DataFrame]
) -> None:
    """A month-long March window *does* differ from January-March in temperature: real, not a false alarm."""
    march = flights("2013-03").sample(WINDOW_ROWS, random_state=2)
    result = detectors["scipy"].check(march)
    assert _feature(result, "temp").is_drift
    assert march["temp"].mean() > detectors["scipy"].reference.numeric[:, 3].mean()


def test_backends_agree_on_p_values(
    detectors: dict[str, DriftDetector], flights: Callable[[str], pd.DataFrame]
) -> None:
    window = flights("2013-04").sample(WINDOW_ROWS, random_state=1)
    alibi, scipy_ = detectors["alibi"].check(window), detectors["scipy"].check(window)
    for a, s in zip(alibi.features, scipy_.features, strict=True):
        assert (a.feature, a.test) == (s.feature, s.test)
        assert a.statistic == pytest.approx(s.statistic, rel=1e-4, abs=1e-6)
        assert a.p_value == pytest.approx(s.p_value, rel=1e-3, abs=1e-30)
    assert alibi.drifted_features == scipy_.drifted_features


def test_fdr_flags_at_least_what_bonferroni_flags(
    winter_split: tuple[pd.DataFrame, pd.DataFrame], flights: Callable[[str], pd.DataFrame]
) -> None:
    reference, _ = winter_split
    window = flights("2013-04").sample(2000, random_state=4)
    bonferroni = build_detector(reference, DriftConfig(backend="scipy")).check(window)
    fdr = build_detector(reference, DriftConfig(backend="scipy", correction="fdr")).check(window)
    assert fdr.correction == "fdr" and fdr.threshold >= bonferroni.threshold
    assert set(bonferroni.drifted_features) <= set(fdr.drifted_features)


def test_psi_method_flags_summer_not_same_season(
    winter_split: tuple[pd.DataFrame, pd.DataFrame], flights: Callable[[str], pd.DataFrame]
) -> None:
    reference, holdout = winter_split
    detector = build_detector(reference, DriftConfig(backend="scipy", method="psi"))
    summer = detector.check(flights("2013-07").sample(WINDOW_ROWS, random_state=1))
    assert summer.is_drift and _feature(summer, "temp").psi > 1.0 and _feature(summer, "temp").p_value is None
    assert not detector.check(holdout.sample(WINDOW_ROWS, random_state=5)).is_drift


def test_mmd_pytorch_multivariate(
    winter_split: tuple[pd.DataFrame, pd.DataFrame], flights: Callable[[str], pd.DataFrame]
) -> None:
    import torch

    reference, holdout = winter_split
    config = DriftConfig(method="mmd", max_reference_rows=300, n_permutations=50)
    detector = build_detector(reference[WEATHER], config)
    torch.manual_seed(0)
    summer = detector.check(flights("2013-07").sample(1000, random_state=1)[WEATHER])
    same = detector.check(holdout.sample(1000, random_state=1)[WEATHER])
    assert summer.is_drift and summer.p_value < 0.05 and summer.features == []
    assert not same.is_drift and same.p_value > 0.05
    assert summer.statistic > same.statistic


def test_cvm_online_detects_summer_within_a_few_rows(
    winter_split: tuple[pd.DataFrame, pd.DataFrame], flights: Callable[[str], pd.DataFrame], tmp_path: Path
) -> None:
    reference, _ = winter_split
    detector = build_detector(reference[WEATHER], DriftConfig(method="cvm_online"))
    window = flights("2013-07").sample(500, random_state=1)[WEATHER]
    result = detector.check(window)
    assert result.is_drift and result.detection_row is not None
    assert 19 <= result.detection_row < 60  # the statistic exists from the 20th row (window size 20)
    assert result.statistic > result.threshold
    again = load_detector(detector.save(tmp_path / "online")).check(window)
    assert again.detection_row == result.detection_row  # state is reset: checks are independent


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_and_load_round_trip(
    detectors: dict[str, DriftDetector], flights: Callable[[str], pd.DataFrame], tmp_path: Path, backend: str
) -> None:
    window = flights("2013-04").sample(2000, random_state=7)
    folder = detectors[backend].save(tmp_path / backend)
    if backend == "alibi":
        assert (folder / "alibi" / "config.toml").is_file() and (folder / "alibi" / "x_ref.npy").is_file()
    loaded = load_detector(folder)
    assert loaded.config == detectors[backend].config and loaded.schema == detectors[backend].schema
    assert loaded.check(window).to_dict() == detectors[backend].check(window).to_dict()


def test_result_is_plain_json(
    detectors: dict[str, DriftDetector], flights: Callable[[str], pd.DataFrame]
) -> None:
    result = detectors["alibi"].check(flights("2013-07").sample(2000, random_state=8))
    data = result.to_dict()

    def walk(value: object) -> None:
        assert type(value) in (dict, list, str, int, float, bool, type(None)), type(value)
        for child in value.values() if isinstance(value, dict) else value if isinstance(value, list) else []:
            walk(child)

    walk(data)
    assert json.loads(json.dumps(data)) == data
    assert data["is_drift"] is True and "temp" in data["drifted_features"]
    assert DriftResult.from_dict(data).to_dict() == data


# ---- bad input: a clear error, never a drift decision ------------------------------------------


@pytest.fixture
def april(flights: Callable[[str], pd.DataFrame]) -> pd.DataFrame:
    return flights("2013-04").sample(2000, random_state=9).reset_index(drop=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_window_is_refused(
    detectors: dict[str, DriftDetector], april: pd.DataFrame, backend: str
) -> None:
    with pytest.raises(DriftInputError, match="window is empty"):
        detectors[backend].check(april.iloc[:0])


def test_missing_columns_are_named(detectors: dict[str, DriftDetector], april: pd.DataFrame) -> None:
    with pytest.raises(DriftInputError, match=r"missing feature column\(s\) \['temp', 'carrier'\]"):
        detectors["alibi"].check(april.drop(columns=["carrier", "temp"]))


def test_mostly_nan_window_is_refused(detectors: dict[str, DriftDetector], april: pd.DataFrame) -> None:
    broken = april.copy()
    broken.loc[: len(broken) // 2, "temp"] = np.nan
    with pytest.raises(DriftInputError, match=r"NaN in a tested feature \(temp=50%"):
        detectors["scipy"].check(broken)


def test_a_few_nan_rows_are_dropped_and_counted(
    detectors: dict[str, DriftDetector], april: pd.DataFrame
) -> None:
    sparse = april.copy()
    sparse.loc[:9, "pressure"] = np.nan
    expected = int(sparse[list(detectors["scipy"].schema.features)].isna().any(axis=1).sum())
    result = detectors["scipy"].check(sparse)
    assert expected >= 10
    assert result.n_window_dropped == expected and result.n_window == len(sparse) - expected


def test_many_unseen_categories_are_refused(detectors: dict[str, DriftDetector], april: pd.DataFrame) -> None:
    wrong = april.copy()
    wrong.loc[: len(wrong) // 3, "carrier"] = "ZZ"
    with pytest.raises(DriftInputError, match=r"column 'carrier'.*never seen in the reference \('ZZ'"):
        detectors["alibi"].check(wrong)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_model_that_allows_unseen_categories_gets_them_tested_as_drift(
    winter_split: tuple[pd.DataFrame, pd.DataFrame], backend: str
) -> None:
    """``max_unseen_share=1``: for an input whose new values are expected (a calendar month the
    training months cannot contain), a window made only of them is drift, not wrong input."""
    reference, holdout = winter_split
    detector = build_detector(reference, DriftConfig(backend=backend, max_unseen_share=1.0))
    window = holdout.dropna(subset=list(detector.schema.features)).sample(2000, random_state=11)
    window = window.assign(carrier="ZZ").reset_index(drop=True)
    result = detector.check(window)
    assert result.unseen_categories == {"carrier": {"ZZ": 2000}}
    assert result.is_drift and "carrier" in result.drifted_features
    with pytest.raises(ValueError, match="max_unseen_share"):
        DriftConfig(max_unseen_share=1.5)


def test_a_few_unseen_categories_are_reported(
    detectors: dict[str, DriftDetector], winter_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    complete = winter_split[1].dropna(subset=list(detectors["alibi"].schema.features))
    window = complete.sample(2000, random_state=10).reset_index(drop=True)
    window.loc[:4, "dest"] = "XNA-NEW"
    result = detectors["alibi"].check(window)
    assert result.unseen_categories == {"dest": {"XNA-NEW": 5}}
    assert _feature(result, "dest").p_value is not None


def test_non_numeric_values_in_a_numeric_column_are_refused(
    detectors: dict[str, DriftDetector], april: pd.DataFrame
) -> None:
    wrong = april.astype({"distance": object})
    wrong.loc[3, "distance"] = "far"
    with pytest.raises(DriftInputError, match="column 'distance' must be numeric"):
        detectors["scipy"].check(wrong)


def test_too_small_window_is_refused(detectors: dict[str, DriftDetector], april: pd.DataFrame) -> None:
    with pytest.raises(DriftInputError, match="fewer than min_window_rows=100"):
        detectors["scipy"].check(april.head(50))


def test_detector_that_fails_to_load_raises(detectors: dict[str, DriftDetector], tmp_path: Path) -> None:
    with pytest.raises(DriftDetectorLoadError, match=r"conveyor_drift\.json is missing"):
        load_detector(tmp_path / "nowhere")
    folder = detectors["alibi"].save(tmp_path / "alibi")
    (folder / "alibi" / "x_ref.npy").write_bytes(b"not a numpy file")
    with pytest.raises(DriftDetectorLoadError, match=r"failed to load \(.*rebuild it"):
        load_detector(folder)
    folder = detectors["scipy"].save(tmp_path / "scipy")
    (folder / "conveyor_drift.json").write_text('{"backend": "scipy", "config": {"pval": 0.1}}')
    with pytest.raises(DriftDetectorLoadError, match="unknown drift config key"):
        load_detector(folder)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="unknown drift backend 'evidently'"):
        DriftConfig(backend="evidently")
    with pytest.raises(ValueError, match="backend 'scipy' has no method 'mmd'"):
        DriftConfig(backend="scipy", method="mmd")
    with pytest.raises(ValueError, match=r"unknown drift config key\(s\) \['pval'\]"):
        DriftConfig.from_dict({"pval": 0.01})


def test_vectorised_category_counts_equal_alibi_counts(
    detectors: dict[str, DriftDetector], april: pd.DataFrame
) -> None:
    """The alibi backend replaces alibi-detect's per-category Python loop; the counts must not change."""
    from alibi_detect.cd import TabularDrift

    from conveyor.core.drift.alibi import _bincount_counts

    detector = detectors["alibi"]
    matrix = detector._univariate_matrix(detector.schema.encode(april, detector.config))
    cat_columns = range(len(detector.schema.numeric), len(detector.schema.features))
    categories = {f: [*np.unique(matrix[:, f]).tolist(), 99.0] for f in cat_columns}
    assert _bincount_counts(matrix, categories) == TabularDrift._get_counts(
        detector._detector, matrix, categories
    )
