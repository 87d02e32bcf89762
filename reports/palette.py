"""Colors shared by the report's figures (reports/draw/) and the dashboard's token view (app/).

    from reports.palette import FORMAT_COLORS, SPAN_COLORS
    FORMAT_COLORS["follow"]   # '#1f77b4': every follow model (seeds differ by dash, not color)
    SPAN_COLORS["cot"]        # '#2ca02c'

Plain constants (no plotly), so the dashboard can color tokens without importing drawing code.
"""

from __future__ import annotations

# One color per format (seeds of a format share it and differ by dash), colorblind-safe.
# The order is the study's format order (cross-order scoring lists the scored formats by it).
FORMAT_COLORS = {
    "base": "#4d4d4d",
    "seed": "#999999",
    "wo": "#9467bd",
    "follow": "#1f77b4",
    "precede": "#ff7f0e",
}
SPAN_COLORS = {"prompt": "#7f7f7f", "cot": "#2ca02c", "code": "#d62728", "response": "#17becf"}
