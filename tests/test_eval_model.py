"""`diag eval --model`: generation (batched == one by one, seeded sampling), the CLI end to end on
the tiny SFT runs, every checkpoint, resuming after a kill, and a model that does not load."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import DIAG, run_diag, run_diag_here

from sandbox import STATUSES
from synthesis.schema import load_triples

VERDICTS = set(STATUSES) | {"no_code", "syntax_error"}


def test_batched_generation_equals_one_by_one_and_sampling_is_seeded(tiny_runs, triples_file):
    from evaluation.generate import GenConfig, generate
    from training.formats import prompt_ids
    from training.modeling import load_model, load_tokenizer

    run = tiny_runs["precede"]
    tok, model = load_tokenizer(run), load_model(run, device="cpu")
    triples, _ = load_triples(triples_file)
    prompts = [prompt_ids(t.problem, tok) for t in triples[:6]]
    assert len({len(p) for p in prompts}) > 1  # lengths differ: left padding is exercised
    batched = generate(model, tok, prompts, GenConfig(max_new_tokens=24, batch_size=6))
    single = generate(model, tok, prompts, GenConfig(max_new_tokens=24, batch_size=1))
    assert [[g.text for g in per] for per in batched] == [[g.text for g in per] for per in single]
    assert all(len(per) == 1 and 1 <= per[0].n_tokens <= 24 for per in batched)
    sampled = GenConfig(n_samples=3, temperature=1.0, max_new_tokens=16, batch_size=4, seed=7)
    a = generate(model, tok, prompts[:3], sampled)
    b = generate(model, tok, prompts[:3], sampled)
    assert [[g.text for g in per] for per in a] == [[g.text for g in per] for per in b]
    assert all(len(per) == 3 for per in a)
    assert len({g.text for per in a for g in per}) > 3  # sampling, not greedy


def _frames(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return (
        pd.read_parquet(out / "samples.parquet"),
        pd.read_parquet(out / "pass_at_k.parquet"),
        json.loads((out / "summary.json").read_text()),
    )


@pytest.mark.slow
def test_eval_model_cli_precede(tiny_runs, triples_file, tmp_path):
    from training.formats import prompt_ids
    from training.modeling import load_tokenizer

    run, out = tiny_runs["precede"], tmp_path / "eval"
    args = ["eval", "--model", str(run), "--bench", f"jsonl:{triples_file}", "--format",
            "precede", "--max-new-tokens", "48", "--out", str(out), "--no-progress"]  # fmt: skip
    proc = run_diag(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples, pak, summary = _frames(out)
    test_split = [t for t in load_triples(triples_file)[0] if t.split == "test"]
    assert len(samples) == len(test_split) == 8
    assert samples["task_id"].tolist() == [t.id for t in test_split]
    assert set(samples["status"]) <= VERDICTS and samples["status"].str.len().gt(0).all()
    assert (samples["passed"] == (samples["status"] == "passed")).all()
    assert set(samples["label"]) == {"precede-s0"} and set(samples["step"]) == {8}
    index = {c["step"]: c for c in json.loads((run / "checkpoints.json").read_text())}
    assert set(samples["loss_tokens_seen"]) == {index[8]["loss_tokens_seen"]}
    assert set(samples["split"]) == {"test"} and set(samples["format"]) == {"precede"}
    # the prompt is training's prompt: same ids, same count
    tok = load_tokenizer(run)
    want = [len(prompt_ids(t.problem, tok)) for t in test_split]
    assert samples["n_prompt_tokens"].tolist() == want
    assert samples["n_new_tokens"].between(1, 48).all()
    assert set(samples["finish"]) <= {"eos", "length", "stop_code"}
    assert (samples.loc[samples["finish"] == "length", "n_new_tokens"] == 48).all()
    # pass@k: overall and by family (the fixture triples carry meta.family), k = 1 only (n = 1)
    assert set(pak["k"]) == {1} and "all" in set(pak["group"])
    families = {f"family={f}" for f in samples["family"]}
    assert families <= set(pak["group"])
    overall = pak[pak["group"] == "all"].iloc[0]
    assert overall["n_tasks"] == 8 and overall["pass_at_k"] == pytest.approx(
        samples["passed"].mean()
    )
    assert overall["ci_low"] <= overall["pass_at_k"] <= overall["ci_high"]
    (model,) = summary["models"]
    assert model["step"] == 8 and sum(model["status_counts"].values()) == 8
    assert model["timings"]["gen_samples"] == 8 and model["timings"]["gen_samples_per_s"] > 0
    assert set(model["by_family"]) == {f.split("=", 1)[1] for f in families}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["config"]["format"] == "precede"
    # a finished run is refused without --overwrite / --resume, and left as it is
    again = run_diag_here(*args)
    assert again.returncode == 2 and "already holds a finished eval run" in again.stderr


@pytest.mark.slow
def test_eval_all_checkpoints_resumes_after_a_kill(tiny_runs, triples_file, tmp_path):
    run, out = tiny_runs["follow"], tmp_path / "curve"
    args = ["eval", "--model", str(run), "--all-checkpoints", "--bench", f"jsonl:{triples_file}",
            "--n-samples", "2", "--temperature", "0.8", "--k", "1,2", "--max-new-tokens", "32",
            "--out", str(out), "--no-progress"]  # fmt: skip
    proc = run_diag(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples, pak, summary = _frames(out)
    index = {c["step"]: c for c in json.loads((run / "checkpoints.json").read_text())}
    # checkpoint-4 and checkpoint-8; final/ is the step-8 checkpoint's weights (not repeated)
    assert sorted(set(samples["step"])) == [4, 8] == sorted(index)
    assert len(samples) == 2 * 8 * 2
    assert set(samples["format"]) == {"follow"} and set(samples["label"]) == {"follow-s0"}
    for step, sub in samples.groupby("step"):
        assert set(sub["loss_tokens_seen"]) == {index[step]["loss_tokens_seen"]}
        assert sorted(sub["sample"].unique()) == [0, 1] and sub["task_id"].nunique() == 8
    assert set(samples["status"]) <= VERDICTS
    overall = pak[pak["group"] == "all"]
    assert sorted(zip(overall["step"], overall["k"])) == [(4, 1), (4, 2), (8, 1), (8, 2)]
    assert [m["step"] for m in summary["models"]] == [4, 8] and summary["resumed_parts"] == []

    # a second run into another folder, killed (SIGKILL) once the first checkpoint's part is on
    # disk; should it finish first, the kill is simulated by deleting what came after
    killed = tmp_path / "killed"
    kill_args = [a if a != str(out) else str(killed) for a in args]
    # a part is done once its .json marker is on disk (written after its tables): a kill
    # between the two leaves an unfinished part, which is (rightly) not resumed
    first_part = killed / "parts" / "step-000000004.json"
    child = subprocess.Popen([DIAG, *kill_args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not first_part.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.kill()
    child.wait()
    assert first_part.exists(), child.stderr.read().decode()[-2000:]
    child.stderr.close()
    really_killed = not (killed / "manifest.json").exists()
    print(f"killed mid-run: {really_killed}")
    if not really_killed:  # it finished before the kill
        for name in ("manifest.json", "samples.parquet", "pass_at_k.parquet", "summary.json"):
            (killed / name).unlink()
        for name in ("step-000000008.parquet", "step-000000008.json"):
            (killed / "parts" / name).unlink()
    assert not (killed / "samples.parquet").exists()
    changed = run_diag_here(*[a if a != "32" else "33" for a in kill_args])
    assert changed.returncode == 2 and "other settings (max_new_tokens)" in changed.stderr
    proc = run_diag(*kill_args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again, pak_again, summary_again = _frames(killed)
    assert summary_again["resumed_parts"] == ["step-000000004"]
    # resumed == uninterrupted: the same seeded samples, verdicts and pass@k
    cols = ["step", "task_id", "sample", "completion", "code", "status", "passed"]
    pd.testing.assert_frame_equal(samples[cols], again[cols])
    pd.testing.assert_frame_equal(pak, pak_again)


def test_model_that_does_not_load_exit_2_nothing_written(tiny_base, triples_file, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_base, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    out = tmp_path / "out"
    proc = run_diag_here("eval", "--model", str(broken), "--bench", f"jsonl:{triples_file}",
                         "--format", "wo", "--out", str(out), "--no-progress")  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "model does not load" in proc.stderr and str(broken) in proc.stderr
    assert not out.exists()
    no_format = run_diag_here(
        "eval", "--model", str(tiny_base), "--bench", f"jsonl:{triples_file}",
        "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert no_format.returncode == 2 and "--format: not given" in no_format.stderr
    assert not out.exists()


@pytest.mark.slow
def test_eval_toy_benchmark_in_process_by_difficulty(tiny_runs, tmp_path):
    """--bench toy without a file: the toy world's split generated in-process, by difficulty."""
    from evaluation.benchmarks import BenchSpec, load_tasks

    out = tmp_path / "toy"
    proc = run_diag("eval", "--model", str(tiny_runs["precede"]), "--bench", "toy", "--split", "ood",
                     "--toy-n", "6", "--toy-seed", "3", "--max-new-tokens", "16", "--out", str(out),
                     "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples, pak, summary = _frames(out)
    tasks = load_tasks(BenchSpec("toy", split="ood", toy_n=6, toy_seed=3))
    assert samples["task_id"].tolist() == [t.task_id for t in tasks]
    assert samples["difficulty"].tolist() == [t.difficulty for t in tasks]
    assert set(samples["split"]) == {"ood"} and summary["split"] == "ood"
    difficulties = {t.difficulty for t in tasks}
    assert set(summary["models"][0]["by_difficulty"]) == difficulties
    assert {f"difficulty={d}" for d in difficulties} <= set(pak["group"])
    for group, sub in pak.groupby("group"):
        if group.startswith("difficulty="):
            d = group.split("=", 1)[1]
            assert sub["n_tasks"].iloc[0] == sum(t.difficulty == d for t in tasks)


def test_model_entries_for_run_final_and_checkpoint(tiny_runs):
    from evaluation.run import EvalConfig, model_entries

    run = tiny_runs["precede"]
    index = {
        c["step"]: c["loss_tokens_seen"] for c in json.loads((run / "checkpoints.json").read_text())
    }
    for given, step, checkpoint in [(run, 8, "final"), (run / "final", 8, "final"),
                                    (run / "checkpoint-4", 4, "checkpoint-4")]:  # fmt: skip
        (entry,) = model_entries(EvalConfig(model=str(given)))
        assert (entry.label, entry.format, entry.seed) == ("precede-s0", "precede", 0)
        assert (entry.step, entry.checkpoint) == (step, checkpoint)
        assert entry.loss_tokens_seen == index[step]
    entries = model_entries(EvalConfig(model=str(run), all_checkpoints=True, format="wo"))
    assert [(e.step, e.checkpoint, e.format) for e in entries] == [
        (4, "checkpoint-4", "wo"),
        (8, "checkpoint-8", "wo"),
    ]
