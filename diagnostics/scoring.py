"""What `diag ppl`, `diag kl` and `diag valloss` share besides the runner (plumbing.runner).

    cache = ExampleCache(data, split, max_examples=None, max_len=None)
    examples, info = cache.get(fmt, tokenizer)      # tokenized once per (format, tokenizer)
    refs = resolve_refs(cfg.model)                  # ModelRefs with unique labels
    key = part_name(0, refs[0], "precede")          # the unit of work's part key
    rows = pairwise_summary(frame, value="log_ppl", spans=[...], opts=opts)
    scorer = loaded_scorer(ctx, ref, cfg)                # slot "model": --device / --device-map
    base = loaded_scorer(ctx, base_ref, cfg, slot="base")  # --base-device / --base-device-map

Big models: `--device-map auto` (or balanced, balanced_low_0, sequential) loads each model with
accelerate's device map, its layers over the visible GPUs within `--max-memory`
(`0=20GiB,1=20GiB,cpu=60GiB`), the CPU and then the disk taking the rest; `--base-device` /
`--base-device-map` / `--base-max-memory` place the base of kl and valloss apart from the model
(default: where the model goes).

Resume, parts and manifests are the runner's: each unit of work (one model x format, one
checkpoint) is a part under `<out>/parts/`, and the final tables are built from the parts.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diagnostics.common import ModelRef, load_examples
from plumbing import InputError
from plumbing.runner import run_identity, safe_key
from plumbing.stats import STATS_FIELDS, StatsOptions, comparison_rows
from training.memory import DRY_RUN_HELP
from training.modeling import check_device_map, parse_max_memory

# the help of --device-map and --max-memory (the scoring commands, attn)
DEVICE_MAP_HELP = (
    "Spread the model over the visible GPUs, then CPU, then disk (accelerate): "
    "auto | balanced | balanced_low_0 | sequential. Default: whole model on --device."
)
MAX_MEMORY_HELP = "With --device-map: memory per device, e.g. 0=20GiB,1=20GiB,cpu=60GiB."


@dataclass
class ScoringOptions:
    """Options every scoring command shares (ppl, kl, valloss extend this; defaults live here)."""

    data: str = ""  # triples.jsonl
    out: str = ""  # run folder to write
    split: str = "test"  # split of the triples (all = every triple)
    format: str | None = None  # text format (default: each model's training format)
    batch_size: int = field(
        default=8, metadata={"help": "Sequences per forward pass (padded, length-sorted)."}
    )
    max_examples: int | None = None
    max_len: int | None = None  # skip (and count) longer examples
    dtype: str = field(
        default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16."}
    )
    device: str | None = None  # default: cuda if available
    device_map: str | None = field(default=None, metadata={"help": DEVICE_MAP_HELP})
    max_memory: str | None = field(default=None, metadata={"help": MAX_MEMORY_HELP})
    chunk_tokens: int = field(
        default=0,
        metadata={"help": "Positions per vocab chunk (0 = auto: ~2 MiB fp32 on CPU, 256 MiB GPU)."},
    )
    n_resamples: int = field(
        default=10_000,
        metadata={
            "help": "Bootstrap resamples for every confidence interval.",
            "aliases": ["--bootstrap"],
        },
    )
    confidence: float = 0.95
    test: str = "wilcoxon"  # paired test: wilcoxon | ttest
    pooling: str = field(
        default="average",
        metadata={"help": "Several seeds of a format: average (per example) | hierarchical."},
    )
    stats_seed: int = 0
    dry_run: bool = field(default=False, metadata={"help": DRY_RUN_HELP})
    resume: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        # bad placement options fail here, before a run folder is touched
        Placement(self.device, self.device_map, self.max_memory).check("--")

    def placement(self, slot: str = "model") -> Placement:
        """Where the model of `slot` loads (PairOptions gives the base its own options)."""
        return Placement(self.device, self.device_map, self.max_memory)

    def run_key(self, *ignore: str) -> dict[str, Any]:
        """The options that decide the per-part numbers (what --resume must match); summaries
        (bootstrap, tests) are rebuilt from the parts on every run, so they may change."""
        return run_identity(self, *STATS_FIELDS, *ignore)


@dataclass
class PairOptions(ScoringOptions):
    """The options of the commands that hold a model and its base (kl, valloss): where the
    base loads, apart from the model when given."""

    base_device: str | None = field(
        default=None, metadata={"help": "Device of the base model (default: as the model)."}
    )
    base_device_map: str | None = field(
        default=None, metadata={"help": "--device-map of the base model (default: the model's)."}
    )
    base_max_memory: str | None = field(
        default=None, metadata={"help": "--max-memory of the base model (default: the model's)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        Placement(self.base_device, self.base_device_map, self.base_max_memory).check("--base-")

    def placement(self, slot: str = "model") -> Placement:
        """Slot "model", or "base": its own options if any is given, else the model's."""
        own = (self.base_device, self.base_device_map, self.base_max_memory)
        if slot == "base" and any(value is not None for value in own):
            return Placement(*own)
        return super().placement(slot)


@dataclass(frozen=True)
class Placement:
    """One model's placement options: a device, or a device map with its memory budget."""

    device: str | None = None
    device_map: str | None = None
    max_memory: str | None = None

    def check(self, prefix: str = "--") -> None:
        """InputError, naming the option (`prefix` + device-map, ...), on a bad combination."""
        check_device_map(self.device_map, f"{prefix}device-map")
        parse_max_memory(self.max_memory, f"{prefix}max-memory")
        if self.device is not None and self.device_map is not None:
            raise InputError(
                f"{prefix}device {self.device} and {prefix}device-map {self.device_map}: give one"
            )
        if self.max_memory is not None and self.device_map is None:
            raise InputError(f"{prefix}max-memory: only with {prefix}device-map")

    def load_kwargs(self) -> dict[str, Any]:
        """The placement arguments of `training.modeling.load_model`."""
        return {
            "device": self.device,
            "device_map": self.device_map,
            "max_memory": parse_max_memory(self.max_memory),
        }


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Same fingerprint = same token ids for the same text (vocab, merges, specials, template)."""
    parts = [
        tokenizer.backend_tokenizer.to_str(),
        str(getattr(tokenizer, "chat_template", None)),
        str(tokenizer.bos_token_id),
        str(tokenizer.eos_token_id),
    ]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


class ExampleCache:
    """Examples of one data file and split, encoded once per (format, tokenizer)."""

    def __init__(
        self,
        data: str | Path,
        split: str | None,
        *,
        max_examples: int | None = None,
        max_len: int | None = None,
    ):
        self.data, self.split = data, split
        self.max_examples, self.max_len = max_examples, max_len
        self._cache: dict[tuple[str, str], tuple[list[Any], dict[str, Any]]] = {}

    def get(self, fmt: str, tokenizer: Any) -> tuple[list[Any], dict[str, Any]]:
        key = (fmt, tokenizer_fingerprint(tokenizer))
        if key not in self._cache:
            self._cache[key] = load_examples(
                self.data,
                self.split,
                fmt,
                tokenizer,
                max_examples=self.max_examples,
                max_len=self.max_len,
            )
        return self._cache[key]

    def stats(self) -> dict[str, Any]:
        return {f"{fmt}:{fp}": info for (fmt, fp), (_, info) in self._cache.items()}


def part_name(index: int, ref: ModelRef, *extra: str) -> str:
    """A filesystem-safe, stable key for one unit of work (a model, maybe x format)."""
    step = f"step{ref.step}" if ref.step is not None else "final"
    return safe_key(f"m{index}", ref.label, step, *extra)


def resolve_refs(paths: Sequence[str], what: str = "--model") -> list[ModelRef]:
    if not paths:
        raise InputError(f"{what}: give at least one model")
    return unique_labels([ModelRef.from_path(p, what) for p in paths])


def unique_labels(refs: list[ModelRef]) -> list[ModelRef]:
    """Models that would share a label and step get told apart, so tables and comparisons never
    merge two models: runs of different bases by their base (`gpt2/follow-s0`, the reports'
    display label), then by their run folder's name (`follow-s0(runA)`, e.g. an ablation), then
    by their position."""

    def key(r: ModelRef) -> tuple[str, Any]:
        return (r.label, r.step)

    for attempt in ("base", "folder", "index"):
        counts: dict[tuple[str, Any], int] = {}
        bases: dict[tuple[str, Any], set[Any]] = {}
        for r in refs:
            counts[key(r)] = counts.get(key(r), 0) + 1
            bases.setdefault(key(r), set()).add(r.base)
        clashing = [i for i, r in enumerate(refs) if counts[key(r)] > 1]
        if attempt == "base":
            clashing = [i for i in clashing if refs[i].base and len(bases[key(refs[i])]) > 1]
        for i in clashing:
            ref = refs[i]
            if attempt == "base":
                ref.label = f"{ref.base}/{ref.label}"
            elif attempt == "folder":
                ref.label = f"{ref.label}({(ref.run_dir or ref.path).name})"
            else:
                ref.label = f"{ref.label}#{i}"
    return refs


def condition(label: str, step: Any, score_format: str | None = None) -> str:
    """How a comparison names one side: label[@stepN][[score_format]]."""
    name = str(label)
    if step is not None and step == step:  # not None, not NaN
        name += f"@step{int(step)}"
    if score_format:
        name += f"[{score_format}]"
    return name


def several_steps(frame: Any, by: str) -> set[Any]:
    """Values of `by` seen at more than one step: only their names need the step."""
    steps = frame.assign(_s=frame["step"].astype("float64")).groupby(by, dropna=False)["_s"]
    return set(steps.nunique(dropna=False).loc[lambda n: n > 1].index)


def add_condition(frame: Any, with_score_format: bool) -> Any:
    """A `condition` column naming each model (and scored format); a model's step is in its
    name only when the same label occurs at several steps (checkpoints of one run)."""
    frame = frame.copy()
    stepped = several_steps(frame, "label")
    frame["condition"] = [
        condition(lab, st if lab in stepped else None, sf if with_score_format else None)
        for lab, st, sf in zip(
            frame["label"],
            frame["step"],
            frame["score_format"] if with_score_format else itertools.repeat(None),
        )
    ]
    return frame


def pairwise_summary(
    frame: Any,
    *,
    value: str,
    spans: Sequence[str],
    opts: StatsOptions,
    group_cols: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """summary_* rows: every pair of conditions, per span, paired on example_id; and, where a
    (format, step, *group_cols) group holds several seeds, pooled comparisons between groups
    (`plumbing.stats.comparison_rows`, the one summary builder).

    `frame` needs columns condition, label, format, seed, step, example_id, span and `value`.
    """
    frame = frame.assign(metric=f"{value}:" + frame["span"].astype(str))
    stepped = several_steps(frame, "format")

    def pool_name(key: tuple[Any, ...], n: int) -> str:
        fmt, step, *rest = key
        step = step if fmt in stepped else None
        return f"{condition(fmt, step, rest[0] if rest else None)} ({n} seeds)"

    return comparison_rows(
        frame,
        value=value,
        metrics=[f"{value}:{span}" for span in spans],
        pool_by=["format", "step", *group_cols],
        pool_name=pool_name,
        opts=opts,
    )


def load_scorer(ref: ModelRef, *, dtype: str, placement: Placement, chunk_rows: int) -> Any:
    """Load a model for scoring (no attention outputs needed: default attention kernel) where
    `placement` says (a device, or a device map)."""
    from diagnostics.forward import CausalScorer
    from training.modeling import load_model

    model = load_model(ref.path, dtype=dtype, what=str(ref.path), **placement.load_kwargs())
    return CausalScorer(model, name=ref.label, chunk_rows=chunk_rows)


def free(scorer: Any) -> None:
    """Drop a model so its memory can go back before the next one loads (GPU cache too; a full
    gc.collect() costs ~0.5 s a call on CPU and is only worth it on GPU)."""
    import torch

    scorer.model = scorer._head = None
    if torch.cuda.is_available():
        import gc

        gc.collect()
        torch.cuda.empty_cache()


def loaded_scorer(ctx: Any, ref: ModelRef, cfg: Any, slot: str = "model") -> Any:
    """The scorer of `ref`, kept in the run's state across units (a model scored on several
    formats or against one base loads once); another model in the same slot frees it first.
    Placed by `cfg.placement(slot)` (the base's own options in slot "base")."""
    held = ctx.state.get(slot)
    if held is not None and held[0] == ref.path:
        return held[1]
    if held is not None:
        free(held[1])
    with ctx.manifest.timed("load"):
        scorer = load_scorer(
            ref, dtype=cfg.dtype, placement=cfg.placement(slot), chunk_rows=cfg.chunk_tokens
        )
    ctx.state[slot] = (ref.path, scorer)
    return scorer


def release_scorers(ctx: Any) -> None:
    """Free every scorer the run still holds (the runner's `finish`)."""
    while ctx.state:
        _, (_, scorer) = ctx.state.popitem()
        free(scorer)
