"""What a per-model command needs in memory, from the models' configs alone (no weight is read):
`diag ppl | kl | valloss | attn | gradnorm | eval --dry-run` prints it and exits.

    shapes = [model_shape("runs/precede"), model_shape("/models/deepseek-coder-6.7b-base")]
    need = memory_need("kl", shapes[0], dtype="bf16", batch=8, seq=2048, base=shapes[1])
    print(dry_run_text("kl", [need], world_size=8))

A model's parameters are counted exactly, by building it on PyTorch's `meta` device (shapes
only). The rest are estimates of the peak, per rank (data parallel: every rank holds its own
copy of the models; with --device-map the total is spread over the devices instead):
- weights: parameters x bytes of the dtype, for every model resident at once (kl and valloss:
  the model and its base; ppl, attn, gradnorm and eval: one model at a time);
- forward (ppl, kl, valloss, attn; no gradients): one layer's transient tensors for a batch,
  batch x seq x (4 hidden + 3 intermediate) values (residual, q/k/v/o, gate/up/act), the last
  hidden state, and the chunked output head: `chunk_bytes` of fp32 logits, three live copies
  (logits, log-probabilities, their product) per model scored;
- attn adds one layer's eager attention pattern in fp32, batch x heads x seq^2, twice (scores
  and probabilities);
- gradnorm (batch 1, with gradients): a gradient per parameter, the activations kept for the
  backward pass (per layer seq x (34 hidden + 5 heads x seq) values in 16-bit, Korthikanti et
  al. 2022, scaled to the dtype) and the full fp32 logits twice;
- eval (generation): the KV cache, 2 x layers x kv heads x head dim x rows x (prompt + new
  tokens) values, and one step's fp32 logits per row (rows = batch x samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.modeling import resolve_model_dir

GIB = 2**30
DTYPE_BYTES = {"fp32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2}


@dataclass(frozen=True)
class ModelShape:
    """What the estimates need of one model (from its config.json)."""

    path: str
    n_params: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    max_positions: int


def _first(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def model_shape(path: str | Path, what: str = "--model") -> ModelShape:
    """A model's shape and exact parameter count, its weights never read (built on `meta`)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    model_dir = resolve_model_dir(path, what)
    config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    n_params = sum(p.numel() for p in model.parameters())  # a tied head is counted once
    hidden = _first(config, "hidden_size", "n_embd", "d_model")
    heads = _first(config, "num_attention_heads", "n_head")
    return ModelShape(
        path=str(model_dir),
        n_params=int(n_params),
        hidden=int(hidden),
        layers=int(_first(config, "num_hidden_layers", "n_layer")),
        heads=int(heads),
        kv_heads=int(_first(config, "num_key_value_heads", default=heads)),
        head_dim=int(_first(config, "head_dim", default=hidden // heads)),
        intermediate=int(_first(config, "intermediate_size", "n_inner", default=4 * hidden)),
        vocab=int(config.vocab_size),
        max_positions=int(_first(config, "max_position_embeddings", "n_positions", default=2048)),
    )


@dataclass
class MemoryNeed:
    """One model's (and its base's) estimated peak, in bytes, by part."""

    command: str
    model: ModelShape
    base: ModelShape | None
    dtype: str
    batch: int
    seq: int
    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def memory_need(
    command: str,
    model: ModelShape,
    *,
    dtype: str,
    batch: int,
    seq: int,
    base: ModelShape | None = None,
    chunk_bytes: int = 256 * 2**20,
    rows: int = 1,
    new_tokens: int = 0,
) -> MemoryNeed:
    """The estimated peak of `command` on `model` (and `base`, for kl / valloss); see the
    module docstring for what each part counts. `rows`, `new_tokens`: eval's generation rows
    (batch x samples) and new tokens per row."""
    size = DTYPE_BYTES[dtype]
    scored = [model, *([base] if base is not None else [])]
    parts = {"weights": sum(m.n_params for m in scored) * size}
    if command in ("ppl", "kl", "valloss", "attn"):
        widest = max(4 * m.hidden + 3 * m.intermediate for m in scored)
        parts["forward"] = batch * seq * (widest + max(m.hidden for m in scored)) * size
        parts["head chunks"] = 3 * chunk_bytes * len(scored)
        if command == "attn":
            parts["attention pattern"] = 2 * batch * model.heads * seq * seq * 4
    elif command == "gradnorm":
        per_layer = seq * (34 * model.hidden + 5 * model.heads * seq)  # 16-bit bytes, batch 1
        parts["gradients"] = model.n_params * size
        parts["backward activations"] = model.layers * per_layer * size // 2
        parts["logits"] = 2 * seq * model.vocab * 4
    elif command == "eval":
        kv_width = 2 * model.layers * model.kv_heads * model.head_dim
        parts["kv cache"] = kv_width * rows * (seq + new_tokens) * size
        parts["logits"] = rows * model.vocab * 4
    else:
        raise ValueError(f"no memory estimate for {command!r}")
    return MemoryNeed(command, model, base, dtype, batch, seq, parts)


def dry_run_text(command: str, needs: list[MemoryNeed], world_size: int = 1) -> str:
    """The table `--dry-run` prints: per model, its size and the estimated peak by part."""
    lines = [f"diag {command} --dry-run: estimated peak memory per rank (from the configs)"]
    for need in needs:
        model = need.model
        lines.append(
            f"  {model.path}: {model.n_params / 1e9:.3f} B parameters, {need.dtype}, "
            f"batch {need.batch} x seq {need.seq}"
        )
        if need.base is not None:
            lines.append(
                f"    + base {need.base.path}: {need.base.n_params / 1e9:.3f} B parameters"
            )
        for part, value in need.parts.items():
            lines.append(f"    {part:<22} {value / GIB:9.2f} GiB")
        lines.append(f"    {'total':<22} {need.total / GIB:9.2f} GiB")
    peak = max(n.total for n in needs)
    lines.append(
        f"  peak (the largest above): {peak / GIB:.2f} GiB per rank"
        + (f", on each of {world_size} ranks" if world_size > 1 else "")
        + "; with --device-map it is spread over the devices"
    )
    return "\n".join(lines)


DRY_RUN_HELP = "Print the estimated peak memory per rank (from the model configs) and exit."
PROMPT_TOKENS = 1024  # eval --dry-run: the prompt length assumed (prompts are not read)


def dry_run(
    command: str,
    models: list[str],
    *,
    dtype: str,
    batch: int,
    max_len: int | None = None,
    base: str | None = None,
    chunk_tokens: int = 0,
    rows: int = 1,
    new_tokens: int = 0,
) -> dict[str, Any]:
    """Print `dry_run_text` for these models (one need per model) and return it as the
    command's result. dtype `auto` is taken as bf16, what it means on a GPU; seq is `max_len`,
    else each model's longest position (eval: PROMPT_TOKENS, plus the new tokens)."""
    from plumbing.ranks import Ranks

    dtype = "bf16" if dtype == "auto" else dtype
    base_shape = model_shape(base, "--base") if base is not None else None
    needs = []
    for path in models:
        shape = model_shape(path)
        if command == "eval":
            seq = PROMPT_TOKENS
        else:
            seq = max_len or shape.max_positions
        chunk = chunk_tokens * shape.vocab * 4 if chunk_tokens else 256 * 2**20
        needs.append(
            memory_need(
                command,
                shape,
                dtype=dtype,
                batch=batch,
                seq=seq,
                base=base_shape,
                chunk_bytes=chunk,
                rows=rows,
                new_tokens=new_tokens,
            )
        )
    print(dry_run_text(command, needs, Ranks.from_env().world))
    return {
        "dry_run": [
            {"model": n.model.path, "n_params": n.model.n_params, "total_bytes": n.total}
            | {"base": n.base.path if n.base else None, "parts": n.parts}
            for n in needs
        ]
    }
