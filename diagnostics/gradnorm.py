"""`diag gradnorm`: how hard each span pulls on the weights: ||grad_theta L_span|| per example.

    diag gradnorm --model runs/follow --model runs/precede --data triples.jsonl --out runs/gn

Definition. For one example (teacher forced, the model in eval mode: no dropout) and a span S,
`L_S = -(1/|S|) sum_{t in S} log p(x_t | x_<t)` (the mean NLL over S's tokens, t >= 1), and
`grad_norm = ||d L_S / d theta||_2` over every trainable parameter (shared parameters, e.g.
tied input/output embeddings, counted once). Spans: cot, code, and `response` (every response
token, glue and EOS included: the per-example training loss). One forward pass per example;
one backward per span (`torch.autograd.grad`, graph retained between spans).

Besides the global norm (`group` = all), the norm of each parameter group: `embed` (input
embeddings), `layer.<i>` (decoder block i), `head` (output projection when untied), `other`
(final norm, ...), so the per-layer profile of the two spans can be compared.

Outputs: gradnorm.parquet (label, format, seed, step, example_id, span, group, n_tokens, loss,
grad_norm), summary_gradnorm.parquet (per model CIs of the global norm per span, paired tests
between models, and within a model code against cot on the same examples), manifest.json.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from diagnostics.common import model_infos, model_plan, summary_rows
from diagnostics.scoring import DEVICE_MAP_HELP, MAX_MEMORY_HELP, Placement
from plumbing import InputError, atomic_write_parquet
from plumbing.runner import MAIN_TABLE, Command, RunContext, Unit, UnitResult, run_command
from plumbing.stats import stats_options
from training.formats import SPAN_ID
from training.memory import DRY_RUN_HELP

GRAD_SPANS = ("cot", "code", "response")
_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")


@dataclass
class GradNormConfig:
    """Options of `diag gradnorm`.

    Models: model (one or more), format (default: each model's), dtype, device, device_map
            (layers over several GPUs; every weight must stay resident: no offload), max_memory
    Data:   data, split, max_examples, max_len, spans (cot,code,response; default: present)
    Stats:  n_resamples, confidence, test, stats_seed
    Run:    out, resume, overwrite
    """

    model: list[str]
    data: str
    out: str
    split: str = "test"
    format: str | None = None
    spans: str | None = field(
        default=None,
        metadata={"help": "cot,code,response (comma-separated); default: those present."},
    )
    max_examples: int | None = None
    max_len: int | None = None
    dtype: str = "auto"
    device: str | None = None
    device_map: str | None = field(default=None, metadata={"help": DEVICE_MAP_HELP})
    max_memory: str | None = field(default=None, metadata={"help": MAX_MEMORY_HELP})
    n_resamples: int = 2000
    confidence: float = 0.95
    test: str = "wilcoxon"
    stats_seed: int = 0
    dry_run: bool = field(default=False, metadata={"help": DRY_RUN_HELP})
    resume: bool = False
    overwrite: bool = False


def param_group(name: str, is_input_embedding: bool, is_output: bool) -> str:
    if is_input_embedding:
        return "embed"
    if is_output:
        return "head"
    match = _LAYER_RE.search(name)
    return f"layer.{int(match.group(1))}" if match else "other"


def span_positions(span_ids: list[int], span: str) -> list[int]:
    """Positions t >= 1 whose token belongs to the span (response: every non-prompt token)."""
    if span == "response":
        return [t for t, s in enumerate(span_ids) if t >= 1 and s != SPAN_ID["prompt"]]
    return [t for t, s in enumerate(span_ids) if t >= 1 and s == SPAN_ID[span]]


def example_grad_norms(
    model: Any, example: Any, spans: list[str], groups: list[str], params: list[Any]
) -> list[dict[str, Any]]:
    """Rows (span, group, n_tokens, loss, grad_norm) of one example."""
    import torch

    from training.modeling import execution_device

    ids = torch.tensor([example.input_ids], device=execution_device(model.get_input_embeddings()))
    logits = model(input_ids=ids, use_cache=False).logits[0]  # [T, vocab]
    logp = torch.log_softmax(logits[:-1].float(), dim=-1)  # [T-1, vocab]: predicts 1..T-1
    # with a device map the logits come out on the last device
    device = logp.device
    nll = -logp.gather(-1, ids[0, 1:, None].to(device)).squeeze(-1)  # [T-1]
    rows = []
    todo = [(s, span_positions(example.span_ids, s)) for s in spans]
    todo = [(s, pos) for s, pos in todo if pos]
    for k, (span, positions) in enumerate(todo):
        loss = nll[torch.tensor(positions, device=device) - 1].mean()
        loss_value = float(loss.detach())
        grads = torch.autograd.grad(loss, params, retain_graph=k + 1 < len(todo), allow_unused=True)
        sq: dict[str, float] = {}
        for group, grad in zip(groups, grads):
            if grad is not None:
                sq[group] = sq.get(group, 0.0) + float(grad.float().pow(2).sum())
        total = math.sqrt(sum(sq.values()))
        base = {"example_id": example.id, "span": span, "n_tokens": len(positions)}
        rows.append({**base, "group": "all", "loss": loss_value, "grad_norm": total})
        for group in sorted(sq, key=_group_order):
            rows.append(
                {**base, "group": group, "loss": loss_value, "grad_norm": math.sqrt(sq[group])}
            )
    return rows


def _group_order(group: str) -> tuple[int, int]:
    if group.startswith("layer."):
        return (1, int(group.split(".")[1]))
    return ({"embed": 0, "other": 2, "head": 3}.get(group, 4), 0)


def run_unit(cfg: GradNormConfig, unit: Unit, ctx: RunContext) -> UnitResult:
    """Per-example gradient norms of one model, per span and parameter group."""
    import pandas as pd

    from diagnostics.common import progress
    from training.modeling import load_model, offloaded_modules

    plan = unit.data
    ref, key, fmt = plan["ref"], plan["key"], plan["format"]
    placement = Placement(cfg.device, cfg.device_map, cfg.max_memory)
    model = load_model(ref.path, dtype=cfg.dtype, **placement.load_kwargs())
    offloaded = offloaded_modules(model)
    if offloaded:  # their weights are meta tensors between forwards: no gradient exists
        raise InputError(
            f"--device-map {cfg.device_map}: {len(offloaded)} module(s) of {ref.path} do not fit "
            f"on the devices and were offloaded ({', '.join(offloaded[:3])}, ...); gradnorm needs "
            "every weight resident: give --max-memory more room or use more GPUs"
        )
    model.eval()
    embed = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    head = output.weight if output is not None else None
    names, params, groups = [], [], []
    for name, param in model.named_parameters():  # shared (tied) parameters appear once
        if not param.requires_grad:
            continue
        names.append(name)
        params.append(param)
        groups.append(param_group(name, param is embed, head is not None and param is head))
    rows = []
    examples = ctx.take(plan["examples"])
    for example in progress(examples, total=len(examples), desc=f"gradnorm {key}"):
        rows.extend(example_grad_norms(model, example, plan["spans"], groups, params))
    cols = {**ref.columns(), "format": fmt, "model": key}
    meta = {
        "model": str(ref.path),
        "format": fmt,
        "spans": plan["spans"],
        "n_examples": len(examples),
        "n_params": int(sum(p.numel() for p in params)),
        "tied_embeddings": head is not None and head is embed,
        "data": plan["data"],
    }
    return UnitResult({MAIN_TABLE: pd.DataFrame(rows).assign(**cols)}, meta)


def gradnorm_summary(frame: Any, opts: Any) -> Any:
    """Per model CIs per span, paired between models, and code vs cot within each model."""
    from plumbing.stats import compare_paired, summary_frame

    if frame.empty:
        return summary_frame([])
    total = frame[frame["group"] == "all"].copy()
    rows = summary_rows(total, "grad_norm", lambda f: "grad_norm:" + f["span"], opts)
    for model, group in total.groupby("model", sort=False):
        wide = group.pivot_table(index="example_id", columns="span", values="grad_norm")
        if {"cot", "code"} <= set(wide.columns):
            pair = wide[["code", "cot"]].dropna()
            rows.append(
                compare_paired(
                    pair["code"].to_numpy(),
                    pair["cot"].to_numpy(),
                    metric="grad_norm:code-cot",
                    name_a=f"{model}:code",
                    name_b=f"{model}:cot",
                    opts=opts,
                )
            )
    return summary_frame(rows)


def summarise(cfg: GradNormConfig, ctx: RunContext) -> dict[str, Any]:
    """gradnorm.parquet and summary_gradnorm.parquet from the parts."""
    frame = ctx.parts.read([u.key for u in ctx.plan.units])
    if frame.empty:
        raise InputError("gradnorm: no example had a token in the requested spans")
    order = ["label", "base", "format", "seed", "step", "example_id", "span", "group", "n_tokens"]
    table = frame[[*order, "loss", "grad_norm"]]
    atomic_write_parquet(ctx.out / "gradnorm.parquet", table)
    atomic_write_parquet(
        ctx.out / "summary_gradnorm.parquet", gradnorm_summary(frame, stats_options(cfg))
    )
    means = table[table["group"] == "all"].groupby(["label", "span"])["grad_norm"].mean().round(5)
    print(f"gradnorm: {len(ctx.plan.units)} model(s) -> {ctx.out / 'gradnorm.parquet'}")
    return {
        "models": model_infos(ctx),
        "mean_grad_norm": {f"{label}:{span}": float(v) for (label, span), v in means.items()},
        "outputs": ["gradnorm.parquet", "summary_gradnorm.parquet"],
    }


CONFIG = GradNormConfig  # the options of `diag gradnorm` (cli.main.DIAGNOSTICS)


def plan(cfg: GradNormConfig) -> Any:
    """One unit per model (placement options checked first)."""
    Placement(cfg.device, cfg.device_map, cfg.max_memory).check()
    return model_plan(cfg, GRAD_SPANS)


COMMAND = Command("gradnorm", plan, run_unit, summarise)


def main(cfg: GradNormConfig) -> dict[str, Any]:
    """Run `diag gradnorm`; returns the summary written into the manifest (--dry-run: the
    memory estimate)."""
    if cfg.dry_run:
        from training.memory import dry_run

        return dry_run("gradnorm", cfg.model, dtype=cfg.dtype, batch=1, max_len=cfg.max_len)
    return run_command(COMMAND, cfg)
