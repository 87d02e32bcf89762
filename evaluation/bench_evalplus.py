"""HumanEval+ and MBPP+ from their official release files, scored as evalplus 0.3.1 scores them.

    from evaluation.bench_evalplus import load_humaneval_plus, load_mbpp_plus
    tasks = load_humaneval_plus(BenchSpec("humaneval+", bench_file="HumanEvalPlus-v0.1.10.jsonl.gz"))
    tasks = load_mbpp_plus(BenchSpec("mbpp+", bench_file="MbppPlus-v0.2.0.jsonl.gz"))
    judged = judge([Candidate(tasks[0], code)], SandboxConfig())   # status: plus; base_status

Files: one JSON object a line (.jsonl or .jsonl.gz) with task_id, prompt, entry_point,
canonical_solution, base_input, plus_input (lists of argument lists), atol (a number; contract
and other fields are ignored, as evalplus's checker ignores them). A row of the older variant
that has a ready `test` field and no base_input/plus_input is read as before
(`benchmarks._humaneval_like`: its `test` block). MBPP+ inputs are deserialised as evalplus's
`mbpp_deserialize_inputs` does (its per-task-id table: tuples, sets, complex numbers).

Expected outputs (evalplus's `get_groundtruth`): prompt + canonical_solution is run on every base
and plus input in the sandbox (a fresh program per input set, inputs deep-copied, the time of each
call recorded; MBPP's output-not-none tasks keep only `output is not None`). The outputs travel
as opaque bytes (marshal where the values allow it, else pickle; base64 in the cache) that the
harness never unmarshals or unpickles: they are embedded in the test programs as bytes literals
and decoded inside the sandbox. They are cached per file digest in
$CODECOT_CACHE_DIR (default ~/.cache/codecot/evalplus) as `<dataset>-<sha256>.json`.

Test programs (evalplus's `unsafe_execute` with fast_check=True, the default of
`evalplus.evaluate`): `BenchTask.tests` checks the plus inputs, `BenchTask.base_tests` the base
inputs. Each calls fn(*input) per input with stdout/stderr/stdin swallowed under a per-input
limit max(1.0, 4.0 * canonical time) (signal.setitimer), after disabling what evalplus's
`reliability_guard` disables (os.system, open, ...; restored afterwards), then compares: exact
equality, the special oracles (MBPP set-equality and not-none tasks, Mbpp/164, 295, 558, 581;
HumanEval find_zero), atol 1e-6 once a float output is met (sticky, as in evalplus), and
type/len checks plus np.allclose(rtol=1e-07, atol). The first failing input fails the program
(the detail names it: "plus input 3/40: ..."). A per-input time-out is a failure, as in evalplus;
"timeout" comes only from the whole program running past `BenchTask.timeout_s`.

find_zero: evalplus 0.3.1's oracle `continue`s past its progress counter, so an input that
passes is never counted and `untrusted_check` turns the run into "fail" (any task with inputs).
So every find_zero sample fails (or times out) under 0.3.1, canonical solution included; this
module reproduces that, since scores must match evalplus's.

Timeout per program: evalplus gives the checking process `min(60, sum(limits)) + 1` seconds and
then joins it with a further second (`p.join(timeout + 1)`): `timeout_s` is that, sum + 2. The
sandbox's clock starts once the code reaches a warm interpreter, so no start-up margin is added.
`BenchTask.timeout_s` is one number for both programs: the larger of the base and plus figures.
`BenchTask.sandbox`: 4 GiB of memory (evalplus's EVALPLUS_MAX_MEMORY_BYTES default) and
fork_server=True (evalplus forks every check from its loaded parent; a fresh interpreter per
program would cost more than the check). numpy is imported only when a comparison needs it:
np.allclose on real scalars and flat lists of them is computed in the same float64 arithmetic
without it. shutil.rmtree/move/chown and subprocess.Popen are disabled only where the solution
has imported those modules (evalplus imports them to disable them; importing costs more than a
check here).
"""

from __future__ import annotations

import base64
import hashlib
import json
import marshal
import math
import os
import pickle
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from evaluation.benchmarks import BenchSpec, BenchTask, _check_unique, _fields, _humaneval_like
from plumbing import InputError, atomic_write_json, iter_jsonl, require_file

DEFAULT_MIN_TIME_LIMIT = 1.0  # evalplus.config
DEFAULT_GT_TIME_LIMIT_FACTOR = 4.0
TASK_TIMEOUT_CAP_S = 60.0  # EVALPLUS_TIMEOUT_PER_TASK default
MEMORY_MB = 4096  # EVALPLUS_MAX_MEMORY_BYTES default
# Sandbox overrides of every task: evalplus's memory limit, and programs forked from one warm
# interpreter per batch (as evalplus forks each check from its loaded parent): the per-program
# start-up is what a check mostly costs (bench/bench_eval.py).
TASK_SANDBOX = {"memory_mb": MEMORY_MB, "fork_server": True}
CACHE_ENV = "CODECOT_CACHE_DIR"
CACHE_FORMAT = 2
TRUTH_MARKER = "@@codecot-evalplus-truth@@"
# The ground-truth runs print every output (pickled, base64) on stdout: room for the largest.
TRUTH_OUTPUT_BYTES = 512 * 1024 * 1024
TRUTH_TIMEOUT_S = 600.0

# evalplus/eval/_special_oracle.py (0.3.1): entry points, matched by name.
MBPP_OUTPUT_NOT_NONE_TASKS = ("check_str", "text_match_three", "text_starta_endb")
MBPP_OUTPUT_SET_EQ_TASKS = (
    "similar_elements",  # Mbpp/2
    "find_char_long",  # Mbpp/7
    "common_in_nested_lists",  # Mbpp/111
    "extract_singly",  # Mbpp/140
    "larg_nnum",  # Mbpp/232
    "intersection_array",  # Mbpp/249
    "find_dissimilar",  # Mbpp/579
    "Diff",  # Mbpp/769
)

# evalplus/data/mbpp.py `mbpp_deserialize_inputs` (0.3.1): MBPP+ task number -> what JSON's
# lists become before the call.
_TUPLE_EACH_ARG = {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596,
                   616, 630, 726, 740, 744, 809}  # fmt: skip
_TUPLE_EACH_ITEM_OF_EACH_ARG = {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473,
                                614, 780}  # fmt: skip
_TUPLE_ITEMS_OF_FIRST = {75, 413, 444, 753}
_TUPLE_SECOND = {106, 750}
_TUPLE_FIRST = {250, 405, 446, 617, 720, 763, 808}
_TUPLE_TWO_LEVELS = {259, 401, 445}
_TUPLE_ALL_NESTED = {580, 615, 791}


def _all_tuples(value: Any) -> Any:
    return tuple(_all_tuples(v) for v in value) if isinstance(value, list) else value


def mbpp_deserialize(task_id: str, inputs: list[Any]) -> list[Any]:
    """MBPP+ inputs as evalplus passes them to the function (tuples, sets, complex numbers)."""
    try:
        number = int(task_id.split("/")[-1])
    except ValueError:
        return inputs  # not an MBPP+ id: evalplus would refuse it; no table entry applies
    if number in _TUPLE_EACH_ARG:
        return [[tuple(arg) for arg in inp] for inp in inputs]
    if number in _TUPLE_EACH_ITEM_OF_EACH_ARG:
        return [[[tuple(item) for item in arg] for arg in inp] for inp in inputs]
    if number in _TUPLE_ITEMS_OF_FIRST:
        return [[[tuple(item) for item in inp[0]], inp[1]] for inp in inputs]
    if number in _TUPLE_SECOND:
        return [[inp[0], tuple(inp[1])] for inp in inputs]
    if number == 115:  # an empty list becomes {} (a dict), as evalplus does
        return [
            [[set(item) if isinstance(item, list) and item else {} for item in inp[0]]]
            for inp in inputs
        ]
    if number == 124:
        return [(float(inp[0]), complex(inp[1])) for inp in inputs]
    if number in _TUPLE_FIRST:
        return [[tuple(inp[0]), inp[1]] for inp in inputs]
    if number in _TUPLE_TWO_LEVELS:
        return [[tuple(tuple(item) for item in arg) for arg in inp] for inp in inputs]
    if number == 278:
        return [[tuple(tuple(x) if isinstance(x, list) else x for x in inp[0])] for inp in inputs]
    if number == 307:
        return [[tuple(inp[0]), inp[1], inp[2]] for inp in inputs]
    if number == 722:
        return [[{k: tuple(v) for k, v in inp[0].items()}, *inp[1:]] for inp in inputs]
    if number == 252:
        return [[complex(inp[0])] for inp in inputs]
    if number in _TUPLE_ALL_NESTED:
        return [_all_tuples(inp) for inp in inputs]
    return inputs


# ---------------------------------------------------------------------------------------------
# the checker every test program carries (runs inside the sandbox)

CHECKER = r"""
def _evalplus_check(namespace, dataset, entry_point, atol, limits, inputs, expected, kind):
    # built-in or pre-loaded modules only (no pickle.py, signal.py, contextlib): an import costs
    # a good part of a whole check
    import _signal, builtins, io, math, marshal, os, sys

    def unpack(packed):  # (format, bytes): marshal when the values allow it, else pickle
        how, data = packed
        if how == "marshal":
            return marshal.loads(data)
        import _pickle

        return _pickle.loads(data)

    inputs, expected = unpack(inputs), unpack(expected)
    fn = namespace[entry_point]  # KeyError when missing: a failure, as in evalplus

    class WriteOnly(io.StringIO):
        def read(self, *a, **k):
            raise OSError
        readline = readlines = read
        def readable(self, *a, **k):
            return False

    class TimedOut(Exception):
        pass

    def on_alarm(signum, frame):
        raise TimedOut("timed out")

    def is_floats(x):
        if isinstance(x, float):
            return True
        if isinstance(x, (list, tuple)) and x:
            return all(isinstance(i, float) for i in x)
        np = sys.modules.get("numpy")
        if np is not None and isinstance(x, np.ndarray):
            return x.dtype == np.float64 or x.dtype == np.float32
        return False

    def poly(xs, x):  # HumanEval/32's polynomial
        return sum([c * math.pow(x, i) for i, c in enumerate(xs)])

    def surface_area(base_edge, height):  # Mbpp/581: height is the pyramid's height
        slant = math.sqrt((base_edge / 2) ** 2 + height**2)
        return round(base_edge**2 + 2 * base_edge * slant)

    def digit_distance(a, b):  # Mbpp/558: numbers padded to the same length with zeros
        sa, sb = str(a), str(b)
        width = max(len(sa), len(sb))
        return sum(abs(int(x) - int(y)) for x, y in zip(sa.zfill(width), sb.zfill(width)))

    # what evalplus's reliability_guard disables (restored afterwards for the runner)
    guarded = [(os, n) for n in ("kill", "system", "putenv", "remove", "removedirs", "rmdir",
               "fchdir", "setuid", "fork", "forkpty", "killpg", "rename", "renames", "truncate",
               "replace", "unlink", "fchmod", "fchown", "chmod", "chown", "chroot", "lchflags",
               "lchmod", "lchown", "getcwd", "chdir")]
    # shutil and subprocess only when loaded: importing them costs more than the whole check
    shutil, subprocess = sys.modules.get("shutil"), sys.modules.get("subprocess")
    if shutil is not None:
        guarded += [(shutil, n) for n in ("rmtree", "move", "chown")]
    if subprocess is not None:
        guarded.append((subprocess, "Popen"))
    saved = [(m, n, getattr(m, n)) for m, n in guarded if hasattr(m, n)]
    # the solution's functions captured the builtins module's dict when they were defined
    names = builtins.__dict__
    saved_builtins = {n: names.get(n) for n in ("exit", "quit", "open", "help")}
    saved_modules = {n: sys.modules.get(n) for n in ("ipdb", "joblib", "resource", "psutil",
                     "tkinter")}

    def guard(on):
        for m, n, value in saved:
            setattr(m, n, None if on else value)
        names.update(dict.fromkeys(saved_builtins) if on else saved_builtins)
        for n, value in saved_modules.items():
            if on:
                sys.modules[n] = None
            elif value is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = value

    def numpy():  # imported only when needed (it costs more than the whole check), unguarded
        np = sys.modules.get("numpy")
        if np is None:
            guard(False)
            try:
                import numpy as np
            finally:
                guard(True)
        return np

    def real(x):
        return type(x) is float or (type(x) is int and -(2**53) < x < 2**53)

    def allclose(out, exp, atol):
        # np.allclose(out, exp, rtol=1e-07, atol=atol) in the same float64 arithmetic for real
        # scalars and flat lists/tuples of them (out has exp's type and length here): finite
        # pairs within atol + rtol * |exp|, other pairs equal (inf == inf; nan never); anything
        # else goes to numpy itself
        pairs = list(zip(out, exp)) if isinstance(exp, (list, tuple)) else [(out, exp)]
        if not all(real(a) and real(b) for a, b in pairs):
            return bool(numpy().allclose(out, exp, rtol=1e-07, atol=atol))
        for a, b in pairs:
            a, b = float(a), float(b)
            if math.isfinite(a) and math.isfinite(b):
                if not abs(a - b) <= atol + 1e-07 * abs(b):
                    return False
            elif not a == b:
                return False
        return True

    counted = 0
    guard(True)
    try:
        for i, inp in enumerate(inputs):
            try:
                limit = limits[i]
                _signal.signal(_signal.SIGALRM, on_alarm)
                _signal.setitimer(_signal.ITIMER_REAL, limit)
                try:
                    sink = WriteOnly()
                    streams = sys.stdout, sys.stderr, sys.stdin
                    sys.stdout = sys.stderr = sys.stdin = sink
                    try:
                        out = fn(*inp)
                    finally:
                        sys.stdout, sys.stderr, sys.stdin = streams
                finally:
                    _signal.setitimer(_signal.ITIMER_REAL, 0)
                exp = expected[i]
                exact_match = out == exp
                if dataset == "mbpp":
                    if entry_point == "are_equivalent":  # Mbpp/164: any output
                        exact_match = exact_match or True
                    elif entry_point == "sum_div":  # Mbpp/295
                        exact_match = exact_match or out == 0
                    elif entry_point == "surface_Area":  # Mbpp/581
                        exact_match = exact_match or abs(out - surface_area(*inp)) <= atol
                    elif entry_point == "digit_distance_nums":  # Mbpp/558
                        exact_match = exact_match or out == digit_distance(*inp)
                    elif entry_point in _EVALPLUS_SET_EQ:
                        exact_match = set(out) == set(exp)
                    elif entry_point in _EVALPLUS_NOT_NONE:  # exp: whether the output is not None
                        if isinstance(out, bool):
                            exact_match = out == exp
                        else:
                            exact_match = exp == (out is not None)
                if dataset == "humaneval" and entry_point == "find_zero":
                    assert abs(poly(*inp, out)) <= atol
                    continue  # evalplus 0.3.1 skips its progress count here (see the module)
                if atol == 0 and is_floats(exp):
                    atol = 1e-6  # stays for the later inputs, as in evalplus
                if not exact_match and atol != 0:
                    assert type(out) == type(exp)
                    if isinstance(exp, (list, tuple)):
                        assert len(out) == len(exp)
                    assert allclose(out, exp, atol)
                else:
                    assert exact_match
            except BaseException as exc:
                if isinstance(exc, TimedOut):
                    why = f"timed out (limit {limit:.3g}s)"
                elif type(exc) is AssertionError and not str(exc):
                    why = "wrong output"
                else:
                    why = f"{type(exc).__name__}: {exc}".rstrip(": ")
                return f"{kind} input {i + 1}/{len(inputs)}: {why}"  # the first failure
            counted += 1
    finally:
        guard(False)
    if counted != len(inputs):
        return (
            f"{kind}: {len(inputs) - counted} of {len(inputs)} inputs not counted as passed "
            "(evalplus 0.3.1's find_zero oracle never counts an input)"
        )
    return None
"""
# Compiled here once and shipped marshalled (trusted direction, harness -> sandbox): compiling
# the source costs more than the rest of a check; an interpreter of another version compiles it.
CHECKER_CODE = marshal.dumps(compile(CHECKER, "<evalplus-check>", "exec"))

CHECKER_CONSTANTS = (
    f"_EVALPLUS_SET_EQ = {MBPP_OUTPUT_SET_EQ_TASKS!r}\n"
    f"_EVALPLUS_NOT_NONE = {MBPP_OUTPUT_NOT_NONE_TASKS!r}\n"
)

TRUTH_PROGRAM = r"""
def _evalplus_truth(fn, inputs, not_none, marker):
    import base64, copy, json, marshal, pickle, time

    outputs, times = [], []
    how, data = inputs
    for inp in marshal.loads(data) if how == "marshal" else pickle.loads(data):
        inp = copy.deepcopy(inp)
        start = time.time()
        outputs.append(fn(*inp))
        times.append(time.time() - start)
    if not_none:
        outputs = [out is not None for out in outputs]
    try:  # marshal when every output allows it: it needs no import in the test programs
        blob = "marshal:" + base64.b64encode(marshal.dumps(outputs)).decode("ascii")
    except ValueError:
        blob = "pickle:" + base64.b64encode(pickle.dumps(outputs, protocol=4)).decode("ascii")
    print("\n" + marker + json.dumps({"times": times, "expected": blob}), flush=True)
"""


def _packed(value: Any) -> tuple[str, bytes]:
    """Harness-made values for a program: marshal (no import there) when it can hold them."""
    try:
        return ("marshal", marshal.dumps(value))
    except ValueError:
        return ("pickle", pickle.dumps(value, protocol=4))


def _opaque(blob: str) -> tuple[str, bytes]:
    """A ground-truth record ("marshal:" or "pickle:" + base64) as (format, bytes) for a
    program: base64-decoded only, never unpickled or unmarshalled here."""
    how, _, text = blob.partition(":")
    if how not in ("marshal", "pickle"):
        raise ValueError(f"unknown ground-truth encoding {how!r}")
    return (how, base64.b64decode(text, validate=True))


def time_limits(times: list[float]) -> list[float]:
    """Per-input limits, as evalplus's `untrusted_check` computes them."""
    return [max(DEFAULT_MIN_TIME_LIMIT, DEFAULT_GT_TIME_LIMIT_FACTOR * t) for t in times]


def program_timeout_s(limits: list[float]) -> float:
    """untrusted_check's `min(60, sum(limits)) + 1`, plus the second its `p.join` adds."""
    return min(TASK_TIMEOUT_CAP_S, sum(limits)) + 1 + 1


def check_block(
    dataset: str, entry_point: str, atol: float, inputs: list[Any], expected: str,
    times: list[float], kind: str,
) -> str:  # fmt: skip
    """The test block that checks one input set (base or plus) of a task."""
    args = (
        f"{dataset!r}, {entry_point!r}, {atol!r}, {time_limits(times)!r}, "
        f"{_packed(inputs)!r}, {_opaque(expected)!r}, {kind!r}"
    )
    return (
        # names with a prefix: the block runs in the solution's namespace
        f"{CHECKER_CONSTANTS}import marshal as _evalplus_marshal, sys as _evalplus_sys\n"
        f"if _evalplus_sys.hexversion == {sys.hexversion}:\n"
        f"    exec(_evalplus_marshal.loads({CHECKER_CODE!r}))\n"
        f"else:\n    exec({CHECKER!r})\n"
        f"_evalplus_failure = _evalplus_check(globals(), {args})\n"
        "assert _evalplus_failure is None, _evalplus_failure\n"
    )


# ---------------------------------------------------------------------------------------------
# reading the official files


def _number(obj: dict[str, Any], where: str, name: str) -> float:
    value = obj.get(name)
    if name not in obj:
        raise InputError(f"{where}: missing field '{name}'")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{where}: field '{name}': expected a finite number, got {value!r}")
    if value < 0:
        raise InputError(f"{where}: field '{name}': must be >= 0, got {value!r}")
    return value


def _inputs(obj: dict[str, Any], where: str, name: str) -> list[list[Any]]:
    if name not in obj:
        raise InputError(f"{where}: missing field '{name}'")
    value = obj[name]
    if not isinstance(value, list):
        raise InputError(f"{where}: field '{name}': expected a list, got {type(value).__name__}")
    for i, inp in enumerate(value):
        if not isinstance(inp, list):
            raise InputError(
                f"{where}: field '{name}': input {i} is a {type(inp).__name__}, not a list of "
                "arguments"
            )
    return value


def _is_legacy(obj: dict[str, Any]) -> bool:
    return "test" in obj and "base_input" not in obj and "plus_input" not in obj


def cache_dir() -> Path:
    """Where expected outputs are cached ($CODECOT_CACHE_DIR, else ~/.cache/codecot/evalplus)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "codecot" / "evalplus"


def _ground_truth(
    path: str, dataset: str, rows: list[tuple[str, dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """task_id -> {base_time, plus_time, base_expected, plus_expected}; from the cache when the
    file's digest has been seen, else computed in the sandbox and cached."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    cached = cache_dir() / f"{dataset}-{digest}.json"
    if cached.is_file():
        try:
            data = json.loads(cached.read_text(encoding="utf-8"))
            if data.get("format") == CACHE_FORMAT and set(data["tasks"]) >= {
                obj["task_id"] for _, obj in rows
            }:
                return data["tasks"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache is recomputed
    from sandbox import Program, SandboxConfig, run_programs

    programs = []
    for _, obj in rows:
        code = obj["prompt"] + obj["canonical_solution"]
        not_none = dataset == "mbpp" and obj["entry_point"] in MBPP_OUTPUT_NOT_NONE_TASKS
        for kind in ("base", "plus"):
            call = (
                f"_evalplus_truth({obj['entry_point']}, {_packed(obj[kind + '_input'])!r}, "
                f"{not_none!r}, {TRUTH_MARKER!r})\n"
            )
            programs.append(Program(f"{obj['task_id']}:{kind}", code, TRUTH_PROGRAM + call))
    config = SandboxConfig(
        timeout_s=TRUTH_TIMEOUT_S,
        memory_mb=MEMORY_MB,
        output_bytes=TRUTH_OUTPUT_BYTES,
        output_kill_mb=2 * TRUTH_OUTPUT_BYTES // (1024 * 1024),
    )
    verdicts = iter(run_programs(programs, config))
    tasks: dict[str, dict[str, Any]] = {}
    for where, obj in rows:
        entry: dict[str, Any] = {}
        for kind in ("base", "plus"):
            verdict = next(verdicts)
            record = None
            for line in reversed(verdict.stdout.splitlines()):
                if line.startswith(TRUTH_MARKER):
                    record = json.loads(line[len(TRUTH_MARKER) :])
                    break
            n = len(obj[kind + "_input"])
            if not verdict.passed or record is None:
                why = verdict.detail or "printed no outputs"
                raise InputError(
                    f"{path}: task {obj['task_id']} ({where}): canonical_solution fails on its "
                    f"{kind}_input: {verdict.status}: {why}"
                )
            times, blob = record.get("times"), record.get("expected")
            try:
                _opaque(blob)
            except (TypeError, ValueError, AttributeError):
                blob = None
            if blob is None or not (
                isinstance(times, list)
                and len(times) == n
                and all(isinstance(t, float) and math.isfinite(t) for t in times)
            ):
                raise InputError(f"{path}: task {obj['task_id']}: malformed ground-truth record")
            entry[kind + "_time"], entry[kind + "_expected"] = times, blob
        tasks[obj["task_id"]] = entry
    atomic_write_json(cached, {"format": CACHE_FORMAT, "file": str(path), "tasks": tasks})
    return tasks


def _load(spec: BenchSpec, dataset: str) -> list[BenchTask]:
    if not spec.bench_file:
        raise InputError(f"--bench {spec.name}: needs --bench-file (the official release file)")
    return load_release_file(spec.bench_file, dataset, "--bench-file")


def dataset_of(path: str, flag: str) -> str:
    """Which release a file is ("humaneval" or "mbpp"), by its first task_id (Mbpp/...)."""
    for _, obj in iter_jsonl(path, flag):
        return "mbpp" if str(obj.get("task_id", "")).startswith("Mbpp/") else "humaneval"
    raise InputError(f"{flag} {path}: holds no tasks")


def load_release_file(path: str, dataset: str, flag: str) -> list[BenchTask]:
    """The tasks of a HumanEval+ / MBPP+ release file (`flag` names the option in errors)."""
    path = str(require_file(path, flag))
    legacy: dict[str, BenchTask] = {}
    official: list[tuple[str, dict[str, Any]]] = []
    order: list[tuple[str, str]] = []  # (kind, task_id) in file order
    for where, obj in iter_jsonl(path, flag):
        if _is_legacy(obj):
            task = _humaneval_like(obj, where)
            legacy[task.task_id] = task
            order.append(("legacy", task.task_id))
            continue
        _fields(obj, where, ("task_id", "prompt", "entry_point", "canonical_solution"))
        _number(obj, where, "atol")
        row = {**obj}
        for kind in ("base_input", "plus_input"):
            row[kind] = _inputs(obj, where, kind)
            if dataset == "mbpp":
                row[kind] = mbpp_deserialize(obj["task_id"], row[kind])
        official.append((where, row))
        order.append(("official", obj["task_id"]))
    truth = _ground_truth(path, dataset, official) if official else {}
    built: dict[str, BenchTask] = {}
    for where, row in official:
        entry, oracle = row["entry_point"], truth[row["task_id"]]
        shown = _humaneval_like({**row, "test": ""}, where)  # problem text and code prompt
        blocks = {
            kind: check_block(
                dataset,
                entry,
                row["atol"],
                row[kind + "_input"],
                oracle[kind + "_expected"],
                oracle[kind + "_time"],
                kind,
            )  # fmt: skip
            for kind in ("base", "plus")
        }
        timeout = max(
            program_timeout_s(time_limits(oracle["base_time"])),
            program_timeout_s(time_limits(oracle["plus_time"])),
        )
        built[row["task_id"]] = replace(
            shown,
            tests=blocks["plus"],
            base_tests=blocks["base"],
            timeout_s=timeout,
            sandbox=dict(TASK_SANDBOX),
        )
    tasks = [legacy[tid] if kind == "legacy" else built[tid] for kind, tid in order]
    return _check_unique(tasks, path)


def load_humaneval_plus(spec: BenchSpec) -> list[BenchTask]:
    """HumanEval+ (HumanEvalPlus v0.1.10 format) from --bench-file."""
    return _load(spec, "humaneval")


def load_mbpp_plus(spec: BenchSpec) -> list[BenchTask]:
    """MBPP+ (MbppPlus v0.2.0 format) from --bench-file; inputs deserialised as evalplus does."""
    return _load(spec, "mbpp")
