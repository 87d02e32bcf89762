"""diag report: run discovery, every figure from real result files, numbers equal to the inputs,
non-blank PNGs, deterministic output, clear errors.

The result set is made once per session by the real commands (tests/results_fixture.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_diag, run_diag_here
from results_fixture import final_pass_at_1, need

from plumbing import InputError, Manifest
from reports.figures import FIGURES
from reports.report import CHROMIUM_HINT, ReportConfig, stable_svg
from reports.results import TABLES, ResultSet, find_runs


@pytest.fixture(scope="session")
def report_dir(results, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report"
    args = ["report", "--out", str(out)]
    for root in results.roots:
        args += ["--runs", str(root)]
    proc = run_diag(*args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


# the figures a result set of one base model is drawn or skipped with (not the cross-base ones)
ONE_BASE_FIGURES = [name for name, spec in FIGURES.items() if not spec.several_bases]


def expected_figures(results) -> set[str]:
    """Every figure, less those whose producer is not built yet (ablate) and the cross-base
    ones (the result set has one base model)."""
    missing_tables = {t for t, spec in TABLES.items() if spec.made_by in results.missing}
    return {
        name
        for name, spec in FIGURES.items()
        if not spec.several_bases
        and not (set(spec.needs) & missing_tables)
        and not (spec.needs_any and set(spec.needs_any) <= missing_tables)
    }


def pixel_stats(path: Path) -> tuple[float, float]:
    """(variance of the grey levels, share of pixels darker than light grey)."""
    from PIL import Image

    grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    return float(grey.var()), float((grey < 200).mean())


# ---------------------------------------------------------------------------------------------
# discovery (no model needed)


def _fake_run(path: Path, command: str, status: str = "finished", **config) -> Path:
    path.mkdir(parents=True)
    man = Manifest(command, path, config=config)
    if status == "finished":
        man.finish()
    else:
        (path / "manifest.json").write_text(json.dumps(man.as_dict(status)))
    return path


def test_find_runs_recursive_skips_unfinished_and_hidden(tmp_path):
    _fake_run(tmp_path / "a" / "kl", "kl")
    _fake_run(tmp_path / "b" / "deep" / "attn", "attn")
    _fake_run(tmp_path / "c", "valloss", status="running")
    _fake_run(tmp_path / ".x.tmp" / "ppl", "ppl")  # an atomic write in progress
    runs, notes = find_runs([tmp_path])
    assert [(r.name, r.command) for r in runs] == [("a/kl", "kl"), ("b/deep/attn", "attn")]
    assert len(notes) == 1 and "not finished" in notes[0] and str(tmp_path / "c") in notes[0]
    # a run folder given directly is named after itself; the same run twice is one run
    runs, _ = find_runs([tmp_path / "a" / "kl", tmp_path / "a"])
    assert [r.name for r in runs] == ["kl"]


def test_find_runs_errors(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        find_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no finished run under it"):
        find_runs([tmp_path / "empty"])


def test_train_log_gets_identity_from_manifest(tiny_runs):
    rs = ResultSet.load([tiny_runs["follow"].parent])
    log = rs.table("train_log")
    direct = pd.concat(
        [pd.read_parquet(tiny_runs[f] / "train_log.parquet") for f in ("follow", "precede")]
    )
    assert len(log) == len(direct)
    assert sorted(log["label"].unique()) == ["follow-s0", "precede-s0"]
    for fmt in ("follow", "precede"):
        ours = log[log["format"] == fmt].sort_values("step")
        theirs = pd.read_parquet(tiny_runs[fmt] / "train_log.parquet").sort_values("step")
        np.testing.assert_array_equal(ours["loss"].to_numpy(), theirs["loss"].to_numpy())
        assert set(ours["run"]) == {fmt} and set(ours["command"]) == {"train"}
    assert rs.subset(["precede-s0"]).table("train_log")["label"].unique().tolist() == ["precede-s0"]


def test_stable_svg_replaces_plotly_random_id():
    svg = '<svg><defs id="defs-a1b2c3"><clipPath id="clipa1b2c3xyplot"/></defs>'
    out = stable_svg(svg, "fig")
    assert "a1b2c3" not in out and out == stable_svg(svg.replace("a1b2c3", "ffee00"), "fig")


def test_help_lists_every_figure():
    proc = run_diag("report", "--help")
    assert proc.returncode == 0
    for name in FIGURES:
        assert f"{name}:" in proc.stdout


def test_only_unknown_figure_and_foreign_out(tiny_runs, tmp_path):
    runs = str(tiny_runs["follow"].parent)
    proc = run_diag_here("report", "--runs", runs, "--out", str(tmp_path / "r"), "--only", "nope")
    assert proc.returncode == 2 and "--only nope: unknown figure" in proc.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    proc = run_diag_here("report", "--runs", runs, "--out", str(tmp_path / "mine"))
    assert proc.returncode == 2 and "not a previous report" in proc.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_missing_chromium_is_a_clear_error(tiny_runs, tmp_path, monkeypatch):
    import reports.report as report

    monkeypatch.setattr(report, "find_chromium", lambda: None)
    out = tmp_path / "r"
    cfg = ReportConfig(runs=[str(tiny_runs["follow"].parent)], out=str(out))
    with pytest.raises(InputError) as err:
        report.main(cfg)
    assert str(err.value) == CHROMIUM_HINT and "make chromium" in CHROMIUM_HINT
    assert not out.exists()  # nothing half-written
    result = report.main(ReportConfig(runs=cfg.runs, out=str(out), images=False))
    assert result["figures"] == ["train_loss"]
    assert (out / "train_loss.html").exists() and not (out / "train_loss.png").exists()


def test_missing_inputs_are_skipped_with_the_command(tiny_runs, tmp_path):
    import reports.report as report

    out = tmp_path / "r"
    result = report.main(
        ReportConfig(runs=[str(tiny_runs["follow"].parent)], out=str(out), images=False)
    )
    assert result["figures"] == ["train_loss"]
    assert set(result["skipped"]) == set(ONE_BASE_FIGURES) - {"train_loss"}
    page = (out / "report.html").read_text()
    assert "diag kl --model runs/follow --model runs/precede" in page
    assert "diag eval --model runs/FORMAT" in result["skipped"]["results_table"]


# ---------------------------------------------------------------------------------------------
# the full result set (real diag eval / ppl / kl / valloss / attn output)


@pytest.mark.slow
def test_report_writes_every_figure_with_nonblank_images(results, report_dir):
    manifest = json.loads((report_dir / "manifest.json").read_text())
    assert manifest["command"] == "report" and manifest["status"] == "finished"
    made = set(manifest["result"]["figures"])
    assert made == expected_figures(results), manifest["result"]["skipped"]
    for name in made:
        for ext in ("html", "png", "svg", "csv"):
            assert (report_dir / f"{name}.{ext}").stat().st_size > 0, (name, ext)
        variance, dark = pixel_stats(report_dir / f"{name}.png")
        assert variance > 100 and dark > 0.005, (name, variance, dark)
        assert f'id="fig-{name}"' in (report_dir / f"{name}.html").read_text()
    page = (report_dir / "report.html").read_text()
    for name in made:
        assert f'<figure id="{name}">' in page
    for name in set(ONE_BASE_FIGURES) - made:
        assert name in manifest["result"]["skipped"]
        assert name in page  # listed under "Skipped" with its note


@pytest.mark.slow
def test_report_numbers_equal_the_result_files(results, report_dir):
    need(results, "eval", "attn", "ppl", "ablate")
    # pass@1 table == pass_at_k.parquet (k=1, group all, last checkpoint / samples run)
    table = pd.read_csv(report_dir / "results_table.csv")
    for label, want in final_pass_at_1(results).items():
        row = table[table["label"] == label].iloc[0]
        assert row["pass_at_1"] == pytest.approx(want["pass_at_k"], abs=1e-6)
        assert row["ci_low"] == pytest.approx(want["ci_low"], abs=1e-6)
        assert row["n_tasks"] == want["n_tasks"]
    expected_oracle = sum(results.oracle_pass.values()) / len(results.oracle_pass)
    assert table.set_index("label").loc["oracle", "pass_at_1"] == pytest.approx(expected_oracle)
    # the attention heatmap == mean over layers and heads of the visible pairs of attn.parquet
    attn = pd.read_parquet(results.results / "attn" / "attn.parquet")
    drawn = pd.read_csv(report_dir / "attn_heatmap.csv").dropna(subset=["mass"])
    direct = attn[attn["visible"]].groupby(["label", "src", "dst"])["mass"].mean()
    assert len(drawn) == len(direct)
    for r in drawn.itertuples():
        assert r.mass == pytest.approx(direct[(r.label, r.src, r.dst)], rel=1e-5)
    # the ppl gap == mean of ppl.parquet's own-format `gap` rows
    ppl = pd.read_parquet(results.results / "ppl" / "ppl.parquet")
    gaps = pd.read_csv(report_dir / "ppl_gap.csv")
    gaps = gaps[gaps["kind"] == "gap_cot_minus_code"].set_index("label")
    own = ppl[(ppl["span"] == "gap") & (ppl["score_format"] == ppl["format"])]
    for label, sub in own.groupby("label"):
        assert gaps.loc[label, "gap"] == pytest.approx(sub["log_ppl"].mean(), rel=1e-6)
        assert gaps.loc[label, "ci_low"] <= gaps.loc[label, "gap"] <= gaps.loc[label, "ci_high"]
    # ablation curves == ablate_curves.parquet (its nested retraining/eval runs are not read
    # as runs of their own: the training loss below would have twice the precede rows)
    curves = pd.read_csv(report_dir / "ablation_curves.csv")
    direct = pd.read_parquet(results.results / "ablate-precede" / "ablate_curves.parquet")
    merged = curves.merge(direct, on=["variant", "step"], suffixes=("", "_direct"))
    assert len(merged) == len(direct) == len(curves)
    np.testing.assert_allclose(merged["pass_at_1"], merged["pass_at_1_direct"])
    # training loss == train_log.parquet
    loss = pd.read_csv(report_dir / "train_loss.csv")
    for fmt in ("follow", "precede"):
        log = pd.read_parquet(results.roots[0] / fmt / "train_log.parquet")
        ours = loss[loss["format"] == fmt].sort_values("step")["loss"].to_numpy()
        np.testing.assert_allclose(ours, log.sort_values("step")["loss"].to_numpy(), rtol=1e-5)


@pytest.mark.slow
def test_report_is_deterministic(results, report_dir, tmp_path):
    need(results, "eval", "attn", "kl", "valloss")
    again = tmp_path / "again"
    args = ["report", "--out", str(again)]
    for root in results.roots:
        args += ["--runs", str(root)]
    for name in ("attn_heatmap", "kl_valloss", "results_table"):
        args += ["--only", name]
    proc = run_diag(*args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("attn_heatmap", "kl_valloss", "results_table"):
        for ext in ("html", "png", "svg", "csv"):
            a = (report_dir / f"{name}.{ext}").read_bytes()
            b = (again / f"{name}.{ext}").read_bytes()
            assert a == b, f"{name}.{ext} differs between two runs on the same inputs"
    # running it again over an existing report replaces it, leaving no temporary folder
    before = sorted(p.name for p in again.iterdir())
    proc = run_diag(*args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in again.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["again"]


def test_attention_figures_take_a_full_study_of_twelve_models(results):
    """`--preset full` has 3 seeds x 4 formats: 12 rows of per-layer heatmaps (plotly refuses a
    fixed row spacing past 9 rows; the full demo's report failed on it once)."""
    import pandas as pd

    rs = ResultSet.load(results.roots)
    attn = rs.table("attn")
    first = attn[attn["label"] == attn["label"].iloc[0]]
    rs._tables["attn"] = pd.concat(
        first.assign(label=f"{fmt}-s{seed}", seed=seed)
        for fmt in ("seed", "wo", "follow", "precede")
        for seed in range(3)
    )
    for name in ("attn_layers", "attn_heatmap"):
        made = FIGURES[name].func(rs)
        assert made.data["label"].nunique() == 12, name
        assert len(made.fig.data) >= 12, name
