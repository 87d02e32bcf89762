"""`diag synth` end to end: instruction data and raw code through a real loopback teacher server,
the sandbox, faults on purpose, kill -9 and resume, and the CLI's error exits."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DIAG, run_diag
from fake_teacher import FakeTeacher, Fault, instruction_rows, prompt_code, sectioned, teacher_for

from plumbing import InputError
from synthesis.pipeline import STAGES, SynthConfig, main
from synthesis.schema import load_triples
from synthesis.teacher import OpenAITeacher, TeacherConfig

FAST = dict(timeout_s=0.5, max_retries=2, backoff_s=0.01, max_backoff_s=0.05, jitter_seed=0)


def _write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_accounting(out: Path) -> dict:
    """Every candidate ends exactly once (kept or rejected) and the stats add up."""
    stats = json.loads((out / "stats.json").read_text())
    kept = [r["id"] for r in _records(out / "triples.jsonl")]
    rejected = [r["id"] for r in _records(out / "rejected.jsonl")]
    assert len(set(kept)) == len(kept) and len(set(rejected)) == len(rejected)
    assert not set(kept) & set(rejected)
    assert len(kept) + len(rejected) == stats["candidates"] and stats["unfinished"] == 0
    stages = stats["stages"]
    assert stages["source"]["in"] == stats["candidates"]
    for stage, after in zip(STAGES, STAGES[1:]):
        assert stages[stage]["in"] == stages[stage]["out"] + stages[stage]["rejected"]
        assert stages[after]["in"] == stages[stage]["out"]
        assert sum(stages[stage]["reasons"].values()) == stages[stage]["rejected"]
    assert stages["sandbox"]["out"] == stats["kept"] == len(kept)
    for record in _records(out / "rejected.jsonl"):
        assert record["stage"] in STAGES and record["reason"]
    assert json.loads((out / "manifest.json").read_text())["status"] == "finished"
    return stats


def _config(out: Path, sources: list[str], url: str, **kw) -> SynthConfig:
    teacher_kw = {**FAST, "workers": 4, **kw.pop("teacher_kw", {})}
    return SynthConfig(
        sources=sources,
        out=str(out),
        teacher=f"openai:{url}#fake",
        teacher_cfg=TeacherConfig(**teacher_kw),
        progress=False,
        **kw,
    )


def test_instruction_data_end_to_end(tmp_path: Path) -> None:
    rows, asserts = instruction_rows(16)
    rows.append(dict(rows[0], id="copy-of-row0"))  # exact duplicate
    bad_code = "import subprocess\n\ndef run_it(cmd):\n    return subprocess.run(cmd)\n"
    rows.append(
        {"id": "shell", "instruction": "Run a command.", "output": f"```python\n{bad_code}```"}
    )
    rows.append({"id": "empty", "instruction": " ", "output": "```python\ndef f():\n    pass\n```"})
    wrong = rows[5]["instruction"].split("`")[1].split("(")[0]
    asserts[wrong][3] = asserts[wrong][3].rsplit("==", 1)[0] + "== 'not this'"  # fails in sandbox
    data = _write_rows(tmp_path / "data.jsonl", rows)
    out = tmp_path / "run"
    with FakeTeacher(teacher_for(asserts)) as server:
        stats = main(_config(out, [f"jsonl:{data}"], server.url))
        n_asked = len(server.requests)
        # a finished run is refused without --resume; with it nothing is asked again
        with pytest.raises(InputError, match="finished synth run"):
            main(_config(out, [f"jsonl:{data}"], server.url))
        again = main(_config(out, [f"jsonl:{data}"], server.url, resume=True))
        assert len(server.requests) == n_asked and again["kept"] == stats["kept"]
    _check_accounting(out)
    reasons = {
        r["id"].rsplit(":", 1)[-1]: (r["stage"], r["reason"])
        for r in _records(out / "rejected.jsonl")
    }
    assert reasons["copy-of-row0"] == ("dedup", "exact_duplicate")
    assert reasons["shell"] == ("filter", "banned_import")
    assert reasons["empty"] == ("source", "empty_field")
    assert reasons["row5"] == ("sandbox", "failed")
    triples, _ = load_triples(out / "triples.jsonl")
    assert stats["kept"] == len(triples) >= 12
    by_id = {t.id.rsplit(":", 1)[-1]: t for t in triples}
    row0 = by_id["row0"]
    assert row0.problem == rows[0]["instruction"] and row0.seed_answer == rows[0]["output"]
    assert row0.code == rows[0]["output"].split("```python\n")[1].split("\n```")[0]
    assert row0.tests == asserts[row0.entry_point] and row0.cot.startswith("1. Read")
    assert {t.split for t in triples} <= {"train", "val", "test"}
    assert row0.meta["teacher"] == "openai:fake" and len(row0.meta["response_key"]) == 64
    # triples are written in seed order whatever order the answers came in
    assert [t.id for t in triples] == sorted(
        (t.id for t in triples), key=lambda i: int(i.rsplit("row", 1)[1])
    )


def test_misbehaving_server_every_seed_ends_once(tmp_path: Path) -> None:
    rows, asserts = instruction_rows(14)
    names = [r["instruction"].split("`")[1].split("(")[0] for r in rows]
    plan = {
        names[0]: "429 once",
        names[1]: "500 twice",
        names[2]: "hang once",
        names[3]: "truncated",
        names[4]: "missing section",
        names[5]: "duplicate section",
        names[6]: "bad utf-8",
        names[7]: "always 500",
        names[8]: "400",
        names[9]: "drop once",
    }
    good = teacher_for(asserts)

    def name_of(prompt: str) -> str:
        return prompt_code(prompt).split("def ", 1)[1].split("(")[0]

    def answer(prompt: str) -> str:
        text = good(prompt)
        what = plan.get(name_of(prompt))
        if what == "missing section":
            return text.replace("[Analysis]\n", "")
        if what == "duplicate section":
            return text + "\n[Solution]\n```python\npass\n```\n"
        return text

    def faults(prompt: str, attempt: int) -> Fault | None:
        what = plan.get(name_of(prompt))
        return {
            "429 once": Fault("status", status=429, retry_after=0.2) if attempt == 0 else None,
            "500 twice": Fault("status", status=500) if attempt < 2 else None,
            "hang once": Fault("hang", seconds=1.5) if attempt == 0 else None,
            "truncated": Fault("length"),
            "bad utf-8": Fault("content_bytes"),
            "always 500": Fault("status", status=500),
            "400": Fault("status", status=400),
            "drop once": Fault("drop") if attempt == 0 else None,
        }.get(what)

    data = _write_rows(tmp_path / "data.jsonl", rows)
    out = tmp_path / "run"
    with FakeTeacher(answer, faults=faults) as server:
        main(_config(out, [f"jsonl:{data}"], server.url, dedup=False))
        asked = {name_of(p): n for p, n in server.asked.items()}
    _check_accounting(out)
    assert max(asked.values()) <= 1 + FAST["max_retries"]  # retries are bounded
    assert asked[names[7]] == 3 and asked[names[8]] == 1 and asked[names[1]] == 3
    final = {r["id"]: (r["stage"], r["reason"]) for r in _records(out / "rejected.jsonl")}
    final.update({r["id"]: ("kept", "") for r in _records(out / "triples.jsonl")})
    by_name = {names[int(i.rsplit("row", 1)[1])]: v for i, v in final.items()}
    assert by_name[names[3]] == ("parse", "truncated")
    assert by_name[names[4]] == ("parse", "missing_section")
    assert by_name[names[5]] == ("parse", "duplicate_section")
    assert by_name[names[7]] == ("teacher", "teacher_error")
    assert by_name[names[8]] == ("teacher", "teacher_error")
    for recovered in (0, 1, 2, 6, 9, 10, 11, 12, 13):
        assert by_name[names[recovered]] == ("kept", ""), names[recovered]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["kept"] == 9 and stats["stages"]["teacher"]["rejected"] == 2


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    rows, asserts = instruction_rows(48)
    data = _write_rows(tmp_path / "data.jsonl", rows)
    common = ["--source", f"jsonl:{data}", "--no-progress", "--sandbox-batch", "4"]
    common += ["--no-dedup", "--max-retries", "1", "--timeout", "5"]
    with FakeTeacher(teacher_for(asserts), latency_s=0.05) as server:
        url = f"openai:{server.url}#fake"
        out = tmp_path / "killed"
        proc = subprocess.Popen(
            [DIAG, "synth", *common, "--teacher", url, "--workers", "2", "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        responses = out / "responses.jsonl"
        deadline = time.time() + 60
        while time.time() < deadline:
            if responses.exists() and responses.read_text().count("\n") >= 16:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        cached = {r["key"] for r in _records(responses)}
        kept_before = len(_records(out / "triples.jsonl"))
        rejected_log = out / "rejected.jsonl"
        finished_before = kept_before + (
            len(_records(rejected_log)) if rejected_log.exists() else 0
        )
        assert 8 <= len(cached) < 48 and kept_before >= 4
        # a torn write: half a record at the end of two logs
        with (out / "triples.jsonl").open("ab") as handle:
            handle.write(b'{"id": "jsonl:data.jsonl:row47", "problem": "tor')
        with responses.open("ab") as handle:
            handle.write(b'{"key": "abc", "te')
        asked_before = dict(server.asked)
        resumed = run_diag("synth", *common, "--teacher", url, "--workers", "4", "--out", str(out))
        assert resumed.returncode == 0, resumed.stderr
        asked_after = dict(server.asked)
        clean = tmp_path / "clean"
        done = run_diag("synth", *common, "--teacher", url, "--workers", "4", "--out", str(clean))
        assert done.returncode == 0, done.stderr

    stats = _check_accounting(out)
    assert stats["this_attempt"]["repaired"]["triples"] == 1
    assert stats["this_attempt"]["repaired"]["responses"] == 1
    # nothing answered before the kill was asked again; each other seed was asked once more
    cache_id = OpenAITeacher(server.url, "fake", TeacherConfig()).cache_id
    key_of = {p: hashlib.sha256(f"{cache_id}\n{p}".encode()).hexdigest() for p in asked_after}
    assert set(key_of.values()) >= cached and len(asked_after) == 48
    for prompt, n_after in asked_after.items():
        n_before = asked_before.get(prompt, 0)
        assert n_after - n_before == (0 if key_of[prompt] in cached else 1)
    assert stats["this_attempt"]["teacher_requests"] == 48 - len(cached)
    assert stats["this_attempt"]["processed"] == 48 - finished_before
    assert (out / "triples.jsonl").read_text() == (clean / "triples.jsonl").read_text()
    assert (out / "rejected.jsonl").read_text() == (clean / "rejected.jsonl").read_text()


def test_cli_errors_exit_2(tmp_path: Path) -> None:
    rows, asserts = instruction_rows(3)
    data = _write_rows(tmp_path / "data.jsonl", rows)
    missing = run_diag(
        "synth", "--source", f"jsonl:{tmp_path / 'nope.jsonl'}", "--out", str(tmp_path / "a")
    )
    assert missing.returncode == 2 and "nope.jsonl: no such file" in missing.stderr
    assert not (tmp_path / "a").exists()  # nothing written
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Task: {instruction}\n")
    bad_prompt = run_diag(
        "synth", "--source", f"jsonl:{data}", "--teacher", "openai:http://127.0.0.1:9/v1#m",
        "--prompt-file", str(prompt), "--out", str(tmp_path / "b"),
    )  # fmt: skip
    assert bad_prompt.returncode == 2 and "missing placeholder(s) {code}" in bad_prompt.stderr
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = run_diag(
        "synth", "--source", f"jsonl:{data}", "--teacher", f"openai:http://127.0.0.1:{port}/v1#m",
        "--max-retries", "1", "--backoff", "0.01", "--no-progress", "--out", str(tmp_path / "c"),
    )  # fmt: skip
    assert down.returncode == 2 and "no request succeeded" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr
    with FakeTeacher(teacher_for(asserts)) as server:
        up = run_diag(
            "synth", "--source", f"jsonl:{data}", "--teacher", f"openai:{server.url}#m",
            "--no-progress", "--out", str(tmp_path / "c"),
        )  # fmt: skip
    assert up.returncode == 0, up.stderr  # the same folder, once the teacher is back
    assert "kept 3 of 3 seeds" in up.stdout
    toy_teacher = run_diag("synth", "--source", f"jsonl:{data}", "--out", str(tmp_path / "d"))
    assert toy_teacher.returncode == 2 and "--teacher toy answers only" in toy_teacher.stderr


HANDWRITTEN = '''
import math
from functools import reduce


def gcd_all(numbers):
    """The greatest common divisor of a non-empty list."""
    return reduce(math.gcd, numbers)


def run_length(text):
    out = []
    for ch in text:
        if out and out[-1][0] == ch:
            out[-1][1] += 1
        else:
            out.append([ch, 1])
    return "".join(f"{c}{n}" for c, n in out)
'''
KNOWN_TESTS = {
    "gcd_all": [
        f"assert gcd_all({xs}) == {v}"
        for xs, v in [
            ([12, 18], 6),
            ([7], 7),
            ([4, 8, 16], 4),
            ([9, 28], 1),
            ([0, 5], 5),
            ([100, 75, 50], 25),
            ([3, 6, 9, 12], 3),
            ([17, 34], 17),
            ([2, 3], 1),
            ([48, 180], 12),
        ]
    ],  # fmt: skip
    "run_length": [
        f"assert run_length({s!r}) == {v!r}"
        for s, v in [
            ("", ""),
            ("a", "a1"),
            ("aa", "a2"),
            ("ab", "a1b1"),
            ("aab", "a2b1"),
            ("abb", "a1b2"),
            ("aaa", "a3"),
            ("abc", "a1b1c1"),
            ("zzzy", "z3y1"),
            ("xyyx", "x1y2x1"),
        ]
    ],  # fmt: skip
}


def test_pysrc_run_over_real_stdlib_modules(tmp_path: Path) -> None:
    import colorsys
    import fnmatch
    import heapq
    import textwrap

    src = tmp_path / "src"
    src.mkdir()
    for module in (colorsys, fnmatch, heapq, textwrap):
        shutil.copy(module.__file__, src / Path(module.__file__).name)
    (src / "mine.py").write_text(HANDWRITTEN)

    def answer(prompt: str) -> str:
        code = prompt_code(prompt)
        name = (
            code.split("\ndef ", 1)[-1].split("(")[0]
            if "\ndef " in code
            else code[4:].split("(")[0]
        )
        tests = KNOWN_TESTS.get(name, [f"assert {name}(*[None] * 0) == 'unknown'"] * 10)
        return sectioned(code, tests, task=f"Write `{name}` as described.")

    out = tmp_path / "run"
    with FakeTeacher(answer) as server:
        stats = main(_config(out, [f"pysrc:{src}"], server.url))
    _check_accounting(out)
    triples, _ = load_triples(out / "triples.jsonl")
    assert sorted(t.entry_point for t in triples) == ["gcd_all", "run_length"]
    gcd = next(t for t in triples if t.entry_point == "gcd_all")
    assert gcd.problem == "Write `gcd_all` as described."
    assert gcd.code.startswith("import math\nfrom functools import reduce\n\n\ndef gcd_all")
    assert gcd.seed_answer.startswith("```python\nimport math")
    rejected = _records(out / "rejected.jsonl")
    assert all(r["reason"] and r["detail"] for r in rejected)
    by_stage = stats["stages"]
    assert by_stage["source"]["rejected"] > 5 and by_stage["sandbox"]["rejected"] > 5
    assert stats["candidates"] >= 30
    # a function that reads module state is refused at the source with the name it needs
    assert any(
        r["stage"] == "source" and r["reason"] in {"uses_module_name", "undefined_name"}
        for r in rejected
    )
    assert sys.modules["textwrap"]  # the copies were read as text, not imported


@pytest.mark.slow
def test_toy_world_through_the_whole_pipeline(tmp_path: Path) -> None:
    from synthesis.toyworld import ToyWorld, toy_teacher_response

    out = tmp_path / "toy"
    stats = main(SynthConfig(sources=["toy"], n=160, seed=3, out=str(out), progress=False))
    _check_accounting(out)
    assert stats["keep_rate"] >= 0.95
    seeds = {s.id: s for s in ToyWorld(3).generate(160)}
    triples, _ = load_triples(out / "triples.jsonl")
    assert stats["kept"] == len(triples) and "ood" in {t.split for t in triples}
    for triple in triples:
        seed = seeds[triple.id]
        assert triple.split == seed.meta["split"]  # the world's split is kept, ood included
        assert triple.problem == seed.instruction and triple.source == "toy"
        assert triple.meta["family"] == seed.meta["family"]
        assert f"[Solution]\n```python\n{triple.code}\n```" in toy_teacher_response(seed)
        assert len(triple.tests) >= 10 and triple.cot


def test_a_teacher_pool_keeps_what_one_teacher_keeps(tmp_path: Path) -> None:
    """`--teacher` twice: the requests are shared by the two servers, one of them dead half of
    the time (every second request it answers with a 503), and the kept triples are those of a
    single teacher."""
    rows, asserts = instruction_rows(8)
    data = _write_rows(tmp_path / "data.jsonl", rows)
    flaky = {"n": 0}

    def half_dead(prompt: str, attempt: int) -> Fault | None:
        flaky["n"] += 1
        return Fault("status", status=503) if flaky["n"] % 2 else None

    with (
        FakeTeacher(teacher_for(asserts)) as one,
        FakeTeacher(teacher_for(asserts), faults=half_dead) as two,
    ):
        single = main(_config(tmp_path / "one", [f"jsonl:{data}"], one.url))
        n_single = len(one.requests)
        cfg = _config(tmp_path / "pool", [f"jsonl:{data}"], one.url)
        cfg.teacher = [f"openai:{one.url}#fake", f"openai:{two.url}#fake"]
        pooled = main(cfg)
        assert len(two.requests) > 0 and len(one.requests) > n_single
    assert pooled["kept"] == single["kept"] > 0
    same = [
        sorted(_records(tmp_path / d / "triples.jsonl"), key=lambda r: r["id"])
        for d in ("one", "pool")
    ]
    assert [r["code"] for r in same[0]] == [r["code"] for r in same[1]]
