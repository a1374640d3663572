"""The HTML report: tables and figures gathered into one self-contained page."""

from netdyn.report.html import ReportSection, format_cell, render_report

__all__ = ["ReportSection", "format_cell", "render_report"]
