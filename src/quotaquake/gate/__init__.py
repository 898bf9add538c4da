"""The nightly CI performance gate: k6-style thresholds judged with confidence bounds, a Parquet baseline
store of per-run summaries, and noise-aware comparison of the latest run(s) against it.

Exit codes follow ``quotaquake``: 0 pass, 1 fail, 3 unknown, 2 usage or configuration error (k6 itself
exits 99 when a threshold fails).
"""

from quotaquake.gate.baseline import IDENTITY_COLUMNS, RunIdentity, append, load, merge, read_run, run_ids
from quotaquake.gate.compare import (
    ComparePolicy,
    Comparison,
    compare_latest,
    compare_runs,
    compare_samples,
    compare_values,
    markdown_summary,
)
from quotaquake.gate.expressions import (
    METRICS,
    Expression,
    MetricSpec,
    Threshold,
    load_threshold_file,
    parse_expression,
    parse_metric_key,
    parse_thresholds,
)
from quotaquake.gate.summary import (
    SUMMARY_COLUMNS,
    SummaryRow,
    ThresholdResult,
    counter_rows,
    evaluate,
    gauge_rows,
    rate_rows,
    read_summary,
    summary_frame,
    trend_rows,
    write_summary,
)

__all__ = [
    "IDENTITY_COLUMNS",
    "METRICS",
    "SUMMARY_COLUMNS",
    "ComparePolicy",
    "Comparison",
    "Expression",
    "MetricSpec",
    "RunIdentity",
    "SummaryRow",
    "Threshold",
    "ThresholdResult",
    "append",
    "compare_latest",
    "compare_runs",
    "compare_samples",
    "compare_values",
    "counter_rows",
    "evaluate",
    "gauge_rows",
    "load",
    "load_threshold_file",
    "markdown_summary",
    "merge",
    "parse_expression",
    "parse_metric_key",
    "parse_thresholds",
    "rate_rows",
    "read_run",
    "read_summary",
    "run_ids",
    "summary_frame",
    "trend_rows",
    "write_summary",
]
