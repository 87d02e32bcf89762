"""MultiPL-E without running programs: prompt files, program assembly, stop tokens, completion
files, MultiPL-E's result files and their pass@k, status mapping, extraction.

The fixture (tests/fixtures/multipl/humaneval-<lang>.jsonl, with .canonical.jsonl beside each)
is ten HumanEval tasks translated by this project the way MultiPL-E's dataset_builder
translates them; the runs are in tests/test_multipl_native.py.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import skip_or_fail

from evaluation.bench_multipl import (
    LANGUAGES,
    assemble_program,
    completion_from_code,
    extract_native,
    multipl_pass_at_k,
    multipl_status,
    native_program_text,
    read_completion_files,
    read_results,
    stop_at_stop_token,
    write_results,
)
from evaluation.benchmarks import BenchSpec, load_tasks
from plumbing import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "multipl"
FIXTURE_LANGS = ("cpp", "java", "js", "sh", "rs", "php")


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def tasks_of(lang: str):
    """The fixture's tasks of `lang` (the loader needs its toolchain: skip_or_fail without)."""
    spec = BenchSpec(f"multipl-e:{lang}", bench_file=str(FIXTURES / f"humaneval-{lang}.jsonl"))
    try:
        return load_tasks(spec)
    except InputError as err:
        if "install the Debian package" in str(err):
            skip_or_fail(str(err))
        raise


def test_fixture_loads_in_every_language_with_the_same_tasks():
    names = None
    for lang in FIXTURE_LANGS:
        tasks = tasks_of(lang)
        assert len(tasks) == 10
        assert {t.language for t in tasks} == {lang}
        if names is None:
            names = [t.task_id for t in tasks]
        assert [t.task_id for t in tasks] == names  # the same problems: a per-language table
        first = tasks[0]
        assert first.task_id == "HumanEval_13_greatest_common_divisor"
        assert first.entry_point == "greatest_common_divisor"
        assert first.code_prompt.endswith("{\n")
        assert first.problem.startswith(f"Complete the following {LANGUAGES[lang].name} function:")
        assert first.problem.endswith(first.code_prompt + "```")
    assert tasks_of("cpp")[0].stop_tokens == ("\n}",)
    assert tasks_of("java")[0].stop_tokens == ("\n    }\n",)
    assert tasks_of("js")[0].stop_tokens == ("\nfunction ", "\n/*", "\n//", "\nconsole.log")
    assert tasks_of("php")[0].stop_tokens == ("\nfunction", "\n?>", "\n//", "\n#")


def test_canonical_completions_are_what_generation_could_give():
    """A canonical completion holds none of its language's stop tokens (generation would have
    stopped there), so it is a completion MultiPL-E could have produced."""
    for lang in FIXTURE_LANGS:
        tasks = {t.task_id: t for t in tasks_of(lang)}
        samples = rows_of(FIXTURES / f"humaneval-{lang}.canonical.jsonl")
        assert sorted(s["task_id"] for s in samples) == sorted(tasks)
        for s in samples:
            stops = tasks[s["task_id"]].stop_tokens
            assert stop_at_stop_token(s["completion"], stops) == s["completion"], (lang, s)


def test_program_is_prompt_completion_newline_tests():
    task = tasks_of("cpp")[8]  # HumanEval_53_add
    assert task.task_id == "HumanEval_53_add"
    program = native_program_text(task, "    return x + y;", is_completion=True)
    assert program == task.code_prompt + "    return x + y;" + "\n" + task.tests
    assert program == assemble_program(task.code_prompt, "    return x + y;", task.tests)
    assert "long add(long x, long y) {\n    return x + y;\n}\nint main() {" in program


def test_full_code_becomes_the_completion_multipl_e_would_get():
    task = tasks_of("cpp")[8]
    full = (
        "#include <bits/stdc++.h>\nlong helper() { return 0; }\n"
        "long  add(long x,  long y) {\n    return x + y;\n}\n\nint main() { return 0; }\n"
    )
    assert completion_from_code(full, task.code_prompt, task.stop_tokens) == "    return x + y;"
    program = native_program_text(task, full, is_completion=False)
    assert program == task.code_prompt + "    return x + y;\n" + task.tests
    # JavaScript keeps the closing brace (the tests do not close the function)
    js = tasks_of("js")[8]
    code = "function add(x, y){\n  return x + y;\n}\nfunction other() {}\n"
    assert completion_from_code(code, js.code_prompt, js.stop_tokens) == "  return x + y;\n}"
    # no line repeats the header: the whole code is the completion, cut at the first stop
    assert completion_from_code("return 1;\n}\nmore", task.code_prompt, ["\n}"]) == "return 1;"


def test_stop_at_stop_token_drops_the_earliest_stop():
    assert stop_at_stop_token("a\n//b\nfunction c", ["\nfunction ", "\n//"]) == "a"
    assert stop_at_stop_token("abc", ["\n}"]) == "abc"
    assert stop_at_stop_token("  x;\n}\n", ["\n}"]) == "  x;"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.pop("tests"), "missing field 'tests'"),
        (lambda r: r.pop("stop_tokens"), "missing field 'stop_tokens'"),
        (lambda r: r.update(stop_tokens="\n}"), "field 'stop_tokens': expected a list of strings"),
        (lambda r: r.update(prompt=3), "field 'prompt': expected a string, got int"),
        (
            lambda r: r.update(language="java"),
            "field 'language': 'java', but --bench asks for 'cpp'",
        ),
        (lambda r: r.update(name=" "), "field 'name' is empty"),
    ],
)
def test_bad_prompt_file_names_file_line_and_field(tmp_path, change, message):
    rows = rows_of(FIXTURES / "humaneval-cpp.jsonl")[:3]
    change(rows[1])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError) as err:
        load_tasks(BenchSpec("multipl-e:cpp", bench_file=str(bad)))
    assert str(err.value) == f"{bad}:2: {message}"


def test_bad_bench_names_and_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"unknown language 'cobol' \(choose from cpp, java, js"):
        load_tasks(BenchSpec("multipl-e:cobol", bench_file="x.jsonl"))
    with pytest.raises(InputError, match="name the language, multipl-e:LANG"):
        load_tasks(BenchSpec("multipl-e", bench_file="x.jsonl"))
    with pytest.raises(InputError, match="needs --bench-file"):
        load_tasks(BenchSpec("multipl-e:rs"))
    with pytest.raises(InputError, match="no such file"):
        load_tasks(BenchSpec("multipl-e:rs", bench_file=str(tmp_path / "none.jsonl")))
    with pytest.raises(InputError, match=r"unknown benchmark .*multipl-e:LANG"):
        load_tasks(BenchSpec("multipl:cpp"))
    dup = tmp_path / "dup.jsonl"
    line = (FIXTURES / "humaneval-rs.jsonl").read_text().splitlines()[0]
    dup.write_text(f"{line}\n{line}\n")
    with pytest.raises(
        InputError, match="duplicate task_id 'HumanEval_13_greatest_common_divisor'"
    ):
        load_tasks(BenchSpec("multipl-e:rs", bench_file=str(dup)))


def test_json_array_prompt_file_as_prepare_prompts_json_writes(tmp_path):
    array = tmp_path / "humaneval-sh.json"
    array.write_text(json.dumps(rows_of(FIXTURES / "humaneval-sh.jsonl"), indent=2))
    tasks = load_tasks(BenchSpec("multipl-e:sh", bench_file=str(array)))
    assert [t.task_id for t in tasks] == [t.task_id for t in tasks_of("sh")]
    broken = [dict(r) for r in rows_of(FIXTURES / "humaneval-sh.jsonl")]
    del broken[4]["doctests"]
    array.write_text(json.dumps(broken))
    with pytest.raises(InputError, match=rf"^{array}:item 5: missing field 'doctests'$"):
        load_tasks(BenchSpec("multipl-e:sh", bench_file=str(array)))


@pytest.mark.parametrize(
    "lang, status, stdout, stderr, expected",
    [
        ("cpp", "passed", "", "", "OK"),
        ("cpp", "error", "", "prog.cpp:3: error", "SyntaxError"),
        ("java", "failed", "", "Exception in thread main java.lang.AssertionError", "Exception"),
        ("rs", "timeout", "", "", "Timeout"),
        ("rs", "killed", "", "", "Exception"),
        ("js", "failed", "", "AssertionError [ERR_ASSERTION]: Expected", "AssertionError"),
        ("js", "failed", "", "SyntaxError: Unexpected token", "SyntaxError"),
        ("js", "failed", "", "ReferenceError: x is not defined", "ReferenceError"),
        ("js", "failed", "", "TypeError: x", "Exception"),
        ("sh", "failed", "", "prog.sh: line 3: syntax error near `}'", "SyntaxError"),
        ("sh", "failed", "", "", "Exception"),
        ("php", "failed", "PHP Parse error:  syntax error", "", "SyntaxError"),
        ("php", "failed", "", "PHP Parse error:  syntax error", "SyntaxError"),
        ("php", "timeout", "", "", "Exception"),  # eval_php.py has no timeout branch
        ("php", "failed", "", "PHP Fatal error: Uncaught Exception: Test failed!", "Exception"),
    ],
)
def test_multipl_status_as_its_evaluators_decide(lang, status, stdout, stderr, expected):
    assert multipl_status(lang, status, stdout, stderr) == expected


def test_extract_native_takes_the_language_block_without_python_parsing():
    response = "Here:\n```python\nx = 1\n```\n```cpp\n#include <x>\nlong f() {\n    return 1;"
    ex = extract_native(response, "precede", "cpp")
    assert (ex.code, ex.method, ex.truncated) == (
        "#include <x>\nlong f() {\n    return 1;",
        "first_block",
        True,
    )
    two = "```js\nfunction a(){}\n```\nthen\n```javascript\nfunction b(){}\n```\n"
    assert extract_native(two, "follow", "js").code == "function b(){}"
    assert extract_native(two, "wo", "js").code == "function a(){}"
    assert extract_native("echo 1\n", "wo", "sh").code == "echo 1"
    assert extract_native("anything", "raw", "sh").code == "anything"
    assert extract_native("  ", "wo", "sh").method == "empty"


def _completion_file(path: Path, obj: dict) -> None:
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(obj))


def test_read_completion_files_file_directory_and_bad_ones(tmp_path):
    task = tasks_of("js")[0]
    obj = {
        "name": task.task_id, "language": "js", "temperature": 0.2, "top_p": 0.95,
        "max_tokens": 512, "prompt": task.code_prompt, "tests": task.tests,
        "completions": ["  return 1;\n}\n", "  return a;\n}\n"], "stop_tokens": list(task.stop_tokens),
    }  # fmt: skip
    one = tmp_path / "dir" / f"{task.task_id}.json.gz"
    one.parent.mkdir()
    _completion_file(one, obj)
    _completion_file(
        tmp_path / "dir" / "HumanEval_53_add.json.gz", {**obj, "name": "HumanEval_53_add"}
    )
    _completion_file(tmp_path / "dir" / "HumanEval_53_add.results.json.gz", {"ignored": True})
    got = list(read_completion_files(one))
    assert [(w, r["task_id"], r["completion"]) for w, r in got] == [
        (f"{one}:completion 1", task.task_id, "  return 1;\n}\n"),
        (f"{one}:completion 2", task.task_id, "  return a;\n}\n"),
    ]
    assert [r["task_id"] for _, r in read_completion_files(one.parent)] == [
        "HumanEval_13_greatest_common_divisor"] * 2 + ["HumanEval_53_add"] * 2  # fmt: skip
    bad = tmp_path / "bad.json.gz"
    _completion_file(bad, {"name": "x", "completions": "not a list"})
    with pytest.raises(
        InputError, match=rf"^--samples {bad}: field 'completions': missing or not a list$"
    ):
        list(read_completion_files(bad))
    _completion_file(bad, {"completions": []})
    with pytest.raises(InputError, match="field 'name': missing"):
        list(read_completion_files(bad))
    _completion_file(bad, {"name": "x", "completions": ["a", 3]})
    with pytest.raises(InputError, match=r"field 'completions'\[1\]: not a string"):
        list(read_completion_files(bad))
    bad.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(InputError, match=rf"^--samples {bad}: not a MultiPL-E completion file"):
        list(read_completion_files(bad))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="a directory without MultiPL-E completion files"):
        list(read_completion_files(empty))


def test_read_samples_takes_completion_files_and_samples_jsonl(tmp_path):
    from evaluation.run import read_samples

    tasks = tasks_of("js")
    completions = tmp_path / "completions"
    completions.mkdir()
    for task in tasks:
        _completion_file(
            completions / f"{task.task_id}.json.gz",
            {"name": task.task_id, "language": "js", "completions": ["x", "y"]},
        )
    kept, found = read_samples(str(completions), tasks, allow_missing=False)
    assert kept == tasks
    assert found[tasks[0].task_id] == [("x", True), ("y", True)]  # completions: appended
    canonical = FIXTURES / "humaneval-js.canonical.jsonl"
    kept, found = read_samples(str(canonical), tasks, allow_missing=False)
    assert len(kept) == 10 and all(is_completion for ((_, is_completion),) in found.values())
    _completion_file(completions / "HumanEval_53_add.json.gz", {"name": "HumanEval_53_add", "language": "rs", "completions": ["x"]})  # fmt: skip
    with pytest.raises(
        InputError,
        match=r"HumanEval_53_add.json.gz:completion 1: language 'rs', but the benchmark's is 'js'",
    ):
        read_samples(str(completions), tasks, allow_missing=False)


def _rows(outcomes: dict[str, list[str]]) -> list[dict]:
    rows = []
    for task_id, statuses in outcomes.items():
        for s, status in enumerate(statuses):
            exit_code = 0 if status == "OK" else 1
            rows.append({
                "task_id": task_id, "sample": s, "passed": status == "OK",
                "multipl": {"program": f"p{s}", "status": status, "stdout": "", "stderr": "e",
                            "exit_code": exit_code},
            })  # fmt: skip
    return rows


def test_result_files_read_back_and_their_pass_at_k_equals_ours(tmp_path):
    from evaluation.passk import per_task_pass_at_k

    tasks = tasks_of("rs")[:4]
    outcomes = {
        tasks[0].task_id: ["OK", "OK", "Exception", "SyntaxError", "OK"],
        tasks[1].task_id: ["Timeout", "Exception", "Exception", "Exception", "SyntaxError"],
        tasks[2].task_id: ["OK"] * 5,
        tasks[3].task_id: ["Exception", "OK", "Exception", "Exception", "Exception"],
    }
    rows = _rows(outcomes)
    rows.reverse()  # the files keep sample order whatever the row order
    written = write_results(tmp_path / "multipl-e" / "m", tasks, rows, temperature=0.2)
    assert [p.name for p in written] == [f"{t.task_id}.results.json.gz" for t in tasks]
    with gzip.open(written[0], "rt") as f:
        data = json.load(f)
    assert set(data) == {
        "name",
        "language",
        "prompt",
        "tests",
        "stop_tokens",
        "temperature",
        "results",
    }
    assert (data["name"], data["language"], data["stop_tokens"]) == (
        tasks[0].task_id,
        "rs",
        ["\n}"],
    )
    assert data["prompt"] == tasks[0].code_prompt and data["tests"] == tasks[0].tests
    assert [r["program"] for r in data["results"]] == ["p0", "p1", "p2", "p3", "p4"]
    assert set(data["results"][0]) == {"program", "status", "stdout", "stderr", "exit_code"}
    assert read_results(tmp_path / "multipl-e" / "m") == {
        tasks[0].task_id: (5, 3), tasks[1].task_id: (5, 0), tasks[2].task_id: (5, 5),
        tasks[3].task_id: (5, 1),
    }  # fmt: skip
    n = [len(v) for v in outcomes.values()]
    c = [sum(r["passed"] for r in rows if r["task_id"] == t) for t in outcomes]
    for k in (1, 2, 5):
        ours = float(np.mean(per_task_pass_at_k(n, c, k)))
        assert multipl_pass_at_k(tmp_path / "multipl-e" / "m", k) == pytest.approx(ours, abs=1e-12)
    assert multipl_pass_at_k(tmp_path / "multipl-e" / "m", 1) == pytest.approx(9 / 20)
    # OK with a non-zero exit code is not counted (pass_k.py's rule)
    odd = _rows({tasks[0].task_id: ["OK", "OK"]})
    odd[1]["multipl"]["exit_code"] = 3
    write_results(tmp_path / "odd", tasks, odd, temperature=0.0)
    assert read_results(tmp_path / "odd") == {tasks[0].task_id: (2, 1)}
    with gzip.open(tmp_path / "odd" / f"{tasks[0].task_id}.results.json.gz", "rt") as f:
        assert "temperature" not in json.load(f)  # pass_k.py takes only 0.2 and 0.8


def test_cut_at_stops_code_stop_kept_stop_token_dropped():
    from evaluation.generate import STOP_CODE, STOP_TOKEN, GenConfig, cut_at_stops

    assert cut_at_stops("a\n}b```\nc", "```\n", ["\n}"]) == ("a", STOP_TOKEN)
    assert cut_at_stops("a```\nb\n}", "```\n", ["\n}"]) == ("a```\n", STOP_CODE)
    assert cut_at_stops("abc", "```\n", ["\n}"]) is None
    # past the header line only: MultiPL-E's JavaScript stop "\nfunction " is in the header
    js = "```js\nfunction add(x, y) {\n  return x;\n}\nfunction more() {}\n```\n"
    header = "function add(x, y){"
    assert cut_at_stops(js, "```\n", ["\nfunction "]) == ("```js", STOP_TOKEN)
    assert cut_at_stops(js, "```\n", ["\nfunction "], header) == (
        "```js\nfunction add(x, y) {\n  return x;\n}",
        STOP_TOKEN,
    )
    assert cut_at_stops(js, "```\n", ["\nfunction "], "function sub(x){") == (js, STOP_CODE)
    both = GenConfig(code_stop="```\n", stop_tokens=("\n}",))
    assert both.server_stops == ["```\n", "\n}"] and both.after(0) is None
    both.stop_after = ("long f() {",)
    assert both.server_stops == ["```\n"] and both.after(0) == "long f() {"
    assert GenConfig().server_stops == []


def test_every_backend_cuts_stop_tokens_past_the_header_afterwards():
    """What a server could not cut (stop tokens that count only past the header) is cut by
    Generator.generate, so every backend saves the same text."""
    from evaluation.backends import Generator
    from evaluation.generate import STOP_CODE, STOP_TOKEN, GenConfig, Generation

    texts = [
        "```php\n<?php\nfunction add($x, $y) {\n  return $x + $y;\n}\nfunction g() {}\n```\n",
        "```php\n<?php\nfunction sub($x) {\n  return 0;\n}\n```\n",  # no header repeated
    ]

    class Canned(Generator):
        def _generate(self, prompts, cfg, progress):
            return [[Generation(t, 9, STOP_CODE)] for t in texts]

    cfg = GenConfig(
        code_stop="```\n",
        stop_tokens=("\nfunction", "\n?>", "\n//", "\n#"),
        stop_after=("function add($x, $y) {", "function add($x, $y) {"),
    )
    outs = Canned().generate([[1], [2]], cfg)
    assert [(g[0].text, g[0].finish, g[0].n_tokens) for g in outs] == [
        ("```php\n<?php\nfunction add($x, $y) {\n  return $x + $y;\n}", STOP_TOKEN, 9),
        (texts[1], STOP_CODE, 9),
    ]


def test_api_finish_keeps_a_stop_token_dropped():
    from evaluation.backends import _finish
    from evaluation.generate import CODE_STOP, STOP_CODE, STOP_TOKEN

    assert _finish("stop", "\n}", "x", CODE_STOP, True, ("\n}",)) == ("x", STOP_TOKEN)
    assert _finish("stop", CODE_STOP, "x", CODE_STOP, True, ("\n}",)) == (
        "x" + CODE_STOP,
        STOP_CODE,
    )
    assert _finish("stop", None, "x", None, True, ("\n}",)) == ("x", "eos")


def test_hf_stop_criterion_fires_past_the_header_and_the_text_is_cut_at_the_earliest():
    """generate()'s per-row criterion (evaluation.generate._CodeStopCriteria) with a code stop
    and stop tokens: each row stops at the step its text first holds the code stop or a stop
    token past its header line."""
    import torch

    from evaluation.generate import STOP_TOKEN, _CodeStopCriteria, cut_at_stops

    rows = [
        "x\nf(){\n  1;\n}\nf(",  # "\nf(" starts the header line too: only the second counts
        "a```\nxxxxxxxxxxx",  # the code stop
        "x\ng(){\n  1;\n}\nf(",  # another header: never stops
    ]
    chars = sorted(set("".join(rows)))

    class CharTokenizer:
        def decode(self, ids, skip_special_tokens=True, clean_up_tokenization_spaces=False):
            return "".join(chars[i] for i in ids)

    afters = ["f(){", "f(){", "f(){"]
    stops = _CodeStopCriteria(CharTokenizer(), "```\n", ("\nf(", "\n}\n\n"), 1, afters)
    for step in range(1, len(rows[0]) + 1):
        batch = torch.tensor([[0] + [chars.index(ch) for ch in r[:step]] for r in rows])
        stops(batch, None)
    assert stops.fired == {0: len(rows[0]), 1: 5}
    assert cut_at_stops(rows[0], "```\n", ("\nf(",), "f(){") == ("x\nf(){\n  1;\n}", STOP_TOKEN)
    assert cut_at_stops(rows[0], "```\n", ("\nf(",)) == ("x", STOP_TOKEN)  # no header given
