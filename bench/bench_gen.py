"""Generation speed: Hugging Face `generate` (--backend hf) vs in-process vLLM (--backend vllm).

    .venv/bin/python bench/bench_gen.py                              # builds the model, ~2 min
    .venv/bin/python bench/bench_gen.py --model RUN --batch-sizes 1,32,256 --max-new-tokens 128
    make bench-gen                                                   # needs `make vllm-env`

The model and prompts are tests/test_vllm.py's: a `vllm`-preset Llama (head_dim 64, which vLLM's
CPU attention accepts; 0.47 M parameters) pretrained on the test triples' text and trained 60 steps
in precede, prompted with the problems of 256 such triples as training's token ids. Each batch size
B generates the first B prompts greedily in fp32, no stop string, up to --max-new-tokens each,
--rounds times per backend after a warm-up call (the median counts: other jobs on a shared machine
slow single calls down): HF `generate` in this process (evaluation.generate, one static batch of B
rows), vLLM through evaluation.backends' VLLMGenerator (what `diag eval --backend vllm` runs) in a
`.venv-vllm` subprocess, its engine started once (its start is reported apart). Threads: HF
--hf-threads (1: the machine is shared, and torch's OpenMP threads crawl when another job holds a
core); vLLM binds its own (auto: one per physical core, one core reserved: a single thread on a
2-core machine). Printed: generated tokens/s both ways, vLLM / HF, the mean new tokens per prompt
(greedy stops at EOS: a batch of short answers is mostly per-call overhead, and a static HF batch
steps until its longest row ends), and on how many prompts the greedy texts are identical.

No target on CPU. There a sub-million-parameter model generates faster with HF end to end: vLLM's
engine start (37 s here: its process, profiling and compiling the model) outweighs what it saves,
and per generated token the two are about even (2026-12-04, one thread each, a shared 2-core
machine, 95 tokens per prompt: vLLM / HF 1.00 at batch 1, 0.92 at 32, 1.16 at 256) because such a
model's forward pass is small next to either engine's per-step bookkeeping. vLLM's speed case is a
real model on a GPU (paged KV cache, continuous batching, CUDA graphs), not measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
N_PROMPTS = 256
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def build_model(work: Path) -> tuple[Path, Path]:
    """(run dir, triples file): tests/test_vllm.py's fixture model, built with `diag`."""
    from tests.helpers import write_test_triples

    triples = write_test_triples(work / "triples.jsonl", n=200)
    diag = str(Path(sys.executable).with_name("diag"))
    env = {**os.environ, **SINGLE_THREAD}
    for args in (
        ["pretrain", "--preset", "vllm", "--text", str(triples), "--no-stdlib",
         "--out", str(work / "base")],
        ["train", "--data", str(triples), "--format", "precede", "--base", str(work / "base"),
         "--out", str(work / "run"), "--max-steps", "60", "--save-steps", "60",
         "--batch-size", "8", "--lr", "5e-3"],
    ):  # fmt: skip
        subprocess.run([diag, *args], check=True, env=env, capture_output=True)
    return work / "run", triples


def bench_prompts(model_dir: Path) -> list[list[int]]:
    from tests.helpers import make_triples
    from training.formats import prompt_ids
    from training.modeling import load_tokenizer

    tok = load_tokenizer(model_dir)
    return [prompt_ids(t.problem, tok) for t in make_triples(N_PROMPTS, seed=1)]


def timed_runs(
    gen_fn, prompts: list[list[int]], sizes: list[int], max_new: int, rounds: int
) -> dict:
    """{B: {tokens, seconds (median over rounds), texts}}: gen_fn(prompts, GenConfig) ->
    [[Generation]]. The median: other jobs on the machine slow single calls down."""
    from evaluation.generate import GenConfig

    gen_fn(prompts[:2], GenConfig(max_new_tokens=8, batch_size=2))  # warm-up
    out = {}
    for size in sizes:
        cfg = GenConfig(max_new_tokens=max_new, batch_size=size)
        seconds = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            gens = gen_fn(prompts[:size], cfg)
            seconds.append(time.perf_counter() - t0)
        out[size] = {
            "tokens": sum(per[0].n_tokens for per in gens),
            "seconds": statistics.median(seconds),
            "texts": [per[0].text for per in gens],
        }
    return out


def run_vllm_worker(model: str, sizes: list[int], max_new: int, rounds: int, result: str) -> None:
    """In .venv-vllm: start the engine once, time every batch size, write JSON to `result`."""
    from evaluation.backends import BackendOptions, VLLMGenerator
    from training.modeling import load_tokenizer, resolve_model_dir

    model_dir = resolve_model_dir(model)
    t0 = time.perf_counter()
    gen = VLLMGenerator(model_dir, load_tokenizer(model_dir), BackendOptions(dtype="float32"))
    start_s = time.perf_counter() - t0
    runs = timed_runs(gen.generate, bench_prompts(model_dir), sizes, max_new, rounds)
    gen.close()
    omp = f"VLLM_CPU_OMP_THREADS_BIND={os.environ.get('VLLM_CPU_OMP_THREADS_BIND', 'auto')}"
    Path(result).write_text(json.dumps({"start_s": start_s, "runs": runs, "omp": omp}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a run or model dir (default: build tests' model)")
    parser.add_argument("--batch-sizes", default="1,32,256")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="timed calls per batch size")
    parser.add_argument("--hf-threads", type=int, default=1, help="torch threads for HF")
    parser.add_argument("--vllm-worker", metavar="RESULT_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    if max(sizes) > N_PROMPTS:
        raise SystemExit(f"--batch-sizes: at most {N_PROMPTS} (the prompts there are)")
    if args.vllm_worker:
        run_vllm_worker(args.model, sizes, args.max_new_tokens, args.rounds, args.vllm_worker)
        return
    if not VLLM_PYTHON.exists():
        raise SystemExit("vLLM is not installed: run `make vllm-env`")

    with tempfile.TemporaryDirectory(prefix="bench_gen_") as tmp:
        work = Path(tmp)
        model = Path(args.model) if args.model else build_model(work)[0]
        import torch

        from evaluation.generate import generate
        from training.modeling import load_model, load_tokenizer, resolve_model_dir

        torch.set_num_threads(args.hf_threads)
        model_dir = resolve_model_dir(model)
        hf_model, tok = (
            load_model(model_dir, dtype="float32", device="cpu"),
            load_tokenizer(model_dir),
        )
        n_params = sum(p.numel() for p in hf_model.parameters())
        prompts = bench_prompts(model_dir)
        hf = timed_runs(lambda p, c: generate(hf_model, tok, p, c), prompts, sizes,
                        args.max_new_tokens, args.rounds)  # fmt: skip

        result = work / "vllm.json"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_CPU_KVCACHE_SPACE": "1",
               "VLLM_CACHE_ROOT": str(ROOT / ".cache" / "vllm")}  # fmt: skip
        subprocess.run(
            [str(VLLM_PYTHON), __file__, "--vllm-worker", str(result), "--model", str(model),
             "--batch-sizes", args.batch_sizes, "--max-new-tokens", str(args.max_new_tokens),
             "--rounds", str(args.rounds)],
            check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        vllm = json.loads(result.read_text())

    print(f"model: {n_params / 1e6:.2f} M params, fp32, greedy, <= {args.max_new_tokens} new "
          f"tokens per prompt; HF: {torch.get_num_threads()} torch thread(s); vLLM: its "
          f"CPU worker's own OpenMP binding ({vllm['omp']})")  # fmt: skip
    print(f"vLLM engine start (in .venv-vllm, not in the rates): {vllm['start_s']:.1f} s")
    print(f"{'batch':>5} {'tok/prompt':>10} {'HF tok/s':>10} {'vLLM tok/s':>11} {'vLLM/HF':>8} "
          f"{'same text':>10}")  # fmt: skip
    for size in sizes:
        h, v = hf[size], vllm["runs"][str(size)]
        h_rate, v_rate = h["tokens"] / h["seconds"], v["tokens"] / v["seconds"]
        same = sum(a == b for a, b in zip(h["texts"], v["texts"]))
        print(f"{size:>5} {h['tokens'] / size:>10.1f} {h_rate:>10,.0f} {v_rate:>11,.0f} "
              f"{v_rate / h_rate:>8.2f} "
              f"{same:>4}/{size:<5}")  # fmt: skip


if __name__ == "__main__":  # the vLLM engine starts a process that re-imports this module
    main()
