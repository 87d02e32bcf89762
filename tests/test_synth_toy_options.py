"""`diag synth --toy-families/--toy-ood/--toy-depth/--toy-stages/--toy-styles`: the toy world restricted, through the CLI."""

from __future__ import annotations

import json

from conftest import run_diag


def test_toy_world_options_reach_the_world(tmp_path):
    out = tmp_path / "toy"
    args = ["--n", "60", "--toy-families", "pipe_sum,pipe_list,pipe_max", "--toy-ood", "pipe_max"]
    args += ["--toy-depth", "1,1", "--toy-stages", "keep_cmp,add,dedupe", "--toy-styles", "comp"]
    args += ["--no-progress"]
    proc = run_diag("synth", "--out", str(out), *args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(x) for x in (out / "triples.jsonl").read_text().splitlines()]
    assert len(rows) >= 55
    families = {r["meta"]["family"] for r in rows}
    assert families <= {"pipe_sum", "pipe_list", "pipe_max"} and "pipe_max" in families
    for r in rows:
        assert (r["meta"]["split"] == "ood") == (r["meta"]["family"] == "pipe_max")
        assert r["meta"]["difficulty"] in ("easy", "medium")  # depth 1 or 2 only
        stages = [kind for kind, _ in r["meta"]["params"]["stages"]]
        assert stages and set(stages) <= {"keep_cmp", "add", "dedupe"}
        assert r["meta"]["style"] == "comp"
        assert " for " in r["code"] and "filter(" not in r["code"]  # comprehensions, no builtins
    assert {s for r in rows for s, _ in r["meta"]["params"]["stages"]} == {
        "keep_cmp",
        "add",
        "dedupe",
    }
    # resuming with other world options is refused (exit 2), the run is left as it was
    again = run_diag(
        "synth", "--out", str(out), "--n", "60", "--resume", "--no-progress", timeout=600
    )
    assert again.returncode == 2 and "toy_world" in again.stderr


def test_unknown_stage_or_style_is_named(tmp_path):
    for flag, value, named in (("--toy-stages", "keep_cmp,teleport", "'teleport'"),
                               ("--toy-styles", "loop,fancy", "'fancy'")):  # fmt: skip
        out = tmp_path / flag.strip("-")
        proc = run_diag(
            "synth", "--out", str(out), "--n", "5", flag, value, "--no-progress", timeout=600
        )
        assert proc.returncode == 2 and named in proc.stderr and "known:" in proc.stderr
        assert not (out / "triples.jsonl").exists()
