"""Orchestration: a whole run from its spec (train, analyse, report), and analyses of networks and run folders.

This layer joins the ones below it (data, models, store, training, analysis, plots, report) and is what the
experiments, sweeps, the monitor and the command line build on.
"""

from netdyn.orchestration.analyses import ANALYSIS_FILE, Analysis, analyze, analyze_checkpoints, load_analysis
from netdyn.orchestration.reports import check_report_target, write_run_report
from netdyn.orchestration.runs import Run, RunResult, RunSpec, load_run, run, run_population
from netdyn.orchestration.settings import spec_from_settings

__all__ = [
    "ANALYSIS_FILE",
    "Analysis",
    "Run",
    "RunResult",
    "RunSpec",
    "analyze",
    "analyze_checkpoints",
    "check_report_target",
    "load_analysis",
    "load_run",
    "run",
    "run_population",
    "spec_from_settings",
    "write_run_report",
]
