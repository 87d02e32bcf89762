"""MultiPL-E: HumanEval/MBPP translated to other languages, judged as MultiPL-E judges them.

    from evaluation.benchmarks import BenchSpec, load_tasks
    tasks = load_tasks(BenchSpec("multipl-e:cpp", bench_file="humaneval-cpp.jsonl"))
    program = assemble_program(task.code_prompt, completion, task.tests)   # what runs
    write_results("R/multipl-e/model", tasks, rows)       # <name>.results.json.gz per problem
    multipl_pass_at_k("R/multipl-e/model", k=1)            # read back as MultiPL-E's pass_k.py

Prompt files (`--bench multipl-e:LANG --bench-file F`): MultiPL-E's prompts, one JSON object a
line (`.jsonl`, `.jsonl.gz`; the Hugging Face dataset's rows) or the JSON array its
`prepare_prompts_json.py` writes (`.json`), with the fields

    name, language, prompt, doctests, original, prompt_terminology, tests, stop_tokens

(strings, `stop_tokens` a list of strings). Every row's `language` must be LANG (cpp, java, js,
sh, rs, php, py). The task's id is `name` (e.g. "HumanEval_0_has_close_elements"). LANG's
compiler or interpreter must be installed (sandbox.languages): else an InputError names the
Debian package, before anything runs or is written.

The program, as MultiPL-E's evaluator builds it: `prompt + completion + "\\n" + tests`. The
prompt ends inside the function (its header and "{"), and the tests start by closing it where
the stop token is the closing brace (cpp, rs, sh, java), so a completion is the function body
cut at the first stop token, which is dropped (`stop_at_stop_token`).

Generation (`diag eval --model`): the instruction shows the prompt in a fence ("Complete the
following C++ function: ..."), and generation stops at the language's stop tokens found after
the response's own copy of the prompt's last line, the function header (`prompt_header`;
GenConfig.stop_after), where MultiPL-E's completion would start: JavaScript's and PHP's
"\nfunction" would otherwise match the header itself. The code is then taken from the
response's fenced block of the language without any Python parsing (`extract_native`).

Full-code samples (a model's fenced code, a `solution`): MultiPL-E only knows completions, so
the code is turned into the completion MultiPL-E would have received (`completion_from_code`):
the text after the line that repeats the prompt's last line (the function header, compared
with all whitespace removed), cut at the first stop token. Helper functions written before the
header are therefore dropped, as MultiPL-E's stop tokens drop what follows the function. Code
that never repeats the header is taken whole as the completion (and usually fails to build,
as it would in MultiPL-E).

Statuses: MultiPL-E's per-language evaluators (evaluation/src/eval_*.py) give, from the run:

    OK           exit code 0 (and, for php, no "PHP Parse error" on stdout)
    SyntaxError  the build failed (cpp, java, rs); bash printed "syntax error"; php a parse
                 error; node a SyntaxError; python a SyntaxError
    Timeout      the wall clock ran out (php's evaluator has no timeout branch: Exception)
    AssertionError / ReferenceError   (js only) node's ERR_ASSERTION / ReferenceError
    Exception    any other non-zero exit

Result files (`write_results`): one `<name>.results.json.gz` per problem, MultiPL-E's layout:
the problem's `name, language, prompt, tests, stop_tokens` (and `temperature` when it is 0.2
or 0.8, the two MultiPL-E's pass_k.py accepts; it assumes 0.2 when absent) and `results`, one
`{program, status, stdout, stderr, exit_code}` per sample in sample order. MultiPL-E's pass_k.py
counts a sample correct when `status == "OK" and exit_code == 0` (`multipl_pass_at_k`).

Completion files (`read_completion_files`, for `--samples`): what MultiPL-E's completions.py
writes, `<name>.json.gz` holding `{name, language, prompt, tests, completions: [...],
stop_tokens, ...}`; a file or a directory of them (`*.results.json.gz` are skipped).
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.benchmarks import BenchSpec, BenchTask, _check_unique
from evaluation.extract import PYTHON_TAGS, Extraction, extract_code, fenced_blocks
from evaluation.generate import after_line
from plumbing import InputError, iter_jsonl, require_file
from plumbing.files import atomic_path

FIELDS = (
    "name", "language", "prompt", "doctests", "original", "prompt_terminology", "tests",
    "stop_tokens",
)  # fmt: skip
RESULTS_SUFFIX = ".results.json.gz"
PASS_K_TEMPERATURES = (0.2, 0.8)  # MultiPL-E's pass_k.py refuses a directory at any other
# The task name's "<dataset>_<number>_<entry point>" (HumanEval_0_has_close_elements)
_NAME_RE = re.compile(r"^[A-Za-z]+_\d+_(\w+)$")


@dataclass(frozen=True)
class MultiplLanguage:
    key: str  # MultiPL-E's language key, as in the prompt files' `language`
    name: str  # as the instruction names it
    fence: str  # the tag of the prompt's code fence
    tags: frozenset[str]  # fence tags of a response's block taken as this language


LANGUAGES: dict[str, MultiplLanguage] = {
    lang.key: lang
    for lang in (
        MultiplLanguage("cpp", "C++", "cpp", frozenset({"cpp", "c++", "cc", "cxx", "c"})),
        MultiplLanguage("java", "Java", "java", frozenset({"java"})),
        MultiplLanguage("js", "JavaScript", "javascript", frozenset({"js", "javascript"})),
        MultiplLanguage("sh", "Bash", "bash", frozenset({"sh", "bash", "shell"})),
        MultiplLanguage("rs", "Rust", "rust", frozenset({"rs", "rust"})),
        MultiplLanguage("php", "PHP", "php", frozenset({"php"})),
        MultiplLanguage("py", "Python", "python", frozenset(PYTHON_TAGS - {""})),
    )
}
INSTRUCTION = "Complete the following {name} function:\n```{fence}\n{prompt}```"


# ---------------------------------------------------------------------------------------------
# prompt files


def bench_language(bench: str) -> str:
    """The language of `--bench multipl-e:LANG`; InputError when it is missing or unknown."""
    _, _, lang = bench.partition(":")
    if not lang:
        raise InputError(
            f"--bench {bench}: name the language, multipl-e:LANG (LANG one of "
            f"{', '.join(LANGUAGES)})"
        )
    if lang not in LANGUAGES:
        raise InputError(
            f"--bench {bench}: unknown language {lang!r} (choose from {', '.join(LANGUAGES)})"
        )
    return lang


def require_language(lang: str) -> None:
    """InputError naming the Debian package to install when the sandbox's toolchain of `lang`
    (sandbox.languages) is missing, or when the sandbox does not know the language."""
    from sandbox.languages import MissingToolchain, require_toolchain

    try:
        require_toolchain(lang)
    except MissingToolchain as err:
        raise InputError(str(err)) from None
    except ValueError as err:
        raise InputError(f"language {lang!r}: {err}") from None


def _prompt_rows(path: str) -> Iterator[tuple[str, Any]]:
    """(where, row) from a jsonl file, or from the JSON array prepare_prompts_json.py writes."""
    if not path.endswith(".json"):
        yield from iter_jsonl(path, "--bench-file")
        return
    try:
        rows = json.loads(require_file(path, "--bench-file").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"--bench-file {path}: not JSON ({err})") from None
    if not isinstance(rows, list):
        raise InputError(f"--bench-file {path}: expected a JSON array of problems")
    for i, row in enumerate(rows):
        yield f"{path}:item {i + 1}", row


def _problem_fields(obj: Any, where: str, lang: str | None) -> None:
    """Check one MultiPL-E problem's fields (lang: the language it must be, if any)."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for name in FIELDS:
        if name not in obj:
            raise InputError(f"{where}: missing field '{name}'")
        value = obj[name]
        if name == "stop_tokens":
            if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
                raise InputError(f"{where}: field 'stop_tokens': expected a list of strings")
        elif not isinstance(value, str):
            raise InputError(
                f"{where}: field '{name}': expected a string, got {type(value).__name__}"
            )
    if not obj["name"].strip():
        raise InputError(f"{where}: field 'name' is empty")
    if lang is not None and obj["language"] != lang:
        raise InputError(
            f"{where}: field 'language': {obj['language']!r}, but --bench asks for {lang!r}"
        )


def multipl_task(obj: dict[str, Any], lang: str) -> BenchTask:
    """The task of one (checked) MultiPL-E problem."""
    spec = LANGUAGES[lang]
    prompt = obj["prompt"]
    match = _NAME_RE.match(obj["name"])
    return BenchTask(
        task_id=obj["name"],
        problem=INSTRUCTION.format(
            name=spec.name,
            fence=spec.fence,
            prompt=prompt if prompt.endswith("\n") else prompt + "\n",
        ),
        entry_point=match.group(1) if match else None,
        tests=obj["tests"],
        code_prompt=prompt,
        prompt_prelude=False,
        language=lang,
        stop_tokens=tuple(obj["stop_tokens"]),
    )


def load_multipl_e(spec: BenchSpec) -> list[BenchTask]:
    """The tasks of `--bench multipl-e:LANG --bench-file F` (see the module doc)."""
    lang = bench_language(spec.name)
    require_language(lang)  # before anything is written: `diag eval` fails in its plan
    if not spec.bench_file:
        raise InputError(
            f"--bench {spec.name}: needs --bench-file (a MultiPL-E prompt file of {lang}, e.g. "
            f"humaneval-{lang}.jsonl)"
        )
    tasks = []
    for where, obj in _prompt_rows(spec.bench_file):
        _problem_fields(obj, where, lang)
        tasks.append(multipl_task(obj, lang))
    return _check_unique(tasks, spec.bench_file)


# ---------------------------------------------------------------------------------------------
# programs


def stop_at_stop_token(text: str, stop_tokens: Sequence[str]) -> str:
    """`text` up to (without) the earliest of the stop tokens (MultiPL-E's cut)."""
    ends = [at for at in (text.find(s) for s in stop_tokens if s) if at >= 0]
    return text[: min(ends)] if ends else text


def prompt_header(task: BenchTask) -> str:
    """The last non-empty line of a task's prompt: the function header a full-code answer
    repeats, after which MultiPL-E's completion (and its stop tokens) start."""
    return _last_line(task.code_prompt or "")


def _last_line(text: str) -> str:
    return next((x for x in reversed(text.split("\n")) if x.strip()), "")


def completion_from_code(code: str, prompt: str, stop_tokens: Sequence[str]) -> str:
    """The completion MultiPL-E would have got for full code: what follows the line repeating
    the prompt's last line (whitespace ignored: `function add(x, y){`, MultiPL-E's JavaScript
    header, is `function add(x, y) {`), cut at the first stop token; the whole code, cut, when
    no line repeats it."""
    header = _last_line(prompt)
    start = after_line(code, header) if header else None
    return stop_at_stop_token(code if start is None else code[start:], stop_tokens)


def assemble_program(prompt: str, completion: str, tests: str) -> str:
    """The program MultiPL-E runs: prompt + completion + newline + tests."""
    return prompt + completion + "\n" + tests


def native_program_text(task: BenchTask, code: str, is_completion: bool) -> str:
    """The program of a sample of a MultiPL-E task: a completion as it is, full code through
    `completion_from_code`."""
    prompt = task.code_prompt or ""
    completion = code if is_completion else completion_from_code(code, prompt, task.stop_tokens)
    return assemble_program(prompt, completion, task.tests if isinstance(task.tests, str) else "")


def extract_native(response: str, fmt: str, language: str) -> Extraction:
    """The code of a response in another language than Python: the first fenced block tagged
    with the language (the last one for `follow`, code last), else the first/last untagged
    block, else any; the whole text without fences. No Python parsing is involved."""
    if fmt == "raw" or not response.strip():  # nothing language-specific to do
        return extract_code(response, fmt)
    blocks = fenced_blocks(response)
    if not blocks:
        return Extraction(response.strip("\n"), "whole_text", 0)
    tags = LANGUAGES[language].tags if language in LANGUAGES else frozenset({language})
    chosen = [b for b in blocks if b.lang in tags] or [b for b in blocks if not b.lang] or blocks
    order = "last" if fmt == "follow" else "first"
    block = chosen[-1] if order == "last" else chosen[0]
    return Extraction(block.text, f"{order}_block", len(blocks), not block.terminated)


# ---------------------------------------------------------------------------------------------
# statuses


def multipl_status(language: str, status: str, stdout: str, stderr: str) -> str:
    """MultiPL-E's status of a run, from our verdict's status (passed / failed / error = build
    failed / timeout / killed / oom) and the run's output, as its eval_<language>.py decides."""
    if status == "error":  # the build step failed: "why break the set convention"
        return "SyntaxError"
    if language == "php":  # eval_php.py: parse error first, no timeout branch
        if "PHP Parse error" in stdout or "PHP Parse error" in stderr:
            return "SyntaxError"
        return "OK" if status == "passed" else "Exception"
    if status == "timeout":
        return "Timeout"
    if status == "passed":
        return "OK"
    if language == "js":
        for mark, name in (
            ("ERR_ASSERTION", "AssertionError"),
            ("SyntaxError", "SyntaxError"),
            ("ReferenceError", "ReferenceError"),
        ):
            if mark in stderr:
                return name
    if language == "sh" and "syntax error" in stderr:
        return "SyntaxError"
    if language == "py" and "SyntaxError" in stderr:
        return "SyntaxError"
    return "Exception"


# ---------------------------------------------------------------------------------------------
# MultiPL-E's result files


def _write_json_gz(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2))


def write_results(
    directory: str | Path,
    tasks: Sequence[BenchTask],
    rows: Sequence[dict[str, Any]],
    temperature: float | None = None,
) -> list[Path]:
    """One `<name>.results.json.gz` per task with samples, in MultiPL-E's layout (module doc).

    rows: sample rows holding `task_id`, `sample` and `multipl` (a dict with program, status,
    stdout, stderr, exit_code), as `diag eval` makes them; their order within a task is the
    sample order. Each file is written atomically."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r["sample"]):
        if row.get("multipl") is not None:
            by_task.setdefault(str(row["task_id"]), []).append(row["multipl"])
    written = []
    for task in tasks:
        results = by_task.get(task.task_id)
        if not results:
            continue
        problem: dict[str, Any] = {
            "name": task.task_id,
            "language": task.language,
            "prompt": task.code_prompt,
            "tests": task.tests,
            "stop_tokens": list(task.stop_tokens),
        }
        if temperature in PASS_K_TEMPERATURES:
            problem["temperature"] = temperature
        problem["results"] = [
            {k: r[k] for k in ("program", "status", "stdout", "stderr", "exit_code")}
            for r in results
        ]
        path = Path(directory) / f"{task.task_id}{RESULTS_SUFFIX}"
        _write_json_gz(path, problem)
        written.append(path)
    return written


def read_results(directory: str | Path) -> dict[str, tuple[int, int]]:
    """name -> (samples, correct) of every `*.results.json(.gz)` in a directory, a sample
    counting as correct when `status == "OK" and exit_code == 0` (MultiPL-E's pass_k.py)."""
    found: dict[str, tuple[int, int]] = {}
    paths = sorted(Path(directory).glob("*.results.json")) + sorted(
        Path(directory).glob("*.results.json.gz")
    )
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
        results = data["results"]
        correct = sum(1 for r in results if r["status"] == "OK" and r["exit_code"] == 0)
        found[data["name"]] = (len(results), correct)
    return found


def multipl_pass_at_k(directory: str | Path, k: int) -> float:
    """Mean over the directory's problems of 1 - C(n - c, k) / C(n, k) (pass_k.py's estimator,
    here with exact binomials); every problem needs n >= k samples."""
    counts = read_results(directory)
    if not counts:
        raise ValueError(f"{directory}: no *.results.json(.gz) files")
    values = []
    for name, (n, c) in counts.items():
        if n < k:
            raise ValueError(f"{name}: {n} samples, fewer than k={k}")
        values.append(1.0 - math.comb(n - c, k) / math.comb(n, k))
    return sum(values) / len(values)


# ---------------------------------------------------------------------------------------------
# MultiPL-E's completion files (--samples)


def is_completion_files(path: str | Path) -> bool:
    """Is `--samples PATH` MultiPL-E completion files (a directory, or a .json/.json.gz file)
    rather than a samples jsonl?"""
    path = Path(path)
    return path.is_dir() or path.name.endswith((".json.gz", ".json"))


def _completion_paths(path: Path) -> list[Path]:
    if not path.exists():
        raise InputError(f"--samples {path}: no such file or directory")
    if not path.is_dir():
        return [path]
    paths = sorted(
        p
        for p in (*path.glob("*.json.gz"), *path.glob("*.json"))
        if not p.name.endswith((".results.json.gz", ".results.json"))
    )
    if not paths:
        raise InputError(f"--samples {path}: a directory without MultiPL-E completion files")
    return paths


def read_completion_files(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, {"task_id", "completion", "language"}) for every completion of MultiPL-E
    completion files (one `<name>.json.gz` per problem, or a directory of them), in file and
    completion order; InputError naming the file for a malformed one."""
    for file in _completion_paths(Path(path)):
        opener = gzip.open if file.suffix == ".gz" else open
        try:
            with opener(file, "rt", encoding="utf-8") as f:
                obj = json.load(f)
        except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"--samples {file}: not a MultiPL-E completion file ({err})") from None
        if not isinstance(obj, dict):
            raise InputError(f"--samples {file}: expected a JSON object with 'completions'")
        for field, kind in (("name", str), ("completions", list)):
            if not isinstance(obj.get(field), kind):
                raise InputError(
                    f"--samples {file}: field '{field}': missing or not a {kind.__name__}"
                )
        for i, completion in enumerate(obj["completions"]):
            if not isinstance(completion, str):
                raise InputError(f"--samples {file}: field 'completions'[{i}]: not a string")
            where = f"{file}:completion {i + 1}"
            yield (
                where,
                {
                    "task_id": obj["name"],
                    "completion": completion,
                    "language": obj.get("language"),
                },
            )
