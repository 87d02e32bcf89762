"""Benchmark data parallel over ranks: `diag ppl` + `diag kl` on 2 processes vs 1, same work.

    make bench-scale                       # or: .venv/bin/python bench/bench_scale.py
    .venv/bin/python bench/bench_scale.py --examples 160 --hidden 384 --layers 6

Both runs go through the real command line end to end (`python -m cli.main ppl|kl`, process
start, imports, tokenising, loading, scoring, merging the ranks' parts, summaries, manifest):
- one process, one thread (OMP_NUM_THREADS=1);
- two ranks under torchrun (`torch.distributed.run --nproc-per-node 2`), one thread each: on a
  GPU machine each rank has its own device, so rank scaling is what one rank's resources buy;
- one process with two threads, printed for context (what the same cores give without ranks).
The model is a randomly initialised Llama big enough for the forward passes to dominate
(default hidden 512, 8 layers: 26.2 M parameters with the tiny tokenizer's vocabulary);
its base for `kl` is a second random Llama of the same shape. The 2-rank tables are checked
equal to the 1-process ones (floats to 1e-6). Target: (1 process) / (2 ranks) >= 1.6x.
Timings take the best of --repeats runs; the load average is printed beside them.
Exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_MODE": "disabled",
    "PYTHONPATH": str(ROOT),
}
TARGET = 1.6


def build_inputs(work: Path, args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """(fine-tuned dir, base dir, triples): two random Llamas sharing the tiny tokenizer."""
    import torch
    from helpers import write_test_triples
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.modeling import load_tokenizer
    from training.pretrain import PretrainConfig
    from training.pretrain import main as pretrain

    data = work / "triples.jsonl"
    write_test_triples(data, n=args.examples, seed=1, splits=False)
    tiny = work / "tiny"
    pretrain(PretrainConfig(out=str(tiny), preset="tiny", seed=0, steps=0))
    tok = load_tokenizer(tiny)
    dirs = []
    for name, seed in (("ft", 1), ("base", 2)):
        torch.manual_seed(seed)
        cfg = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=args.hidden,
            intermediate_size=args.hidden * 8 // 3,
            num_hidden_layers=args.layers,
            num_attention_heads=8,
            num_key_value_heads=8,
            max_position_embeddings=2048,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        model = LlamaForCausalLM(cfg)
        model.save_pretrained(work / name)
        tok.save_pretrained(work / name)
        dirs.append(work / name)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model: random Llama, hidden {args.hidden}, {args.layers} layers, {n_params / 1e6:.1f} M"
    )
    return dirs[0], dirs[1], data


def commands(ft: Path, base: Path, data: Path, out: Path) -> list[list[str]]:
    common = ["--format", "follow", "--data", str(data), "--batch-size", "8"]
    return [
        ["ppl", "--model", str(ft), *common, "--bootstrap", "200", "--out", str(out / "ppl")],
        ["kl", "--model", str(ft), "--base", str(base), *common, "--bootstrap", "200",
         "--out", str(out / "kl")],
    ]  # fmt: skip


def timed_run(calls: list[list[str]], ranks: int, threads: int) -> float:
    """Seconds for every call, each a fresh launch of the command line."""
    env = {**os.environ, **ENV, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if ranks > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks)]
        launcher += ["--master-port", str(29500 + os.getpid() % 1000), "-m", "cli.main"]
    else:
        launcher = [sys.executable, "-m", "cli.main"]
    t0 = time.perf_counter()
    for call in calls:
        proc = subprocess.run(
            [*launcher, *call, "--overwrite"], env=env, capture_output=True, text=True, cwd=ROOT
        )
        if proc.returncode != 0:
            raise SystemExit(
                f"{' '.join(call[:1])} on {ranks} rank(s) failed:\n{proc.stderr[-3000:]}"
            )
    return time.perf_counter() - t0


def same_tables(one: Path, two: Path) -> bool:
    import numpy as np
    import pandas as pd

    for name in ("ppl/ppl.parquet", "kl/kl.parquet"):
        a, b = pd.read_parquet(one / name), pd.read_parquet(two / name)
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            return False
        for column in a.columns:
            if pd.api.types.is_float_dtype(a[column]):
                if not np.allclose(a[column], b[column], rtol=1e-6, atol=1e-6, equal_nan=True):
                    return False
            elif a[column].astype(str).tolist() != b[column].astype(str).tolist():
                return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=160)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="keep inputs and outputs here")
    args = parser.parse_args()
    os.environ.update(ENV)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        ft, base, data = build_inputs(work, args)
        runs = {
            "1 process, 1 thread": (1, 1),
            "2 ranks, 1 thread each": (2, 1),
            "1 process, 2 threads": (1, 2),
        }
        best: dict[str, float] = {}
        for _ in range(args.repeats):
            for name, (ranks, threads) in runs.items():
                seconds = timed_run(
                    commands(ft, base, data, work / name.replace(" ", "_")), ranks, threads
                )
                best[name] = min(best.get(name, seconds), seconds)
        load = os.getloadavg()[0]
        for name, seconds in best.items():
            print(f"{name:>24}: {seconds:7.2f} s (ppl + kl, {args.examples} examples)")
        ratio = best["1 process, 1 thread"] / best["2 ranks, 1 thread each"]
        threads = best["1 process, 1 thread"] / best["1 process, 2 threads"]
        equal = same_tables(work / "1_process,_1_thread", work / "2_ranks,_1_thread_each")
        print(
            f"2 ranks vs 1 process: {ratio:.2f}x (target >= {TARGET}x); 2 threads: {threads:.2f}x"
        )
        print(f"2-rank tables equal to the 1-process tables: {equal}; load average {load:.2f}")
        print(json.dumps({"ratio_2_ranks": round(ratio, 3), "ratio_2_threads": round(threads, 3)}))
        return 0 if ratio >= TARGET and equal else 1


if __name__ == "__main__":
    sys.exit(main())
