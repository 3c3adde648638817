"""`iptbench eval`: benchmark suites, baselines, the eval loop and its output files."""

from iptbench.evaluation.model_specs import Restorer, parse_model_spec, parse_model_specs
from iptbench.evaluation.noise import add_gaussian_noise, kair_noisy01
from iptbench.evaluation.runner import EvalConfig, EvalResult, run_eval
from iptbench.evaluation.suites import SUITE_NAMES, SUITES, build_plan

__all__ = [
    "SUITES",
    "SUITE_NAMES",
    "EvalConfig",
    "EvalResult",
    "Restorer",
    "add_gaussian_noise",
    "build_plan",
    "kair_noisy01",
    "parse_model_spec",
    "parse_model_specs",
    "run_eval",
]
