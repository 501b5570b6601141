"""The inference log: every served prediction and every label, as hour-partitioned Parquet.

The gateway appends on its request path, so ``InferenceLogWriter.append_*`` only queues a chunk
in memory; a background thread turns queued chunks into one Parquet file per partition hour.
Drift and performance monitoring read it back by time window. Layout (an fsspec URL, a local
folder by default, so object stores work without code changes)::

    <root>/predictions/date=YYYY-MM-DD/hour=HH/<batch>.parquet
    <root>/feedback/date=YYYY-MM-DD/hour=HH/<batch>.parquet
    <root>/dead_letter/<kind>/<batch>.jsonl      rows the log could not take, with the reason

One job per module: ``layout`` (paths, hour listing), ``reading``, ``chunks`` (what callers
append), ``encoding`` (Parquet bytes, poison rows set aside), ``dead_letter``, ``json_values``,
``spool`` (the durable mode), ``writer``. This package exports what the rest of Conveyor uses.
"""

from conveyor.core.inference_log.dead_letter import read_dead_letter
from conveyor.core.inference_log.layout import PREDICTIONS, partition_files
from conveyor.core.inference_log.reading import join_feedback, read_feedback, read_log_file, read_predictions
from conveyor.core.inference_log.writer import InferenceLogWriter, write_partitioned

__all__ = [
    "PREDICTIONS",
    "InferenceLogWriter",
    "join_feedback",
    "partition_files",
    "read_dead_letter",
    "read_feedback",
    "read_log_file",
    "read_predictions",
    "write_partitioned",
]
