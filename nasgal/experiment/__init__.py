"""Whole DARTS-GAL experiments from one TOML file, with a report."""

from .config import Experiment, load_experiment, parse_experiment, with_overrides
from .pipeline import STAGES, ExperimentResult, Interrupted, run_experiment
from .report import paper_tables, report_figures, write_report

__all__ = [
    "STAGES",
    "Experiment",
    "ExperimentResult",
    "Interrupted",
    "load_experiment",
    "paper_tables",
    "parse_experiment",
    "run_experiment",
    "report_figures",
    "with_overrides",
    "write_report",
]
