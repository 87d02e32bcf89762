"""What every diagnostic shares: model identity, examples through the ONE tokenization path,
length-sorted padded batches with per-token span ids, tokenizer identity checks, progress.

    from diagnostics.common import ModelRef, load_examples, padded_batches
    ref = ModelRef.from_path("runs/precede")        # label precede-s0, format precede, step
    examples, info = load_examples("triples.jsonl", "test", ref.format, tokenizer)
    for batch in padded_batches(examples, batch_size=8, pad_token_id=tok.pad_token_id):
        batch.input_ids    # [batch, seq]
        batch.span_ids     # [batch, seq], PAD_SPAN on padding
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumbing import InputError
from plumbing.runner import Plan, RunContext, Unit, run_identity, safe_key
from plumbing.stats import STATS_FIELDS
from training.formats import PAD_SPAN, SPAN_NAMES, Encoded, check_format, encode_many
from training.modeling import ModelRef


def resolve_format(ref: ModelRef, requested: str | None) -> str:
    """--format if given, else the format the model was trained on."""
    fmt = requested or ref.format
    if fmt is None:
        raise InputError(
            f"--model {ref.path}: not a training run (no train manifest); pass --format"
        )
    return check_format(fmt)


def load_examples(
    data: str | Path,
    split: str | None,
    fmt: str,
    tokenizer: Any,
    *,
    max_examples: int | None = None,
    max_len: int | None = None,
) -> tuple[list[Encoded], dict[str, Any]]:
    """Triples of a split (all if the file has none), encoded in `fmt`; never empty."""
    from synthesis.schema import load_triples

    triples, _ = load_triples(data)
    has_splits = any(t.split for t in triples)
    if split and split != "all" and has_splits:
        triples = [t for t in triples if t.split == split]
    if fmt in ("follow", "precede"):
        triples = [t for t in triples if t.cot.strip()]
    if max_examples:
        triples = triples[:max_examples]
    if not triples:
        raise InputError(f"--data {data}: no usable triples in split {split!r} for format {fmt}")
    examples, stats = encode_many(triples, fmt, tokenizer, max_len=max_len)
    if not examples:
        raise InputError(f"--data {data}: every example is longer than --max-len {max_len}")
    return examples, {**stats.as_dict(), "split": split if has_splits else "all"}


@dataclass
class Batch:
    examples: list[Encoded]
    input_ids: Any  # [batch, seq] long
    attention_mask: Any  # [batch, seq] long
    span_ids: Any  # [batch, seq] long, PAD_SPAN on padding
    lengths: list[int] = field(default_factory=list)


def padded_batches(
    examples: list[Encoded], batch_size: int, pad_token_id: int, device: Any = "cpu"
) -> Iterator[Batch]:
    """Right-padded batches of similar length (sorted longest first: OOM shows up at once)."""
    import torch

    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]))
    for start in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[start : start + batch_size]]
        width = len(chunk[0])
        n = len(chunk)
        input_ids = torch.full((n, width), pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        span_ids = torch.full((n, width), PAD_SPAN, dtype=torch.long)
        for row, ex in enumerate(chunk):
            k = len(ex)
            input_ids[row, :k] = torch.tensor(ex.input_ids)
            attention_mask[row, :k] = 1
            span_ids[row, :k] = torch.tensor(ex.span_ids)
        yield Batch(
            examples=chunk,
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            span_ids=span_ids.to(device),
            lengths=[len(e) for e in chunk],
        )


def check_same_tokenizer(tok_a: Any, tok_b: Any, name_a: str, name_b: str) -> None:
    """KL on identical token ids needs identical tokenizers: vocab, merges and specials."""
    if tok_a.get_vocab() != tok_b.get_vocab():
        raise InputError(
            f"tokenizers differ between {name_a} and {name_b} (vocabularies of "
            f"{len(tok_a)} and {len(tok_b)} tokens are not identical): token-level comparisons "
            "need the same tokenizer"
        )
    if tok_a.backend_tokenizer.to_str() != tok_b.backend_tokenizer.to_str():
        raise InputError(
            f"tokenizers differ between {name_a} and {name_b} (same vocabulary, different "
            "merges/normalisation)"
        )


def progress(iterable: Iterable, total: int | None = None, desc: str = "") -> Iterable:
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, leave=False)


# ---------------------------------------------------------------------------------------------
# per-model diagnostics (attn, gradnorm): one unit of work per model


QUERY_SPANS = ("prompt", "cot", "code")


def requested_spans(
    spans: str | None,
    fmt: str,
    examples: list[Any],
    what: str,
    allowed: tuple[str, ...] = QUERY_SPANS,
) -> list[str]:
    """Spans asked for: --spans if given (each must occur in the data), else those present.

    `response` (every response token: the training loss) is present whenever the data is.
    """
    present = {SPAN_NAMES[s] for ex in examples for s in set(ex.span_ids)} | {"response"}
    if spans is None:
        return [s for s in allowed if s in present]
    wanted = [s.strip() for s in spans.split(",") if s.strip()]
    for span in wanted:
        if span not in allowed:
            raise InputError(f"--spans {spans!r}: {span!r} is not one of {', '.join(allowed)}")
        if span not in present:
            raise InputError(
                f"--spans {span}: format {fmt!r} has no {span} span in any example of {what} "
                f"(spans present: {', '.join(s for s in SPAN_NAMES if s in present)})"
            )
    return wanted


def model_key(ref: ModelRef, labels_at_several_steps: set[str]) -> str:
    """A model's name in per-model tables: its label, plus `@step` when the same label is given
    at several steps (checkpoints of one run)."""
    return ref.key if ref.label in labels_at_several_steps else ref.label


def plan_models(cfg: Any, allowed: tuple[str, ...] = QUERY_SPANS) -> list[dict[str, Any]]:
    """Validate every model (--model), its format and data, and the spans, before any write.

    cfg needs: model, data, split, format, max_examples, max_len, spans.
    """
    from training.modeling import load_tokenizer

    if not cfg.model:
        raise InputError("--model: give at least one model")
    plans = []
    keys: set[str] = set()
    refs = [ModelRef.from_path(path) for path in cfg.model]
    steps: dict[str, set[Any]] = {}
    for ref in refs:
        steps.setdefault(ref.label, set()).add(ref.step)
    stepped = {label for label, s in steps.items() if len(s) > 1}
    for path, ref in zip(cfg.model, refs):
        key = model_key(ref, stepped)
        if key in keys:
            raise InputError(f"--model {path}: names the same model ({ref.key}) twice")
        keys.add(key)
        fmt = resolve_format(ref, cfg.format)
        tok = load_tokenizer(ref.path)
        examples, data_info = load_examples(
            cfg.data, cfg.split, fmt, tok, max_examples=cfg.max_examples, max_len=cfg.max_len
        )
        spans = requested_spans(cfg.spans, fmt, examples, f"--data {cfg.data}", allowed)
        if not spans:
            raise InputError(
                f"--data {cfg.data}: none of the spans {', '.join(allowed)} in format {fmt!r}"
            )
        plans.append(
            {
                "ref": ref,
                "key": key,
                "format": fmt,
                "tokenizer": tok,
                "examples": examples,
                "data": data_info,
                "spans": spans,
            }
        )
    return plans


def model_plan(cfg: Any, allowed: tuple[str, ...] = QUERY_SPANS) -> Plan:
    """The runner's plan of a per-model diagnostic (attn, gradnorm): one unit per model."""
    units = [Unit(safe_key(p["key"]), p) for p in plan_models(cfg, allowed)]
    return Plan(units, identity=run_identity(cfg, *STATS_FIELDS))


def model_infos(ctx: RunContext) -> dict[str, Any]:
    """Each model's unit meta, by model key (resumed ones say so)."""
    infos = {}
    for unit in ctx.plan.units:
        info = ctx.parts.meta(unit.key)
        infos[unit.data["key"]] = {**info, "resumed": True} if unit.key in ctx.resumed else info
    return infos


def summary_rows(frame: Any, value: str, metric_of: Callable[[Any], Any], opts: Any) -> list[dict]:
    """Per-model estimates (b empty: CI of the mean itself) and paired comparisons between every
    two models on the examples both have; models with several seeds of a format are also pooled
    format against format (`plumbing.stats.comparison_rows`, the one summary builder)."""
    from plumbing.stats import comparison_rows

    frame = frame.assign(metric=metric_of(frame))
    frame = frame[frame["metric"].notna()]
    return comparison_rows(
        frame,
        value=value,
        condition="model",
        conditions=list(dict.fromkeys(frame["model"])),
        means=True,
        pool_by=["format"],
        pool_name=lambda key, _n: f"format:{key[0]}",
        opts=opts,
    )
