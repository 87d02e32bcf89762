"""Measure the toy world: families, split mix, speed, sizes, name variety, near duplicates.

    .venv/bin/python -m synthesis.toyworld.stats                 # 2000 seeds, seed 0
    .venv/bin/python -m synthesis.toyworld.stats --n 5000 --seed 1 --json out.json

Every figure is measured on the instances generated in the run: generation speed in CPU
seconds (`time.process_time`, so other processes on the machine do not inflate it); sizes in
words / lines / characters and in tokens of a byte-level BPE (vocab 1000) trained on the same
instances' text (the prototype in docs/TOYWORLD.md found ~700-1000 tokens enough); near duplicates
with MinHash LSH over 5-token shingles of the ast-normalized code (docstrings removed), as the
synthesis dedup does, plus a stricter variant with every identifier replaced by one token.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import statistics
import time
from collections import Counter
from typing import Any

from synthesis.toyworld.core import FAMILIES
from synthesis.toyworld.world import DEFAULT_OOD_FAMILIES, TOY_KEY, Instance, ToyWorld, _differs

_TOKEN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]")


def normalized_code(code: str, identifiers: bool = False) -> str:
    """ast round trip without docstrings; with `identifiers`, every name becomes `_`."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef):
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                node.body = node.body[1:] or [ast.Pass()]
        if identifiers:
            if isinstance(node, ast.Name):
                node.id = "_"
            elif isinstance(node, ast.arg):
                node.arg = "_"
            elif isinstance(node, ast.FunctionDef):
                node.name = "_"
    return ast.unparse(tree)


def near_duplicate_keep_rate(
    codes: list[str], threshold: float, identifiers: bool = False
) -> float:
    """Share of codes an LSH dedup (first seen wins) keeps at a Jaccard threshold."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    exact: set[str] = set()
    kept = 0
    for i, code in enumerate(codes):
        norm = normalized_code(code, identifiers)
        toks = _TOKEN_RE.findall(norm)
        shingles = {" ".join(toks[j : j + 5]) for j in range(max(len(toks) - 4, 1))}
        mh = MinHash(num_perm=128, seed=1)
        mh.update_batch([s.encode() for s in sorted(shingles)])
        if norm in exact or lsh.query(mh):
            continue
        exact.add(norm)
        lsh.insert(str(i), mh)
        kept += 1
    return kept / max(len(codes), 1)


def _pct(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    n = len(values)
    return {
        "mean": round(statistics.fmean(values), 1),
        "p10": values[n // 10],
        "p50": values[n // 2],
        "p90": values[9 * n // 10],
        "p99": values[99 * n // 100],
        "max": values[-1],
    }


def token_lengths(instances: list[Instance]) -> dict[str, Any]:
    """Tokens of the problem and of the follow-format response (CoT, fenced code) under a
    byte-level BPE with 1000 tokens trained on these instances."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    problems = [i.seed.instruction for i in instances]
    responses = [
        f"{i.seed.meta[TOY_KEY]['cot']}\n\n```python\n{i.seed.code}\n```" for i in instances
    ]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(problems + responses, trainers.BpeTrainer(vocab_size=1000))
    p = [len(e.ids) for e in tok.encode_batch(problems)]
    r = [len(e.ids) for e in tok.encode_batch(responses)]
    total = [a + b for a, b in zip(p, r)]
    return {
        "vocab": tok.get_vocab_size(),
        "problem": _pct(p),
        "follow_response": _pct(r),
        "problem_plus_response": _pct(total),
        "share_over_512": sum(t > 512 for t in total) / len(total),
    }


def _param_space(name: str, draws: int = 500) -> int:
    from random import Random

    fam = FAMILIES[name]
    rng = Random(f"params|{name}")
    kwargs = {"depth": 2} if fam.kind == "pipeline" else {}
    return len({json.dumps(fam.build(rng, **kwargs).params, sort_keys=True) for _ in range(draws)})


def measure(n: int = 2000, seed: int = 0, param_draws: int = 500) -> dict[str, Any]:
    world = ToyWorld(seed=seed)
    start = time.process_time()
    instances = world.instances(n)
    mix_cpu = time.process_time() - start
    start = time.process_time()
    n_test = max(n // 10, 50)
    tests = world.instances(n_test, split="test")
    test_cpu = time.process_time() - start

    seeds = [i.seed for i in instances]
    train_names = {s.entry_point for s in seeds if s.meta["split"] == "train"}
    held_names = {
        s.entry_point for s in seeds + [t.seed for t in tests] if s.meta["split"] != "train"
    }
    caught = total = 0
    for inst in instances:
        for tweak in inst.task.tweaks:
            total += 1
            try:
                outs = [tweak(*args) for args in inst.inputs]
            except Exception:
                caught += 1
                continue
            caught += any(_differs(o, e) for o, e in zip(outs, inst.expected))
    codes = [s.code for s in seeds]
    return {
        "n": n,
        "seed": seed,
        "families": {
            "total": len(FAMILIES),
            "by_kind": dict(Counter(f.kind for f in FAMILIES.values())),
            "default_ood": list(DEFAULT_OOD_FAMILIES),
            # distinct parameter combinations in `param_draws` draws: the size of small
            # families' parameter spaces (a pipeline family's is far larger than 500)
            "param_draws": param_draws,
            "distinct_params": {name: _param_space(name, param_draws) for name in FAMILIES},
        },
        "speed": {
            "mix_per_cpu_s": round(n / mix_cpu),
            "test_split_per_cpu_s": round(n_test / test_cpu),
        },
        "split_mix": dict(Counter(s.meta["split"] for s in seeds)),
        "difficulty_mix": dict(Counter(s.meta["difficulty"] for s in seeds)),
        "kind_mix": dict(Counter(s.meta["kind"] for s in seeds)),
        "style_mix": dict(Counter(s.meta["style"] for s in seeds)),
        "sizes": {
            "problem_words": _pct([len(s.instruction.split()) for s in seeds]),
            "problem_chars": _pct([len(s.instruction) for s in seeds]),
            "cot_steps": _pct([len(i.task.steps) for i in instances]),
            "cot_chars": _pct([len(s.meta[TOY_KEY]["cot"]) for s in seeds]),
            "code_lines": _pct([len(s.code.split("\n")) for s in seeds]),
            "code_chars": _pct([len(s.code) for s in seeds]),
            "seed_answer_chars": _pct([len(s.seed_answer or "") for s in seeds]),
        },
        "tokens": token_lengths(instances),
        "names": {
            "distinct_functions": len({s.entry_point for s in seeds}),
            "distinct_arguments": len(
                {a.arg for s in seeds for a in ast.parse(s.code).body[-1].args.args}
            ),
            "train_names_reused_in_val_test_ood": len(train_names & held_names),
        },
        "tests": {
            "constant_tweaks_caught": round(caught / max(total, 1), 3),
            "mean_distinct_expected": round(
                statistics.fmean(len({repr(v) for v in i.expected}) for i in instances), 2
            ),
        },
        "near_duplicates_keep_rate": {
            "jaccard_0.85": round(near_duplicate_keep_rate(codes, 0.85), 4),
            "jaccard_0.9": round(near_duplicate_keep_rate(codes, 0.9), 4),
            "jaccard_0.9_identifiers_normalized": round(
                near_duplicate_keep_rate(codes, 0.9, True), 4
            ),
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="instances in the natural mix")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = measure(args.n, args.seed)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        from plumbing import atomic_write_text

        atomic_write_text(args.json, text + "\n")
    return result


if __name__ == "__main__":
    main()
