"""Analysis of runs: per-layer error (compare), ranges and suggested plans (profile),
overflow reports, Markdown/JSON rendering (report) and plots (lazy matplotlib)."""
from qsim.analysis.compare import (
    Comparison, ErrorAccumulator, ErrorStats, LayerError, TraceComparer, compare_model, compare_runs,
    compare_traces, error_stats, lsb_mismatch_share, render_comparison, sqnr_db,
)
from qsim.analysis.overflow import LayerOverflow, OverflowReport, overflow_report
from qsim.analysis.profile import (
    LayerProfile, Profile, RangeStats, format_for, int_bits_needed, profile_model, profile_runs,
)
from qsim.analysis.sweep import SweepFormat, SweepResult, parse_formats, sweep

__all__ = [
    "Comparison", "ErrorAccumulator", "ErrorStats", "LayerError", "TraceComparer",
    "compare_model", "compare_runs", "compare_traces", "error_stats", "lsb_mismatch_share", "render_comparison",
    "sqnr_db", "LayerOverflow", "OverflowReport", "overflow_report", "LayerProfile", "Profile",
    "RangeStats", "format_for", "int_bits_needed", "profile_model", "profile_runs",
    "SweepFormat", "SweepResult", "parse_formats", "sweep",
]
