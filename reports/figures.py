"""The paper's figures and tables in the order of the paper: the registry `FIGURES`.

    from reports.figures import FIGURES, Skip
    rs = ResultSet.load(["demo_out"])
    made = FIGURES["results_table"].func(rs)      # Made(fig, caption, data) or raises Skip(note)

Each entry names a drawing function of reports/draw/ (one module per diagnostic), its title
(`diag report --help` lists them) and the result tables it needs (reports.results.TABLES): the
report skips a figure with the exact command to run when one is missing; `needs_any` when any
one of several tables is enough (the figure marks the missing panel). A function raises `Skip`
when the tables exist but do not hold what it draws (e.g. one checkpoint only); a figure marked
`several_bases` (the cross-base curve) is only attempted when the runs hold several base models. `Made.data` is
the tidy frame of the numbers drawn (written beside the figure as CSV), so a figure can be
checked against its inputs; those numbers come from reports.figure_data, which the dashboard
reads too. Every mean carries a seeded percentile-bootstrap CI over examples (plumbing.stats),
so the same inputs give byte-identical outputs. Nothing here imports torch or plotly (the
drawing functions import plotly when called).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reports.draw import ablate, attn, comparisons, evaluation, gradnorm, kl, ppl, train
from reports.draw.common import Made
from reports.figure_data import Skip
from reports.results import TABLES, ResultSet

__all__ = ["FIGURES", "FigureSpec", "Made", "Skip"]


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    func: Callable[[ResultSet], Made]
    needs: tuple[str, ...] = ()
    needs_any: tuple[str, ...] = ()
    # drawn only when the runs hold models of two or more base models (reports.results
    # ResultSet.several_bases); with one base it is not attempted and not listed as skipped
    several_bases: bool = False

    def __post_init__(self) -> None:
        for table in (*self.needs, *self.needs_any):
            if table not in TABLES:
                raise KeyError(f"figure {self.name}: unknown table {table!r}")

    @property
    def description(self) -> str:
        inputs = self.needs or self.needs_any
        joiner = " + " if self.needs else " and/or "
        return f"{self.title} (from {joiner.join(TABLES[t].pattern for t in inputs)})"

    def applies(self, rs: ResultSet) -> bool:
        """Whether this figure is meant for these runs (a cross-base figure needs 2+ bases)."""
        return not self.several_bases or rs.several_bases

    def missing(self, rs: ResultSet) -> list[str]:
        """Tables this figure lacks (empty when it can be drawn)."""
        if self.needs:
            return [t for t in self.needs if not rs.has(t)]
        if self.needs_any and not any(rs.has(t) for t in self.needs_any):
            return list(self.needs_any)
        return []


_SPECS = (
    FigureSpec(
        "results_table",
        "pass@1 per format (final models)",
        evaluation.results_table,
        needs=("pass_at_k",),
    ),
    FigureSpec(
        "difficulty_table",
        "pass@1 by difficulty (easy/medium/hard)",
        evaluation.difficulty_table,
        needs=("pass_at_k",),
    ),
    FigureSpec(
        "comparisons_table",
        "paired comparisons (differences with CIs and tests)",
        comparisons.comparisons_table,
        needs=("comparisons",),
    ),
    FigureSpec(
        "ppl_gap",
        "conditional PPL of CoT and code per format, with the gap",
        ppl.ppl_gap,
        needs=("ppl",),
    ),
    FigureSpec(
        "ppl_cross_order",
        "cross-order scoring: each model on each format's text",
        ppl.ppl_cross_order,
        needs=("ppl",),
    ),
    FigureSpec(
        "kl_valloss",
        "KL to base per format beside validation loss over checkpoints",
        kl.kl_valloss,
        needs_any=("kl", "valloss"),
    ),
    FigureSpec(
        "attn_heatmap",
        "span×span attention mass per format (all layers and heads averaged)",
        attn.attn_heatmap,
        needs=("attn",),
    ),
    FigureSpec(
        "attn_layers",
        "span×span attention mass per layer (heads averaged)",
        attn.attn_layers,
        needs=("attn",),
    ),
    FigureSpec(
        "attn_cot_code",
        "per-layer attention between CoT and code",
        attn.attn_cot_code,
        needs=("attn",),
    ),
    FigureSpec(
        "attribution",
        "span-to-span attribution scores",
        attn.attribution,
        needs=("attribution",),
    ),
    FigureSpec(
        "gradnorm",
        "gradient norm of the CoT and code losses, overall and per layer",
        gradnorm.gradnorm,
        needs=("gradnorm",),
    ),
    FigureSpec(
        "ablation_curves",
        "ablation: pass@1 over training steps per variant",
        ablate.ablation_curves,
        needs=("ablate_curves",),
    ),
    FigureSpec(
        "train_loss",
        "training loss per format",
        train.train_loss,
        needs=("train_log",),
    ),
    FigureSpec(
        "pass_at_1_checkpoints",
        "pass@1 over training checkpoints per format (main curve)",
        evaluation.pass_at_1_checkpoints,
        needs=("pass_at_k",),
    ),
    FigureSpec(
        "pass_at_1_bases",
        "pass@1 over checkpoints per base model, precede vs follow (cross-base curve)",
        evaluation.pass_at_1_bases,
        needs=("samples",),
        several_bases=True,
    ),
)
FIGURES: dict[str, FigureSpec] = {spec.name: spec for spec in _SPECS}
