"""GPU check of the per-model runner on a model of real size (no hub: a random Llama).

    python bench/bench_gpu_runner.py --data triples.jsonl --out /tmp/gpu   # needs CUDA
    python bench/bench_gpu_runner.py --data triples.jsonl --layers 2 --hidden 256  # quick, CPU ok

What it does, on whatever device torch finds (bf16 on CUDA, as `--dtype auto` gives):
1. a byte-level BPE tokenizer trained on the triples' text (training.pretrain.train_tokenizer)
   and a randomly initialised Llama (default ~1.1 B parameters: hidden 2048, 16 layers, 16
   heads, intermediate 5632), saved as `base/`; a copy with small noise added as `ft/` (a
   stand-in for a fine-tuned model: KL to the base is small and non-zero);
2. `diag ppl` (both models, one format) and `diag kl` (ft against base) through their `main()`
   (the runner: plan, units, parts, summaries, manifest), timed end to end;
3. the floor: the same padded, length-sorted batches through a bare `model(ids, mask)` (full
   logits, nothing else), each model loaded once, timed the same way;
4. `diag attn --backend hf` and `diag gradnorm` on a few examples (they must run in bf16 too).
Prints wall times, the ratio (ppl + kl) / floor, and the peak GPU memory of each step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_models(args: argparse.Namespace, out: Path) -> tuple[Path, Path]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from synthesis.schema import load_triples
    from training.pretrain import train_tokenizer

    triples, _ = load_triples(args.data)
    texts = [f"{t.problem}\n{t.cot}\n{t.code}\n{t.tests}" for t in triples]
    tokenizer = train_tokenizer(texts, args.vocab)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        intermediate_size=args.intermediate or int(args.hidden * 2.75),
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e9:.2f} B parameters, vocab {len(tokenizer)}", flush=True)
    base, ft = out / "base", out / "ft"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    model.save_pretrained(ft)
    tokenizer.save_pretrained(ft)
    return base, ft


def peak_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float:
    import torch

    if not torch.cuda.is_available():
        return float("nan")
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**30


def timed(name: str, fn, results: dict) -> float:
    peak_reset()
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    results[name] = {"seconds": round(seconds, 3), "peak_gib": round(peak_gib(), 2)}
    print(f"{name:>10}: {seconds:7.2f} s, peak {results[name]['peak_gib']:.2f} GiB", flush=True)
    return seconds


def floor(models: list[Path], args: argparse.Namespace) -> None:
    """Bare batched forward of each model over the same batches (loaded once each)."""
    import torch

    from diagnostics.common import padded_batches
    from diagnostics.scoring import ExampleCache
    from training.modeling import default_device, load_model, load_tokenizer

    tok = load_tokenizer(models[0])
    examples, _ = ExampleCache(args.data, "all", max_examples=args.examples).get(args.format, tok)
    device = default_device()
    for path in models:
        model = load_model(path, dtype="auto", device=device)
        with torch.no_grad():
            for batch in padded_batches(examples, args.batch_size, tok.pad_token_id, device):
                _ = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        del model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default="/tmp/gpu_runner")
    parser.add_argument("--format", default="precede")
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--intermediate", type=int, default=5632)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=4096)
    args = parser.parse_args()

    import torch

    from diagnostics.attn import AttnConfig
    from diagnostics.attn import main as attn_main
    from diagnostics.gradnorm import GradNormConfig
    from diagnostics.gradnorm import main as gradnorm_main
    from diagnostics.kl import KlConfig
    from diagnostics.kl import main as kl_main
    from diagnostics.ppl import PplConfig
    from diagnostics.ppl import main as ppl_main

    print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}", flush=True)
    if torch.cuda.is_available():
        print(torch.cuda.get_device_name(0), flush=True)
    out = Path(args.out)
    base, ft = build_models(args, out)
    common = dict(
        data=args.data,
        split="all",
        format=args.format,
        batch_size=args.batch_size,
        max_examples=args.examples,
        overwrite=True,
    )
    results: dict = {}
    models = [str(ft), str(base)]
    for _ in range(2):  # the first round warms up kernels and the page cache
        t_ppl = timed("ppl", lambda: ppl_main(PplConfig(model=models, out=str(out / "ppl"), **common)), results)  # fmt: skip
        t_kl = timed("kl", lambda: kl_main(KlConfig(model=[str(ft)], base=str(base), out=str(out / "kl"), **common)), results)  # fmt: skip
        f_ppl = timed("floor_ppl", lambda: floor([ft, base], args), results)
        f_kl = timed("floor_kl", lambda: floor([ft, base], args), results)
    ratio = (t_ppl + t_kl) / (f_ppl + f_kl)
    print(f"(diag ppl + diag kl) / floor: {ratio:.2f}x", flush=True)
    few = {**common, "max_examples": 8, "batch_size": 4}
    timed("attn_hf", lambda: attn_main(AttnConfig(model=[str(ft)], out=str(out / "attn"), backend="hf", **few)), results)  # fmt: skip
    few.pop("batch_size")
    timed("gradnorm", lambda: gradnorm_main(GradNormConfig(model=[str(ft)], out=str(out / "gn"), **few)), results)  # fmt: skip
    ppl = json.loads((out / "ppl" / "manifest.json").read_text())
    kl = json.loads((out / "kl" / "manifest.json").read_text())
    print("ppl mean_log_ppl:", ppl["result"]["mean_log_ppl"], flush=True)
    print("kl mean_kl:", kl["result"]["mean_kl"], "timings:", kl["timings_s"], flush=True)
    print(json.dumps({"ratio": round(ratio, 3), **results}), flush=True)


if __name__ == "__main__":
    main()
