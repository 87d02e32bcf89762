"""The figure of training loss per format (diag train, train_log.parquet).

from reports.draw.train import train_loss
made = train_loss(ResultSet.load(["demo_out"]))   # Made(fig, caption, data) or Skip
"""

from __future__ import annotations

from reports.draw.common import Made, curve_figure
from reports.figure_data import Skip, run_inputs, seeds_text
from reports.results import ResultSet, sort_labels


def train_loss(rs: ResultSet) -> Made:
    frame = rs.table("train_log").dropna(subset=["loss"])
    if frame.empty:
        raise Skip("train_log.parquet has no loss rows")
    fig, width = curve_figure(
        frame, "step", "loss", "label", None, "Training loss", "loss (nats/token)"
    )
    labels = sort_labels(frame["label"])
    steps = frame.groupby("label")["step"].max()
    caption = (
        f"Training loss (mean over logged steps, response tokens only) of {', '.join(labels)} "
        f"(seeds {seeds_text(frame)}; {run_inputs(rs, frame) or 'train runs'}; "
        f"steps: {', '.join(f'{k} {int(v)}' for k, v in steps.items())})."
    )
    cols = [
        c
        for c in ("label", "format", "seed", "step", "loss", "learning_rate", "loss_tokens_seen")
        if c in frame.columns
    ]
    data = frame[cols].sort_values(["label", "step"]).reset_index(drop=True)
    return Made(fig, caption, data, width, 480)
