"""MultiPL-E programs run in the sandbox: the fixture's canonical completions pass in every
language, wrong and non-building ones fail with MultiPL-E's statuses, its result files read back
give our pass@k, and `diag eval --samples` takes MultiPL-E completion files end to end.

One judge batch (workers=2) holds every program of the module: the 60 canonical completions
(tests/fixtures/multipl/humaneval-<lang>.canonical.jsonl) plus the wrong, broken and full-code
samples below. The fixture's Java prompts leave out MultiPL-E's `import org.javatuples.*;`
(none of these ten problems uses a tuple; it needs Debian's libjavatuples-java on the class
path).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import run_diag_here, skip_or_fail

from evaluation.bench_multipl import multipl_pass_at_k, write_results
from evaluation.benchmarks import BenchSpec, load_tasks
from evaluation.judge import Candidate, eval_sandbox_config, judge
from plumbing import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "multipl"
LANGS = ("cpp", "java", "js", "sh", "rs", "php")
ADD = "HumanEval_53_add"

# (language, completion, is_completion, our status, MultiPL-E's status) for HumanEval_53_add
EXTRA = {
    "js-wrong": ("js", "  return x - y;\n}\n", True, "failed", "AssertionError"),
    "sh-wrong": ("sh", "    echo $(( $1 * $2 ))", True, "failed", "Exception"),
    "rs-broken": ("rs", "    x +", True, "error", "SyntaxError"),
    "php-broken": ("php", "    return $x +;\n}", True, "failed", "SyntaxError"),
    "js-loops": ("js", "  while (true) {}\n}\n", True, "timeout", "Timeout"),
    "js-full": ("js", "// adds\nfunction add(x, y) {\n  return y + x;\n}\n", False, "passed", "OK"),
}


def tasks_of(lang: str):
    _require(lang)
    return load_tasks(
        BenchSpec(f"multipl-e:{lang}", bench_file=str(FIXTURES / f"humaneval-{lang}.jsonl"))
    )


def canonical(lang: str) -> dict[str, str]:
    lines = (FIXTURES / f"humaneval-{lang}.canonical.jsonl").read_text().splitlines()
    return {json.loads(x)["task_id"]: json.loads(x)["completion"] for x in lines if x.strip()}


def _require(lang: str) -> None:
    from sandbox.languages import MissingToolchain, require_toolchain

    try:
        require_toolchain(lang)
    except MissingToolchain as err:
        skip_or_fail(str(err))


@pytest.fixture(scope="module")
def batch():
    """(candidates by key, judged by key): one sandbox batch of every program of the module."""
    for lang in LANGS:
        _require(lang)
    keyed: dict[str, Candidate] = {}
    by_lang = {lang: {t.task_id: t for t in tasks_of(lang)} for lang in LANGS}
    for lang in LANGS:
        for task_id, completion in canonical(lang).items():
            keyed[f"{lang}:{task_id}"] = Candidate(by_lang[lang][task_id], completion, True)
    for key, (lang, code, is_completion, _, _) in EXTRA.items():
        keyed[key] = Candidate(by_lang[lang][ADD], code, is_completion)
    config = eval_sandbox_config(timeout_s=10)
    loops = keyed["js-loops"]  # a short wall clock of its own: the batch need not wait 10 s
    keyed["js-loops"] = replace(loops, task=replace(loops.task, timeout_s=1.0))
    judged = judge(list(keyed.values()), config, workers=2)
    return keyed, dict(zip(keyed, judged))


def test_canonical_completions_pass_in_every_language(batch):
    _, judged = batch
    for lang in LANGS:
        mine = {k: v for k, v in judged.items() if k.startswith(f"{lang}:")}
        assert len(mine) == 10
        failed = {k: (v.status, v.detail[:300]) for k, v in mine.items() if not v.passed}
        assert not failed, failed
        assert {(v.multipl_status, v.exit_code) for v in mine.values()} == {("OK", 0)}


@pytest.mark.parametrize("key", list(EXTRA))
def test_wrong_broken_and_full_code_samples(batch, key):
    keyed, judged = batch
    v = judged[key]
    _, _, _, status, multipl = EXTRA[key]
    assert (v.status, v.multipl_status) == (status, multipl), v.detail[:500]
    assert v.program.startswith(keyed[key].task.code_prompt)
    assert v.program.endswith("\n" + keyed[key].task.tests)
    if key == "rs-broken":
        assert v.detail.startswith("build failed (exit 1)")
        assert "error" in v.stderr and v.exit_code == 1  # the compiler's log and exit code
    if key.endswith("-wrong"):
        assert v.exit_code not in (0, None)


def test_result_files_read_back_give_our_pass_at_k(batch, tmp_path):
    from evaluation.passk import per_task_pass_at_k

    keyed, judged = batch
    rows, tasks = [], {}
    for s, key in enumerate(judged):  # js: 10 canonical + 3 more samples of add
        task = keyed[key].task
        if task.language == "js":
            tasks[task.task_id] = task
            rows.append(
                {"task_id": task.task_id, "sample": s, "multipl": judged[key].multipl_result()}
            )
    write_results(tmp_path, list(tasks.values()), rows)
    with gzip.open(tmp_path / f"{ADD}.results.json.gz", "rt") as f:
        add = json.load(f)
    assert [r["status"] for r in add["results"]] == ["OK", "AssertionError", "Timeout", "OK"]
    n = [sum(r["task_id"] == t for r in rows) for t in tasks]
    c = [sum(r["task_id"] == t and r["multipl"]["status"] == "OK" for r in rows) for t in tasks]
    assert n[list(tasks).index(ADD)] == 4 and sum(n) == 13
    ours = float(np.mean(per_task_pass_at_k(n, c, 1)))
    assert multipl_pass_at_k(tmp_path, 1) == pytest.approx(ours, abs=1e-12)
    assert ours == pytest.approx((9 + 2 / 4) / 10)


def test_missing_toolchain_is_one_input_error_naming_the_package(monkeypatch, tmp_path):
    """In judge() and, before anything is written, in `diag eval`'s plan (exit 2)."""
    from sandbox.languages import TOOLCHAINS

    task = tasks_of("php")[0]
    php = TOOLCHAINS["php"]
    monkeypatch.setitem(TOOLCHAINS, "php", replace(php, run=("php-not-installed", "prog.php")))
    message = "php: 'php-not-installed' not found on PATH: install the Debian package php-cli"
    with pytest.raises(InputError, match=f"^{message}"):
        judge([Candidate(task, "    return 1;\n}", True)], eval_sandbox_config(), workers=1)
    samples = FIXTURES / "humaneval-php.canonical.jsonl"
    bench = FIXTURES / "humaneval-php.jsonl"
    out = tmp_path / "R"
    proc = run_diag_here(
        "eval", "--samples", str(samples), "--bench", "multipl-e:php", "--bench-file", str(bench),
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {message} (apt-get install php-cli)"]
    assert not out.exists()


def test_diag_eval_takes_multipl_completion_files_and_writes_multipl_results(tmp_path):
    _require("sh")
    tasks = tasks_of("sh")
    good = canonical("sh")
    completions = tmp_path / "humaneval-sh-model-0.2-reworded"
    completions.mkdir()
    for task in tasks:
        wrong = "    echo 0"
        with gzip.open(completions / f"{task.task_id}.json.gz", "wt") as f:
            json.dump({
                "name": task.task_id, "language": "sh", "temperature": 0.2, "top_p": 0.95,
                "max_tokens": 512, "prompt": task.code_prompt, "tests": task.tests,
                "completions": [good[task.task_id], wrong], "stop_tokens": list(task.stop_tokens),
            }, f)  # fmt: skip
    out = tmp_path / "R"
    proc = run_diag_here(
        "eval", "--samples", str(completions), "--bench", "multipl-e:sh",
        "--bench-file", str(FIXTURES / "humaneval-sh.jsonl"), "--out", str(out),
        "--workers", "2", "--k", "1", "--k", "2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    import pandas as pd

    pak = pd.read_parquet(out / "pass_at_k.parquet")
    main = pak[(pak["suite"] == "main")] if "suite" in pak.columns else pak
    ours = {int(r.k): r.pass_at_k for r in main.itertuples() if r.group == "all"}
    assert set(ours) == {1, 2}
    results = out / "multipl-e" / "samples"
    assert len(list(results.glob("*.results.json.gz"))) == 10
    for k in (1, 2):
        assert multipl_pass_at_k(results, k) == pytest.approx(ours[k], abs=1e-12)
    # "echo 0" passes where the answer is 0 (none of these) or fails: pass@1 is 0.5 exactly
    assert ours[1] == pytest.approx(0.5)


def test_generated_responses_are_cut_extracted_and_judged_as_multipl_e(tmp_path):
    """A model's responses (full code in fences, in a format's layout) through `diag eval`'s
    path: stop tokens past the header (as generation cuts them), extraction without Python
    parsing, the completion MultiPL-E would have got, a native run."""
    from evaluation.bench_multipl import prompt_header
    from evaluation.generate import cut_at_stops
    from evaluation.run import EvalConfig, PartTimings, _judge_rows
    from training.modeling import ModelRef

    task = next(t for t in tasks_of("js") if t.task_id == ADD)
    helper = "function twice(v) {\n  return 2 * v;\n}\n"
    responses = {  # format -> response
        "precede": "```javascript\nfunction add(x, y) {\n  return x + y;\n}\n" + helper,
        "follow": "Add them.\n```js\nconst k = 1;\nfunction add(x, y){\n  return y + x;\n}\n```\n",
        "wo": "```js\n// adds\nfunction add(x, y) {\n  return x * y;\n}\n```\n",
    }
    got = []
    for fmt, text in responses.items():
        cut = cut_at_stops(text, "```\n", task.stop_tokens, prompt_header(task))
        text = cut[0] if cut else text
        assert "twice" not in text  # the helper after the function is cut off, as MultiPL-E does
        entry = ModelRef(None, f"{fmt}-s0", fmt, 0, None, None, "samples")  # type: ignore[arg-type]
        cfg = EvalConfig(bench="multipl-e:js", out=str(tmp_path), workers=2)
        row = _judge_rows(entry, cfg, [(task, 0, text, False, {})], fmt, PartTimings())[0]
        got.append((fmt, row["passed"], row["multipl"]["status"]))
    # "// adds" before the header is no stop: MultiPL-E's completion starts after the header
    assert got == [("precede", True, "OK"), ("follow", True, "OK"), ("wo", False, "AssertionError")]
