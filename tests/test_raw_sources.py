"""`diag synth` from raw code (The Stack's row layout, jsonl and parquet) and from the six named
seed datasets in their published layouts, through the real pipeline with the loopback teacher;
the {code}-only prompt template; the refusals (unknown --lang, a template without placeholder)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_diag
from fake_teacher import FakeTeacher, sectioned
from test_synth_pipeline import _check_accounting, _records

from plumbing import InputError
from synthesis.pipeline import SynthConfig, main
from synthesis.schema import load_triples
from synthesis.sources import SEED_DATASETS, FieldMap, iter_candidates, parse_source
from synthesis.teacher import TeacherConfig

FAST = dict(timeout_s=2.0, max_retries=1, backoff_s=0.01, max_backoff_s=0.05, jitter_seed=0)

# reference functions with ten calls each; expected values are computed by running them here
FUNCTIONS = {
    "gcd_all": (
        "import math\nfrom functools import reduce\n\n\ndef gcd_all(numbers):\n"
        "    return reduce(math.gcd, numbers)\n",
        ["[12, 18]", "[7]", "[4, 8, 16]", "[9, 28]", "[0, 5]", "[100, 75, 50]", "[3, 6]",
         "[17, 34]", "[2, 3]", "[48, 180]"],
    ),
    "run_length": (
        "def run_length(text):\n    out = []\n    for ch in text:\n"
        "        if out and out[-1][0] == ch:\n            out[-1][1] += 1\n"
        "        else:\n            out.append([ch, 1])\n"
        "    return ''.join(f'{c}{n}' for c, n in out)\n",
        ["''", "'a'", "'aa'", "'ab'", "'aab'", "'abb'", "'aaa'", "'abc'", "'zzzy'", "'xyyx'"],
    ),
    "clamp_all": (
        "def clamp_all(xs, lo):\n    return [x if x > lo else lo for x in xs]\n",
        ["[], 0", "[1], 0", "[-1], 0", "[5, -5], 1", "[2, 3], 3", "[0], 0", "[9, 8], 10",
         "[-3, -2], -2", "[1, 2, 3], 2", "[7], -7"],
    ),
}  # fmt: skip
ASSERTS: dict[str, list[str]] = {}
for _name, (_code, _args) in FUNCTIONS.items():
    _ns: dict = {}
    exec(_code, _ns)  # noqa: S102 (our own reference code)
    ASSERTS[_name] = [f"assert {_name}({a}) == {eval(f'{_name}({a})', _ns)!r}" for a in _args]  # noqa: S307
_CODE_BLOCK = re.compile(r"```python\n(.*?)\n```", re.DOTALL)
_DEF = re.compile(r"^def (\w+)\(", re.MULTILINE)


def answer(prompt: str) -> str:
    """The last code block of the prompt (the seed's code) as the solution, with its asserts."""
    code = _CODE_BLOCK.findall(prompt)[-1]
    name = _DEF.findall(code)[-1]
    task = f"Implement `{name}`." if "[Task]" in prompt else None
    return sectioned(code, ASSERTS[name], task=task)


def _config(out: Path, sources: list[str], url: str, **kw) -> SynthConfig:
    return SynthConfig(
        sources=sources,
        out=str(out),
        teacher=f"openai:{url}#fake",
        teacher_cfg=TeacherConfig(**FAST, workers=4),
        sandbox_workers=2,
        progress=False,
        **kw,
    )


# The Stack's layout: content, lang, provenance columns
STACK_ROWS = [
    {"hexsha": "a1", "lang": "Python", "max_stars_repo_path": "util/maths.py",
     "max_stars_count": 12, "content": FUNCTIONS["gcd_all"][0] + "\n\nLIMIT = 3\n\n\n"
     "def capped(x):\n    return min(x, LIMIT)\n\n\n" + FUNCTIONS["run_length"][0]},
    {"hexsha": "b2", "lang": "JavaScript", "max_stars_repo_path": "web/app.js",
     "max_stars_count": 3, "content": "function f(x) { return x + 1; }\n"},
    {"hexsha": "c3", "lang": "Python", "max_stars_repo_path": "bad.py", "max_stars_count": 1,
     "content": "def broken(:\n    pass\n"},
    {"hexsha": "d4", "lang": "Python", "max_stars_repo_path": "consts.py", "max_stars_count": 0,
     "content": "A = 1\nB = 2\n"},
]  # fmt: skip


def test_raw_code_rows_function_unit_with_a_code_only_prompt(tmp_path: Path) -> None:
    data = tmp_path / "stack.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in STACK_ROWS))
    template = (
        "PAPER PROMPT. Write [Task], analysis, solution, tests for:\n```python\n{code}\n```\n"
    )
    prompt = tmp_path / "paper.txt"
    prompt.write_text(template)
    out = tmp_path / "run"
    with FakeTeacher(answer) as server:
        stats = main(_config(out, [f"jsonl:{data}"], server.url, prompt_file=str(prompt)))
    _check_accounting(out)
    triples, _ = load_triples(out / "triples.jsonl")
    assert [t.id for t in triples] == ["jsonl:stack.jsonl:0:gcd_all", "jsonl:stack.jsonl:0:run_length"]  # fmt: skip
    gcd = triples[0]
    assert gcd.problem == "Implement `gcd_all`." and gcd.entry_point == "gcd_all"
    assert gcd.meta["max_stars_repo_path"] == "util/maths.py" and gcd.meta["max_stars_count"] == 12
    # the template is used as written: the teacher saw exactly it, the seed code in place of {code}
    seed_code = "import math\nfrom functools import reduce\n\n\n" + FUNCTIONS["gcd_all"][0].split("\n\n\n")[1].rstrip()  # fmt: skip
    assert template.replace("{code}", seed_code) in server.requests
    assert len(server.requests) == 2
    reasons = {r["id"]: (r["stage"], r["reason"]) for r in _records(out / "rejected.jsonl")}
    assert reasons == {
        "jsonl:stack.jsonl:0:capped": ("source", "uses_module_name"),
        "jsonl:stack.jsonl:1": ("source", "other_lang"),
        "jsonl:stack.jsonl:2": ("source", "file_syntax_error"),
        "jsonl:stack.jsonl:3": ("source", "no_function"),
    }
    detail = next(r["detail"] for r in _records(out / "rejected.jsonl") if r["reason"] == "other_lang")  # fmt: skip
    assert "'JavaScript' (--lang python)" in detail
    assert stats["stages"]["source"] == {"in": 6, "out": 2, "rejected": 4, "keep_rate": 0.3333,
        "reasons": {"uses_module_name": 1, "other_lang": 1, "file_syntax_error": 1, "no_function": 1}}  # fmt: skip


def test_raw_code_parquet_file_unit_streams_row_groups(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"content": FUNCTIONS["clamp_all"][0], "lang": "python", "path": "a.py"},
        {"content": FUNCTIONS["run_length"][0], "lang": "python", "path": "b.py"},
        {"content": "def big():\n    return 1\n" + "# padding\n" * 200, "lang": "python", "path": "c.py"},
        {"content": FUNCTIONS["gcd_all"][0], "lang": "go", "path": "d.go"},
    ]  # fmt: skip
    data = tmp_path / "stack.parquet"
    pq.write_table(pa.Table.from_pylist(rows), data, row_group_size=1)
    assert pq.ParquetFile(data).num_row_groups == 4
    out = tmp_path / "run"
    with FakeTeacher(answer) as server:
        stats = main(
            _config(
                out,
                [f"parquet:{data}"],
                server.url,
                fields=["code=content"],
                raw_unit="file",
                raw_max_chars=500,
                decontam=[],
            )  # fmt: skip
        )
    _check_accounting(out)
    triples, _ = load_triples(out / "triples.jsonl")
    assert [(t.id, t.entry_point) for t in triples] == [
        ("parquet:stack.parquet:0", "clamp_all"),
        ("parquet:stack.parquet:1", "run_length"),
    ]
    assert triples[0].seed_answer == f"```python\n{FUNCTIONS['clamp_all'][0].strip()}\n```"
    assert (
        triples[0].meta["path"] == "a.py" and "[Task]" in server.requests[0]
    )  # bundled task prompt
    reasons = {r["id"]: r["reason"] for r in _records(out / "rejected.jsonl")}
    assert reasons == {"parquet:stack.parquet:2": "file_too_long", "parquet:stack.parquet:3": "other_lang"}  # fmt: skip
    assert stats["kept"] == 2


def _named_fixtures(tmp: Path) -> dict[str, Path]:
    """One small file per named dataset, in its published format and column layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    gcd, rle, clamp = (FUNCTIONS[n][0] for n in ("gcd_all", "run_length", "clamp_all"))
    fenced = f"Here it is:\n```python\n{gcd}```\nDone."
    files = {
        "magicoder-oss": ("oss.jsonl", [
            {"lang": "python", "raw_index": 7, "index": 0, "seed": "x = 1", "openai_fingerprint": "fp",
             "problem": "Write gcd_all.", "solution": fenced},
            {"lang": "typescript", "raw_index": 8, "index": 1, "seed": "", "openai_fingerprint": "fp",
             "problem": "Write a TS class.", "solution": "```typescript\nclass A {}\n```"}]),
        "evol-code": ("evol.jsonl", [
            {"instruction": "Encode runs.", "response": f"```python\n{rle}```"},
            {"instruction": "Explain Big-O.", "response": "It describes growth."}]),
        "evol-instruct-code": ("EvolInstruct-Code-80k.json", [
            {"instruction": "Clamp values.", "output": f"```python\n{clamp}```"}]),
        "code-alpaca": ("code_alpaca_20k.json", [
            {"instruction": "Compute the gcd of a list.", "input": "[12, 18]", "output": gcd},
            {"instruction": "Run-length encode.", "input": "", "output": rle}]),
        "commitpackft": ("data.jsonl", [
            {"commit": "abc", "old_file": "r.py", "new_file": "r.py",
             "old_contents": "def run_length(text):\n    return text\n",
             "new_contents": rle, "subject": "Encode runs", "message": "Encode runs properly\n",
             "lang": "Python", "license": "mit", "repos": "u/r"},
            {"commit": "def", "old_file": "a.rb", "new_file": "a.rb", "old_contents": "",
             "new_contents": "puts 1", "subject": "s", "message": "m", "lang": "Ruby",
             "license": "mit", "repos": "u/r"}]),
        "self-oss-instruct": ("train-00000-of-00001.parquet", [
            {"fingerprint": None, "sha1": "s", "seed": "def f(): ...", "response": fenced,
             "concepts": ["reduce"], "prompt": "p", "instruction": "Write gcd_all over a list.", "id": 5}]),
    }  # fmt: skip
    paths = {}
    for name, (filename, rows) in files.items():
        path = tmp / name / filename
        path.parent.mkdir()
        if filename.endswith(".parquet"):
            pq.write_table(pa.Table.from_pylist(rows), path)
        elif filename.endswith(".json"):  # a JSON array, pretty-printed as published
            path.write_text(json.dumps(rows, indent=4))
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths[name] = path
    return paths


def test_named_datasets_map_their_published_columns(tmp_path: Path) -> None:
    paths = _named_fixtures(tmp_path)
    assert sorted(paths) == sorted(SEED_DATASETS)
    sources = [f"{name}:{path}" for name, path in paths.items()]
    out = tmp_path / "run"
    with FakeTeacher(answer) as server:
        # the fixtures share code on purpose (one function per dataset would be too few), so
        # duplicates are kept here; the raw-code tests above run with dedup on
        stats = main(_config(out, sources, server.url, decontam=[], dedup=False))
    _check_accounting(out)
    triples, _ = load_triples(out / "triples.jsonl")
    by_id = {t.id: t for t in triples}
    assert sorted(by_id) == sorted([
        "magicoder-oss:oss.jsonl:0", "evol-code:evol.jsonl:0",
        "evol-instruct-code:EvolInstruct-Code-80k.json:0", "code-alpaca:code_alpaca_20k.json:0",
        "code-alpaca:code_alpaca_20k.json:1", "commitpackft:data.jsonl:0",
        "self-oss-instruct:train-00000-of-00001.parquet:0",
    ])  # fmt: skip
    assert by_id["magicoder-oss:oss.jsonl:0"].problem == "Write gcd_all."
    assert by_id["code-alpaca:code_alpaca_20k.json:0"].problem == (
        "Compute the gcd of a list.\n\nInput:\n[12, 18]"
    )
    assert by_id["code-alpaca:code_alpaca_20k.json:1"].problem == "Run-length encode."
    commit = by_id["commitpackft:data.jsonl:0"]
    assert commit.problem.startswith("Encode runs properly\n\nChange this code accordingly:")
    assert "return text" in commit.problem and commit.meta["commit"] == "abc"
    assert by_id["self-oss-instruct:train-00000-of-00001.parquet:0"].meta["dataset_id"] == 5
    reasons = {r["id"]: r["reason"] for r in _records(out / "rejected.jsonl")}
    assert reasons == {
        "magicoder-oss:oss.jsonl:1": "other_lang",
        "evol-code:evol.jsonl:1": "no_code",
        "commitpackft:data.jsonl:1": "other_lang",
    }
    assert stats["kept"] == 7 and len(server.requests) == 7
    # evol-codealpaca-v1's `output` serves evol-code too; a file in another layout is refused
    other = tmp_path / "evol-v1.jsonl"
    other.write_text(
        json.dumps({"instruction": "Clamp.", "output": FUNCTIONS["clamp_all"][0]}) + "\n"
    )
    (seed,) = iter_candidates(parse_source(f"evol-code:{other}"), FieldMap())
    assert seed.code == FUNCTIONS["clamp_all"][0].strip("\n") and seed.instruction == "Clamp."
    # a JSON array larger than one 64 KiB read is decoded item by item, in order
    many = [{"instruction": f"Clamp {i}.", "output": FUNCTIONS["clamp_all"][0] + "#" * (i % 97)}
            for i in range(1500)]  # fmt: skip
    big = tmp_path / "big.json"
    big.write_text(json.dumps(many, indent=2))
    assert big.stat().st_size > 3 * 65536
    seeds = list(iter_candidates(parse_source(f"evol-instruct-code:{big}"), FieldMap()))
    assert [s.instruction for s in seeds] == [row["instruction"] for row in many]
    big.write_text(json.dumps(many)[:-1])
    with pytest.raises(InputError, match="the JSON array is not closed"):
        list(iter_candidates(parse_source(f"evol-instruct-code:{big}"), FieldMap()))
    with pytest.raises(InputError, match=r"magicoder-oss expects column problem .*the row has"):
        list(iter_candidates(parse_source(f"magicoder-oss:{other}"), FieldMap()))


def test_refusals_exit_2_and_write_nothing(tmp_path: Path) -> None:
    data = tmp_path / "stack.jsonl"
    data.write_text(json.dumps(STACK_ROWS[0]) + "\n")
    with pytest.raises(InputError, match=r"--lang 'cobol': unknown language"):
        main(SynthConfig(sources=[f"jsonl:{data}"], lang="cobol", out=str(tmp_path / "a")))
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"text": "hello", "stars": 1}) + "\n")
    with pytest.raises(InputError, match=r"no instruction or code field among text, stars"):
        list(iter_candidates(parse_source(f"jsonl:{bare}"), FieldMap()))
    instruction_only = tmp_path / "instr.txt"
    instruction_only.write_text("Solve: {instruction}\n")
    with pytest.raises(InputError, match=r"missing placeholder\(s\) \{code\}"):
        main(SynthConfig(sources=[f"jsonl:{data}"], prompt_file=str(instruction_only),
                         out=str(tmp_path / "a")))  # fmt: skip
    assert not (tmp_path / "a").exists()
    prompt = tmp_path / "none.txt"
    prompt.write_text("Write a task for this snippet: {snippet}\n")
    result = run_diag(
        "synth", "--source", f"jsonl:{data}", "--teacher", "openai:http://127.0.0.1:9/v1#m",
        "--prompt-file", str(prompt), "--out", str(tmp_path / "b"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"--prompt-file {prompt}: no known placeholder" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "b").exists()


def test_raw_code_parquet_in_two_shards_merges_to_the_unsharded_run(tmp_path: Path) -> None:
    """Issue 19's Done-when run on raw code: `--source parquet:... --field code=content` whole,
    and as `--shard 0/2` + `--shard 1/2` + `--merge`: the same kept and rejected ids, the same
    triples (the loopback teacher answers by the code it is shown)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["clamp_all", "run_length", "gcd_all", "run_length", "gcd_all", "clamp_all"]
    rows = [
        {"content": FUNCTIONS[name][0], "lang": "go" if i == 5 else "python", "path": f"f{i}.py"}
        for i, name in enumerate(names)
    ]  # rows 3 and 4 repeat 1 and 2 (exact duplicates); row 5 is another language
    data = tmp_path / "stack.parquet"
    pq.write_table(pa.Table.from_pylist(rows), data, row_group_size=2)
    options = dict(fields=["code=content"], raw_unit="file", decontam=[])
    runs = {"whole": None, "s0": "0/2", "s1": "1/2"}
    with FakeTeacher(answer) as server:
        for name, shard in runs.items():
            main(_config(tmp_path / name, [f"parquet:{data}"], server.url, shard=shard, **options))
    shard_ids = [
        {r["id"] for r in _records(tmp_path / s / "candidates.jsonl")} for s in ("s0", "s1")
    ]
    assert shard_ids[0] and shard_ids[1] and not shard_ids[0] & shard_ids[1]  # disjoint, both used
    main(SynthConfig(merge=[str(tmp_path / "s0"), str(tmp_path / "s1")], out=str(tmp_path / "m")))

    def by_id(run: str, name: str) -> list[dict]:
        return sorted(_records(tmp_path / run / name), key=lambda r: r["id"])

    assert len(by_id("whole", "triples.jsonl")) == 3
    assert by_id("m", "triples.jsonl") == by_id("whole", "triples.jsonl")
    reasons = [(r["id"], r["reason"]) for r in by_id("m", "rejected.jsonl")]
    assert reasons == [(r["id"], r["reason"]) for r in by_id("whole", "rejected.jsonl")]
    assert sorted(reason for _, reason in reasons) == [
        "exact_duplicate",
        "exact_duplicate",
        "other_lang",
    ]


def test_shards_cut_raw_code_by_row_before_parsing(tmp_path: Path) -> None:
    """--shard decides by row (the unit), before the row is cut into functions: every row's
    functions land in the shard its row id hashes to, each shard parses only its own rows (a row
    that does not parse is rejected in its own shard only), and the merge equals the whole run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthesis.pipeline import shard_of

    pairs = [("clamp_all", "run_length"), ("gcd_all", "clamp_all"), ("run_length", "gcd_all"),
             ("gcd_all", "run_length"), ("clamp_all", "gcd_all"), ("run_length", "clamp_all")]  # fmt: skip
    rows = [{"content": FUNCTIONS[a][0] + "\n\n" + FUNCTIONS[b][0]} for a, b in pairs]
    rows.append({"content": "def broken(:\n    pass\n"})
    data = tmp_path / "stack.parquet"
    pq.write_table(pa.Table.from_pylist(rows), data, row_group_size=3)
    options = dict(fields=["code=content"], raw_unit="function", decontam=[])
    with FakeTeacher(answer) as server:
        for name, shard in {"whole": None, "s0": "0/2", "s1": "1/2"}.items():
            main(_config(tmp_path / name, [f"parquet:{data}"], server.url, shard=shard, **options))
    main(SynthConfig(merge=[str(tmp_path / "s0"), str(tmp_path / "s1")], out=str(tmp_path / "m")))
    row_shards: dict[str, set[int]] = {}
    for k in (0, 1):
        for record in _records(tmp_path / f"s{k}" / "candidates.jsonl"):
            row = record["id"].rsplit(":", 1)[0] if record["id"].count(":") > 2 else record["id"]
            row_shards.setdefault(row, set()).add(k)
    assert len(row_shards) == len(rows) and all(len(s) == 1 for s in row_shards.values())
    assert all(shard_of(row, 2) in s for row, s in row_shards.items())
    assert {k for s in row_shards.values() for k in s} == {0, 1}  # both shards got rows
    broken = [r for r in row_shards if r.endswith(f":{len(rows) - 1}")]
    (broken_row,) = broken
    for k in (0, 1):
        reasons = {r["reason"] for r in _records(tmp_path / f"s{k}" / "rejected.jsonl")}
        assert ("file_syntax_error" in reasons) == (k in row_shards[broken_row])

    def by_id(run: str, name: str) -> list[dict]:
        return sorted(_records(tmp_path / run / name), key=lambda r: r["id"])

    assert len(by_id("whole", "triples.jsonl")) == 3  # three distinct functions, the rest dups
    for name in ("triples.jsonl", "rejected.jsonl"):
        assert by_id("m", name) == by_id("whole", name)
    assert (tmp_path / "m" / "triples.jsonl").read_text() == (
        tmp_path / "whole" / "triples.jsonl"
    ).read_text()  # in the same (source) order
