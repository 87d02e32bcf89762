"""Span-level attribution with captum: how much each earlier span drives a target span's tokens.

    from diagnostics.attribution import AttributionOptions, span_attribution
    per_example, info = span_attribution(model, tokenizer, examples, AttributionOptions())
    # or: diag attn ... --attribution [--attribution-methods ablation,ig] [--ig-steps 16]

The quantity (teacher forced, one example at a time). For a target span T (cot or code) and the
sequence cut after T's last token, `f(x) = sum_{t in T} log p(x_t | x_<t)` with the ORIGINAL
token ids x_t as labels. Every position belongs to one feature group: prompt, cot, code, or
`other` (glue, eos). The baseline input replaces every token by `--baseline-token` (pad by
default; unk/eos/bos or an integer id) except the tokens of T itself, which are never altered.
Scores are divided by |T|, so they read as nats per target token:

- `captum:FeatureAblation` (method key `ablation`): captum.attr.FeatureAblation with a span
  feature mask (one feature per group, all groups in one batched forward):
  `score(S -> T) = (f(x) - f(x with S's tokens set to the baseline)) / |T|`. Positive: S
  supports T. Exactly the manual replacement (tested).
- `captum:LayerIntegratedGradients` (key `ig`): captum.attr.LayerIntegratedGradients on the
  input embedding layer, from the baseline's embeddings to the input's, `--ig-steps` steps
  (Gauss-Legendre); a token's attribution is summed over the embedding dimension, a span's over
  its tokens. Completeness: the scores of all groups sum to `(f(x) - f(baseline)) / |T|` up to
  the convergence delta, which is recorded per example (column `delta`).

captum's LLMAttribution wrappers are not used: they re-tokenize text (our spans are token-exact
through training.formats) and attribute per token; span groups need the feature mask above.

Rows (attribution_examples.parquet): example_id, method, src (the ablated group), dst (the
target span), score, n_src_tokens, n_dst_tokens, target_logprob (f(x) / |T|), delta. Which
pairs exist follows from the order: in `follow`, cot -> code (code is the target, cot comes
first); in `precede`, code -> cot. A span after the target never influences it and is not listed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from plumbing import InputError
from training.formats import SPAN_ID

METHODS = {
    "ablation": "captum:FeatureAblation",
    "ig": "captum:LayerIntegratedGradients",
}
METHOD_ALIASES = {"integrated_gradients": "ig", "feature_ablation": "ablation"}
GROUPS = ("prompt", "cot", "code", "other")  # feature groups (other = glue + eos)
TARGETS = ("cot", "code")
BASELINE_TOKENS = ("pad", "unk", "eos", "bos")


@dataclass(frozen=True)
class AttributionOptions:
    methods: tuple[str, ...] = ("ablation", "ig")
    ig_steps: int = 16
    baseline_token: str = "pad"  # pad | unk | eos | bos | an integer token id
    ig_internal_batch: int = 16


def resolve_methods(methods: tuple[str, ...]) -> list[str]:
    out = []
    for m in methods:
        key = METHOD_ALIASES.get(m, m)
        if key not in METHODS:
            raise InputError(
                f"--attribution-methods {m!r}: choose from {', '.join(METHODS)} "
                f"({'; '.join(f'{k}: {v}' for k, v in METHODS.items())})"
            )
        out.append(key)
    if not out:
        raise InputError("--attribution-methods: give at least one method")
    return out


def baseline_token_id(tokenizer: Any, name: str) -> int:
    if name.lstrip("-").isdigit():
        token_id = int(name)
        if not 0 <= token_id < len(tokenizer):
            raise InputError(f"--baseline-token {name}: not a token id of this tokenizer")
        return token_id
    if name not in BASELINE_TOKENS:
        raise InputError(
            f"--baseline-token {name!r}: choose from {', '.join(BASELINE_TOKENS)} or a token id"
        )
    token_id = getattr(tokenizer, f"{name}_token_id", None)
    if token_id is None:
        raise InputError(f"--baseline-token {name}: the tokenizer defines no {name} token")
    return int(token_id)


def group_ids(span_ids: list[int]) -> list[int]:
    """Feature group of each position: index into GROUPS."""
    table = {SPAN_ID["prompt"]: 0, SPAN_ID["cot"]: 1, SPAN_ID["code"]: 2}
    return [table.get(s, 3) for s in span_ids]


def target_logprob(model: Any, ids: Any, positions: Any, labels: Any) -> Any:
    """Summed log-prob of `labels` at `positions` given ids: [n] for ids [n, seq].

    positions [k] long (each >= 1), labels [k] long: the original tokens at those positions.
    """
    import torch

    logits = model(input_ids=ids, use_cache=False).logits  # [n, seq, vocab]
    logp = torch.log_softmax(logits[:, positions - 1].float(), dim=-1)  # [n, k, vocab]
    index = labels.view(1, -1, 1).expand(ids.shape[0], -1, 1)
    return logp.gather(-1, index).squeeze(-1).sum(-1)  # [n]


def _one_target(
    model: Any,
    example: Any,
    target: str,
    methods: list[str],
    opts: AttributionOptions,
    baseline_id: int,
    device: Any,
) -> list[dict[str, Any]]:
    import torch
    from captum.attr import FeatureAblation, LayerIntegratedGradients

    t_id = SPAN_ID[target]
    span_ids = example.span_ids
    positions = [i for i, s in enumerate(span_ids) if s == t_id and i >= 1]
    if not positions:
        return []
    end = positions[-1] + 1
    ids = torch.tensor([example.input_ids[:end]], device=device)  # [1, T]
    groups = torch.tensor([group_ids(span_ids[:end])], device=device)  # [1, T]
    pos = torch.tensor(positions, device=device)  # [k]
    labels = ids[0, pos]  # [k]
    is_target = torch.zeros_like(ids, dtype=torch.bool)
    is_target[0, pos] = True
    baseline = torch.where(is_target, ids, torch.full_like(ids, baseline_id))  # [1, T]
    n_target = len(positions)
    present = [g for g in range(len(GROUPS)) if bool((groups == g).any()) and GROUPS[g] != target]
    n_src = {g: int(((groups == g) & ~is_target).sum()) for g in present}

    def forward(batch_ids: Any) -> Any:
        return target_logprob(model, batch_ids, pos, labels)  # [n]

    with torch.no_grad():
        f_x = float(forward(ids)[0])
    rows = []
    base = {"example_id": example.id, "dst": target, "n_dst_tokens": n_target}
    for method in methods:
        if method == "ablation":
            with torch.no_grad():
                attr = FeatureAblation(forward).attribute(
                    ids,
                    baselines=baseline,
                    feature_mask=groups,
                    perturbations_per_eval=len(GROUPS),
                )  # [1, T]: each position holds its group's score
            for g in present:
                first = int((groups[0] == g).nonzero()[0])
                rows.append(
                    {
                        **base,
                        "method": METHODS[method],
                        "src": GROUPS[g],
                        "score": float(attr[0, first]) / n_target,
                        "n_src_tokens": n_src[g],
                        "target_logprob": f_x / n_target,
                        "delta": math.nan,
                    }
                )
        else:
            lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
            attr, delta = lig.attribute(
                ids,
                baselines=baseline,
                n_steps=opts.ig_steps,
                internal_batch_size=opts.ig_internal_batch,
                return_convergence_delta=True,
            )  # attr [1, T, hidden]
            per_token = attr.sum(-1)[0].detach()  # [T]
            for g in present:
                rows.append(
                    {
                        **base,
                        "method": METHODS[method],
                        "src": GROUPS[g],
                        "score": float(per_token[groups[0] == g].sum()) / n_target,
                        "n_src_tokens": n_src[g],
                        "target_logprob": f_x / n_target,
                        "delta": float(delta[0]) / n_target,
                    }
                )
    return rows


def span_attribution(
    model: Any,
    tokenizer: Any,
    examples: list[Any],
    opts: AttributionOptions,
    desc: str = "attribution",
) -> tuple[Any, dict[str, Any]]:
    """Per-example span attribution rows (see module docstring) for every target span present."""
    import pandas as pd

    from diagnostics.common import progress

    methods = resolve_methods(opts.methods)
    baseline_id = baseline_token_id(tokenizer, opts.baseline_token)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rows: list[dict[str, Any]] = []
    for example in progress(examples, total=len(examples), desc=desc):
        for target in TARGETS:
            rows.extend(_one_target(model, example, target, methods, opts, baseline_id, device))
    model.train(was_training)
    info = {
        "methods": {m: METHODS[m] for m in methods},
        "ig_steps": opts.ig_steps,
        "baseline_token": opts.baseline_token,
        "baseline_token_id": baseline_id,
        "n_rows": len(rows),
    }
    return pd.DataFrame(rows), info


def attribution_table(per_example: Any) -> Any:
    """attribution.parquet: mean score over examples per model x method x src x dst."""
    import pandas as pd

    cols = [
        "label",
        "base",
        "format",
        "seed",
        "step",
        "method",
        "src",
        "dst",
        "score",
        "n_examples",
    ]
    if per_example is None or len(per_example) == 0:
        return pd.DataFrame(columns=cols)
    keys = ["model", "label", "base", "format", "seed", "step", "method", "src", "dst"]
    table = (
        per_example.groupby(keys, dropna=False, sort=False)
        .agg(score=("score", "mean"), n_examples=("example_id", "nunique"))
        .reset_index()
    )
    return table[cols]


def attribution_summary(per_example: Any, opts: Any) -> Any:
    """summary_attribution: CIs per model and paired tests between models, per method and pair
    (metric `attribution:<method>:<src>-><dst>`), plus `first->second`: the response span written
    first driving the one written second (cot->code in follow, code->cot in precede)."""
    import numpy as np
    import pandas as pd

    from diagnostics.common import summary_rows
    from plumbing.stats import summary_frame

    if per_example is None or len(per_example) == 0:
        return summary_frame([])
    frame = per_example[per_example["src"].isin(["prompt", "cot", "code"])].copy()
    frame["metric_name"] = (
        "attribution:" + frame["method"] + ":" + frame["src"] + "->" + frame["dst"]
    )
    first_second = {"follow": ("cot", "code"), "precede": ("code", "cot")}
    is_first_second = [
        first_second.get(f) == (s, d)
        for f, s, d in zip(frame["format"], frame["src"], frame["dst"])
    ]
    second = frame[np.array(is_first_second, dtype=bool)].copy()
    second["metric_name"] = "attribution:" + second["method"] + ":first->second"
    both = pd.concat([frame, second], ignore_index=True)
    rows = []
    for _, group in both.groupby("metric_name"):
        rows.extend(summary_rows(group, "score", lambda f: f["metric_name"], opts))
    return summary_frame(rows)
