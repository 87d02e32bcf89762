"""`diag attn`: how much attention each span of a response pays to the others, per layer and head.

    diag attn --model runs/follow --model runs/precede --data triples.jsonl --out runs/attn
    diag attn --model runs/precede --data triples.jsonl --out runs/attn --attribution \\
        --save-patterns 4 --backend hf

Definition (docs/DESIGN.md, "attn"). With `A[l,h,i,j]` the post-softmax attention of layer l, head h,
query position i on key position j (causal, so `sum_j A[l,h,i,j] = 1` for every real query),
the mass that span P puts on span Q is

    mass[l,h,P,Q] = mean_{i in P} sum_{j in Q} A[l,h,i,j]

computed per example, then averaged over the examples that contain both spans (each example
weighs the same, whatever its length). Spans come from `training.formats` (token-exact):

- queries (src): prompt, cot, code. Glue (fences, separators) and EOS positions are not
  queries: they carry no content of their own.
- keys (dst): prompt, cot, code and `other` = glue + EOS, so that for every query span the
  masses over all dst columns sum to 1 (tested). With `--sink`, the first token of the sequence
  (BOS / chat-template start, the usual attention sink) is its own dst column `sink` and leaves
  the prompt column, so that prompt mass is not dominated by the sink.
- A pair (P, Q) is listed when some example has both spans; `visible` is False when Q lies
  wholly after P in every example (causal attention: the mass is 0 by construction, e.g.
  cot->code in `follow`). `wo` has no cot: no pair with cot is listed. Asking for a span the
  format lacks (`--spans cot` with `--format wo`) is an error.

Memory: the mass is summed inside a forward hook on each attention module, per layer; the
`[batch, heads, seq, seq]` pattern of one layer is reduced to `[batch, heads, 3, n_dst]` and
dropped before the next layer runs, so the full pattern of a long sequence is never kept across
layers (unlike `output_attentions=True`; see bench/bench_diag.py part (d)).

Backends (`--backend`): `tl` hooks `blocks.{l}.attn.hook_pattern` of a TransformerLens 4.3
`TransformerBridge`; `hf` hooks the HF attention modules (`_can_record_outputs["attentions"]`,
the same modules `output_attentions` reads) of a model loaded with eager attention (sdpa and
flash kernels return no pattern). `auto` uses TransformerLens where it supports the architecture
and HF otherwise; the two agree to <= 1e-5 on the tiny Llama (tests/test_attn.py).

`--attribution` adds span-level attribution with captum (diagnostics/attribution.py).
`--save-patterns N` keeps the full patterns of the first N examples for heatmaps (npz under
patterns/, indexed by patterns.parquet).

Outputs (run folder): attn.parquet (label, format, seed, step, layer, head, src, dst, mass,
n_examples, visible), attn_examples.parquet (per example x layer x pair, mean over heads),
summary_attn.parquet (bootstrap CIs and paired tests, plumbing.stats), attribution*.parquet,
patterns/, manifest.json. Per-model results land in parts/ first, so `--resume` skips models
already done.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diagnostics.common import (
    QUERY_SPANS,
    model_infos,
    model_plan,
    padded_batches,
    progress,
    summary_rows,
)
from diagnostics.scoring import DEVICE_MAP_HELP, MAX_MEMORY_HELP, Placement
from plumbing import (
    InputError,
    atomic_write_parquet,
)
from plumbing.runner import (
    MAIN_TABLE,
    Command,
    Plan,
    RunContext,
    Unit,
    UnitResult,
    run_command,
)
from plumbing.stats import stats_options
from training.formats import SPAN_ID, SPAN_NAMES
from training.memory import DRY_RUN_HELP
from training.modeling import execution_device

OTHER = "other"  # glue + eos as keys
SINK = "sink"  # the first token as a key, with --sink
BACKENDS = {
    "auto": "TransformerLens where it supports the architecture, else HF eager",
    "tl": "TransformerLens 4.3 TransformerBridge, hook blocks.{l}.attn.hook_pattern",
    "hf": "HF model with eager attention, a forward hook on each attention module",
}
# --save-patterns keeps per-head patterns when layers*heads*seq*seq stays under this many cells
PER_HEAD_PATTERN_CELLS = 1 << 24


@dataclass
class AttnConfig:
    """Options of `diag attn`.

    Models:  model (one or more: model dir, run dir, checkpoint dir), format (default: each
             model's training format), backend (auto | tl | hf), dtype, device
    Data:    data (triples.jsonl), split, max_examples, max_len
    Method:  spans (query spans; default: those the format has), sink, batch_size
    Extras:  attribution (captum span attribution), attribution_methods, ig_steps,
             baseline_token, save_patterns (N examples' full patterns)
    Stats:   n_resamples, confidence, test (paired test), stats_seed
    Run:     out, resume, overwrite
    """

    model: list[str]
    data: str
    out: str
    split: str = "test"
    format: str | None = None
    spans: str | None = field(
        default=None,
        metadata={
            "help": "Query spans, comma-separated (prompt,cot,code); default: those present."
        },
    )
    sink: bool = field(
        default=False, metadata={"help": "First token as its own dst column 'sink'."}
    )
    backend: str = field(default="auto", metadata={"help": "Attention backend."})
    batch_size: int = field(default=4, metadata={"help": "Examples per forward pass."})
    max_examples: int | None = None
    max_len: int | None = None
    dtype: str = "auto"
    device: str | None = None
    device_map: str | None = field(
        default=None, metadata={"help": f"{DEVICE_MAP_HELP} With --backend hf (or auto) only."}
    )
    max_memory: str | None = field(default=None, metadata={"help": MAX_MEMORY_HELP})
    save_patterns: int = field(
        default=0,
        metadata={"help": "Keep full patterns of the first N examples (npz, heatmaps)."},
    )
    attribution: bool = field(default=False, metadata={"help": "Add captum span attribution."})
    attribution_methods: str = field(
        default="ablation,ig",
        metadata={
            "help": "ablation (captum FeatureAblation, span groups), ig (LayerIntegratedGradients)."
        },
    )
    ig_steps: int = field(default=16, metadata={"help": "Integrated-gradients steps."})
    baseline_token: str = field(
        default="pad",
        metadata={"help": "Attribution baseline: pad | unk | eos | bos | a token id."},
    )
    n_resamples: int = 2000
    confidence: float = 0.95
    test: str = "wilcoxon"
    stats_seed: int = 0
    dry_run: bool = field(default=False, metadata={"help": DRY_RUN_HELP})
    resume: bool = False
    overwrite: bool = False


# ---------------------------------------------------------------------------------------------
# span indicators and the reduction


def key_span_names(sink: bool) -> tuple[str, ...]:
    return (*QUERY_SPANS, OTHER, *((SINK,) if sink else ()))


def span_indicators(span_ids: Any, sink: bool = False) -> tuple[Any, Any, Any]:
    """Query weights, key indicators and query counts from per-token span ids.

    span_ids: [batch, seq] long (PAD_SPAN = -1 on padding)
    returns   q_weight [batch, seq, 3] float: 1/|P| on the positions of query span P, else 0
              k_ind    [batch, seq, n_dst] float: 1 where key position j belongs to dst span Q
              q_count  [batch, 3] long: |P| per example
    """
    import torch

    q_ind = torch.stack([span_ids == SPAN_ID[s] for s in QUERY_SPANS], dim=-1)  # [b, T, 3]
    keys = [span_ids == SPAN_ID[s] for s in QUERY_SPANS]
    keys.append((span_ids == SPAN_ID["glue"]) | (span_ids == SPAN_ID["eos"]))
    if sink:
        first = torch.zeros_like(span_ids, dtype=torch.bool)
        first[:, 0] = span_ids[:, 0] >= 0
        keys = [k & ~first for k in keys]
        keys.append(first)
    k_ind = torch.stack(keys, dim=-1).float()  # [b, T, n_dst]
    q_count = q_ind.sum(dim=1)  # [b, 3]
    q_weight = q_ind.float() / q_count.clamp(min=1).unsqueeze(1).float()  # [b, T, 3]
    return q_weight, k_ind, q_count


def span_masses(pattern: Any, q_weight: Any, k_ind: Any, head_chunk: int = 8) -> Any:
    """mass[b,h,P,Q] = sum_i q_weight[b,i,P] * sum_j A[b,h,i,j] * k_ind[b,j,Q].

    pattern [batch, heads, seq, seq] (any float dtype; reduced in fp32, `head_chunk` heads at a
    time so an fp32 copy of the whole pattern is never made); returns [batch, heads, 3, n_dst].
    """
    import torch

    b, h = pattern.shape[:2]
    k = k_ind.to(pattern.device, torch.float32).unsqueeze(1)  # [b, 1, T, n_dst]
    qt = q_weight.to(pattern.device, torch.float32).transpose(1, 2).unsqueeze(1)  # [b, 1, 3, T]
    out = []
    for start in range(0, h, head_chunk):
        part = pattern[:, start : start + head_chunk].to(torch.float32)  # [b, hc, T, T]
        key_mass = part @ k  # [b, hc, T, n_dst]
        out.append(qt @ key_mass)  # [b, hc, 3, n_dst]
    return torch.cat(out, dim=1)


def pair_visibility(span_ids: Any, sink: bool = False) -> Any:
    """visible[b, P, Q]: some key of Q is at or before some query of P (causal attention).

    span_ids [batch, seq]; returns bool [batch, 3, n_dst].
    """
    import torch

    q_weight, k_ind, _ = span_indicators(span_ids, sink)
    seq = span_ids.shape[1]
    pos = torch.arange(seq, device=span_ids.device).float()
    big = float(seq + 1)
    q_last = torch.where(q_weight > 0, pos[None, :, None], -1.0).amax(dim=1)  # [b, 3]
    k_first = torch.where(k_ind > 0, pos[None, :, None], big).amin(dim=1)  # [b, n_dst]
    return k_first[:, None, :] <= q_last[:, :, None]


# ---------------------------------------------------------------------------------------------
# backends: each runs a batch and calls on_pattern(layer, pattern [batch, heads, seq, seq])


PatternFn = Callable[[int, Any], None]


def attention_modules(model: Any) -> list[tuple[str, Any, int]]:
    """(name, module, output index) of each attention module whose output carries the pattern.

    Uses the model's own `_can_record_outputs["attentions"]` spec: the modules and tuple index
    `output_attentions=True` records, so the hook sees exactly what HF would return.
    """
    from transformers import PreTrainedModel
    from transformers.utils.output_capturing import OutputRecorder

    spec = None
    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            record = getattr(module, "_can_record_outputs", None) or {}
            if "attentions" in record:
                spec = record["attentions"]
                break
    if spec is None:
        return []
    specs = spec if isinstance(spec, list) else [spec]
    found = []
    for item in specs:
        if not isinstance(item, OutputRecorder):
            cls = item if not isinstance(item, str) else None
            item = OutputRecorder(
                target_class=cls, index=1, class_name=item if cls is None else None
            )
        for name, module in model.named_modules():
            hit = (item.target_class is not None and isinstance(module, item.target_class)) or (
                item.class_name is not None and name.endswith(item.class_name)
            )
            if hit and item.layer_name is not None:
                hit = "." + item.layer_name.strip(".") + "." in "." + name + "."
            if hit:
                found.append((name, module, item.index))
        if found:
            break
    return found


def _n_layers(config: Any) -> int | None:
    cfg = getattr(config, "text_config", None) or config
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        if getattr(cfg, attr, None):
            return int(getattr(cfg, attr))
    return None


class HFPatterns:
    """Forward hooks on the attention modules of an HF model loaded with eager attention."""

    name = "hf"

    def __init__(self, model: Any, where: str):
        self.model = model
        self.where = where
        self.modules = attention_modules(model)
        arch = type(model).__name__
        if not self.modules:
            raise InputError(
                f"--model {where}: {arch} has no attention layers that return post-softmax "
                "weights (no eager attention support): attn needs an attention model"
            )
        expected = _n_layers(model.config)
        if expected is not None and len(self.modules) != expected:
            raise InputError(
                f"--model {where}: found {len(self.modules)} attention modules in {arch} but the "
                f"config has {expected} layers; use --backend tl if TransformerLens supports it"
            )
        self.n_layers = len(self.modules)
        self.n_heads = None

    def run(self, input_ids: Any, attention_mask: Any, on_pattern: PatternFn) -> None:
        import torch

        missing: list[str] = []
        handles = []
        for layer, (name, module, index) in enumerate(self.modules):

            def hook(_mod: Any, _args: Any, output: Any, layer=layer, name=name, index=index):
                pattern = output[index] if isinstance(output, tuple) else None
                if pattern is None:
                    missing.append(name)
                    return
                on_pattern(layer, pattern)  # [batch, heads, seq, seq]

            handles.append(module.register_forward_hook(hook))
        try:
            backbone = getattr(self.model, self.model.base_model_prefix, self.model)
            with torch.inference_mode():
                backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
        if missing:
            impl = getattr(self.model.config, "_attn_implementation", "?")
            raise InputError(
                f"--model {self.where}: attention module {missing[0]} returned no pattern under "
                f"attn_implementation={impl!r}: this architecture needs eager attention support"
            )


class TLPatterns:
    """`blocks.{l}.attn.hook_pattern` of a TransformerLens 4.3 TransformerBridge."""

    name = "tl"

    def __init__(self, bridge: Any):
        self.bridge = bridge
        self.n_layers = int(bridge.cfg.n_layers)
        self.n_heads = int(bridge.cfg.n_heads)
        hooks = getattr(bridge, "hook_dict", {})
        missing = [
            f"blocks.{layer}.attn.hook_pattern"
            for layer in range(self.n_layers)
            if f"blocks.{layer}.attn.hook_pattern" not in hooks
        ]
        if missing:
            raise ValueError(f"the bridge has no {missing[0]} (no attention pattern hook)")

    def run(self, input_ids: Any, attention_mask: Any, on_pattern: PatternFn) -> None:
        import torch

        hooks = []
        for layer in range(self.n_layers):

            def hook(pattern: Any, hook: Any, layer=layer) -> Any:
                on_pattern(layer, pattern)  # [batch, heads, seq, seq]
                return pattern

            hooks.append((f"blocks.{layer}.attn.hook_pattern", hook))
        with torch.inference_mode():
            self.bridge.run_with_hooks(
                input_ids, attention_mask=attention_mask, return_type=None, fwd_hooks=hooks
            )


def load_attention_model(
    path: Path, dtype: str, placement: str | None | Placement, where: str
) -> Any:
    """An HF model with eager attention, where `placement` says (a device name, or a Placement:
    a device, or a device map within its memory budget); a clear error when the architecture
    cannot do it."""
    from training.modeling import load_model

    if not isinstance(placement, Placement):
        placement = Placement(device=placement)
    try:
        model = load_model(
            path, dtype=dtype, attn_implementation="eager", **placement.load_kwargs()
        )
    except InputError as err:
        raise InputError(f"{err} (attn loads it with attn_implementation='eager')") from None
    impl = getattr(model.config, "_attn_implementation", None)
    if impl not in (None, "eager"):
        raise InputError(
            f"--model {where}: loaded with attn_implementation={impl!r}, not 'eager': the "
            "architecture does not support eager attention, so no pattern can be read"
        )
    return model


def make_backend(
    name: str, model: Any, tokenizer: Any, path: Path, where: str
) -> tuple[Any, str | None]:
    """The pattern source; (backend, why TL was not used). `model` must not be used after TL."""
    if name not in BACKENDS:
        raise InputError(f"--backend {name!r}: choose from {', '.join(BACKENDS)}")
    if name == "auto" and getattr(model, "hf_device_map", None):
        why = "--device-map: TransformerLens cannot run a dispatched model"
        return HFPatterns(model, where), why
    if name in ("auto", "tl"):
        try:
            from transformer_lens.model_bridge import TransformerBridge

            bridge = TransformerBridge.boot_transformers(
                str(path),
                hf_model=model,
                tokenizer=tokenizer,
                device=str(next(model.parameters()).device),
                dtype=next(model.parameters()).dtype,
            )
            return TLPatterns(bridge), None
        except Exception as err:  # noqa: BLE001 - TL rejects architectures in many ways
            if name == "tl":
                raise InputError(
                    f"--model {where}: TransformerLens cannot bridge {type(model).__name__} "
                    f"({type(err).__name__}: {str(err)[:200]}); use --backend hf"
                ) from None
            return HFPatterns(model, where), f"{type(err).__name__}: {str(err)[:200]}"
    return HFPatterns(model, where), "--backend hf"


# ---------------------------------------------------------------------------------------------
# one model


@dataclass
class ModelResult:
    layer_head: Any  # DataFrame: attn.parquet rows of this model
    examples: Any  # DataFrame: attn_examples.parquet rows
    info: dict[str, Any]


class BatchReducer:
    """The hook body for one batch: reduce each layer's pattern to span masses on arrival.

    masses[layer] = [batch, heads, 3, n_dst] (cpu fp32); kept[row][layer] = [heads, n, n] fp16
    for the rows whose full pattern is kept.
    """

    def __init__(self, batch: Any, sink: bool, keep_rows: list[int]):
        self.batch = batch
        self.q_weight, self.k_ind, _ = span_indicators(batch.span_ids, sink)
        self.keep_rows = keep_rows
        self.masses: dict[int, Any] = {}
        self.kept: dict[int, dict[int, Any]] = {}

    def __call__(self, layer: int, pattern: Any) -> None:
        import torch

        # pattern [batch, heads, seq, seq]: reduced here; the caller drops it afterwards
        self.masses[layer] = span_masses(pattern, self.q_weight, self.k_ind).cpu()
        for row in self.keep_rows:
            n = self.batch.lengths[row]
            cell = pattern[row, :, :n, :n].to(torch.float16).cpu().numpy()  # [heads, n, n]
            self.kept.setdefault(row, {})[layer] = cell


def attention_masses(
    backend: Any,
    examples: list[Any],
    *,
    pad_token_id: int,
    batch_size: int,
    sink: bool = False,
    device: Any = "cpu",
    keep_patterns: set[str] | None = None,
    desc: str = "attn",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-example masses [layers, heads, 3, n_dst] (numpy, by example id) and kept patterns.

    keep_patterns: ids of examples whose full patterns are kept ([layers, heads, seq, seq] fp16
    numpy, by id) for heatmaps.
    """
    import numpy as np
    import torch

    keep_patterns = keep_patterns or set()
    per_example: dict[str, Any] = {}
    patterns: dict[str, Any] = {}
    n_batches = math.ceil(len(examples) / batch_size)
    for batch in progress(
        padded_batches(examples, batch_size, pad_token_id, device), total=n_batches, desc=desc
    ):
        keep_rows = [r for r, ex in enumerate(batch.examples) if ex.id in keep_patterns]
        reducer = BatchReducer(batch, sink, keep_rows)
        backend.run(batch.input_ids, batch.attention_mask, reducer)
        if len(reducer.masses) != backend.n_layers:
            raise InputError(
                f"attention hooks fired for {len(reducer.masses)} of {backend.n_layers} layers"
            )
        stacked = torch.stack([reducer.masses[i] for i in range(backend.n_layers)], dim=1)
        stacked = stacked.numpy()  # [b, layers, heads, 3, n_dst]
        for row, ex in enumerate(batch.examples):
            per_example[ex.id] = stacked[row]
            if row in reducer.kept:
                cells = reducer.kept[row]
                patterns[ex.id] = np.stack([cells[i] for i in range(backend.n_layers)])
    return per_example, patterns


def tidy_masses(
    ref_cols: dict[str, Any],
    examples: list[Any],
    masses: dict[str, Any],
    spans: list[str],
    sink: bool,
) -> tuple[Any, Any]:
    """attn.parquet rows (mean over examples per layer x head x pair) and per-example rows."""
    import numpy as np
    import pandas as pd
    import torch

    dst_names = key_span_names(sink)
    rows_ex = []
    n_layers, n_heads = next(iter(masses.values())).shape[:2]
    sums = np.zeros((n_layers, n_heads, len(QUERY_SPANS), len(dst_names)))
    counts = np.zeros((len(QUERY_SPANS), len(dst_names)), dtype=np.int64)
    visible_any = np.zeros((len(QUERY_SPANS), len(dst_names)), dtype=bool)
    for ex in examples:
        span_ids = torch.tensor([ex.span_ids])
        _, k_ind, q_count = span_indicators(span_ids, sink)
        has_q = (q_count[0] > 0).numpy()  # [3]
        has_k = (k_ind[0].sum(dim=0) > 0).numpy()  # [n_dst]
        vis = pair_visibility(span_ids, sink)[0].numpy()  # [3, n_dst]
        m = masses[ex.id]  # [layers, heads, 3, n_dst]
        head_mean = m.mean(axis=1)  # [layers, 3, n_dst]
        for p, src in enumerate(QUERY_SPANS):
            if src not in spans or not has_q[p]:
                continue
            for q, dst in enumerate(dst_names):
                if not has_k[q]:
                    continue
                sums[:, :, p, q] += m[:, :, p, q]
                counts[p, q] += 1
                visible_any[p, q] |= bool(vis[p, q])
                for layer in range(n_layers):
                    rows_ex.append(
                        {
                            **ref_cols,
                            "example_id": ex.id,
                            "layer": layer,
                            "src": src,
                            "dst": dst,
                            "mass": float(head_mean[layer, p, q]),
                            "n_src_tokens": int(q_count[0, p]),
                            "n_dst_tokens": int(k_ind[0, :, q].sum()),
                            "visible": bool(vis[p, q]),
                        }
                    )
    rows = []
    for p, src in enumerate(QUERY_SPANS):
        for q, dst in enumerate(dst_names):
            if counts[p, q] == 0:
                continue
            for layer in range(n_layers):
                for head in range(n_heads):
                    rows.append(
                        {
                            **ref_cols,
                            "layer": layer,
                            "head": head,
                            "src": src,
                            "dst": dst,
                            "mass": float(sums[layer, head, p, q] / counts[p, q]),
                            "n_examples": int(counts[p, q]),
                            "visible": bool(visible_any[p, q]),
                        }
                    )
    return pd.DataFrame(rows), pd.DataFrame(rows_ex)


def save_patterns(
    key: str,
    ref_cols: dict[str, Any],
    examples: list[Any],
    patterns: dict[str, Any],
    tokenizer: Any,
) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """One compressed npz per example: mean over heads [layers, seq, seq] always, per head
    [layers, heads, seq, seq] when small (<= PER_HEAD_PATTERN_CELLS cells), token strings, ids
    and span ids. Returns patterns.parquet index rows and the files (path under the run folder
    -> bytes) for the runner to write."""
    import io

    import numpy as np

    rows, files = [], {}
    by_id = {ex.id: ex for ex in examples}
    for ex_id, pattern in patterns.items():
        ex = by_id[ex_id]
        arrays = {
            "mean_heads": pattern.astype(np.float32).mean(axis=1).astype(np.float16),
            "input_ids": np.asarray(ex.input_ids, dtype=np.int64),
            "span_ids": np.asarray(ex.span_ids, dtype=np.int64),
            "tokens": np.asarray([tokenizer.decode([t]) for t in ex.input_ids], dtype=object),
            "span_names": np.asarray(SPAN_NAMES, dtype=object),
        }
        per_head = pattern.size <= PER_HEAD_PATTERN_CELLS
        if per_head:
            arrays["per_head"] = pattern
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in ex_id)
        rel = Path("patterns") / key / f"{safe}.npz"
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{k: v for k, v in arrays.items()})
        files[str(rel)] = buffer.getvalue()
        rows.append(
            {
                **ref_cols,
                "example_id": ex_id,
                "path": str(rel),
                "n_tokens": len(ex),
                "n_layers": pattern.shape[0],
                "n_heads": pattern.shape[1],
                "per_head": per_head,
            }
        )
    return rows, files


# ---------------------------------------------------------------------------------------------
# summary


def second_first_pairs(fmt: str) -> tuple[str, str] | None:
    """(src, dst) of the response span written second looking at the one written first."""
    return {"follow": ("code", "cot"), "precede": ("cot", "code")}.get(fmt)


def attn_summary(examples_frame: Any, opts: Any) -> Any:
    """summary_attn: per example, mass averaged over layers (and heads) for the response pairs
    cot->code, code->cot, cot->prompt, code->prompt, plus `second->first` (code->cot in follow,
    cot->code in precede): CIs per model and paired tests between models. Pairs that are not
    visible in an example (causally zero) are left out."""
    import numpy as np
    import pandas as pd

    from plumbing.stats import summary_frame

    examples_frame = (
        examples_frame[examples_frame["visible"]] if len(examples_frame) else examples_frame
    )
    if examples_frame.empty:
        return summary_frame([])
    keys = ["model", "label", "format", "seed", "example_id", "src", "dst"]
    per_ex = examples_frame.groupby(keys, dropna=False)["mass"].mean().reset_index()
    wanted = {("cot", "code"), ("code", "cot"), ("cot", "prompt"), ("code", "prompt")}
    direct = per_ex[
        np.array([(s, d) in wanted for s, d in zip(per_ex["src"], per_ex["dst"])], dtype=bool)
    ].copy()
    direct["metric_name"] = "attn:" + direct["src"] + "->" + direct["dst"]
    is_second = [
        second_first_pairs(f) == (s, d)
        for f, s, d in zip(per_ex["format"], per_ex["src"], per_ex["dst"])
    ]
    second = per_ex[np.array(is_second, dtype=bool)].copy()
    second["metric_name"] = "attn:second->first"
    both = pd.concat([direct, second], ignore_index=True)
    return summary_frame(summary_rows(both, "mass", lambda f: f["metric_name"], opts))


# ---------------------------------------------------------------------------------------------
# main


def run_unit(cfg: AttnConfig, unit: Unit, ctx: RunContext) -> UnitResult:
    """attn (+ attribution, patterns) of one model."""
    import pandas as pd

    plan = unit.data
    ref, key, fmt, tok = (plan[k] for k in ("ref", "key", "format", "tokenizer"))
    keep = {ex.id for ex in plan["examples"][: cfg.save_patterns]}  # the first N of the data
    examples = ctx.take(plan["examples"])
    where = str(ref.path)
    cols = {**ref.columns(), "format": fmt, "model": key}
    result = UnitResult(meta={"model": where, "format": fmt, "data": plan["data"]})
    placement = Placement(cfg.device, cfg.device_map, cfg.max_memory)
    model = load_attention_model(ref.path, cfg.dtype, placement, where)
    device = execution_device(model.get_input_embeddings())  # where the ids go in
    if cfg.attribution:
        from diagnostics.attribution import AttributionOptions, span_attribution

        opts = AttributionOptions(
            methods=tuple(m.strip() for m in cfg.attribution_methods.split(",") if m.strip()),
            ig_steps=cfg.ig_steps,
            baseline_token=cfg.baseline_token,
        )
        attr_ex, attr_info = span_attribution(model, tok, examples, opts, desc=f"attribution {key}")
        result.tables["attribution"] = attr_ex.assign(**cols) if len(attr_ex) else attr_ex
        result.meta["attribution"] = attr_info
    backend, why_not_tl = make_backend(cfg.backend, model, tok, ref.path, where)
    result.meta["backend"] = backend.name
    if why_not_tl:
        result.meta["backend_note"] = why_not_tl
    masses, patterns = attention_masses(
        backend,
        examples,
        pad_token_id=tok.pad_token_id,
        batch_size=cfg.batch_size,
        sink=cfg.sink,
        device=device,
        keep_patterns=keep,
        desc=f"attn {key}",
    )
    if examples:
        layer_head, per_example = tidy_masses(cols, examples, masses, plan["spans"], cfg.sink)
    else:  # a rank with no share (more ranks than examples)
        layer_head, per_example = pd.DataFrame(), pd.DataFrame()
    result.tables[MAIN_TABLE] = layer_head
    result.tables["examples"] = per_example
    if patterns:
        index, result.files = save_patterns(key, cols, examples, patterns, tok)
        result.tables["patterns"] = pd.DataFrame(index)
    result.meta.update(
        n_examples=len(examples),
        n_layers=backend.n_layers,
        spans=plan["spans"],
        tokens=sum(len(e) for e in examples),
    )
    del model, backend
    return result


def merge_layer_heads(cfg: AttnConfig, unit: Unit, results: list[UnitResult]) -> UnitResult:
    """attn.parquet's rows of a unit scored on several ranks: each layer x head x pair's mean
    mass over all examples (the ranks' means weighted by their example counts), visible where
    any rank saw it, in the order one process writes them."""
    import pandas as pd

    frames = [r.tables[MAIN_TABLE] for r in results if len(r.tables[MAIN_TABLE])]
    if not frames:
        return UnitResult({MAIN_TABLE: pd.DataFrame()})
    rows = pd.concat(frames, ignore_index=True)
    columns = list(rows.columns)
    rows["mass_sum"] = rows["mass"] * rows["n_examples"]
    keys = [c for c in columns if c not in ("mass", "n_examples", "visible")]
    merged = rows.groupby(keys, sort=False, dropna=False).agg(
        mass_sum=("mass_sum", "sum"), n_examples=("n_examples", "sum"), visible=("visible", "any")
    )
    merged = merged.reset_index()
    merged["mass"] = merged["mass_sum"] / merged["n_examples"]
    src_rank = {s: i for i, s in enumerate(QUERY_SPANS)}
    dst_rank = {d: i for i, d in enumerate(key_span_names(cfg.sink))}
    merged = merged.assign(
        _src=merged["src"].map(src_rank), _dst=merged["dst"].map(dst_rank)
    ).sort_values(["_src", "_dst", "layer", "head"], kind="stable")
    return UnitResult({MAIN_TABLE: merged[columns].reset_index(drop=True)})


def summarise(cfg: AttnConfig, ctx: RunContext) -> dict[str, Any]:
    """attn.parquet, attn_examples.parquet, summary_attn.parquet (+ patterns, attribution)."""
    stats_opts = stats_options(cfg)
    keys = [u.key for u in ctx.plan.units]
    out = ctx.out
    attn = ctx.parts.read(keys)
    examples_frame = ctx.parts.read(keys, "examples")
    atomic_write_parquet(out / "attn.parquet", attn.drop(columns=["model"]))
    atomic_write_parquet(out / "attn_examples.parquet", examples_frame.drop(columns=["model"]))
    atomic_write_parquet(out / "summary_attn.parquet", attn_summary(examples_frame, stats_opts))
    outputs = ["attn.parquet", "attn_examples.parquet", "summary_attn.parquet"]
    patterns = ctx.parts.read(keys, "patterns")
    if len(patterns):
        atomic_write_parquet(out / "patterns.parquet", patterns.drop(columns=["model"]))
        outputs.append("patterns.parquet")
    if cfg.attribution:
        from diagnostics.attribution import attribution_summary, attribution_table

        attr_ex = ctx.parts.read(keys, "attribution")
        atomic_write_parquet(out / "attribution.parquet", attribution_table(attr_ex))
        atomic_write_parquet(out / "attribution_examples.parquet", attr_ex.drop(columns=["model"]))
        atomic_write_parquet(
            out / "summary_attribution.parquet", attribution_summary(attr_ex, stats_opts)
        )
        outputs += [
            "attribution.parquet",
            "attribution_examples.parquet",
            "summary_attribution.parquet",
        ]
    print(f"attn: {len(keys)} model(s), {len(attn)} rows -> {out / 'attn.parquet'}")
    return {"models": model_infos(ctx), "outputs": outputs, "n_rows": len(attn)}


def plan(cfg: AttnConfig) -> Plan:
    """One unit per model; backend, batch size and pattern count checked first."""
    if cfg.backend not in BACKENDS:
        raise InputError(f"--backend {cfg.backend!r}: choose from {', '.join(BACKENDS)}")
    if cfg.batch_size < 1:
        raise InputError(f"--batch-size {cfg.batch_size}: must be at least 1")
    if cfg.save_patterns < 0:
        raise InputError(f"--save-patterns {cfg.save_patterns}: must be >= 0")
    check_placement(cfg)
    return model_plan(cfg)


def check_placement(cfg: AttnConfig) -> None:
    """--device / --device-map / --max-memory agree, and a device map goes with the HF backend:
    TransformerLens builds its bridge around a model on one device and cannot run one whose
    layers accelerate dispatched over several."""
    Placement(cfg.device, cfg.device_map, cfg.max_memory).check()
    if cfg.device_map is not None and cfg.backend == "tl":
        raise InputError(
            f"--device-map {cfg.device_map} with --backend tl: TransformerLens cannot load a "
            "model dispatched over several devices; use --backend hf (or auto, which then uses hf)"
        )


COMMAND = Command("attn", plan, run_unit, summarise, merge=merge_layer_heads)


def main(cfg: AttnConfig) -> dict[str, Any]:
    """Run `diag attn`; returns the summary written into the manifest (--dry-run: the memory
    estimate)."""
    if cfg.dry_run:
        from training.memory import dry_run

        return dry_run(
            "attn", cfg.model, dtype=cfg.dtype, batch=cfg.batch_size, max_len=cfg.max_len
        )
    return run_command(COMMAND, cfg)
