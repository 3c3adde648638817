"""`iptbench eval`: benchmark suites, model specs, the eval loop and its output files (report.md is report's).

May import models, metrics, benchmarks, degradations, ops, images, io, tasks, errors; never report or train.
"""

from iptbench.evaluation.model_specs import ModelEntry, Restorer, parse_model_spec, parse_model_specs
from iptbench.evaluation.runner import EvalConfig, EvalResult, run_eval
from iptbench.evaluation.suites import SUITE_NAMES, SUITES, build_plan

__all__ = [
    "SUITES",
    "SUITE_NAMES",
    "EvalConfig",
    "EvalResult",
    "ModelEntry",
    "Restorer",
    "build_plan",
    "parse_model_spec",
    "parse_model_specs",
    "run_eval",
]
