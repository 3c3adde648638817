"""`iptbench report`: paper-style tables from eval result folders, beside the published numbers."""

from iptbench.report.tables import build_blocks, load_results, render_report

__all__ = ["build_blocks", "load_results", "render_report"]
