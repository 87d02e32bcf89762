"""Benchmark the scoring diagnostics against their baselines, measured side by side in one run.

    make bench-diag                        # or: .venv/bin/python bench/bench_diag.py
    .venv/bin/python bench/bench_diag.py --parts a,c --examples 400 --repeats 3
    .venv/bin/python bench/bench_diag.py --parts c --kl-tokens 4096 --kl-vocab 150000
    .venv/bin/python bench/bench_diag.py --threads 1     # stable ratios on a shared machine

Parts (a registry: adding a part is one decorated function, `@bench_part("x", "help")`):
(a) `diag ppl` + `diag kl` wall time vs the floor: a bare batched forward (`model(ids, mask)`,
    full logits, nothing else) of the same models over the same padded, length-sorted batches,
    models loaded once each. `diag` is timed end to end through its `main()` (tokenising, loading,
    scoring, parquet, bootstrap summaries, manifest); the floor includes loading the models.
    Also its scoring phase alone (manifest `timings_s.score`) vs the floor's forward alone.
    The tiny model (`tiny` preset: Llama, vocab 1024, hidden 64, 2 layers), base + short SFT in
    `follow` and `precede`. Target: wall ratio <= 1.3x.
(b) `diag ppl` vs lm-evaluation-harness `HFLM.loglikelihood` (package `lm-eval`, installed by
    `make bench-diag`, not a project dependency) on the same local model dir and examples:
    requests (context = prompt [+ text before the span], continuation = span text) for the cot
    and code spans. Speed: end to end (load + score) and scoring alone. Agreement: lm-eval
    tokenises context + continuation as one string and moves the context's trailing whitespace
    into the continuation, so per request we check whether its token ids equal ours, and compare
    its log-likelihood with the sum of our per-token log-probs (the very arrays diag ppl sums)
    over the positions it scores. Target: lm-eval time / diag time >= 1.0x.
(c) peak memory (max RSS of a fresh subprocess per measurement: VmHWM of /proc/self/status,
    which counts torch's CPU allocations, unlike tracemalloc) of `diag kl` (kl.main) on a
    randomly initialised Llama with a large vocabulary (default 150k; hidden 64, 2 layers) and
    one sequence of --kl-tokens tokens (default 4096), vs a process that loads the model and
    runs its own forward pass (full logits) on the same ids, and vs the naive computation
    (both models' full logits, fp32 log_softmax, sum p*(log p - log q)). Also the RSS after
    loading alone. Target: diag kl peak / forward peak <= 1.2x.
(d) peak memory (fresh subprocesses, VmHWM) of `diag attn` (attn.main, --backend hf and tl) on
    one ~2k-token sequence through a random Llama (hidden 64, 4 layers, 8 heads, max position
    4096) vs a process caching every layer's full pattern (`output_attentions=True`, eager).
    Target: diag attn (hf) peak / output_attentions peak <= 0.8x.

Timings take the best of --repeats runs (the machine is shared); the load average is printed
beside them. Figures on a busy machine are indicative only: re-measure on an idle machine.
Exits 1 when a measured target is missed.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


@dataclass
class Outcome:
    """What a part measured: printed lines, and (name, value, target, higher_is_better)."""

    lines: list[str] = field(default_factory=list)
    checks: list[tuple[str, float, float, bool]] = field(default_factory=list)

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)

    def check(self, name: str, value: float, target: float, higher_is_better: bool) -> None:
        self.checks.append((name, value, target, higher_is_better))

    def passed(self) -> bool:
        return all((v >= t) if hi else (v <= t) for _, v, t, hi in self.checks)


PARTS: dict[str, tuple[str, Callable[[Any], Outcome]]] = {}


def bench_part(name: str, help_text: str) -> Callable:
    def register(fn: Callable[[Any], Outcome]) -> Callable[[Any], Outcome]:
        PARTS[name] = (help_text, fn)
        return fn

    return register


def load_note() -> str:
    import torch

    one, five, _ = os.getloadavg()
    return (
        f"load avg {one:.2f}/{five:.2f} on {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads"
    )


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(min, median) seconds of `repeats` calls after one untimed warm-up call (first imports,
    allocator and kernel warm-up), and the last call's result."""
    fn()
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), result


class Context:
    """Lazily built, shared inputs: tiny base + SFT runs, and the triples they are scored on."""

    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args = args
        self.workdir = workdir
        self._runs: dict[str, Path] | None = None

    @property
    def data(self) -> Path:
        from helpers import write_test_triples

        path = self.workdir / "triples.jsonl"
        if not path.exists():
            write_test_triples(path, n=self.args.examples, seed=1, splits=False)
        return path

    def runs(self) -> dict[str, Path]:
        """{'base': dir, 'follow': run dir, 'precede': run dir} (built once, a few seconds)."""
        if self._runs is None:
            from plumbing import read_manifest
            from training.pretrain import PretrainConfig
            from training.pretrain import main as pretrain
            from training.sft import TrainConfig
            from training.sft import main as sft

            def finished(path: Path) -> bool:  # reuse what a kept --workdir already holds
                return path.is_dir() and (read_manifest(path) or {}).get("status") == "finished"

            base = self.workdir / "base"
            if not finished(base):
                pretrain(PretrainConfig(out=str(base), preset="tiny", seed=0, overwrite=True))
            self._runs = {"base": base}
            for fmt in ("follow", "precede"):
                out = self.workdir / fmt
                self._runs[fmt] = out
                if finished(out):
                    continue
                sft(TrainConfig(data=str(self.data), format=fmt, base=str(base), out=str(out),
                                max_steps=8, save_steps=8, batch_size=8, lr=3e-3,
                                overwrite=True))  # fmt: skip
        return self._runs


# ---------------------------------------------------------------------------------------------
# (a) wall time vs a bare forward


def floor_seconds(pairs: list[tuple[Path, Path | None]], fmt_of: dict[Path, str], ctx) -> float:
    """Load models once each and run bare batched forwards: [(model, base or None)]."""
    import torch

    from diagnostics.common import padded_batches
    from diagnostics.scoring import ExampleCache
    from training.modeling import load_model, load_tokenizer

    tok = load_tokenizer(pairs[0][0])
    cache = ExampleCache(ctx.data, "all")
    batches = {
        fmt: list(padded_batches(cache.get(fmt, tok)[0], ctx.args.batch_size, tok.pad_token_id))
        for fmt in set(fmt_of.values())
    }  # tokenising is not part of the floor
    t0 = time.perf_counter()
    loaded: dict[Path, Any] = {}
    for model_dir, base_dir in pairs:
        models = [load_model(model_dir, dtype="fp32", device="cpu")]
        if base_dir is not None:
            if base_dir not in loaded:
                loaded[base_dir] = load_model(base_dir, dtype="fp32", device="cpu")
            models.append(loaded[base_dir])
        with torch.inference_mode():
            for batch in batches[fmt_of[model_dir]]:
                for model in models:
                    _ = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return time.perf_counter() - t0


def forward_only_seconds(pairs, fmt_of, ctx) -> float:
    """The floor's forward passes alone (models already loaded), for the scoring-phase ratio."""
    import torch

    from diagnostics.common import padded_batches
    from diagnostics.scoring import ExampleCache
    from training.modeling import load_model, load_tokenizer

    tok = load_tokenizer(pairs[0][0])
    cache = ExampleCache(ctx.data, "all")
    models = {}
    for model_dir, base_dir in pairs:
        for d in (model_dir, base_dir):
            if d is not None and d not in models:
                models[d] = load_model(d, dtype="fp32", device="cpu")
    t0 = time.perf_counter()
    with torch.inference_mode():
        for model_dir, base_dir in pairs:
            fmt = fmt_of[model_dir]
            examples = cache.get(fmt, tok)[0]
            for batch in padded_batches(examples, ctx.args.batch_size, tok.pad_token_id):
                for d in (model_dir, base_dir):
                    if d is not None:
                        models[d](input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    return time.perf_counter() - t0


@bench_part("a", "diag ppl + diag kl wall time vs a bare batched forward (target <= 1.3x)")
def part_a(ctx: Context) -> Outcome:
    from diagnostics.kl import KlConfig
    from diagnostics.kl import main as kl_main
    from diagnostics.ppl import PplConfig
    from diagnostics.ppl import main as ppl_main

    out = Outcome()
    runs = ctx.runs()
    finals = {fmt: runs[fmt] / "final" for fmt in ("follow", "precede")}
    fmt_of = {path: fmt for fmt, path in finals.items()}
    common = {"data": str(ctx.data), "split": "all", "batch_size": ctx.args.batch_size}
    scoring: dict[str, float] = {}

    def run(cmd: str) -> None:
        target = ctx.workdir / f"out_{cmd}"
        models = [str(runs["follow"]), str(runs["precede"])]
        if cmd == "ppl":
            ppl_main(PplConfig(model=models, out=str(target), overwrite=True, **common))
        else:
            kl_main(KlConfig(model=models, out=str(target), overwrite=True, **common))
        manifest = json.loads((target / "manifest.json").read_text())
        scoring[cmd] = manifest["timings_s"]["score"]

    n_tokens = sum(len(e) for e in _examples(ctx, finals["follow"], "follow"))
    out.say(f"(a) {ctx.args.examples} examples, ~{n_tokens} tokens per format, batch "
            f"{ctx.args.batch_size}, 2 fine-tuned models + base; {load_note()}")  # fmt: skip
    ppl_best, ppl_med, _ = best_of(ctx.args.repeats, lambda: run("ppl"))
    ppl_score = scoring["ppl"]
    kl_best, kl_med, _ = best_of(ctx.args.repeats, lambda: run("kl"))
    kl_score = scoring["kl"]
    ppl_pairs = [(finals["follow"], None), (finals["precede"], None)]
    kl_pairs = [(finals["follow"], runs["base"]), (finals["precede"], runs["base"])]
    floor_ppl, floor_ppl_med, _ = best_of(
        ctx.args.repeats, lambda: floor_seconds(ppl_pairs, fmt_of, ctx)
    )
    floor_kl, floor_kl_med, _ = best_of(
        ctx.args.repeats, lambda: floor_seconds(kl_pairs, fmt_of, ctx)
    )
    fwd_ppl = min(forward_only_seconds(ppl_pairs, fmt_of, ctx) for _ in range(ctx.args.repeats + 1))
    fwd_kl = min(forward_only_seconds(kl_pairs, fmt_of, ctx) for _ in range(ctx.args.repeats + 1))
    out.say(f"    diag ppl  {ppl_best:.2f} s (median {ppl_med:.2f}) | floor {floor_ppl:.2f} s "
            f"(median {floor_ppl_med:.2f}) | ratio {ppl_best / floor_ppl:.2f}x")  # fmt: skip
    out.say(f"    diag kl   {kl_best:.2f} s (median {kl_med:.2f}) | floor {floor_kl:.2f} s "
            f"(median {floor_kl_med:.2f}) | ratio {kl_best / floor_kl:.2f}x")  # fmt: skip
    total = (ppl_best + kl_best) / (floor_ppl + floor_kl)
    out.say(f"    scoring phase alone: ppl {ppl_score:.2f} s vs forward {fwd_ppl:.2f} s "
            f"({ppl_score / fwd_ppl:.2f}x); kl {kl_score:.2f} s vs forward {fwd_kl:.2f} s "
            f"({kl_score / fwd_kl:.2f}x)  [last run's score timing]")  # fmt: skip
    out.say(f"    ratio (diag ppl + diag kl) / floor: {total:.2f}x (target <= 1.3x)")
    out.check("a: (ppl+kl)/floor", total, 1.3, higher_is_better=False)
    return out


def _examples(ctx: Context, model_dir: Path, fmt: str) -> list[Any]:
    from diagnostics.scoring import ExampleCache
    from training.modeling import load_tokenizer

    return ExampleCache(ctx.data, "all").get(fmt, load_tokenizer(model_dir))[0]


# ---------------------------------------------------------------------------------------------
# (b) against lm-evaluation-harness


def lm_eval_requests(examples: list[Any]) -> list[tuple[str, str, Any, str]]:
    """(context, continuation, example, span) for the cot and code spans of each example."""
    reqs = []
    for ex in examples:
        r = ex.rendered
        for span in ("cot", "code"):
            start = next(s.start for s in r.spans if s.name == span)
            reqs.append((r.text[:start], r.span_text(span), ex, span))
    return reqs


@bench_part("b", "diag ppl vs lm-eval HFLM.loglikelihood: speed (target >= 1.0x) and agreement")
def part_b(ctx: Context) -> Outcome:
    try:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        raise SystemExit(
            "part (b) needs lm-eval: .venv/bin/pip install -c constraints.txt lm-eval "
            "(make bench-diag does it)"
        ) from None
    import numpy as np

    from diagnostics.common import ModelRef
    from diagnostics.forward import score_examples
    from diagnostics.ppl import PplConfig
    from diagnostics.ppl import main as ppl_main
    from diagnostics.scoring import Placement, load_scorer
    from training.formats import SPAN_ID
    from training.modeling import load_tokenizer

    out = Outcome()
    model_dir = ctx.runs()["follow"] / "final"
    bs = ctx.args.batch_size
    examples = _examples(ctx, model_dir, "follow")
    reqs = lm_eval_requests(examples)
    out.say(f"(b) follow model, {len(examples)} examples = {len(reqs)} lm-eval requests "
            f"(cot, code), batch {bs}; {load_note()}")  # fmt: skip
    timing: dict[str, Any] = {}

    def diag() -> None:
        target = ctx.workdir / "out_b_ppl"
        cfg = PplConfig(model=[str(model_dir)], data=str(ctx.data), split="all", out=str(target),
                        batch_size=bs, overwrite=True)  # fmt: skip
        ppl_main(cfg)
        timing["diag_score"] = json.loads((target / "manifest.json").read_text())["timings_s"][
            "score"
        ]

    def harness() -> list[float]:
        t0 = time.perf_counter()
        lm = HFLM(pretrained=str(model_dir), device="cpu", batch_size=bs, dtype="float32")
        t1 = time.perf_counter()
        inst = [Instance(request_type="loglikelihood", doc={}, arguments=(c, k), idx=i)
                for i, (c, k, _, _) in enumerate(reqs)]  # fmt: skip
        res = lm.loglikelihood(inst, disable_tqdm=True)
        timing["lm_score"] = time.perf_counter() - t1
        timing["lm_load"] = t1 - t0
        timing["lm"] = lm
        return [ll for ll, _ in res]

    diag_best, diag_med, _ = best_of(ctx.args.repeats, diag)
    diag_score = timing["diag_score"]
    lm_best, lm_med, lls = best_of(ctx.args.repeats, harness)
    lm_score = timing["lm_score"]
    out.say(f"    end to end: diag ppl {diag_best:.2f} s (median {diag_med:.2f}) | lm-eval "
            f"{lm_best:.2f} s (median {lm_med:.2f}) | lm-eval / diag {lm_best / diag_best:.2f}x")  # fmt: skip
    out.say(f"    scoring alone: diag ppl {diag_score:.3f} s | lm-eval loglikelihood "
            f"{lm_score:.3f} s | lm-eval / diag {lm_score / diag_score:.2f}x  [last run]")  # fmt: skip
    out.check("b: lm-eval / diag ppl (end to end)", lm_best / diag_best, 1.0, True)

    # agreement, on the per-token log-probs diag ppl sums (same code path, same batches)
    tok = load_tokenizer(model_dir)
    scorer = load_scorer(
        ModelRef.from_path(model_dir), dtype="fp32", placement=Placement("cpu"), chunk_rows=0
    )
    items = {
        it["example"].id: it
        for it in score_examples(
            examples, scorer, batch_size=bs, pad_token_id=tok.pad_token_id, skip_prompt=False
        )
    }
    ppl = pd_read(ctx.workdir / "out_b_ppl" / "ppl.parquet")
    same_ids = same_split = 0
    diffs, split_diffs = [], []
    for (context, cont, ex, span), ll in zip(reqs, lls):
        ctx_ids, cont_ids = timing["lm"]._encode_pair(context, cont)
        whole = ctx_ids + cont_ids
        if whole != ex.input_ids[: len(whole)]:
            continue
        same_ids += 1
        it = items[ex.id]
        lo, hi = len(ctx_ids), len(whole)  # positions lm-eval scores: [lo, hi)
        sel = (it["pos"] >= lo) & (it["pos"] < hi)
        diffs.append(abs(ll + float(it["nll"][sel].sum())))
        ours = [i for i, s in enumerate(ex.span_ids) if s == SPAN_ID[span]]
        if ours == list(range(lo, hi)):
            same_split += 1
            row = ppl[(ppl.example_id == ex.id) & (ppl.span == span)]
            split_diffs.append(abs(ll + float(row.nll_sum.iloc[0])))
    out.say(f"    token ids identical to ours in {same_ids}/{len(reqs)} requests; on those, "
            f"|lm-eval loglik - our summed log-probs over its positions|: max "
            f"{max(diffs, default=float('nan')):.2e}, mean {np.mean(diffs) if diffs else float('nan'):.2e} nats")  # fmt: skip
    out.say(f"    same context/continuation split as our span in {same_split}/{len(reqs)} "
            f"(lm-eval moves the context's trailing whitespace into the continuation)"
            + (f"; there |lm-eval - (-nll_sum)| max {max(split_diffs):.2e}" if split_diffs else ""))  # fmt: skip
    if diffs:
        out.check("b: agreement max abs diff (nats)", max(diffs), 1e-3, False)
    return out


def pd_read(path: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(path)


# ---------------------------------------------------------------------------------------------
# (c) peak memory of diag kl at a large vocabulary


def make_big_vocab_models(ctx: Context) -> tuple[Path, Path, Path]:
    """(ft dir, base dir, triples file): two random Llamas (vocab --kl-vocab, hidden 64, 2 layers)
    sharing a small tokenizer, and one triple of about --kl-tokens tokens."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from synthesis.schema import Triple, write_triples
    from training.formats import encode
    from training.pretrain import SPECIAL_TOKENS, train_tokenizer

    root = ctx.workdir / "bigvocab"
    data = root / "triples.jsonl"
    if data.exists():
        return root / "ft", root / "base", data
    code_lines = [f"def f{i}(x):\n    return x * {i} + {i * 7} - len(str(x))\n" for i in range(400)]
    text = "".join(code_lines)
    tok = train_tokenizer([text, "We reason about each step of the problem carefully.\n" * 50], 512)
    assert SPECIAL_TOKENS[0] in tok.get_vocab()
    lines, cot = [], "We reason about each step of the problem carefully.\n" * 8
    triple = Triple(id="long", problem="Write many functions.", cot=cot, code="", tests=["pass"])
    for line in code_lines * 8:  # grow the code until the example has the wanted length
        lines.append(line)
        triple.code = "".join(lines)
        if len(encode(triple, "follow", tok)) >= ctx.args.kl_tokens:
            break
    write_triples(data, [triple])
    for name, seed in (("ft", 1), ("base", 2)):
        import torch

        torch.manual_seed(seed)
        cfg = LlamaConfig(vocab_size=ctx.args.kl_vocab, hidden_size=64, intermediate_size=176,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                          max_position_embeddings=8192, tie_word_embeddings=False,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id)  # fmt: skip
        LlamaForCausalLM(cfg).save_pretrained(root / name)
        tok.save_pretrained(root / name)
    return root / "ft", root / "base", data


def measure_child(kind: str, ft: str, base: str, data: str, out: str) -> dict[str, Any]:
    """Runs in a fresh subprocess: one measurement, peak RSS = VmHWM of /proc/self/status
    (getrusage's maxrss would carry the parent's peak across fork + exec)."""
    import torch

    from diagnostics.scoring import ExampleCache
    from training.modeling import load_model, load_tokenizer

    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    n_tokens = None
    if kind == "kl":
        from diagnostics.kl import KlConfig, main

        main(KlConfig(model=[ft], base=base, data=data, split="all", format="follow", out=out,
                      batch_size=1, overwrite=True, n_resamples=100))  # fmt: skip
    else:
        tok = load_tokenizer(base)
        ids = torch.tensor([ExampleCache(data, "all").get("follow", tok)[0][0].input_ids])
        n_tokens = ids.shape[1]
        models = [load_model(ft, dtype="fp32", device="cpu")]
        if kind == "naive":
            models.append(load_model(base, dtype="fp32", device="cpu"))
        if kind == "forward":
            _ = models[0](input_ids=ids).logits
        elif kind == "naive":
            lp = torch.log_softmax(models[0](input_ids=ids).logits.float(), dim=-1)
            lq = torch.log_softmax(models[1](input_ids=ids).logits.float(), dim=-1)
            (lp.exp() * (lp - lq)).sum(-1)
    status = Path("/proc/self/status").read_text()
    peak_kb = int(status.split("VmHWM:")[1].split()[0])
    return {"kind": kind, "peak_mb": peak_kb / 1024, "seconds": time.perf_counter() - t0,
            "n_tokens": n_tokens}  # fmt: skip


def run_child(kind: str, ft: Path, base: Path, data: Path, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--_child", kind, str(ft), str(base), str(data), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


@bench_part("c", "peak RSS of diag kl at a 150k vocabulary vs its forward pass (target <= 1.2x)")
def part_c(ctx: Context) -> Outcome:
    out = Outcome()
    ft, base, data = make_big_vocab_models(ctx)
    v, n = ctx.args.kl_vocab, ctx.args.kl_tokens
    out.say(f"(c) random Llama, vocab {v}, hidden 64, 2 layers; one sequence of ~{n} tokens; "
            f"one fp32 [tokens, vocab] tensor = {n * v * 4 / 2**20:.0f} MiB; {load_note()}")  # fmt: skip
    res = {
        k: run_child(k, ft, base, data, ctx.workdir / "out_c_kl") for k in ("load", "forward", "kl")
    }
    need = 5.5 * n * v * 4 / 2**20
    if ctx.args.skip_naive or available_mb() < need + 2048:
        out.say(f"    naive: skipped (needs ~{need:.0f} MiB; {available_mb():.0f} MiB available)")
    else:
        res["naive"] = run_child("naive", ft, base, data, ctx.workdir / "out_c_kl")
    for kind, r in res.items():
        what = {"load": "load one model, no forward", "forward": "model(ids).logits (one model)",
                "kl": "diag kl (kl.main: ft + base, chunked)",
                "naive": "naive: both full logits, log_softmax, sum p*(lp-lq)"}[kind]  # fmt: skip
        out.say(f"    {what:<52} peak RSS {r['peak_mb']:8.0f} MiB  ({r['seconds']:.1f} s)")
    ratio = res["kl"]["peak_mb"] / res["forward"]["peak_mb"]
    out.say(f"    ratio diag kl / forward peak: {ratio:.2f}x (target <= 1.2x)"
            + (f"; naive / forward: {res['naive']['peak_mb'] / res['forward']['peak_mb']:.2f}x"
               if "naive" in res else ""))  # fmt: skip
    out.check("c: kl/forward peak RSS", ratio, 1.2, higher_is_better=False)
    return out


# ---------------------------------------------------------------------------------------------
# (d) peak memory of diag attn at a long context (hooks) vs caching every layer's pattern


@bench_part("d", "peak RSS of diag attn at 2k tokens vs output_attentions=True (target <= 0.8x)")
def part_d(ctx: Context) -> Outcome:
    """A random Llama (hidden 64, 4 layers, 8 heads, max position 4096; the tiny base's
    tokenizer) and one `follow` triple of ~2048 tokens (`ctx.args.attn_tokens` if set). Fresh
    subprocesses, peak = VmHWM of /proc/self/status (getrusage's maxrss keeps the parent's
    high-water mark across fork+exec, which inflates small peaks): load only;
    `output_attentions=True` with eager attention
    (every layer's [heads, T, T] pattern kept, then reduced with the same span_masses); and
    `diag attn` end to end (attn.main) with --backend hf and tl (hooks sum each layer)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from synthesis.schema import Triple, write_triples
    from training.formats import encode
    from training.modeling import load_tokenizer

    child = (
        "import json, resource, sys, time\n"
        "kind, model_dir, data, out = sys.argv[1:5]\n"
        "import torch\n"
        "torch.set_grad_enabled(False)\n"
        "from diagnostics.common import load_examples\n"
        "from training.modeling import load_model, load_tokenizer\n"
        "t0 = time.perf_counter()\n"
        "if kind.startswith('attn-'):\n"
        "    from diagnostics.attn import AttnConfig, main\n"
        "    main(AttnConfig(model=[model_dir], data=data, split='all', format='follow', out=out,"
        " batch_size=1, backend=kind[5:], dtype='fp32', device='cpu', n_resamples=100,"
        " overwrite=True))\n"
        "else:\n"
        "    from diagnostics.attn import span_indicators, span_masses\n"
        "    tok = load_tokenizer(model_dir)\n"
        "    ex = load_examples(data, 'all', 'follow', tok)[0][0]\n"
        "    model = load_model(model_dir, dtype='fp32', device='cpu', attn_implementation='eager')\n"
        "    if kind == 'full':\n"
        "        ids = torch.tensor([ex.input_ids])\n"
        "        attentions = model(input_ids=ids, output_attentions=True).attentions\n"
        "        assert len(attentions) == model.config.num_hidden_layers\n"
        "        q_weight, k_ind, _ = span_indicators(torch.tensor([ex.span_ids]))\n"
        "        masses = [span_masses(a, q_weight, k_ind) for a in attentions]\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
        "maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps({'peak_mb': int(status) / 1024, 'maxrss_mb': maxrss,"
        " 'seconds': time.perf_counter() - t0}))\n"
    )
    out = Outcome()
    root = ctx.workdir / "longctx"
    model_dir, data = root / "model", root / "triples.jsonl"
    tok = load_tokenizer(ctx.runs()["base"])
    cot = "".join(f"Step {i}: take item {i} and add it to the running total.\n" for i in range(60))
    triple = Triple(id="long", problem="Sum many things.", cot=cot, code="", tests=["pass"])
    lines: list[str] = []
    n, want = 0, getattr(ctx.args, "attn_tokens", 2048)
    while n < want:
        lines.append(f"def f{len(lines)}(x):\n    return x * {len(lines)} + 7\n")
        triple.code = "".join(lines)
        n = len(encode(triple, "follow", tok))
    if not data.exists():
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=176,
                          num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=8,
                          max_position_embeddings=4096, bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
        LlamaForCausalLM(cfg).save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        write_triples(data, [triple])
    layer_mb = 8 * n * n * 4 / 2**20
    out.say(f"(d) random Llama, hidden 64, 4 layers, 8 heads; one `follow` sequence of {n} "
            f"tokens; one layer's fp32 pattern {layer_mb:.0f} MiB, all layers "
            f"{4 * layer_mb:.0f} MiB; {load_note()}")  # fmt: skip
    what = {"load": "load the model (eager), no forward",
            "full": "output_attentions=True: every layer's pattern kept",
            "attn-hf": "diag attn --backend hf (hooks, summed per layer)",
            "attn-tl": "diag attn --backend tl (TransformerBridge hooks)"}  # fmt: skip
    res: dict[str, dict[str, float]] = {}
    for kind in what:
        cmd = [sys.executable, "-c", child, kind, str(model_dir), str(data),
               str(ctx.workdir / f"out_d_{kind}")]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"(d) {kind} measurement failed:\n{done.stderr[-3000:]}")
        res[kind] = json.loads(done.stdout.strip().splitlines()[-1])
        over = res[kind]["peak_mb"] - res["load"]["peak_mb"]
        out.say(f"    {what[kind]:<52} peak RSS {res[kind]['peak_mb']:6.0f} MiB "
                f"(+{over:4.0f} over load)  ({res[kind]['seconds']:.1f} s)")  # fmt: skip
    ratio = res["attn-hf"]["peak_mb"] / res["full"]["peak_mb"]
    tl_ratio = res["attn-tl"]["peak_mb"] / res["full"]["peak_mb"]
    above = (res["attn-hf"]["peak_mb"] - res["load"]["peak_mb"]) / max(
        res["full"]["peak_mb"] - res["load"]["peak_mb"], 1e-9
    )
    out.say(f"    ratio diag attn / output_attentions peak: hf {ratio:.2f}x (target <= 0.8x), "
            f"tl {tl_ratio:.2f}x; above-load ratio (hf) {above:.2f}x")  # fmt: skip
    out.check("d: attn (hf) / full-pattern peak RSS", ratio, 0.8, higher_is_better=False)
    return out


# ---------------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--_child":
        kind, ft, base, data, out = sys.argv[2:7]
        print(json.dumps(measure_child(kind, ft, base, data, out)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts_help = "; ".join(f"{k}: {h}" for k, (h, _) in PARTS.items())
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list. {parts_help}")
    parser.add_argument("--examples", type=int, default=400, help="triples for (a) and (b)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="timings: best of N")
    parser.add_argument("--kl-vocab", type=int, default=150_000, help="(c) vocabulary size")
    parser.add_argument("--kl-tokens", type=int, default=4096, help="(c) sequence length")
    parser.add_argument("--skip-naive", action="store_true", help="(c) skip the naive peak")
    parser.add_argument("--workdir", default=None, help="keep inputs here (default: temp)")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: torch's default; on a shared "
        "machine 1 gives stable ratios: 2-thread runs beside other work swing 10-50x)"
    )  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the measurement subprocesses of (c)
    chosen = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}: choose from {', '.join(PARTS)}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        ctx = Context(args, workdir)
        outcomes = [PARTS[p][1](ctx) for p in chosen]
    print("\nSummary (re-measure on an idle machine; these share the CPUs with other work):")
    ok = True
    for outcome in outcomes:
        for name, value, target, hi in outcome.checks:
            good = (value >= target) if hi else (value <= target)
            ok &= good
            sign = ">=" if hi else "<="
            print(f"  {name}: {value:.3g} (target {sign} {target:g}) {'ok' if good else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
