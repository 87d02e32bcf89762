"""`diag synth --toy-families/--toy-ood/--toy-depth`: the toy world restricted, through the CLI."""

from __future__ import annotations

import json
import subprocess

from conftest import DIAG


def test_toy_world_options_reach_the_world(tmp_path):
    out = tmp_path / "toy"
    args = ["--n", "60", "--toy-families", "pipe_sum,pipe_list,pipe_max", "--toy-ood", "pipe_max"]
    args += ["--toy-depth", "1,1", "--no-progress"]
    proc = subprocess.run(
        [DIAG, "synth", "--out", str(out), *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(x) for x in (out / "triples.jsonl").read_text().splitlines()]
    assert len(rows) >= 55
    families = {r["meta"]["family"] for r in rows}
    assert families <= {"pipe_sum", "pipe_list", "pipe_max"} and "pipe_max" in families
    for r in rows:
        assert (r["meta"]["split"] == "ood") == (r["meta"]["family"] == "pipe_max")
        assert r["meta"]["difficulty"] in ("easy", "medium")  # depth 1 or 2 only
    # resuming with other world options is refused (exit 2), the run is left as it was
    again = subprocess.run(
        [DIAG, "synth", "--out", str(out), "--n", "60", "--resume", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 2 and "toy_world" in again.stderr
