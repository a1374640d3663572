"""The HTML report: tables and figures gathered into one self-contained page."""

from netdyn._html import format_cell
from netdyn.report.html import ReportSection, render_report

__all__ = ["ReportSection", "format_cell", "render_report"]
