"""Runs keyed by their base model: two studies on two bases, same formats and seeds, in one
result set (labels `<base>/<format>-s<seed>`, replication and paired tests per base, the
cross-base figure), and one base unchanged. Fast: result folders are written directly in the
format the commands write (manifests + parquet), no model is trained or loaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plumbing import Manifest
from reports import replication
from reports.figures import FIGURES
from reports.report import build_figures
from reports.results import ResultSet, display_label, format_key, sort_labels
from training.modeling import ModelRef, base_name

BASES = ("gpt2", "llama")
FORMATS = ("follow", "precede")
SEEDS = (0, 1)
STEPS = (4, 8)
N_TASKS = 12


def _finished(path: Path, command: str, **config) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    Manifest(command, path, config=config).finish()
    return path


def _passed(base: str, fmt: str, seed: int, step: int, task: int) -> bool:
    """A deterministic pass pattern that differs by base, format, seed and step: on gpt2
    precede passes more tasks, on llama follow does (the cross-base question)."""
    better = (base == "gpt2") == (fmt == "precede")
    cut = (8 if better else 4) + (step // 4) - 1 + seed
    return task < cut


def _model(root: Path, base: str, fmt: str, seed: int) -> Path:
    """A training run folder of `base` (manifest + final/config.json), as diag train leaves it."""
    run = root / "train" / base / f"{fmt}-s{seed}"
    (run / "final").mkdir(parents=True)
    (run / "final" / "config.json").write_text("{}")
    config = dict(format=fmt, seed=seed, base=str(root / "bases" / base), out=str(run))
    Manifest("train", run, config=config).finish(result={"steps": STEPS[-1]})
    return run


def _study(root: Path, base: str, with_base_column: bool = True) -> None:
    """One base's study: its pretrain folder, its training runs, one eval run per model (every
    checkpoint on the test split: samples.parquet + pass_at_k.parquet) and a kl table."""
    base_dir = root / "bases" / base
    base_dir.mkdir(parents=True)
    (base_dir / "config.json").write_text("{}")
    Manifest("pretrain", base_dir, config={"preset": "tiny"}).finish()
    kl_rows = []
    for fmt in FORMATS:
        for seed in SEEDS:
            run = _model(root, base, fmt, seed)
            label = f"{fmt}-s{seed}"
            samples, pak = [], []
            for step in STEPS:
                ident = dict(label=label, base=base, format=fmt, seed=seed, step=step)
                passed = [_passed(base, fmt, seed, step, t) for t in range(N_TASKS)]
                for t, ok in enumerate(passed):
                    samples.append(
                        dict(
                            **ident,
                            loss_tokens_seen=step * (100 if fmt == "follow" else 90),
                            checkpoint=f"checkpoint-{step}",
                            bench="toy",
                            split="test",
                            task_id=f"t{t:02d}",
                            sample=0,
                            status="pass" if ok else "fail",
                            passed=ok,
                        )
                    )
                rate = float(np.mean(passed))
                pak.append(
                    dict(**ident, bench="toy", split="test", suite="main", group="all", k=1)
                    | dict(pass_at_k=rate, ci_low=rate - 0.1, ci_high=rate + 0.1, n_tasks=N_TASKS)
                )
            out = _finished(
                root / "eval" / base / f"{label}-test", "eval", model=str(run), bench="toy"
            )
            frames = {"samples": pd.DataFrame(samples), "pass_at_k": pd.DataFrame(pak)}
            for name, frame in frames.items():
                if not with_base_column:
                    frame = frame.drop(columns="base")
                frame.to_parquet(out / f"{name}.parquet")
            for ex in range(4):
                for span in ("cot", "code"):
                    kl_rows.append(
                        dict(label=label, base=base, format=fmt, seed=seed, step=None)
                        | dict(example_id=f"e{ex}", span=span, kl_mean=0.1 * (ex + seed + 1))
                    )
    kl = pd.DataFrame(kl_rows)
    if not with_base_column:
        kl = kl.drop(columns="base")
    models = [str(root / "train" / base / f"{f}-s{s}") for f in FORMATS for s in SEEDS]
    out = _finished(root / "diag" / base / "kl", "kl", model=models)
    kl.to_parquet(out / "kl.parquet")


@pytest.fixture(scope="module")
def two_bases(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two_bases")
    for base in BASES:
        _study(root, base)
    return root


@pytest.fixture(scope="module")
def one_base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("one_base")
    _study(root, "gpt2")
    return root


def _replicate(root: Path, out: Path) -> dict[str, bytes]:
    cfg = replication.ReplicationConfig(runs=[str(root)], out=str(out), n_resamples=500)
    replication.main(cfg)
    names = ("replication.md", "replication.parquet", "comparisons.parquet")
    return {name: (out / name).read_bytes() for name in names}


# ---------------------------------------------------------------------------------------------
# identity


def test_model_ref_names_its_base(two_bases):
    ref = ModelRef.from_path(two_bases / "train" / "llama" / "precede-s1")
    assert (ref.label, ref.base, ref.format, ref.seed, ref.step) == (
        "precede-s1",
        "llama",
        "precede",
        1,
        STEPS[-1],
    )
    assert ref.columns() == dict(label="precede-s1", base="llama", format="precede", seed=1, step=8)
    own = ModelRef.from_path(two_bases / "bases" / "gpt2")
    assert (own.label, own.base, own.format) == ("base", "gpt2", None)
    assert base_name("/x/bases/gpt2/final") == "gpt2" and base_name("/x/base/") == "base"


def test_labels_name_their_base_only_when_there_are_several():
    assert display_label("precede-s0", "gpt2", True) == "gpt2/precede-s0"
    assert display_label("precede-s0", "gpt2", False) == "precede-s0"
    assert display_label("precede-s0", None, True) == "precede-s0"
    assert format_key("gpt2-small/follow-s1") == "gpt2-small/follow"
    assert sort_labels(["llama/precede-s0", "gpt2/precede-s0", "gpt2/follow-s0"]) == [
        "gpt2/follow-s0",
        "gpt2/precede-s0",
        "llama/precede-s0",
    ]


def test_two_bases_keep_both_runs_with_prefixed_labels(two_bases):
    rs = ResultSet.load([two_bases])
    assert rs.bases() == list(BASES) and rs.several_bases
    pak = rs.table("pass_at_k")
    expected = {f"{b}/{f}-s{s}" for b in BASES for f in FORMATS for s in SEEDS}
    assert set(pak["label"]) == expected
    # the same-named run of each base keeps its own numbers (nothing keeps "the first")
    final = pak[(pak["step"] == 8) & (pak["label"].str.endswith("/precede-s0"))]
    by_label = dict(zip(final["label"], final["pass_at_k"]))
    assert by_label == {"gpt2/precede-s0": 9 / 12, "llama/precede-s0": 5 / 12}
    # the app's filter (subset) keeps one base's model and its rows only
    sub = rs.subset(["llama/precede-s0"]).table("kl")
    assert set(sub["label"]) == {"llama/precede-s0"} and len(sub) == 8


def test_tables_without_a_base_column_get_it_from_the_manifests(tmp_path):
    for base in BASES:
        _study(tmp_path, base, with_base_column=False)
    rs = ResultSet.load([tmp_path])
    assert rs.bases() == list(BASES)
    for name in ("samples", "pass_at_k", "kl"):
        frame = rs.table(name)
        assert frame["base"].notna().all(), name
        assert (frame["label"].str.split("/").str[0] == frame["base"]).all(), name


# ---------------------------------------------------------------------------------------------
# replication per base


def test_replication_rows_per_base_and_paired_tests_within_a_base(two_bases, tmp_path):
    written = _replicate(two_bases, tmp_path / "two")
    table = pd.read_parquet(tmp_path / "two" / "replication.parquet")
    comp = pd.read_parquet(tmp_path / "two" / "comparisons.parquet")
    assert list(table.columns)[0] == "base" and list(comp.columns)[0] == "base"
    pass1 = table[table["metric"] == "pass@1"]
    assert sorted(zip(pass1["base"], pass1["format"])) == [
        (b, f) for b in BASES for f in ("follow", "precede")
    ]
    # final step, seeds averaged per task: gpt2 precede passes tasks < 9 (s0) and < 10 (s1)
    got = pass1.set_index(["base", "format"])["mean"]
    assert got[("gpt2", "precede")] == pytest.approx((9 + 10) / 2 / 12)
    assert got[("llama", "precede")] == pytest.approx((5 + 6) / 2 / 12)
    # every paired test compares two formats of one base, once per base
    plain = comp[comp["metric"] == "pass@1:test"]
    assert sorted(zip(plain["base"], plain["a"], plain["b"])) == [
        (b, "precede", "follow") for b in BASES
    ]
    diff = plain.set_index("base")["diff"]
    assert diff["gpt2"] > 0 > diff["llama"]
    text = written["replication.md"].decode()
    assert text.count("## Base model: ") == 2
    assert text.index("## Base model: gpt2") < text.index("## Base model: llama")
    # each base's section and numbers are those of that base's study alone
    alone = tmp_path / "gpt2-alone"
    _study(alone, "gpt2")
    single = _replicate(alone, tmp_path / "one")
    gpt2_section = text.split("## Base model: llama")[0].split("## Base model: gpt2\n\n")[1]
    assert gpt2_section.rstrip("\n") == single["replication.md"].decode().rstrip("\n")
    one = pd.read_parquet(tmp_path / "one" / "replication.parquet")
    mine = table[table["base"] == "gpt2"].drop(columns="base").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, one)
    assert "gpt2: precede > follow; llama: follow > precede" == replication.ordering(table)


def test_one_base_keeps_labels_and_files_unchanged(one_base, tmp_path):
    rs = ResultSet.load([one_base])
    assert rs.bases() == ["gpt2"] and not rs.several_bases
    assert set(rs.table("pass_at_k")["label"]) == {f"{f}-s{s}" for f in FORMATS for s in SEEDS}
    table, comp, text = replication.build(
        replication.ReplicationConfig(runs=[str(one_base)], n_resamples=500)
    )
    assert "base" not in table.columns and "base" not in comp.columns
    assert "## Base model" not in text and text.startswith("| format |")
    made, skipped = build_figures(rs)
    assert "pass_at_1_bases" not in made and "pass_at_1_bases" not in skipped
    assert "model" in made["results_table"].fig.data[0].header.values[0]
    assert "base" not in str(made["results_table"].fig.data[0].header.values)


def test_one_base_copy_beside_the_original_is_two_bases(one_base, tmp_path):
    """A study copied under a second base's name: both appear, each labelled by its base."""
    root = tmp_path / "both"
    shutil.copytree(one_base, root / "a")
    _study(root / "b", "llama")
    rs = ResultSet.load([root])
    labels = set(rs.table("samples")["label"])
    assert {"gpt2/precede-s0", "llama/precede-s0"} <= labels
    made = FIGURES["results_table"].func(rs)
    header = [str(h) for h in made.fig.data[0].header.values]
    assert header[:4] == ["<b>model</b>", "<b>base</b>", "<b>format</b>", "<b>seed</b>"]
    assert list(made.fig.data[0].cells.values[1]) == ["gpt2"] * 4 + ["llama"] * 4


# ---------------------------------------------------------------------------------------------
# the cross-base figure


def test_cross_base_figure_has_one_panel_per_base(two_bases):
    rs = ResultSet.load([two_bases])
    made, skipped = build_figures(rs, ["pass_at_1_bases"])
    assert not skipped, skipped
    fig, data = made["pass_at_1_bases"].fig, made["pass_at_1_bases"].data
    titles = [a.text for a in fig.layout.annotations]
    assert titles == list(BASES)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert sorted((t.name, t.xaxis) for t in lines) == [
        (f, axis) for f in ("follow", "precede") for axis in ("x", "x2")
    ]
    assert len(data) == len(BASES) * len(FORMATS) * len(STEPS)
    row = data[(data["base"] == "llama") & (data["format"] == "follow") & (data["step"] == 4)]
    # llama follow at step 4: seeds pass tasks < 8 and < 9 -> per task (1, ..., 1, 0.5, 0...)
    assert row["pass_at_1"].item() == pytest.approx((8 + 9) / 2 / 12)
    assert row["ci_low"].item() <= row["pass_at_1"].item() <= row["ci_high"].item()
    assert row["seeds"].item() == 2 and row["n_tasks"].item() == N_TASKS
    assert "one panel per base model (gpt2, llama)" in made["pass_at_1_bases"].caption


def test_report_lists_the_cross_base_figure(two_bases, tmp_path):
    from reports.report import ReportConfig, main

    out = tmp_path / "report"
    result = main(ReportConfig(runs=[str(two_bases)], out=str(out), images=False))
    assert "pass_at_1_bases" in result["figures"]
    page = (out / "report.html").read_text()
    assert '<figure id="pass_at_1_bases">' in page and 'href="#pass_at_1_bases"' in page
    csv = pd.read_csv(out / "pass_at_1_bases.csv")
    assert sorted(csv["base"].unique()) == list(BASES)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["result"]["figures"] == result["figures"]


def test_eval_resume_fills_base_of_parts_written_before_it():
    """A resumed diag eval: parts written before the `base` column get their model's base."""
    from evaluation.run import SAMPLE_COLUMNS, Unit, _with_base

    ref = ModelRef(Path("m"), "precede-s0", "precede", 0, 8, None, "checkpoint-8", base="gpt2")
    old = pd.DataFrame(
        [dict(label="precede-s0", checkpoint="checkpoint-8", task_id="t0", passed=True)]
    )
    frame = _with_base(old, [Unit("step-000000008", ref)])
    assert frame["base"].tolist() == ["gpt2"]
    assert list(frame.columns)[:2] == ["label", "base"]
    assert list(frame.columns) == [c for c in SAMPLE_COLUMNS if c in frame.columns]


def test_diagnostics_tell_same_named_runs_of_two_bases_apart_by_base() -> None:
    """One `diag ppl` over precede-s0 of two bases: labels gpt2/precede-s0 and llama/precede-s0
    (which the reports then show unchanged); same base and label: the run folder decides."""
    from pathlib import Path

    from diagnostics.scoring import unique_labels
    from reports.results import display_label
    from training.modeling import ModelRef

    def ref(base: str, run: str) -> ModelRef:
        path = Path(run) / "final"
        return ModelRef(path, "precede-s0", "precede", 0, 750, Path(run), "final", base=base)

    refs = unique_labels([ref("gpt2", "a/precede-s0"), ref("llama", "b/precede-s0")])
    assert [r.label for r in refs] == ["gpt2/precede-s0", "llama/precede-s0"]
    assert display_label(refs[0].label, "gpt2", True) == "gpt2/precede-s0"
    refs = unique_labels([ref("gpt2", "a/runA"), ref("gpt2", "b/runB")])
    assert [r.label for r in refs] == ["precede-s0(runA)", "precede-s0(runB)"]
