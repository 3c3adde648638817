"""`iptbench report`: paper-style tables, eval's report.md, curves, the published numbers (published.csv).

May import evaluation (result files), tasks, io and errors; the eval runner never imports report.
"""

from iptbench.report.tables import build_blocks, load_results, render_report, write_eval_report

__all__ = ["build_blocks", "load_results", "render_report", "write_eval_report"]
