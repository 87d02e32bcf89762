"""The CI smoke run: `diag demo --preset quick`, killed mid-way, resumed, and checked."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest
from conftest import DIAG

from plumbing import read_manifest


@pytest.mark.slow
def test_quick_demo_resumes_after_kill_and_writes_the_report(tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, CODECOT_CACHE=str(tmp_path / "cache"))
    cmd = [DIAG, "demo", "--out", str(out), "--preset", "quick"]
    # 1. start, and kill -9 (the demo and its step processes) as soon as a first training has
    # finished: another one is then running beside it (--jobs 2, the default)
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    deadline = time.time() + 600
    first = tmp_path / "first.log"
    trained = re.compile(r"train: (\w+) \(seed 0\): done")
    while time.time() < deadline and not trained.search(first.read_text()):
        time.sleep(0.5)
        assert proc.poll() is None, first.read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_first = trained.search(first.read_text()).group(1)
    assert not (out / "report").exists()
    unfinished = [
        f
        for f in ("seed", "wo", "follow", "precede")
        if (read_manifest(out / "train" / f"{f}-s0") or {}).get("status") != "finished"
    ]
    assert unfinished and done_first not in unfinished

    # 2. rerun: finished steps are not redone, the rest completes
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "synth: toy world -> triples: already done" in second.stdout
    assert "pretrain: tiny base: already done" in second.stdout
    assert f"train: {done_first} (seed 0): already done" in second.stdout
    assert "report:" in second.stdout and str(out / "report" / "report.html") in second.stdout

    # 3. what a newcomer gets: every stage's run, the summary and the report with its figures
    report = (out / "report" / "report.html").read_text()
    for fig in (
        "results_table",
        "ppl_gap",
        "kl_valloss",
        "attn_heatmap",
        "ablation_curves",
        "train_loss",
        "pass_at_1_checkpoints",
    ):
        assert (out / "report" / f"{fig}.html").exists(), fig
        assert (out / "report" / f"{fig}.png").stat().st_size > 1000, fig
        assert fig in report
    for fmt in ("seed", "wo", "follow", "precede"):
        manifest = json.loads((out / "train" / f"{fmt}-s0" / "manifest.json").read_text())
        assert manifest["status"] == "finished"
        assert (out / "eval" / f"{fmt}-s0-test" / "pass_at_k.parquet").exists()
    table = (out / "summary" / "replication.md").read_text()
    assert "| precede |" in table and "| follow |" in table
    demo = json.loads((out / "manifest.json").read_text())
    assert demo["status"] == "finished" and demo["preset"]["steps"] > 0

    # 4. a third run redoes nothing
    third = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert third.returncode == 0
    assert third.stdout.count("already done") == third.stdout.count("] ")


def test_a_demo_base_from_its_own_task_text(tmp_path, monkeypatch):
    """The default and full presets' data and base: the compact world through synth, the
    base's own corpus (the other toy families), then the `toy` model pretrained on that corpus
    with a tokenizer that learnt both."""
    from dataclasses import replace

    from cli import demo

    for name in ("default", "full"):
        preset = demo.PRESETS[name]
        assert preset.base_text and preset.base_steps > 0 and preset.base_preset == "toy"
        assert preset.toy_world == demo.COMPACT_WORLD and preset.base_world == demo.BASE_WORLD
    small = replace(
        demo.PRESETS["default"], synth_n=150, base_synth_n=120, base_vocab=512, base_steps=4
    )
    monkeypatch.setitem(demo.PRESETS, "textbase", small)
    cfg = demo.DemoConfig(out=str(tmp_path / "demo"), preset="textbase")
    steps, _ = demo.plan(cfg)
    synth, synth_base, base = steps[0], steps[1], steps[2]
    assert not base.done()  # no data yet: not finished, and no error
    synth.run()
    synth_base.run()
    base.run()
    assert base.done()
    rows = [json.loads(x) for x in (tmp_path / "demo/data/triples.jsonl").read_text().splitlines()]
    assert len(rows) >= 140
    world = demo.COMPACT_WORLD
    for r in rows:
        assert r["meta"]["family"] in world["families"] and r["meta"]["style"] == "comp"
        assert r["meta"]["depth"] in (1, 2)
        assert {k for k, _ in r["meta"]["params"]["stages"]} <= set(world["stages"])
    assert {r["meta"]["split"] for r in rows} == {"train", "val", "test", "ood"}
    report = json.loads((base.out / "pretrain.json").read_text())
    base_rows = [
        json.loads(x) for x in (tmp_path / "demo/base_data/triples.jsonl").read_text().splitlines()
    ]
    assert len(base_rows) >= 100
    assert not any(r["meta"]["family"].startswith("pipe_") for r in base_rows)  # no SFT tasks
    assert {r["meta"]["split"] for r in base_rows} <= {"train", "val", "test"}
    assert report["steps"] == 4 and report["corpus"]["train_files"] == 0
    # pretrained on the base corpus; the tokenizer also learnt the SFT data
    assert report["corpus"]["text_files"] == [str(tmp_path / "demo/base_data/triples.jsonl")]
    assert report["corpus"]["tokenizer_text_files"] == [str(tmp_path / "demo/data/triples.jsonl")]
    assert 300 < report["vocab_size"] <= 512 and report["preset"] == "toy"
    assert not (tmp_path / "cache").exists()  # the demo's own data: never cached across demos
