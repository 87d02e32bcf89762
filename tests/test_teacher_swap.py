"""The teacher-swap table (`diag report --teacher-swap`): two SFT studies, one per teacher, side by
side; each study's numbers equal the replication table's, the orderings are compared, and a
study is traced back to the teacher that synthesised its data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_diag_here
from test_replication import _eval_run

from plumbing import InputError
from plumbing.stats import StatsOptions
from reports.replication import ReplicationConfig, build
from reports.teacher_swap import parse_groups, recorded_teachers, teacher_swap

OPTS = StatsOptions(n_resamples=2000)
N_TASKS = 60


def _study(root: Path, truth: dict[str, float], rng_seed: int, model: Path | None = None) -> Path:
    """Eval runs of two seeds per format with pass rates near `truth` (the replication tests'
    layout); each run's manifest names `model` when given."""
    rng = np.random.default_rng(rng_seed)
    for fmt, p in truth.items():
        for seed in (0, 1):
            name = f"eval/{fmt}-s{seed}"
            _eval_run(root, name, fmt, seed, "test", {20: rng.random(N_TASKS) < p})
            if model is not None:
                manifest = root / name / "manifest.json"
                data = json.loads(manifest.read_text())
                data["config"] = {"model": str(model)}
                manifest.write_text(json.dumps(data))
    return root


def _provenance(root: Path, teacher: str | None, meta_teacher: str = "toy") -> Path:
    """A synth folder (manifest recording `teacher`, or none) and a training run on its
    triples; returns the training run (what an eval manifest's `model` names)."""
    synth = root / "synth"
    synth.mkdir(parents=True)
    triple = {"id": "t0", "problem": "p", "cot": "c", "code": "x = 1", "tests": "",
              "meta": {"teacher": meta_teacher}}  # fmt: skip
    (synth / "triples.jsonl").write_text(json.dumps(triple) + "\n")
    if teacher is not None:
        manifest = {"command": "synth", "status": "finished", "config": {}, "teacher": teacher}
        (synth / "manifest.json").write_text(json.dumps(manifest))
    train = root / "train"
    train.mkdir()
    config = {"data": str(synth / "triples.jsonl"), "format": "precede", "seed": 0}
    manifest = {"command": "train", "status": "finished", "config": config}
    (train / "manifest.json").write_text(json.dumps(manifest))
    return train


@pytest.fixture()
def studies(tmp_path: Path) -> dict[str, Path]:
    gpt4 = _provenance(tmp_path / "data-gpt4", "openai:gpt-4")
    gpt4o = _provenance(tmp_path / "data-gpt4o", None, meta_teacher="openai:gpt-4o")
    return {
        "gpt-4": _study(tmp_path / "gpt-4", {"precede": 0.8, "follow": 0.5}, 0, gpt4),
        "gpt-4o": _study(tmp_path / "gpt-4o", {"precede": 0.75, "follow": 0.45}, 1, gpt4o),
        "reversed": _study(tmp_path / "reversed", {"precede": 0.4, "follow": 0.7}, 2),
    }


def test_each_teacher_column_is_its_studys_replication_table(studies):
    swap = teacher_swap(
        parse_groups([f"gpt-4={studies['gpt-4']}", f"gpt-4o={studies['gpt-4o']}"]), OPTS
    )
    for name in ("gpt-4", "gpt-4o"):
        alone, comp, _ = build(ReplicationConfig(runs=[str(studies[name])], n_resamples=2000))
        alone = alone[alone.metric == "pass@1"].set_index("format")
        mine = swap.table[swap.table.teacher == name].set_index("format")
        for fmt in ("precede", "follow"):
            for col in ("mean", "ci_low", "ci_high", "n", "seeds"):
                assert mine.loc[fmt, col] == pytest.approx(alone.loc[fmt, col])
        (row,) = swap.comparisons[swap.comparisons.teacher == name].to_dict("records")
        (ref,) = comp.to_dict("records")
        assert (row["a"], row["b"], row["split"]) == ("precede", "follow", "test")
        assert row["diff"] == pytest.approx(ref["diff"]) and row["p_value"] == ref["p_value"]
        assert row["diff"] > 0.2 and row["p_value"] < 0.01 and row["agrees"]
    assert swap.orderings == {"gpt-4": "precede > follow", "gpt-4o": "precede > follow"}
    assert swap.agrees
    # provenance: gpt-4 from its synth manifest, gpt-4o (no synth manifest) from its triples
    assert swap.recorded == {"gpt-4": ["openai:gpt-4"], "gpt-4o": ["openai:gpt-4o"]}
    notes = " ".join(swap.notes)
    assert "gpt-4 (" in notes and "record teacher openai:gpt-4" in notes  # NAME != recorded
    text = swap.markdown
    assert "| format | split | gpt-4: pass@1 (95% CI) | gpt-4o: pass@1 (95% CI) |" in text
    assert "| gpt-4 | precede vs follow | test |" in text
    assert "Same order under every teacher: yes." in text


def test_a_teacher_with_the_other_order_disagrees(studies):
    swap = teacher_swap(
        parse_groups([f"gpt-4={studies['gpt-4']}", f"other={studies['reversed']}"]), OPTS
    )
    assert swap.orderings == {"gpt-4": "precede > follow", "other": "follow > precede"}
    assert not swap.agrees
    assert not swap.comparisons["agrees"].any()
    other = swap.comparisons[swap.comparisons.teacher == "other"].iloc[0]
    assert other["diff"] < 0
    assert "Same order under every teacher: no." in swap.markdown
    assert "other (" in " ".join(swap.notes)  # its runs record no teacher


def test_bare_folders_are_named_by_the_teacher_their_runs_record(studies):
    groups = parse_groups([str(studies["gpt-4"]), str(studies["gpt-4o"])])
    assert list(groups) == ["openai:gpt-4", "openai:gpt-4o"]
    swap = teacher_swap(groups, OPTS)
    assert swap.notes == []  # each NAME is the teacher recorded, and they differ
    with pytest.raises(InputError, match="cannot name the study by its teacher"):
        parse_groups([str(studies["gpt-4"]), str(studies["reversed"])])
    with pytest.raises(InputError, match="two or more"):
        parse_groups([f"a={studies['gpt-4']}"])
    with pytest.raises(InputError, match="given twice"):
        parse_groups([f"a={studies['gpt-4']}", f"a={studies['gpt-4o']}"])
    with pytest.raises(InputError, match="no such folder"):
        parse_groups([f"a={studies['gpt-4']}", "b=/nonexistent/study"])


def test_a_real_synth_run_records_its_teacher(tmp_path):
    from synthesis.pipeline import SynthConfig, main

    synth = tmp_path / "synth"
    main(SynthConfig(sources=["toy"], n=8, out=str(synth), progress=False, min_asserts=1))
    assert json.loads((synth / "manifest.json").read_text())["teacher"] == "toy"
    train = tmp_path / "train"
    train.mkdir()
    config = {"data": str(synth / "triples.jsonl"), "format": "follow", "seed": 0}
    (train / "manifest.json").write_text(
        json.dumps({"command": "train", "status": "finished", "config": config})
    )
    study = _study(tmp_path / "study", {"follow": 0.5}, 3, train / "final")  # a final/ model
    assert recorded_teachers(study) == ["toy"]


def test_diag_report_writes_the_table(studies, tmp_path):
    from reports.report import ReportConfig, main

    out = tmp_path / "report"
    result = main(
        ReportConfig(
            runs=[str(studies["gpt-4"])],
            out=str(out),
            images=False,
            teacher_swap=[f"gpt-4={studies['gpt-4']}", f"gpt-4o={studies['gpt-4o']}"],
        )
    )
    assert result["teacher_swap"]["agrees"] is True
    assert result["teacher_swap"]["orderings"]["gpt-4o"] == "precede > follow"
    table = pd.read_csv(out / "teacher_swap.csv")
    assert sorted(set(zip(table.teacher, table.format))) == [
        ("gpt-4", "follow"), ("gpt-4", "precede"), ("gpt-4o", "follow"), ("gpt-4o", "precede"),
    ]  # fmt: skip
    assert len(pd.read_csv(out / "teacher_swap_comparisons.csv")) == 2
    assert "Same order under every teacher: yes." in (out / "teacher_swap.md").read_text()
    page = (out / "report.html").read_text()
    assert '<section id="teacher_swap">' in page and "gpt-4o: pass@1 (95% CI)" in page
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["result"]["teacher_swap"]["teachers"] == ["gpt-4", "gpt-4o"]


def test_cli_refuses_one_study_with_one_line_and_writes_nothing(studies, tmp_path):
    out = tmp_path / "report"
    proc = run_diag_here(
        "report", "--runs", str(studies["gpt-4"]), "--out", str(out), "--no-images",
        "--teacher-swap", f"gpt-4={studies['gpt-4']}",
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --teacher-swap: give two or more studies (NAME=DIR, one per teacher)"
    ]
    assert not out.exists()
