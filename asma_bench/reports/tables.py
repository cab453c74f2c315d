"""Compatibility module: the grid tables now live in :mod:`asma_bench.reports.compare`
(the comparison of cells, as a ``GridReport``), :mod:`asma_bench.reports.clips` (the
per-clip test) and :mod:`asma_bench.reports.render`
(Markdown, LaTeX and CSV); their public names stay importable from here."""

from __future__ import annotations

from asma_bench.reports.clips import paired_clip_differences
from asma_bench.reports.compare import (
    SIG_THRESHOLDS,
    STAT_COLUMNS,
    GridReport,
    ReportOptions,
    build_grid_report,
    describe_data,
    is_number,
    metric_label,
    percent_metric,
    reference_cells,
    seed_test_na,
)
from asma_bench.reports.render import (
    MATRIX_MARKS,
    display_rows,
    fmt_p,
    fmt_value,
    label_frame,
    latex_escape,
    latex_table,
    markdown_table,
    matrix_rows,
    to_latex,
    to_markdown,
    write_grid_report,
)

__all__ = [
    "MATRIX_MARKS",
    "SIG_THRESHOLDS",
    "STAT_COLUMNS",
    "GridReport",
    "ReportOptions",
    "build_grid_report",
    "describe_data",
    "display_rows",
    "fmt_p",
    "fmt_value",
    "is_number",
    "label_frame",
    "latex_escape",
    "latex_table",
    "markdown_table",
    "matrix_rows",
    "metric_label",
    "paired_clip_differences",
    "percent_metric",
    "reference_cells",
    "seed_test_na",
    "to_latex",
    "to_markdown",
    "write_grid_report",
]
