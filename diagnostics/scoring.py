"""Run plumbing shared by `diag ppl`, `diag kl` and `diag valloss`.

    cache = ExampleCache(data, split, max_examples=None, max_len=None)
    examples, info = cache.get(fmt, tokenizer)      # tokenized once per (format, tokenizer)
    store = PartStore(out_dir, key=config_dict, resume=cfg.resume)
    if not store.done("m0-precede-s0"): store.write("m0-precede-s0", frame)
    frame = store.read(["m0-precede-s0", ...])
    rows = pairwise_summary(frame, value="log_ppl", spans=[...], opts=opts)

Resumability: each unit of work (one model x format, one checkpoint) is written to
`<out>/parts/<name>.parquet` atomically when it finishes; `--resume` skips finished parts, and
refuses when the options that decide the numbers changed (`parts/config.json`). The final tables
are built from the parts, so a killed run leaves complete parts and no final table.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diagnostics.common import ModelRef, load_examples
from plumbing import InputError, atomic_write_json, atomic_write_parquet, to_jsonable
from plumbing.stats import StatsOptions, compare_paired, compare_pooled, paired_arrays


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
    chunk_tokens: int = field(
        default=0,
        metadata={"help": "Positions per vocab chunk (0 = auto: ~2 MiB fp32 on CPU, 256 MiB GPU)."},
    )
    bootstrap: int = field(
        default=10_000,
        metadata={
            "help": "Bootstrap resamples for every confidence interval.",
            "flag": "--n-resamples",
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
    resume: bool = False
    overwrite: bool = False

    def run_key(self, *ignore: str) -> dict[str, Any]:
        """The options that decide the per-part numbers (what --resume must match); summaries
        (bootstrap, tests) are rebuilt from the parts on every run, so they may change."""
        skip = {"out", "resume", "overwrite", "bootstrap", "confidence", "test", "pooling"}
        skip |= {"stats_seed", *ignore}
        return {k: v for k, v in vars(self).items() if k not in skip}


def stats_options(cfg: Any) -> StatsOptions:
    """StatsOptions from a command config's bootstrap/confidence/test/pooling/stats_seed."""
    return StatsOptions(
        n_resamples=cfg.bootstrap,
        confidence=cfg.confidence,
        seed=cfg.stats_seed,
        test=cfg.test,
        pooling=cfg.pooling,
    )


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


class PartStore:
    """Finished units of work under `<out>/parts/` (see module docstring)."""

    def __init__(self, out: str | Path, key: dict[str, Any], resume: bool):
        self.dir = Path(out) / "parts"
        key_file = self.dir / "config.json"
        key = to_jsonable(key)
        if resume and key_file.exists():
            old = json.loads(key_file.read_text(encoding="utf-8"))
            if old != key:
                changed = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
                raise InputError(
                    f"--resume {out}: options changed since the interrupted run "
                    f"({', '.join(changed)}); use --overwrite to start again"
                )
        elif self.dir.exists():
            shutil.rmtree(self.dir)  # not resuming: never mix in parts of another run
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(key_file, key)

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.parquet"

    def done(self, name: str) -> bool:
        return self.path(name).exists()

    def write(self, name: str, frame: Any) -> None:
        atomic_write_parquet(self.path(name), frame)

    def write_meta(self, name: str, meta: dict[str, Any]) -> None:
        atomic_write_json(self.dir / f"{name}.json", meta)

    def read_meta(self, name: str) -> dict[str, Any]:
        path = self.dir / f"{name}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def read(self, names: Sequence[str]) -> Any:
        import pandas as pd

        frames = [pd.read_parquet(self.path(n)) for n in names]
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def part_name(index: int, ref: ModelRef, *extra: str) -> str:
    """A filesystem-safe, stable name for one unit of work."""
    raw = "-".join([f"m{index}", ref.label, f"step{ref.step}" if ref.step is not None else "final"])
    raw = "-".join([raw, *extra])
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in raw)


def resolve_refs(paths: Sequence[str], what: str = "--model") -> list[ModelRef]:
    if not paths:
        raise InputError(f"{what}: give at least one model")
    return unique_labels([ModelRef.from_path(p, what) for p in paths])


def unique_labels(refs: list[ModelRef]) -> list[ModelRef]:
    """Models that would share a label and step (two runs both `follow-s0`, e.g. an ablation)
    get their run folder's name appended, `follow-s0(runA)`, then their position if needed, so
    tables and comparisons never merge two models."""

    def key(r: ModelRef) -> tuple[str, Any]:
        return (r.label, r.step)

    for attempt in ("folder", "index"):
        counts: dict[tuple[str, Any], int] = {}
        for r in refs:
            counts[key(r)] = counts.get(key(r), 0) + 1
        clashing = [i for i, r in enumerate(refs) if counts[key(r)] > 1]
        for i in clashing:
            ref = refs[i]
            if attempt == "folder":
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


def add_condition(frame: Any, with_score_format: bool) -> Any:
    frame = frame.copy()
    frame["condition"] = [
        condition(lab, st, sf if with_score_format else None)
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
    (format, step, *group_cols) group holds several seeds, pooled comparisons between groups.

    `frame` needs columns condition, label, format, seed, example_id, span and `value`.
    """
    rows: list[dict[str, Any]] = []
    conditions = sorted(frame["condition"].unique())
    for span in spans:
        sub = frame[frame["span"] == span]
        if sub.empty:
            continue
        present = [c for c in conditions if (sub["condition"] == c).any()]
        for a, b in itertools.combinations(present, 2):
            va, vb, _ = paired_arrays(
                sub, value=value, unit="example_id", key="condition", a=a, b=b
            )
            if len(va) == 0:
                continue
            rows.append(
                compare_paired(va, vb, metric=f"{value}:{span}", name_a=a, name_b=b, opts=opts)
            )
        rows.extend(_pooled_rows(sub, value=value, span=span, opts=opts, group_cols=group_cols))
    return rows


def _pooled_rows(
    sub: Any, *, value: str, span: str, opts: StatsOptions, group_cols: Sequence[str]
) -> list[dict[str, Any]]:
    """Seeds pooled: groups (format, step, *group_cols) of which one holds >= 2 seeds, all pairs."""
    keys = ["format", "step", *group_cols]
    sub = sub[sub["format"].notna()]
    groups = {}
    for key, g in sub.groupby(keys, sort=True, dropna=False):
        fmt, step, *rest = key
        name = condition(fmt, step, rest[0] if rest else None)
        conds = sorted(g["condition"].unique())
        groups[f"{name} ({len(conds)} seeds)"] = (g, conds)
    if not any(len(c) >= 2 for _, c in groups.values()):
        return []
    rows = []
    for (name_a, (ga, ca)), (name_b, (gb, cb)) in itertools.combinations(groups.items(), 2):
        ids = sorted(set(ga["example_id"]) & set(gb["example_id"]))
        if not ids:
            continue

        def matrix(g: Any, conds: list[str], ids: list[str] = ids) -> list[Any]:
            wide = g.pivot_table(index="example_id", columns="condition", values=value)
            wide = wide.reindex(index=ids, columns=conds)
            return [wide[c].to_numpy() for c in conds]

        rows.append(
            compare_pooled(
                matrix(ga, ca),
                matrix(gb, cb),
                metric=f"{value}:{span}",
                name_a=name_a,
                name_b=name_b,
                opts=opts,
            )
        )
    return rows


def load_scorer(ref: ModelRef, *, dtype: str, device: str | None, chunk_rows: int) -> Any:
    """Load a model for scoring (no attention outputs needed: default attention kernel)."""
    from diagnostics.forward import CausalScorer
    from training.modeling import load_model

    model = load_model(ref.path, dtype=dtype, device=device, what=str(ref.path))
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
