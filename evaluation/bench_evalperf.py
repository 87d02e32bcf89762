"""EvalPerf (evalplus's efficiency benchmark) from its data file: tasks, references, pe_input.

    from evaluation.bench_evalperf import load_evalperf
    tasks = load_evalperf(BenchSpec("evalperf", bench_file="evalperf.jsonl"))
    tasks[0].reference, tasks[0].scores, tasks[0].pe_args   # what DPS is computed against
    judge([Candidate(tasks[0], code)], SandboxConfig())      # correctness (see below)

The file: one JSON object a line (.jsonl or .jsonl.gz), the rows of the `evalplus/evalperf`
dataset (its `test` split, e.g. exported with `datasets`' to_json):

    task_id      "HumanEval/9" or "Mbpp/..." (the HumanEval+/MBPP+ task it comes from)
    entry_point  the function's name
    reference    reference solutions (full programs), ordered slowest to fastest
    scores       one number per reference, 0..100, non-decreasing (reference j beats scores[j] %
                 of the LLM solutions EvalPerf collected)
    pe_input     the performance-exercising input: a list of argument lists (the dataset stores
                 it as a JSON string; a list is accepted too); its first element is profiled, as
                 evalplus profiles `pe_input[0]` (MBPP inputs deserialised by evalplus's table)
    prompt       optional: the HumanEval+/MBPP+ prompt, which the problem text is built from as
                 for humaneval+/mbpp+; without it, the slowest reference's signature is shown

Correctness. evalplus checks a sample on the HumanEval+/MBPP+ tests of the same task_id
(base + plus inputs, `correctness_check`); the EvalPerf file carries none of them.
- With `--tests-file` (repeatable: the HumanEval+ and the MBPP+ release files, as
  `--bench humaneval+|mbpp+` read them; evalplus uses their "noextreme" versions): a sample is
  correct when it passes the base and the plus tests of its task there, judged exactly as for
  humaneval+/mbpp+ (the same expected outputs, per-input time limits and sandbox; evalplus runs
  base + plus as one call list that stops at the first failure, here they are two programs: the
  same verdict). A task of the EvalPerf file without tests in those files is an error.
- Without it: a sample is correct when its output on the performance-exercising input equals
  the fastest reference's output there (both called on deep copies of it, in the same sandboxed
  program; equality as evalplus compares: exact, or, where the expected output is a float or a
  sequence of floats, within rtol 1e-7 / atol 1e-6). So one input, and a heavy one: give
  `--timeout` room for both calls; the sandbox gets 4 GiB (evalplus's checker default).
Profiling gets evalplus's 12 GiB memory limit either way (evaluation/perf.py).

Scoring (evaluation/perf.py, as evalplus/evalperf.py): the correct samples are profiled on
pe_input and scored DPS and DPS_norm against the references' instruction counts.
"""

from __future__ import annotations

import ast
import json
import marshal
from dataclasses import dataclass, field, replace
from typing import Any

from evaluation.benchmarks import (
    HUMANEVAL_INSTRUCTION,
    BenchSpec,
    BenchTask,
    _check_unique,
    _fields,
    _humaneval_like,
)
from plumbing import InputError, iter_jsonl, require_file

CHECK_MEMORY_MB = 4096

# Runs in the sample's namespace after the sample (the sandbox's test block).
CHECK = r"""
def _evalperf_check(namespace, reference, entry_point, packed_args):
    import copy, marshal

    def floats(x):
        if isinstance(x, float):
            return True
        return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(v, float) for v in x)

    def close(out, exp):  # np.allclose(out, exp, rtol=1e-07, atol=1e-6), element by element
        if isinstance(exp, float):
            return isinstance(out, (int, float)) and abs(out - exp) <= 1e-6 + 1e-7 * abs(exp)
        return (isinstance(out, (list, tuple)) and len(out) == len(exp)
                and all(close(o, e) for o, e in zip(out, exp)))

    args = marshal.loads(packed_args)
    scope = {}
    exec(reference, scope)
    expected = scope[entry_point](*copy.deepcopy(args))
    got = namespace[entry_point](*copy.deepcopy(args))
    if got == expected or (floats(expected) and close(got, expected)):
        return None
    shown = repr(got)
    return "pe_input: output differs from the reference's: got " + (
        shown if len(shown) <= 200 else shown[:200] + "...")
"""


@dataclass
class EvalPerfTask(BenchTask):
    """A BenchTask with what DPS needs: references (slowest first), their scores, and the
    arguments of the performance-exercising call."""

    reference: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    pe_args: list[Any] = field(default_factory=list)


def _references(obj: dict[str, Any], where: str) -> tuple[list[str], list[float]]:
    refs, scores = obj.get("reference"), obj.get("scores")
    if "reference" not in obj:
        raise InputError(f"{where}: missing field 'reference'")
    if not isinstance(refs, list) or not all(isinstance(r, str) and r.strip() for r in refs):
        raise InputError(f"{where}: field 'reference': expected a list of non-empty strings")
    if not refs:
        raise InputError(f"{where}: field 'reference': the task has no references")
    if "scores" not in obj:
        raise InputError(f"{where}: missing field 'scores'")
    if not isinstance(scores, list) or len(scores) != len(refs):
        raise InputError(
            f"{where}: field 'scores': expected a list of {len(refs)} numbers (one per reference)"
        )
    for s in scores:
        if isinstance(s, bool) or not isinstance(s, int | float) or not 0 <= s <= 100:
            raise InputError(f"{where}: field 'scores': {s!r} is not a number in 0..100")
    if any(a > b for a, b in zip(scores, scores[1:])):
        raise InputError(
            f"{where}: field 'scores': must be non-decreasing (references ordered slowest to "
            "fastest, as EvalPerf orders them)"
        )
    return refs, [float(s) for s in scores]


def _pe_args(obj: dict[str, Any], where: str) -> list[Any]:
    if "pe_input" not in obj:
        raise InputError(f"{where}: missing field 'pe_input'")
    value = obj["pe_input"]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as err:
            raise InputError(f"{where}: field 'pe_input': not valid JSON ({err})") from None
    if not isinstance(value, list) or not value or not isinstance(value[0], list):
        raise InputError(f"{where}: field 'pe_input': expected a non-empty list of argument lists")
    if str(obj["task_id"]).startswith("Mbpp/"):
        from evaluation.bench_evalplus import mbpp_deserialize

        value = mbpp_deserialize(obj["task_id"], value)
    try:  # the check and the profiles carry it as marshal data
        marshal.dumps(value[0])
    except ValueError:
        raise InputError(
            f"{where}: field 'pe_input': holds values that cannot be passed on"
        ) from None
    return list(value[0])


def _signature_problem(reference: str, entry_point: str, where: str) -> str:
    """The problem text when the row has no prompt: the entry point's def line and docstring."""
    try:
        tree = ast.parse(reference)
    except SyntaxError as err:
        raise InputError(f"{where}: field 'reference': does not parse ({err.msg})") from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            lines = reference.split("\n")
            head = "\n".join(lines[node.lineno - 1 : node.body[0].lineno - 1])
            doc = ast.get_docstring(node)
            body = f'    """{doc}"""\n' if doc else ""
            return HUMANEVAL_INSTRUCTION.format(prompt=head + "\n" + body)
    raise InputError(f"{where}: field 'reference': does not define {entry_point!r}")


def check_block(reference: str, entry_point: str, args: list[Any]) -> str:
    """The correctness test of a sample: its output on pe_input equals the reference's."""
    return (
        CHECK
        + f"_evalperf_failure = _evalperf_check(globals(), {reference!r}, {entry_point!r}, "
        + f"{marshal.dumps(args)!r})\n"
        + "assert _evalperf_failure is None, _evalperf_failure\n"
    )


def load_evalperf(spec: BenchSpec) -> list[BenchTask]:
    """EvalPerf tasks from --bench-file (see the module docstring); InputError naming the file,
    line and field for bad input, including a task without references."""
    if not spec.bench_file:
        raise InputError("--bench evalperf: needs --bench-file (the EvalPerf dataset as jsonl)")
    path = str(require_file(spec.bench_file, "--bench-file"))
    tasks: list[BenchTask] = []
    for where, obj in iter_jsonl(path, "--bench-file"):
        _fields(obj, where, ("task_id", "entry_point"))
        refs, scores = _references(obj, where)
        args = _pe_args(obj, where)
        entry = obj["entry_point"]
        if "prompt" in obj:
            _fields(obj, where, ("prompt",))
            shown = _humaneval_like({**obj, "test": ""}, where)
            problem, code_prompt = shown.problem, shown.code_prompt
        else:
            problem, code_prompt = _signature_problem(refs[0], entry, where), None
        tasks.append(
            EvalPerfTask(
                task_id=obj["task_id"],
                problem=problem,
                entry_point=entry,
                tests=check_block(refs[-1], entry, args),
                code_prompt=code_prompt,
                sandbox={"memory_mb": CHECK_MEMORY_MB},
                reference=refs,
                scores=scores,
                pe_args=args,
            )
        )
    tasks = _check_unique(tasks, path)
    return _with_release_tests(tasks, spec.tests_files) if spec.tests_files else tasks


def _with_release_tests(tasks: list[BenchTask], files: tuple[str, ...]) -> list[BenchTask]:
    """Each task judged by the HumanEval+/MBPP+ tests of its task_id in `files` (evalplus's
    correctness check) instead of the pe_input comparison."""
    from evaluation.bench_evalplus import dataset_of, load_release_file

    release: dict[str, BenchTask] = {}
    for path in files:
        for task in load_release_file(path, dataset_of(path, "--tests-file"), "--tests-file"):
            release.setdefault(task.task_id, task)
    missing = [t.task_id for t in tasks if t.task_id not in release]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise InputError(
            f"--tests-file {', '.join(files)}: no tests for {shown} of --bench-file (give the "
            "HumanEval+ and the MBPP+ release files its tasks come from)"
        )
    return [
        replace(
            task,
            tests=release[task.task_id].tests,
            base_tests=release[task.task_id].base_tests,
            timeout_s=release[task.task_id].timeout_s,
            sandbox=dict(release[task.task_id].sandbox),
        )
        for task in tasks
    ]
