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

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumbing import InputError
from training.formats import PAD_SPAN, Encoded, check_format, encode_many


@dataclass
class ModelRef:
    """A model as the result tables name it."""

    path: Path  # the HF model dir actually loaded
    label: str  # e.g. precede-s0, base
    format: str | None  # the format it was trained on (None for a base model)
    seed: int | None
    step: int | None  # checkpoint step (None for final / base)
    run_dir: Path | None  # the training run folder, if any

    @classmethod
    def from_path(cls, path: str | Path, what: str = "--model") -> ModelRef:
        from training.modeling import model_label, resolve_model_dir

        model_dir = resolve_model_dir(path, what)
        run_dir = None
        cfg: dict[str, Any] = {}
        for candidate in (model_dir, model_dir.parent):
            manifest = candidate / "manifest.json"
            if manifest.exists():
                data = json.loads(manifest.read_text(encoding="utf-8"))
                if data.get("command") == "train":
                    run_dir, cfg = candidate, data.get("config", {})
                break
        step = None
        if model_dir.name.startswith("checkpoint-"):
            step = int(model_dir.name.split("-", 1)[1])
        return cls(
            path=model_dir,
            label=model_label(model_dir),
            format=cfg.get("format"),
            seed=cfg.get("seed"),
            step=step,
            run_dir=run_dir,
        )

    def columns(self) -> dict[str, Any]:
        """The identifying columns every result row carries."""
        return {"label": self.label, "format": self.format, "seed": self.seed, "step": self.step}


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
