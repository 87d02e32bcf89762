"""vLLM (CPU build, in `.venv-vllm` from `make vllm-env`) generates what `--backend hf` generates.

A small Llama whose head size vLLM's CPU attention accepts (the `vllm` pretrain preset: head_dim
64) is trained here in precede, then the test split is generated greedily in fp32 four ways, with
`--stop-at-code` (the default) and `--no-stop-at-code`:

    .venv/bin/diag eval --backend hf                         the reference
    .venv-vllm/bin/python -m cli.main eval --backend vllm    in-process `vllm.LLM` (this checkout)
    .venv-vllm's `vllm serve` server  +  .venv/bin/diag eval --backend openai --endpoint ...

Greedy decoding in two engines can part where two logits tie to within float error, so the
check is agreement of the generated text on >= 95% of prompts (the figure is printed), and any
sample whose verdict differs must be one whose text differs. vLLM lives in its own venv: it pins
a transformers older than the project's. Without it: skip, or fail under `make test`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import DIAG, ROOT, run_diag, skip_or_fail
from helpers import write_test_triples
from results_fixture import SINGLE_THREAD

pytestmark = pytest.mark.slow

VLLM_BIN = ROOT / ".venv-vllm" / "bin"
MAX_NEW_TOKENS = 96
MIN_AGREEMENT = 0.95
MODES = {"stop-at-code": [], "no-stop-at-code": ["--no-stop-at-code"]}
# vLLM's engine: a 1 GiB KV cache (its default is 4 GiB), its compile cache inside the project
VLLM_ENV = {
    **SINGLE_THREAD,
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CACHE_ROOT": str(ROOT / ".cache" / "vllm"),
    "PYTHONPATH": str(ROOT),
}


@pytest.fixture(scope="module")
def vllm_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(precede run dir, triples file with 40 test tasks): a base pretrained on the triples'
    own text (so it writes code, not noise) and 60 SFT steps, about 30 s on the 2 cores."""
    if not (VLLM_BIN / "python").exists():
        skip_or_fail("vLLM is not installed: run `make vllm-env`")
    root = tmp_path_factory.mktemp("vllm")
    triples = write_test_triples(root / "triples.jsonl", n=200)
    base, run = root / "base", root / "run"
    run_diag("pretrain", "--preset", "vllm", "--text", str(triples), "--no-stdlib",
             "--out", str(base), check=True)  # fmt: skip
    run_diag("train", "--data", str(triples), "--format", "precede", "--base", str(base),
             "--out", str(run), "--max-steps", "60", "--save-steps", "60", "--batch-size", "8",
             "--lr", "5e-3", check=True)  # fmt: skip
    return run, triples


def _eval_args(run: Path, triples: Path, out: Path, mode: str) -> list[str]:
    return ["eval", "--model", str(run), "--bench", f"jsonl:{triples}", "--split", "test",
            "--max-new-tokens", str(MAX_NEW_TOKENS), "--dtype", "float32", "--n-boot", "200",
            "--no-progress", *MODES[mode], "--out", str(out)]  # fmt: skip


@pytest.fixture(scope="module")
def hf_outs(vllm_run, tmp_path_factory) -> dict[str, Path]:
    run, triples = vllm_run
    root = tmp_path_factory.mktemp("hf")
    for mode in MODES:
        run_diag(*_eval_args(run, triples, root / mode, mode), env=SINGLE_THREAD, check=True)
    return {mode: root / mode for mode in MODES}


def _diag_in(bin_dir: Path, *args: str, env: dict[str, str]) -> None:
    """`diag` of this checkout under another venv's interpreter (PYTHONPATH: the repo)."""
    proc = subprocess.run([str(bin_dir / "python"), "-m", "cli.main", *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **env})  # fmt: skip
    assert proc.returncode == 0, f"diag {' '.join(args)}:\n{proc.stderr[-3000:]}"


def _samples(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "samples.parquet").set_index("task_id")


def _pass_at_1(out: Path) -> float:
    summary = json.loads((out / "summary.json").read_text())
    return summary["models"][0]["pass_at_k"]["pass@1"]["value"]


def assert_agrees(name: str, out: Path, reference: Path) -> str:
    """The generated text agrees with --backend hf on >= 95% of prompts; a verdict may differ
    only where the text does (said in the message). Returns the agreement line."""
    got, want = _samples(out), _samples(reference)
    assert got.index.tolist() == want.index.tolist() and len(got) == 40
    same_text = got["completion"] == want["completion"]
    line = (
        f"{name}: greedy text identical to hf on {int(same_text.sum())}/{len(got)} prompts "
        f"({same_text.mean():.1%}); pass@1 {_pass_at_1(out)} vs hf {_pass_at_1(reference)}"
    )
    print(line)
    assert same_text.mean() >= MIN_AGREEMENT, line
    # where the text is the same, everything judged from it is the same
    cols = ["n_new_tokens", "finish", "code", "status", "passed"]
    pd.testing.assert_frame_equal(got.loc[same_text, cols], want.loc[same_text, cols])
    verdicts_differ = got.index[got["passed"] != want["passed"]].tolist()
    if verdicts_differ:
        assert set(verdicts_differ) <= set(got.index[~same_text]), line
        print(f"  verdict differs on {verdicts_differ}: their generated text differs")
    assert set(got["finish"]) <= {"eos", "length", "stop_code"}
    return line


def test_vllm_in_process_agrees_with_hf(vllm_run, hf_outs, tmp_path):
    """The in-process engine in the default mode (stop at code; each engine start costs ~20 s
    here: the served test covers both modes with one server)."""
    run, triples = vllm_run
    for mode in ["stop-at-code"]:
        out = tmp_path / mode
        _diag_in(VLLM_BIN, *_eval_args(run, triples, out, mode), "--backend", "vllm",
                 env=VLLM_ENV)  # fmt: skip
        assert_agrees(f"vllm in-process, {mode}", out, hf_outs[mode])
        samples = _samples(out)
        assert (samples["finish"] == "stop_code").any()  # precede stops at its first code block
        config = json.loads((out / "manifest.json").read_text())["config"]
        assert (config["backend"], config["stop_at_code"]) == ("vllm", mode == "stop-at-code")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(vllm_run, tmp_path_factory) -> Iterator[str]:
    """A real `vllm serve` of the run's final model on 127.0.0.1, its base URL; the whole
    process group is killed at the end, whatever happened."""
    run, _ = vllm_run
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "vllm_serve.log"
    from training.modeling import resolve_model_dir

    # `vllm serve`'s server module: the `vllm` script looks up the dist "vllm" (this is vllm-cpu)
    cmd = [str(VLLM_BIN / "python"), "-m", "vllm.entrypoints.openai.api_server",
           "--model", str(resolve_model_dir(run)), "--host", "127.0.0.1",
           "--port", str(port), "--dtype", "float32", "--max-model-len", "512",
           "--enforce-eager", "--served-model-name", "M", "--seed", "0"]  # fmt: skip
    with open(log, "w") as sink:
        server = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **VLLM_ENV},
            start_new_session=True,  # its own process group: killed whole below
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None:
                pytest.fail(f"vllm serve exited {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:  # not listening yet
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve not healthy after 300 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        except ProcessLookupError:  # already gone
            pass


def test_vllm_serve_openai_backend_agrees_with_hf(vllm_run, hf_outs, vllm_server, tmp_path):
    run, triples = vllm_run
    for mode in MODES:
        out = tmp_path / mode
        _diag_in(Path(DIAG).parent, *_eval_args(run, triples, out, mode), "--backend", "openai",
                 "--endpoint", vllm_server, "--served-model", "M", "--concurrency", "8",
                 env=SINGLE_THREAD)  # fmt: skip
        assert_agrees(f"vllm serve + openai, {mode}", out, hf_outs[mode])
        config = json.loads((out / "manifest.json").read_text())["config"]
        assert (config["backend"], config["served_model"]) == ("openai", "M")


def _responses(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    return {row["seed_id"]: row for row in rows}


def test_synth_hf_teacher_on_vllm_agrees_with_transformers(vllm_run, tmp_path):
    """`diag synth --teacher hf:MODEL --teacher-backend vllm` asks the teacher with the same
    prompt ids as the transformers path: greedy answers identical on >= 95% of seeds."""
    from training.modeling import resolve_model_dir

    run, triples = vllm_run
    model = resolve_model_dir(run)
    # a short prompt, close to what the model was fine-tuned on (the task, then its code)
    template = tmp_path / "prompt.txt"
    template.write_text("{instruction}\n{code}")
    args = ["synth", "--source", f"jsonl:{triples}", "--teacher", f"hf:{model}", "--n", "12",
            "--field", "answer=seed_answer", "--prompt-file", str(template), "--max-tokens",
            "64", "--no-progress"]  # fmt: skip
    run_diag(*args, "--out", str(tmp_path / "hf"), env=SINGLE_THREAD, check=True)
    _diag_in(VLLM_BIN, *args, "--teacher-backend", "vllm", "--out", str(tmp_path / "vllm"),
             env=VLLM_ENV)  # fmt: skip
    hf, vllm = _responses(tmp_path / "hf"), _responses(tmp_path / "vllm")
    assert sorted(hf) == sorted(vllm) and len(hf) >= 8  # the filters keep the same seeds
    same = [seed for seed in hf if hf[seed]["text"] == vllm[seed]["text"]]
    line = f"synth, hf teacher on vllm: same answer as transformers on {len(same)}/{len(hf)} seeds"
    print(line)
    assert len(same) >= 0.95 * len(hf), line
    assert all(hf[s]["finish_reason"] == vllm[s]["finish_reason"] for s in same)
    # it answers as it was fine-tuned to: the reasoning of the training triples
    assert sum("Step 1:" in hf[s]["text"] for s in same) >= len(hf) // 2
    manifest = json.loads((tmp_path / "vllm" / "manifest.json").read_text())
    assert manifest["config"]["teacher_cfg"]["backend"] == "vllm"
