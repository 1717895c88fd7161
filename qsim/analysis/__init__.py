"""Analysis of runs: per-layer error (compare), ranges and suggested plans (profile),
overflow reports, Markdown/JSON rendering (report) and plots (lazy matplotlib).

The face-detection experiments (``qsim sweep``: AP per format) are an application on top of
these: `qsim.facedet.sweep`."""
from qsim.analysis.compare import (
    Comparison,
    ErrorAccumulator,
    ErrorStats,
    LayerError,
    TraceComparer,
    compare_model,
    compare_runs,
    compare_traces,
    error_stats,
    lsb_mismatch_share,
    render_comparison,
    sqnr_db,
)
from qsim.analysis.overflow import LayerOverflow, OverflowReport, overflow_report
from qsim.analysis.profile import (
    LayerProfile,
    Profile,
    RangeStats,
    format_for,
    int_bits_needed,
    profile_model,
    profile_runs,
)

__all__ = [
    "Comparison", "ErrorAccumulator", "ErrorStats", "LayerError", "TraceComparer",
    "compare_model", "compare_runs", "compare_traces", "error_stats", "lsb_mismatch_share", "render_comparison",
    "sqnr_db", "LayerOverflow", "OverflowReport", "overflow_report", "LayerProfile", "Profile",
    "RangeStats", "format_for", "int_bits_needed", "profile_model", "profile_runs",
]
