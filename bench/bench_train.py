"""Training throughput: `diag train` vs a plain HF Trainer baseline, same model, data and run.

    make bench-train                       # or: .venv/bin/python bench/bench_train.py
    .venv/bin/python bench/bench_train.py --steps 40 --batch-size 16

What is measured (all in this one process, one after another, on the same machine):
- baseline: `transformers.Trainer` with the stock padding collator (`DataCollatorForSeq2Seq`,
  pad to the longest in the batch) and the default random sampler — what a user gets from
  the HF docs;
- `diag train` (training.sft.main): length-grouped batches, same batch size and steps;
- `diag train --packing`: rows packed to --pack-len tokens, rows per step chosen so a step holds
  about as many real tokens as the padded runs' steps.
Throughput = real (non-padding) input tokens per second of `trainer.train()` wall time. The
data are synthetic triples with mixed lengths (CoT padded with a Pareto-distributed number of sentences, a heavy tail like real SFT data), rendered in `follow`.
The model is the `small` preset's architecture, randomly initialised, with a tokenizer trained
here; targets: diag train / baseline >= 1.0x, packing / baseline >= 1.3x.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def mixed_length_triples(n: int, seed: int):
    from helpers import make_triples

    rng = random.Random(seed)
    triples = make_triples(n, seed)
    filler = [
        "We check the edge case of an empty list first, which returns an empty list.",
        "Each element is handled independently, so the order of the output matches the input.",
        "The constant is applied exactly once per element; no element is skipped.",
        "A list comprehension expresses this directly and is idiomatic Python.",
    ]
    for t in triples:
        t.cot = (
            t.cot
            + "\n"
            + " ".join(rng.choice(filler) for _ in range(min(40, int(rng.paretovariate(1.0))) - 1))
        )
    return triples


def build_base(root: Path, seed: int) -> Path:
    from training.pretrain import PRESETS, build_model, read_texts, source_files, train_tokenizer
    from training.pretrain import PretrainConfig as PC

    files = source_files(PC(out=""))[::10]
    tok = train_tokenizer(read_texts(files), 2048)
    model = build_model(PRESETS["small"], tok, seed)
    out = root / "base"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def run_baseline(base: Path, data: Path, steps: int, batch_size: int, seed: int) -> dict:
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    from synthesis.schema import load_triples
    from training.formats import encode_many
    from training.modeling import load_tokenizer

    tok = load_tokenizer(base)
    triples, _ = load_triples(data)
    examples, _ = encode_many(triples, "follow", tok, max_len=1024)
    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    model = AutoModelForCausalLM.from_pretrained(base)
    model.config.use_cache = False
    tokens = {"n": 0}

    class Counting(DataCollatorForSeq2Seq):
        def __call__(self, features, return_tensors=None):
            batch = super().__call__(features, return_tensors)
            tokens["n"] += int(batch["attention_mask"].sum())
            return batch

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            max_steps=steps,
            per_device_train_batch_size=batch_size,
            learning_rate=1e-3,
            report_to=[],
            save_strategy="no",
            logging_steps=steps,
            seed=seed,
            use_cpu=True,
            disable_tqdm=True,
            remove_unused_columns=False,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=rows,
            data_collator=Counting(tok, padding=True, label_pad_token_id=-100),
        )
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
    return {"tokens": tokens["n"], "seconds": seconds}


def run_diag(base: Path, data: Path, out: Path, steps: int, batch_size: int, seed: int, **kw):
    from training.sft import TrainConfig, main

    result = main(
        TrainConfig(
            data=str(data),
            format="follow",
            base=str(base),
            out=str(out),
            split="all",
            max_steps=steps,
            batch_size=batch_size,
            save_steps=10 * steps,
            logging_steps=steps,
            seed=seed,
            save_only_model=True,
            **kw,
        )
    )
    return {"tokens": result["input_tokens_seen"], "seconds": result["train_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n-examples", type=int, default=600)
    parser.add_argument("--pack-len", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from synthesis.schema import write_triples

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = build_base(root, args.seed)
        data = write_triples(root / "mixed.jsonl", mixed_length_triples(args.n_examples, 0))
        from synthesis.schema import load_triples
        from training.formats import encode_many
        from training.modeling import load_tokenizer

        triples, _ = load_triples(data)
        lens = sorted(len(e) for e in encode_many(triples, "follow", load_tokenizer(base))[0])
        mean_len = sum(lens) / len(lens)
        print(
            f"data: {len(lens)} examples, tokens min {lens[0]} median {lens[len(lens) // 2]} "
            f"max {lens[-1]} mean {mean_len:.0f}"
        )
        # warm-up (first-touch allocations, thread pools) so no run pays it alone
        run_baseline(base, data, 3, args.batch_size, args.seed)
        results = {"baseline (HF Trainer, padded, random)": None}
        results["baseline (HF Trainer, padded, random)"] = run_baseline(
            base, data, args.steps, args.batch_size, args.seed
        )
        results["diag train (length-grouped)"] = run_diag(
            base, data, root / "grouped", args.steps, args.batch_size, args.seed
        )
        rows_per_step = max(1, round(args.batch_size * mean_len / args.pack_len))
        results[f"diag train --packing ({rows_per_step} x {args.pack_len})"] = run_diag(
            base,
            data,
            root / "packed",
            args.steps,
            rows_per_step,
            args.seed,
            packing=True,
            max_len=args.pack_len,
        )
    base_rate = None
    print(f"\n{'run':48s} {'tokens':>9s} {'seconds':>8s} {'tok/s':>8s} {'ratio':>6s}")
    for name, r in results.items():
        rate = r["tokens"] / r["seconds"]
        base_rate = base_rate or rate
        print(
            f"{name:48s} {r['tokens']:9d} {r['seconds']:8.2f} {rate:8.0f} {rate / base_rate:6.2f}x"
        )
    print(f"(load average at the end: {os.getloadavg()[0]:.2f}; measure on an idle machine)")


if __name__ == "__main__":
    main()
