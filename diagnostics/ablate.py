"""`diag ablate`: retrain on AST-ablated data with the same budget, evaluate every checkpoint.

    diag ablate --run runs/precede --variants signature,comments --out runs/ablate-precede
    diag ablate --run runs/precede --variants signature --out x --dry-run   # before/after only

Method (docs/DESIGN.md, "ablate"):
1. Read the unablated run's manifest (`diag train`): its data, split, format and every
   optimiser/budget setting.
2. For each variant (a transform of diagnostics/transforms.py: `diag ablate --help` lists
   them), transform the triples that run trained on (its split and `max_examples`) and write
   them to `variants/<name>/triples.jsonl`. With `--verify` (default) each solution's own tests
   run in the sandbox before and after the transform; for a transform that preserves semantics
   a solution that passed before and fails after is reported (`transform.json`).
3. Retrain: `training.sft.main` with the run's own TrainConfig (same base, format, steps, batch,
   learning rate, seed, save steps), only the data swapped -> `variants/<name>/run/`.
4. Evaluate every checkpoint: `evaluation.run.main` with `all_checkpoints` on ONE benchmark
   (default: the unablated run's data file as `jsonl:`, split test: untransformed held-out
   triples) -> `variants/<name>/eval/`; the unablated run itself is evaluated the same way as
   variant `none` -> `none/eval/`.
5. `ablate_curves.parquet`: pass@1 (overall group, with eval's bootstrap CI over tasks) per
   variant x checkpoint step; `summary_ablate.parquet`: each variant against `none` at the
   last step, paired over tasks (per-task pass rate; plumbing.stats: bootstrap CI of the
   difference and a paired test).

Resumable: a variant whose eval finished is skipped; an interrupted training resumes from its
last checkpoint and an interrupted eval keeps its finished checkpoints. The `seed` format is not
supported (its response is the seed answer, not the `code` field the transforms edit).
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from plumbing import (
    InputError,
    Manifest,
    atomic_write_json,
    atomic_write_parquet,
    check_out_dir,
    prepare_out_dir,
    read_manifest,
)

NONE = "none"
CURVE_COLUMNS = (
    "label", "base", "format", "seed", "variant", "step", "loss_tokens_seen", "bench", "split",
    "pass_at_1", "ci_low", "ci_high", "n_tasks",
)  # fmt: skip


@dataclass
class AblateConfig:
    """Options of `diag ablate`.

    Input:    run (the unablated training run), data (override its training data path)
    Variants: variants (comma-separated registry names), transform_seed, verify (sandbox the
              solutions' tests before/after), dry_run (show before/after, write nothing),
              n_show
    Eval:     bench (default jsonl:<the run's data>), bench_file, split, max_tasks, n_samples,
              temperature, max_new_tokens, eval_batch_size, eval_seed, timeout_s, workers,
              dtype, device, eval_n_resamples
    Budget:   max_steps, save_steps (None: the run's own). A smaller budget retrains the
              unablated data too (variant `none`), so every curve shares one budget
    Stats:    n_resamples, confidence, test
    Run:      out, resume, overwrite
    """

    run: str = field(metadata={"help": "The unablated diag train run folder."})
    out: str
    variants: str = field(
        default="signature,comments", metadata={"help": "Comma-separated transforms."}
    )
    max_steps: int | None = field(
        default=None,
        metadata={"help": "Smaller budget than the run's (then 'none' is retrained at it too)."},
    )
    save_steps: int | None = field(
        default=None, metadata={"help": "Checkpoint interval at that budget."}
    )
    data: str | None = field(
        default=None, metadata={"help": "The run's training data, if it moved."}
    )
    transform_seed: int = field(default=0, metadata={"help": "Seed of random transforms."})
    verify: bool = field(
        default=True, metadata={"help": "Sandbox each solution's tests before/after a transform."}
    )
    dry_run: bool = field(
        default=False, metadata={"help": "Show before/after diffs; train nothing."}
    )
    n_show: int = field(default=3, metadata={"help": "--dry-run: examples shown per variant."})
    bench: str | None = field(
        default=None,
        metadata={"help": "Benchmark for every checkpoint (default: jsonl:<the run's data>)."},
    )
    bench_file: str | None = field(
        default=None, metadata={"help": "The benchmark's data file (see diag eval)."}
    )
    split: str = field(default="test", metadata={"help": "Benchmark split (triples benchmarks)."})
    max_tasks: int | None = None
    n_samples: int = 1
    temperature: float = 0.0
    max_new_tokens: int = 512
    eval_batch_size: int = field(default=32, metadata={"help": "Generation rows per batch."})
    eval_seed: int = field(default=0, metadata={"help": "Sampling and bootstrap seed of eval."})
    timeout_s: float = field(default=10.0, metadata={"flag": "--timeout"})
    workers: int | None = None
    dtype: str = "auto"
    device: str | None = None
    eval_n_resamples: int = field(
        default=1000,
        metadata={
            "help": "Eval bootstrap resamples (curve CIs).",
            "aliases": ["--n-boot"],
        },
    )
    n_resamples: int = field(default=2000, metadata={"help": "Summary bootstrap resamples."})
    confidence: float = 0.95
    test: str = "wilcoxon"
    resume: bool = field(default=False, metadata={"help": "Continue (skip finished variants)."})
    overwrite: bool = False


# ---------------------------------------------------------------------------------------------
# the unablated run


def read_run(run: str, data_override: str | None) -> dict[str, Any]:
    """The training run's config (a `diag train` manifest), with its data file checked."""
    from training.formats import check_format

    run_dir = Path(run)
    if not run_dir.is_dir():
        raise InputError(f"--run {run}: no such directory")
    manifest = read_manifest(run_dir)
    if manifest is None or manifest.get("command") != "train":
        raise InputError(f"--run {run}: not a diag train run folder (no train manifest.json)")
    if manifest.get("status") != "finished":
        raise InputError(f"--run {run}: the training run has not finished")
    config = dict(manifest.get("config", {}))
    fmt = check_format(config.get("format", ""))
    if fmt == "seed":
        raise InputError(
            f"--run {run}: format 'seed' renders the seed answer verbatim; the transforms edit "
            "the `code` field, so ablate supports wo, follow and precede runs"
        )
    data = Path(data_override or config.get("data", ""))
    if not data.is_file():
        raise InputError(
            f"--run {run}: its training data {data} is not a file here (pass --data PATH)"
        )
    config["data"] = str(data.resolve())
    from training.sft import TrainConfig

    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise InputError(f"--run {run}: manifest config has unknown fields {unknown}")
    return {"dir": run_dir.resolve(), "config": config, "format": fmt, "manifest": manifest}


def training_triples(config: dict[str, Any]) -> list[Any]:
    """The triples the run trained on: its split and max_examples (as training.sft selects)."""
    from synthesis.schema import load_triples

    triples, _ = load_triples(config["data"], skip_bad=bool(config.get("skip_bad")))
    split = config.get("split", "train")
    if any(t.split for t in triples) and split != "all":
        triples = [t for t in triples if t.split == split]
    if config.get("max_examples"):
        triples = triples[: config["max_examples"]]
    if not triples:
        raise InputError(f"--run: no training triples in {config['data']} split {split!r}")
    return triples


def parse_variants(text: str) -> list[str]:
    from diagnostics.transforms import TRANSFORMS

    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise InputError("--variants: give at least one transform")
    for name in names:
        if name == NONE:
            raise InputError("--variants: 'none' (the unablated run) is always evaluated")
        if name not in TRANSFORMS:
            raise InputError(
                f"--variants {name!r}: unknown transform (choose from {', '.join(TRANSFORMS)})"
            )
    if len(set(names)) != len(names):
        raise InputError(f"--variants {text!r}: a variant is named twice")
    return names


# ---------------------------------------------------------------------------------------------
# steps


def verify_semantics(
    before: list[Any], after: list[Any], cfg: AblateConfig, cache: dict[str, bool]
) -> dict[str, Any]:
    """Run each solution's tests in the sandbox before and after; which ones broke."""
    from sandbox import Program, SandboxConfig, run_programs

    sandbox_cfg = SandboxConfig(timeout_s=cfg.timeout_s)
    todo = [t for t in before if t.id not in cache and t.tests]
    if todo:
        verdicts = run_programs(
            [Program(t.id, t.code, list(t.tests)) for t in todo], sandbox_cfg, workers=cfg.workers
        )
        cache.update({t.id: v.status == "passed" for t, v in zip(todo, verdicts)})
    changed = [(b, a) for b, a in zip(before, after) if a.code != b.code and a.tests]
    verdicts = run_programs(
        [Program(a.id, a.code, list(a.tests)) for _, a in changed], sandbox_cfg, workers=cfg.workers
    )
    after_ok = {a.id: v.status == "passed" for (_, a), v in zip(changed, verdicts)}
    broken = [
        {"id": a.id, "status": v.status, "detail": v.detail[:200]}
        for (b, a), v in zip(changed, verdicts)
        if cache.get(b.id) and not after_ok[a.id]
    ]
    return {
        "checked": len(changed),
        "passed_before": sum(1 for b, _ in changed if cache.get(b.id)),
        "passed_after": sum(after_ok.values()),
        "broken": broken,
    }


def show_examples(name: str, before: list[Any], after: list[Any], n: int) -> str:
    """Unified diffs of the first n examples the transform changed (code, or the CoT)."""
    lines = []
    shown = 0
    for b, a in zip(before, after):
        if shown >= n:
            break
        for fieldname in ("code", "cot"):
            old, new = getattr(b, fieldname), getattr(a, fieldname)
            if old == new:
                continue
            diff = difflib.unified_diff(
                old.splitlines(),
                new.splitlines(),
                f"{b.id}.{fieldname} (before)",
                f"{b.id}.{fieldname} ({name})",
                lineterm="",
            )
            lines.extend(diff)
            shown += 1
    if not shown:
        lines.append(f"({name}: no example changed)")
    return "\n".join(lines)


def _eval_config(cfg: AblateConfig, model: Path, out: Path, label: str, fmt: str) -> Any:
    from evaluation.run import EvalConfig

    return EvalConfig(
        out=str(out),
        bench=cfg.bench,
        model=str(model),
        bench_file=cfg.bench_file,
        split=cfg.split,
        format=fmt,
        all_checkpoints=True,
        n_samples=cfg.n_samples,
        temperature=cfg.temperature,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.eval_batch_size,
        seed=cfg.eval_seed,
        ks=(1,),
        max_tasks=cfg.max_tasks,
        timeout_s=cfg.timeout_s,
        workers=cfg.workers,
        dtype=cfg.dtype,
        device=cfg.device,
        label=label,
        n_resamples=cfg.eval_n_resamples,
        progress=True,
    )


def _finished(path: Path) -> bool:
    manifest = read_manifest(path) if path.is_dir() else None
    return bool(manifest and manifest.get("status") == "finished")


def evaluate(cfg: AblateConfig, model: Path, out: Path, label: str, fmt: str) -> None:
    from evaluation.run import main as eval_main

    if _finished(out):
        return
    eval_main(_eval_config(cfg, model, out, label, fmt))


def retrain(config: dict[str, Any], data: Path, out: Path) -> None:
    from training.sft import TrainConfig
    from training.sft import main as train_main

    if _finished(out):
        return
    values = {**config, "data": str(data), "out": str(out), "resume": True, "overwrite": False}
    train_main(TrainConfig(**values))


# ---------------------------------------------------------------------------------------------
# tables


def curves(eval_dir: Path, variant: str, run_seed: Any) -> Any:
    import pandas as pd

    table = pd.read_parquet(eval_dir / "pass_at_k.parquet")
    table = table[(table["group"] == "all") & (table["k"] == 1)].copy()
    table["variant"] = variant
    table["seed"] = run_seed
    table = table.rename(columns={"pass_at_k": "pass_at_1"})
    return table.reindex(columns=list(CURVE_COLUMNS)).sort_values("step")


def last_step_summary(out: Path, variants: list[str], opts: Any) -> Any:
    """Each variant against none at its last step: per-task pass rates, paired over tasks."""
    import pandas as pd

    from plumbing.stats import compare_paired, summary_frame

    def per_task(eval_dir: Path) -> Any:
        samples = pd.read_parquet(eval_dir / "samples.parquet")
        last = samples[samples["step"] == samples["step"].max()]
        return last.groupby("task_id")["passed"].mean(), int(last["step"].max())

    base, base_step = per_task(out / NONE / "eval")
    rows = []
    for name in variants:
        rates, step = per_task(out / "variants" / name / "eval")
        joined = rates.to_frame("a").join(base.to_frame("b"), how="inner")
        row = compare_paired(
            joined["a"].to_numpy(dtype=float),
            joined["b"].to_numpy(dtype=float),
            metric=f"pass_at_1@last_step ({step} vs {base_step})",
            name_a=name,
            name_b=NONE,
            opts=opts,
        )
        rows.append(row)
    return summary_frame(rows)


# ---------------------------------------------------------------------------------------------
# main


def main(cfg: AblateConfig) -> dict[str, Any]:
    """Run `diag ablate`; returns the summary written into the manifest."""
    from diagnostics.transforms import TRANSFORMS, apply_transform
    from plumbing.stats import StatsOptions
    from synthesis.schema import write_triples

    stats_opts = StatsOptions(n_resamples=cfg.n_resamples, confidence=cfg.confidence, test=cfg.test)
    run = read_run(cfg.run, cfg.data)
    variants = parse_variants(cfg.variants)
    if cfg.bench is None:
        cfg.bench = f"jsonl:{run['config']['data']}"
    triples = training_triples(run["config"])
    transformed = {}
    transform_stats = {}
    for name in variants:
        transformed[name], stats = apply_transform(name, triples, cfg.transform_seed)
        transform_stats[name] = stats.as_dict()
        if stats.changed == 0:
            raise InputError(
                f"--variants {name}: the transform changes none of the {len(triples)} training "
                f"triples of {cfg.run} (nothing to ablate)"
            )
    if cfg.dry_run:
        for name in variants:
            print(f"=== {name}: {TRANSFORMS[name].summary}")
            print(json.dumps(transform_stats[name]))
            print(show_examples(name, triples, transformed[name], cfg.n_show))
        return {"dry_run": True, "transforms": transform_stats}

    from evaluation.benchmarks import BenchSpec, load_tasks

    tasks = load_tasks(BenchSpec(name=cfg.bench, bench_file=cfg.bench_file, split=cfg.split))
    if not tasks:
        raise InputError(f"--bench {cfg.bench}: no tasks in split {cfg.split!r}")
    out = check_out_dir(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume)
    if cfg.resume and _finished(out):
        print(f"{out}: already finished")
        return (read_manifest(out) or {}).get("result", {})
    out = prepare_out_dir(out, overwrite=cfg.overwrite, resume=True)
    manifest = Manifest("ablate", out, config=cfg, seed=run["config"].get("seed"))
    label = f"{run['format']}-s{run['config'].get('seed', 0)}"
    fmt = run["format"]
    verify_cache: dict[str, bool] = {}
    info: dict[str, Any] = {}
    overrides = (("max_steps", cfg.max_steps), ("save_steps", cfg.save_steps))
    budget = {k: v for k, v in overrides if v is not None and v != run["config"].get(k)}
    train_config = {**run["config"], **budget}
    none_model = run["dir"]
    if budget:  # a different budget: the unablated data are retrained at it too
        none_data = out / NONE / "triples.jsonl"
        if not _finished(out / NONE / "run"):
            write_triples(none_data, triples)
        with manifest.timed("train none"):
            retrain(train_config, none_data, out / NONE / "run")
        none_model = out / NONE / "run"
    with manifest.timed("eval none"):
        evaluate(cfg, none_model, out / NONE / "eval", label, fmt)
    for name in variants:
        vdir = out / "variants" / name
        data = vdir / "triples.jsonl"
        if not _finished(vdir / "eval"):
            write_triples(data, transformed[name])
            record = {"transform": name, "summary": TRANSFORMS[name].summary}
            record["stats"] = transform_stats[name]
            if cfg.verify and TRANSFORMS[name].preserves_semantics:
                with manifest.timed(f"verify {name}"):
                    record["verify"] = verify_semantics(
                        triples, transformed[name], cfg, verify_cache
                    )
                if record["verify"]["broken"]:
                    print(
                        f"warning: {name}: {len(record['verify']['broken'])} solution(s) pass "
                        "their tests before the transform and fail after (see transform.json)"
                    )
            atomic_write_json(vdir / "transform.json", record)
            with manifest.timed(f"train {name}"):
                retrain(train_config, data, vdir / "run")
            with manifest.timed(f"eval {name}"):
                evaluate(cfg, vdir / "run", vdir / "eval", label, fmt)
        info[name] = json.loads((vdir / "transform.json").read_text(encoding="utf-8"))
    with manifest.timed("tables"):
        import pandas as pd

        frames = [curves(out / NONE / "eval", NONE, run["config"].get("seed"))]
        frames += [
            curves(out / "variants" / n / "eval", n, run["config"].get("seed")) for n in variants
        ]
        table = pd.concat(frames, ignore_index=True)
        atomic_write_parquet(out / "ablate_curves.parquet", table)
        summary = last_step_summary(out, variants, stats_opts)
        atomic_write_parquet(out / "summary_ablate.parquet", summary)
    final = {
        v: float(g.sort_values("step")["pass_at_1"].iloc[-1]) for v, g in table.groupby("variant")
    }
    result = {
        "run": str(run["dir"]),
        "format": fmt,
        "bench": cfg.bench,
        "split": cfg.split,
        "variants": info,
        "budget": {
            "max_steps": train_config.get("max_steps"),
            "save_steps": train_config.get("save_steps"),
            "run_max_steps": run["config"].get("max_steps"),
        },
        "final_pass_at_1": {k: (None if math.isnan(v) else v) for k, v in final.items()},
        "outputs": ["ablate_curves.parquet", "summary_ablate.parquet"],
    }
    manifest.finish(result=result)
    print(f"ablate: {', '.join(variants)} vs none -> {out / 'ablate_curves.parquet'}")
    for variant, value in final.items():
        print(f"  {variant}: pass@1 at the last step {value:.3f}")
    return result
