"""Generation backends of `diag eval --model` and stopping a sample at its first code block.

The openai backend runs against a real completions server on 127.0.0.1 (tests/openai_server.py)
that serves the tiny precede fixture model; it must give what --backend hf gives. The vllm
backend needs vLLM installed: here only its refusal when it is missing is tested.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_diag
from openai_server import CompletionsServer

from synthesis.schema import load_triples

COMPARED = ["task_id", "completion", "n_prompt_tokens", "n_new_tokens", "finish", "code",
            "status", "passed"]  # fmt: skip


@pytest.fixture(scope="module")
def precede(tiny_runs):
    from training.modeling import load_model, load_tokenizer

    run = tiny_runs["precede"]
    return run, load_model(run, device="cpu"), load_tokenizer(run)


def test_openai_backend_equals_hf_and_retries_a_503(precede, triples_file, tmp_path):
    from evaluation.run import EvalConfig, main
    from training.formats import prompt_ids

    run, model, tok = precede
    common = ["--model", str(run), "--bench", f"jsonl:{triples_file}", "--max-new-tokens", "24",
              "--no-progress"]  # fmt: skip
    with CompletionsServer(model, tok, served_model="tiny-precede", fail_first=1) as server:
        proc = run_diag("eval", *common, "--backend", "openai", "--endpoint", server.url,
                        "--served-model", "tiny-precede", "--concurrency", "4",
                        "--out", str(tmp_path / "openai"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    main(EvalConfig(model=str(run), bench=f"jsonl:{triples_file}", max_new_tokens=24,
                    progress=False, out=str(tmp_path / "hf")))  # fmt: skip
    served = pd.read_parquet(tmp_path / "openai" / "samples.parquet")
    local = pd.read_parquet(tmp_path / "hf" / "samples.parquet")
    assert len(served) == len(local) == 8
    pd.testing.assert_frame_equal(served[COMPARED], local[COMPARED])
    pass_at_1 = [
        json.loads((tmp_path / b / "summary.json").read_text())["models"][0]["pass_at_k"]["pass@1"]
        for b in ("openai", "hf")
    ]
    assert pass_at_1[0] == pass_at_1[1]
    # the first request got a 503 and was retried; every prompt went as training's token ids
    assert sorted(server.statuses) == [200] * 8 + [503]
    test_split = [t for t in load_triples(triples_file)[0] if t.split == "test"]
    assert sorted(server.prompts) == sorted(prompt_ids(t.problem, tok) for t in test_split)
    config = json.loads((tmp_path / "openai" / "manifest.json").read_text())["config"]
    assert (config["backend"], config["served_model"], config["stop_at_code"]) == (
        "openai", "tiny-precede", True
    )  # fmt: skip


def test_a_stop_string_ends_its_row_only_hf_and_openai_alike(precede, triples_file):
    from evaluation.backends import BackendOptions, OpenAIGenerator
    from evaluation.generate import STOP_CODE, GenConfig, cut_at_stop, generate
    from training.formats import prompt_ids

    run, model, tok = precede
    prompts = [prompt_ids(t.problem, tok) for t in load_triples(triples_file)[0][:6]]
    # sampled rows differ; HF draws for every row each step, so a row that stops early does
    # not change what the others draw: the uncut rows come out the same
    sampled = GenConfig(temperature=1.0, max_new_tokens=32, batch_size=6, seed=7)
    full = [per[0] for per in generate(model, tok, prompts, sampled)]
    stop = next(
        text[10:12]
        for text in (g.text for g in full)
        if 0 < sum(text[10:12] in g.text for g in full) < len(full)
    )  # a string some rows write and others do not
    sampled.code_stop = stop
    cut = [per[0] for per in generate(model, tok, prompts, sampled)]
    for whole, short in zip(full, cut):
        if stop in whole.text:
            assert short.finish == STOP_CODE and short.text == cut_at_stop(whole.text, stop)
            assert short.n_tokens < whole.n_tokens or whole.finish == "length"
        else:
            assert (short.text, short.n_tokens, short.finish) == (
                whole.text, whole.n_tokens, whole.finish
            )  # fmt: skip
    assert {g.finish for g in cut} >= {STOP_CODE} and {g.finish for g in cut} != {STOP_CODE}

    # greedy, through the API (stop string dropped by the server, put back by the client)
    greedy = GenConfig(max_new_tokens=24, batch_size=6)
    text = generate(model, tok, prompts[:1], greedy)[0][0].text
    greedy.code_stop = text[3:5]
    local = [per[0] for per in generate(model, tok, prompts, greedy)]
    with CompletionsServer(model, tok, served_model="m") as server:
        client = OpenAIGenerator(run, tok, BackendOptions(endpoint=server.url, served_model="m"))
        served = [per[0] for per in client.generate(prompts, greedy)]
    assert [(g.text, g.n_tokens, g.finish) for g in served] == [
        (g.text, g.n_tokens, g.finish) for g in local
    ]
    assert any(g.finish == STOP_CODE for g in local)


def test_stop_at_code_keeps_extraction_and_verdicts(triples_file):
    """What a model trained on precede writes (the rendered responses), cut where generation
    stops with --stop-at-code: the same code is extracted and the same verdict comes out."""
    from evaluation.benchmarks import BenchSpec, load_tasks
    from evaluation.extract import extract_code
    from evaluation.generate import CODE_STOP, cut_at_stop, stop_at_code
    from evaluation.judge import Candidate, judge
    from sandbox import SandboxConfig
    from training.formats import render

    assert [stop_at_code(f) for f in ("seed", "wo", "follow", "precede")] == [
        None, CODE_STOP, None, CODE_STOP
    ]  # fmt: skip
    triples, _ = load_triples(triples_file)
    tasks = {t.task_id: t for t in load_tasks(BenchSpec(f"jsonl:{triples_file}", split="all"))}
    whole, cut = [], []
    for triple in triples:
        response = render(triple, "precede").response
        short = cut_at_stop(response, CODE_STOP)
        assert short is not None and len(short) < len(response)
        task = tasks[triple.id]
        a = extract_code(response, "precede", task.entry_point)
        b = extract_code(short, "precede", task.entry_point)
        assert (a.code, a.method, a.truncated) == (b.code, b.method, b.truncated)
        whole.append(Candidate(task, a.code))
        cut.append(Candidate(task, b.code))
        # wo writes its block and EOS: nothing after the fence to cut
        assert cut_at_stop(render(triple, "wo").response, CODE_STOP) is None
    verdicts = judge(whole + cut, SandboxConfig(timeout_s=10), workers=2)
    assert [v.status for v in verdicts[: len(whole)]] == [v.status for v in verdicts[len(whole) :]]
    assert sum(v.passed for v in verdicts[: len(whole)]) == len(whole)  # reference code passes


def test_finish_without_stop_reason():
    """A server that does not say which stop it met (TGI): ours when a fence is open."""
    from evaluation.backends import _finish
    from evaluation.generate import CODE_STOP

    code = "```python\ndef f():\n    return 1"
    assert _finish("stop", None, code, CODE_STOP, reported=False) == (
        code + CODE_STOP, "stop_code"
    )  # fmt: skip
    after_eos = code + CODE_STOP + "\nIt returns one."
    assert _finish("stop", None, after_eos, CODE_STOP, reported=False) == (after_eos, "eos")
    assert _finish("stop", None, code, CODE_STOP, reported=True) == (code, "eos")
    assert _finish("length", None, code, CODE_STOP) == (code, "length")


def test_bad_backend_input_exit_2_nothing_written(tiny_runs, triples_file, tmp_path):
    run, out = tiny_runs["precede"], tmp_path / "out"
    base = ["eval", "--model", str(run), "--bench", f"jsonl:{triples_file}", "--out", str(out),
            "--no-progress"]  # fmt: skip
    cases = [
        (["--backend", "openai"], "--backend openai needs --endpoint URL"),
        (["--backend", "tgi"], "--backend 'tgi': choose from hf, vllm, openai"),
        (
            [
                "--backend",
                "openai",
                "--endpoint",
                "http://127.0.0.1:9/v1",
                "--served-model",
                "m",
                "--all-checkpoints",
            ],
            "--all-checkpoints with --backend openai",
        ),  # fmt: skip
    ]
    if importlib.util.find_spec("vllm") is None:
        cases.append((["--backend", "vllm"], "--backend vllm: vLLM is not installed"))
    for extra, message in cases:
        proc = run_diag(*base, *extra)
        assert proc.returncode == 2, (extra, proc.stderr[-2000:])
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert message in proc.stderr and len(lines) == 1, (extra, proc.stderr[-2000:])
        assert not out.exists()
    help_text = run_diag("eval", "--help").stdout
    assert all(name in help_text for name in ("hf:", "vllm:", "openai:", "--stop-at-code"))


def test_unreachable_endpoint_is_one_line_after_retries(precede, triples_file, tmp_path):
    from evaluation.backends import BackendOptions, OpenAIGenerator
    from evaluation.generate import GenConfig
    from plumbing import InputError

    run, _, tok = precede
    opts = BackendOptions(endpoint="http://127.0.0.1:9/v1", served_model="m", max_retries=2,
                          backoff_s=0.01)  # fmt: skip
    with pytest.raises(InputError, match=r"no answer after 3 attempts \(last: URLError"):
        OpenAIGenerator(Path(run), tok, opts).generate([[1, 2, 3]], GenConfig(max_new_tokens=2))
