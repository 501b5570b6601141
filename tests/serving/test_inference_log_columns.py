"""The flush's two encodings of the gateway's plain chunks write the same files: Arrow straight
from the buffered columns (the fast path) and the pandas frame of those columns (the fallback,
which also sets unencodable rows aside)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.core import inference_log as il
from conveyor.core.inference_log.chunks import ColumnBuffer
from conveyor.core.inference_log.encoding import HOUR_NS, encode, encode_columns
from conveyor.core.inference_log.layout import hour_parts

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6)
KINDS = {
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=True, allow_infinity=True),
    "text": TEXT,
    "bool": st.booleans(),
}
NAMES = ("carrier", "hour", "temp", "delayed", "slot")
START_NS = 1_765_000_000 * 10**9


@st.composite
def buffers(draw: st.DrawFn) -> tuple[ColumnBuffer, bool]:
    """Buffers of random chunks: columns of one type (with gaps), sometimes one of mixed types."""
    kinds = {name: draw(st.sampled_from(sorted(KINDS))) for name in NAMES}
    mixed = draw(st.booleans()) and draw(st.sampled_from(NAMES))
    buffer = ColumnBuffer()
    for _ in range(draw(st.integers(1, 8))):
        rows = draw(st.integers(1, 3))
        chunk: dict[str, Any] = {}
        for name in draw(st.lists(st.sampled_from(NAMES), min_size=1, unique=True)):
            values = st.one_of(*KINDS.values()) if name == mixed else KINDS[kinds[name]]
            if draw(st.booleans()) and rows == 1:
                chunk[name] = draw(values)  # a scalar, broadcast
            else:
                chunk[name] = draw(st.lists(st.one_of(st.none(), values), min_size=rows, max_size=rows))
        buffer.add(chunk, rows, START_NS + draw(st.sampled_from([0, 1, 2])) * HOUR_NS)
    return buffer, bool(mixed)


def _read(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(buffers())
def test_arrow_from_columns_writes_what_the_pandas_path_writes(case: tuple[ColumnBuffer, bool]) -> None:
    buffer, mixed = case
    fast = encode_columns(buffer.columns, buffer.stamps)
    if fast is None:
        # only a column pandas would hold as objects of several types is left to the pandas path
        assert mixed
        return
    slow = [(hour, *encode(part)) for hour, part in hour_parts(buffer.frame())]
    assert [part.hour for part in fast] == [hour for hour, _, _ in slow]
    for part, (_, data, bad) in zip(fast, slow, strict=True):
        assert not bad and data is not None and part.data is not None
        fast_table, slow_table = _read(part.data), _read(data)
        assert fast_table.column_names == slow_table.column_names
        for name in slow_table.column_names:
            got, want = fast_table[name], slow_table[name]
            if want.type == pa.null() and got.type != pa.null():
                # a column null throughout one hour of a batch keeps the batch's type there
                assert got.null_count == len(got)
                continue
            assert got.type == want.type, name
            pd.testing.assert_series_equal(got.to_pandas(), want.to_pandas(), check_names=False)
        assert part.rows == slow_table.num_rows and len(part.records()) == part.rows


def test_a_mixed_column_takes_the_pandas_path_and_costs_only_its_bad_rows(tmp_path: Path) -> None:
    with il.InferenceLogWriter(str(tmp_path), flush_interval_s=60) as writer:
        writer.append_predictions({"request_id": ["a", "b"], "hour": [1, 2], "slot": "stable"})
        writer.append_predictions({"request_id": ["c"], "hour": ["three"], "slot": "stable"})
    now = pd.Timestamp.now(tz="UTC")
    frame = il.read_predictions(str(tmp_path), now - pd.Timedelta(hours=2), now + pd.Timedelta(hours=1))
    assert sorted(frame["request_id"]) == ["a", "b"] and frame["hour"].dtype == "int64"
    assert [entry["row"]["request_id"] for entry in il.read_dead_letter(str(tmp_path))] == ["c"]


def test_a_value_that_cannot_be_iterated_is_refused_and_leaves_the_buffer_whole() -> None:
    class Sized:
        def __len__(self) -> int:
            return 1

    buffer = ColumnBuffer()
    buffer.add({"a": [1], "b": ["x"]}, 1, START_NS)
    try:
        buffer.add({"a": [2], "b": Sized()}, 1, START_NS)
    except ValueError as exc:
        assert "iterable" in str(exc)
    else:
        raise AssertionError("a sized, non-iterable value was taken")
    assert buffer.columns == {"a": [1], "b": ["x"]} and buffer.rows == 1
