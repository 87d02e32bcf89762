"""diag ablate: dry run, retraining with the unablated run's budget, curves over every
checkpoint for each variant and `none`, resume after a kill, bad input (exit 2, nothing written)."""

from __future__ import annotations

import ast
import json
import shutil

import pandas as pd
import pytest
from conftest import run_diag, run_diag_here

from synthesis.schema import load_triples


def test_dry_run_shows_diffs_and_writes_nothing(tiny_runs, tmp_path):
    out = tmp_path / "abl"
    proc = run_diag(
        "ablate",
        "--run",
        str(tiny_runs["follow"]),
        "--variants",
        "signature,comments,typehints,inconsistent",
        "--out",
        str(out),
        "--dry-run",
        "--n-show",
        "1",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    for name in ("signature", "comments", "typehints", "inconsistent"):
        assert f"=== {name}:" in text
    assert "+def " in text and "(values: list[int]) -> list[int]:" in text  # before/after
    assert '-    """Apply x' in text  # comments: the docstring goes
    assert ".cot (inconsistent)" in text
    assert not out.exists()


@pytest.mark.slow
def test_ablate_end_to_end_curves_same_budget_and_resume(tiny_runs, triples_file, tmp_path):
    run = tiny_runs["precede"]
    out = tmp_path / "abl"
    args = [
        "ablate",
        "--run",
        str(run),
        "--variants",
        "signature,comments",
        "--out",
        str(out),
        "--max-tasks",
        "3",
        "--max-new-tokens",
        "48",
        "--workers",
        "2",
        "--n-resamples",
        "200",
    ]
    proc = run_diag(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    curves = pd.read_parquet(out / "ablate_curves.parquet")
    assert list(curves.columns) == [
        "label",
        "base",
        "format",
        "seed",
        "variant",
        "step",
        "loss_tokens_seen",
        "bench",
        "split",
        "pass_at_1",
        "ci_low",
        "ci_high",
        "n_tasks",
    ]
    assert set(zip(curves["variant"], curves["step"])) == {
        (v, s) for v in ("none", "signature", "comments") for s in (4, 8)
    }
    assert (curves["bench"] == f"jsonl:{triples_file.resolve()}").all()
    assert (curves["split"] == "test").all() and (curves["n_tasks"] == 3).all()
    assert (curves["label"] == "precede-s0").all()
    assert curves["pass_at_1"].between(0, 1).all()
    assert (curves["ci_low"] <= curves["pass_at_1"]).all()
    # same budget and settings as the unablated run; only the data differs
    original = json.loads((run / "manifest.json").read_text())["config"]
    for name in ("signature", "comments"):
        vdir = out / "variants" / name
        config = json.loads((vdir / "run" / "manifest.json").read_text())["config"]
        differ = {k for k in original if original[k] != config[k]}
        assert differ <= {"data", "out", "resume"}, differ
        steps = [c["step"] for c in json.loads((vdir / "run" / "checkpoints.json").read_text())]
        assert steps == [4, 8]
        record = json.loads((vdir / "transform.json").read_text())
        assert record["verify"]["broken"] == []
        assert record["verify"]["passed_after"] == record["verify"]["checked"] > 0
        triples, _ = load_triples(vdir / "triples.jsonl")
        assert {t.split for t in triples} == {"train"}
        for triple in triples:
            tree = ast.parse(triple.code)
            if name == "signature":
                func = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
                assert [a.arg for a in func.args.args] == ["arg0"] and func.returns is None
            else:
                assert ast.get_docstring(tree.body[0]) is None
    summary = pd.read_parquet(out / "summary_ablate.parquet")
    assert list(summary["a"]) == ["signature", "comments"] and set(summary["b"]) == {"none"}
    assert (summary["n"] == 3).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert set(manifest["result"]["final_pass_at_1"]) == {"none", "signature", "comments"}

    # a kill during the comments eval: finished variants are skipped, the rest is redone
    signature_final = out / "variants" / "signature" / "run" / "final" / "model.safetensors"
    mtime = signature_final.stat().st_mtime_ns
    (out / "manifest.json").unlink()
    shutil.rmtree(out / "variants" / "comments" / "eval")
    proc = run_diag(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert signature_final.stat().st_mtime_ns == mtime
    again = pd.read_parquet(out / "ablate_curves.parquet")
    pd.testing.assert_frame_equal(again, curves)  # greedy decoding: the same numbers


def test_ablate_bad_input_exits_2_and_writes_nothing(tiny_runs, triples_file, tmp_path):
    seed_run = tmp_path / "seed_run"
    seed_run.mkdir()
    manifest = json.loads((tiny_runs["follow"] / "manifest.json").read_text())
    manifest["config"]["format"] = "seed"
    (seed_run / "manifest.json").write_text(json.dumps(manifest))
    follow = str(tiny_runs["follow"])
    cases = {
        "unknown variant": (["--run", follow, "--variants", "nope"], "unknown transform"),
        "none variant": (["--run", follow, "--variants", "none"], "always evaluated"),
        "not a run": (["--run", str(triples_file.parent)], "not a diag train run folder"),
        "seed format": (["--run", str(seed_run)], "format 'seed'"),
        "empty bench": (
            ["--run", follow, "--bench", f"jsonl:{triples_file}", "--split", "ood"],
            "ood",
        ),
    }
    for name, (extra, message) in cases.items():
        out = tmp_path / name.replace(" ", "_")
        proc = run_diag_here("ablate", *extra, "--out", str(out))
        assert proc.returncode == 2, (name, proc.stderr[-2000:])
        assert message in proc.stderr, (name, proc.stderr[-2000:])
        assert not out.exists(), name
