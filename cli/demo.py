"""`diag demo`: the whole study on the embedded default, end to end, resumable.

    diag demo --out demo_out                       # default preset (~10 min on 2 idle cores)
    diag demo --out /tmp/q --preset quick          # smoke test (<= 3 min): numbers meaningless
    diag demo --out runs/full --preset full --seeds 3   # the replication (README table)
    diag demo --out runs/arch --preset arch        # the same study on bases of three architectures
    diag demo --out runs/fx --preset full --archs llama,gpt2,gpt_neox   # full, cross-architecture

Steps (each writes its own run folder under --out; a finished step is never redone, an
interrupted one resumes where its command can):
  1. synth     the toy world through the full synthesis pipeline  -> data/
  2. pretrain  the base model (cached across demos by config)      -> base/
  3. train     seed, wo, follow, precede at the same budget        -> train/<fmt>-s<seed>/
With several architectures (`archs`), steps 2-5 run once per architecture: its base in
bases/<arch>/ (so result tables name the base by its architecture), the rest under <arch>/
(<arch>/train/, <arch>/eval/, <arch>/diag/); the data, summary and report are shared.
  4. eval      every checkpoint on the toy test split, finals on OOD, the base too -> eval/
  5. ppl, kl + validation loss, attn, ablate                       -> diag/, ablate/
  6. summary   the replication table (pooled seeds, CIs, paired test) -> summary/
  7. report    every figure                                         -> report/report.html
Two steps at a time (--jobs 2, the default): each step runs in its own process with
cores // jobs threads (1 here) once the steps it reads are finished (synth and the base's corpus
side by side; then the base alone with every core; then the four trainings, the ablation's
retraining, the evals and the diagnostics two by two, longest first); its output goes to
<out>/logs/<step>.log. The threads are fixed by the plan, not by timing. --jobs 1: every step in
this process, one after another (the numbers then come from 2-thread training and differ in the
last digits).

Each step is built by its own builder (data_step, pretrain_step, train_step, run_eval_steps,
ppl_step, ..., report_step) from the preset that resolve_preset made of the command's options,
and the DemoLayout of --out; plan() only puts them in order:

    steps, info = plan(DemoConfig(out="demo_out", preset="quick"))   # nothing runs yet
    print([s.name for s in steps])
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.common import invoke
from plumbing import InputError, Manifest, prepare_out_dir, read_manifest
from training.formats import FORMATS

if TYPE_CHECKING:
    from training.pretrain import PretrainConfig

# The compositional part of the toy world (list pipelines: 1-3 stages + a terminal): the
# prototype in docs/TOYWORLD.md found that composed tasks separate the formats while one-step
# tasks saturate. pipe_spread (max - min of the pipeline's output) is held out as the
# out-of-distribution family.
PIPELINE_WORLD = {
    "families": [
        "pipe_list", "pipe_sum", "pipe_count", "pipe_max", "pipe_min", "pipe_spread",
        "pipe_join", "pipe_first", "pipe_last", "pipe_any", "pipe_all",
    ],
    "ood_families": ["pipe_spread"],
    "depth_weights": [0.4, 0.4, 0.2],
}  # fmt: skip
# A smaller cut of it for the default: four terminals (spread held out), depth 1-2, six stage
# kinds, code in one style. From a base pretrained on whole tasks of BASE_WORLD every format
# passes the pass@1 transition on it within 1,000 steps of 16 (16-23% on the clean-clone
# default; README, Results); on PIPELINE_WORLD it needs several times longer.
COMPACT_WORLD = {
    "families": ["pipe_list", "pipe_sum", "pipe_count", "pipe_max", "pipe_spread"],
    "ood_families": ["pipe_spread"],
    "depth_weights": [0.5, 0.5],
    "stages": ["keep_cmp", "keep_parity", "add", "mul", "clamp", "dedupe"],
    "styles": ["comp"],
}  # fmt: skip
# The base's pretraining corpus: the toy world's other (single-operation) families and none of
# its pipelines, so the base learns Python and reading a task's names from its prompt — what a
# real code LLM brings to SFT — without having seen the tasks it is fine-tuned and tested on.
BASE_WORLD = {"pipeline_share": 0.0, "ood_families": []}


@dataclass(frozen=True)
class DemoPreset:
    """Sizes of one demo preset. Wall times measured on 2 idle cores: see the README.

    Data:     synth_n toy seeds through the pipeline (train/val/test/ood mix), toy_world
              (ToyWorld options; default: the compositional pipeline families)
    Base:     base_preset (training.pretrain.PRESETS), base_steps (None: the preset's); archs:
              the architectures of training.pretrain.ARCHS to build it in (several: the whole
              study per architecture, the report faceted by base);
              base_text: the tokenizer learns from the demo's own train split alone (no
              stdlib), base_vocab its size; with base_steps 0 SFT trains from the random init
              (the recipe that passed the pass@1 transition: README, Results); base_world
              (ToyWorld options) with base_synth_n seeds: a second toy corpus the base is
              pretrained on instead, the tokenizer learning both
    Training: steps, save_steps, batch_size, lr, max_len per format run
    Eval:     eval_tasks test tasks at every checkpoint; ood_tasks on finals; max_new_tokens
    Diags:    diag_examples per diagnostic (attn_examples for attn + attribution, the slow
              one); attn_patterns saved; attribution on/off
    Ablation: ablate_formats, ablate_variants, ablate_steps, ablate_save_steps (None: the
              main runs' budget, whose runs then serve as the unablated curve), ablate_verify
              (sandbox every transformed solution's tests first; ~70 s on the default)
    """

    synth_n: int
    base_preset: str
    base_steps: int | None
    steps: int
    save_steps: int
    batch_size: int
    lr: float
    max_len: int
    eval_tasks: int
    ood_tasks: int
    max_new_tokens: int
    diag_examples: int
    attn_patterns: int
    attribution: bool
    ablate_formats: tuple[str, ...]
    ablate_variants: tuple[str, ...]
    ablate_steps: int | None
    ablate_save_steps: int | None
    formats: tuple[str, ...] = FORMATS
    seeds: int = 1
    attn_examples: int | None = None  # None: diag_examples
    base_text: bool = False
    base_vocab: int | None = None
    base_world: dict | None = None
    base_synth_n: int = 0
    ablate_verify: bool = True
    toy_world: dict = field(default_factory=lambda: dict(PIPELINE_WORLD))
    archs: tuple[str, ...] = ("llama",)


PRESETS: dict[str, DemoPreset] = {
    "quick": DemoPreset(
        synth_n=260,
        base_preset="tiny",
        base_steps=None,
        steps=24,
        save_steps=12,
        batch_size=16,
        lr=3e-3,
        max_len=512,
        eval_tasks=24,
        ood_tasks=16,
        max_new_tokens=160,
        diag_examples=12,
        attn_patterns=2,
        attribution=True,
        ablate_formats=("precede",),
        ablate_variants=("signature",),  # one retraining: it is the smoke test of make test
        ablate_steps=12,
        ablate_save_steps=6,
    ),
    "default": DemoPreset(
        # measured on 2 idle cores: README, "What the demo does". Sized for the 11 minutes asked
        # of `make demo`: 800 + 800 steps and no ablation (in `full`); the 1,000 + 1,000-step
        # budget with the ablation took 13:45 with --jobs 2 on 2026-12-05 (README)
        synth_n=6000,
        base_preset="toy",
        base_steps=800,
        base_text=True,
        base_vocab=2048,
        base_world=dict(BASE_WORLD),
        base_synth_n=5000,
        steps=800,
        save_steps=200,
        batch_size=16,
        lr=3e-3,
        max_len=512,
        eval_tasks=80,
        ood_tasks=60,
        max_new_tokens=200,
        diag_examples=48,
        attn_patterns=3,
        attribution=True,
        ablate_formats=(),  # the signature ablation of precede retrains at the main budget: `full`
        ablate_variants=("signature",),
        ablate_steps=None,
        ablate_save_steps=None,
        ablate_verify=False,  # the transforms' own tests check it; 73 s of the demo's budget
        attn_examples=20,
        toy_world=dict(COMPACT_WORLD),
    ),
}
# the default's world and model with twice the data, a longer-pretrained base, 1,500 SFT
# steps, three seeds, 200 test and 200 OOD tasks per checkpoint, 200-example diagnostics, and
# precede's signature and comments ablations
PRESETS["full"] = replace(
    PRESETS["default"],
    synth_n=12000,
    base_steps=1500,
    base_synth_n=8000,
    steps=1500,
    save_steps=250,
    eval_tasks=200,
    ood_tasks=200,
    diag_examples=200,
    attn_patterns=4,
    attn_examples=60,
    seeds=3,
    ablate_formats=("precede",),
    ablate_variants=("signature", "comments"),
)
# the default's world and model on bases of three architectures (Hugging Face's Llama, GPT-2 and
# GPT-NeoX classes at the same widths and depth, one tokenizer and corpus): the default's data
# and 1,000-step bases, 750 SFT steps, wo, follow and precede on each, every checkpoint
# evaluated, smaller diagnostics, no ablation
PRESETS["arch"] = replace(
    PRESETS["default"],
    base_steps=1000,
    steps=750,
    save_steps=250,
    archs=("llama", "gpt2", "gpt_neox"),
    formats=("wo", "follow", "precede"),
    ood_tasks=40,
    diag_examples=24,
    attn_examples=10,
    attn_patterns=2,
    ablate_formats=(),
)


@dataclass
class DemoConfig:
    """Options of `diag demo`: out, preset (quick | default | full | arch), seeds (None: the
    preset's), formats (None: the preset's), archs (None: the preset's), cache (where pretrained
    bases are kept across demos; default $CODECOT_CACHE or ~/.cache/codecot), overwrite."""

    out: str = field(metadata={"help": "Folder for every step's run folder."})
    preset: str = field(
        default="default",
        metadata={
            "help": "quick (smoke, <= 3 min) | default (~10 min) | full (replication) | "
            "arch (three base architectures)."
        },
    )
    seeds: int | None = field(
        default=None, metadata={"help": "Seeds per format (default: the preset's)."}
    )
    formats: list[str] | None = field(
        default=None,
        metadata={"help": "Comma-separated subset of the four formats.", "comma": True},
    )
    archs: list[str] | None = field(
        default=None,
        metadata={
            "help": "Comma-separated base architectures (llama, gpt2, qwen2, gpt_neox): the "
            "study once per architecture, the report faceted by base.",
            "comma": True,
        },
    )
    cache: str | None = field(
        default=None, metadata={"help": "Cache of pretrained bases (default ~/.cache)."}
    )
    jobs: int = field(
        default=2,
        metadata={
            "help": "Steps at once, each in its own process with cores/jobs threads (the base "
            "alone with every core); 1: every step in this process, one after another."
        },
    )
    overwrite: bool = field(default=False, metadata={"help": "Start from scratch in --out."})


@dataclass
class Step:
    name: str
    out: Path  # finished when out/manifest.json says so
    run: Callable[[], Any]  # picklable (a partial of a module-level function): --jobs > 1
    weight: float  # expected relative cost (for the ETA)
    done: Callable[[], bool] | None = None
    # the steps (by their out folders) this one reads; None: every step planned before it
    after: tuple[Path, ...] | None = None
    # among steps that may start, lower first (the long retrainings before the short evals, so
    # the last minutes are not one long step alone on one core)
    priority: int = 5
    # runs alone with every thread (the base: nothing else can start before it ends anyway)
    solo: bool = False


def _finished(path: Path) -> bool:
    manifest = read_manifest(path) if path.is_dir() else None
    return bool(manifest and manifest.get("status") == "finished")


def _fmt_s(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


class Progress:
    """Runs the steps: one line when a step starts ([k/n] name, elapsed, ETA from the steps'
    expected weights) and one when it ends; finished steps are reported and skipped.

    jobs 1: every step in this process, one after another. jobs > 1: each step in its own
    process (spawned; its output in <out>/logs/<step>.log), up to `jobs` at once, a step starting
    once the steps it reads (`Step.after`) are finished; each gets cores // jobs threads, a
    `solo` step runs alone with every core. The threads a step gets are fixed by the plan, never
    by timing, so a run's numbers do not depend on which steps happened to overlap.
    """

    def __init__(self, steps: list[Step], jobs: int = 1, logs: Path | None = None):
        self.steps = steps
        self.jobs = max(1, jobs)
        self.logs = logs
        self.t0 = time.time()
        self.total = sum(s.weight for s in steps) or 1.0
        self.done_weight = 0.0
        self.worked = 0.0  # seconds of wall clock spent while steps ran (not cached)
        self.worked_weight = 0.0
        self.threads: dict[str, int] = {}

    def eta(self) -> str:
        if self.worked_weight <= 0:
            return "?"
        rate = self.worked / self.worked_weight
        return _fmt_s(rate * (self.total - self.done_weight))

    def _head(self, k: int) -> str:
        return f"[{k + 1}/{len(self.steps)}] {self.steps[k].name}"

    def _skip_finished(self) -> set[int]:
        finished = set()
        for k, step in enumerate(self.steps):
            if step.done() if step.done else _finished(step.out):
                print(f"{self._head(k)}: already done ({step.out})", flush=True)
                self.done_weight += step.weight
                finished.add(k)
        return finished

    def _started(self, k: int) -> None:
        elapsed = _fmt_s(time.time() - self.t0)
        print(f"{self._head(k)} ... (elapsed {elapsed}, ETA {self.eta()})", flush=True)

    def _ended(self, k: int, spent: float, timings: dict[str, float]) -> None:
        timings[self.steps[k].name] = round(spent, 1)
        self.worked_weight += self.steps[k].weight
        self.done_weight += self.steps[k].weight
        print(f"{self._head(k)}: done in {_fmt_s(spent)}", flush=True)

    def run(self) -> dict[str, float]:
        finished = self._skip_finished()
        if self.jobs == 1:
            return self._run_here(finished)
        return self._run_spawned(finished)

    def _run_here(self, finished: set[int]) -> dict[str, float]:
        timings: dict[str, float] = {}
        for k, step in enumerate(self.steps):
            if k in finished:
                continue
            self._started(k)
            t = time.time()
            step.run()
            spent = time.time() - t
            self.worked += spent
            self._ended(k, spent, timings)
        return timings

    def _needs(self, k: int) -> set[int]:
        after = self.steps[k].after
        if after is None:
            return set(range(k))
        outs = {Path(p) for p in after}
        return {j for j, s in enumerate(self.steps[:k]) if Path(s.out) in outs}

    def _run_spawned(self, finished: set[int]) -> dict[str, float]:
        import multiprocessing

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        shared = max(1, cores // self.jobs)
        needs = {k: self._needs(k) for k in range(len(self.steps))}
        waiting = [k for k in range(len(self.steps)) if k not in finished]
        running: dict[int, tuple[Any, float, Path]] = {}  # k -> (process, start, log)
        timings: dict[str, float] = {}
        context = multiprocessing.get_context("spawn")
        assert self.logs is not None
        self.logs.mkdir(parents=True, exist_ok=True)
        last = time.time()
        try:
            while waiting or running:
                ready = [k for k in waiting if needs[k] <= finished]
                ready.sort(key=lambda k: (self.steps[k].priority, k))
                for k in ready:
                    solo = self.steps[k].solo
                    if len(running) >= self.jobs or (running and (solo or self._solo(running))):
                        break
                    threads = cores if solo else shared
                    log = self.logs / f"{_slug(self.steps[k].name)}.log"
                    proc = context.Process(
                        target=_run_step, args=(self.steps[k].run, threads, str(log))
                    )
                    self._started(k)
                    proc.start()
                    self.threads[self.steps[k].name] = threads
                    running[k] = (proc, time.time(), log)
                    waiting.remove(k)
                if not running:
                    names = [self.steps[k].name for k in waiting]
                    raise RuntimeError(f"demo plan: steps that can never start: {names}")
                time.sleep(0.2)
                now = time.time()
                self.worked += now - last
                last = now
                for k, (proc, t, log) in list(running.items()):
                    if proc.is_alive():
                        continue
                    proc.join()
                    del running[k]
                    if proc.exitcode != 0:
                        raise _step_failed(self.steps[k].name, proc.exitcode, log)
                    finished.add(k)
                    self._ended(k, now - t, timings)
        finally:
            for proc, _, _ in running.values():
                proc.kill()
                proc.join()
        return timings

    def _solo(self, running: dict[int, Any]) -> bool:
        return any(self.steps[k].solo for k in running)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:80]


def _run_step(run: Callable[[], Any], threads: int, log: str) -> None:
    """A spawned step: its threads set before torch loads, its output appended to `log`, and
    killed with the demo (PR_SET_PDEATHSIG), so a killed demo leaves nothing training."""
    import ctypes
    import signal
    import sys

    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the demo's own kill handling remains
        pass
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:  # torch, imported by the step, takes its thread count from OMP_NUM_THREADS
        run()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)


def _step_failed(name: str, exitcode: int | None, log: Path) -> Exception:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    if exitcode == 2 and lines and lines[-1].startswith("error: "):  # bad input: exit 2 too
        return InputError(f"demo step {name!r}: {lines[-1][len('error: ') :]} (log: {log})")
    tail = "\n".join("    " + line for line in lines[-40:])
    return RuntimeError(f"demo step {name!r} failed (exit {exitcode}); {log} ends:\n{tail}")


def resolve_preset(cfg: DemoConfig) -> DemoPreset:
    """The preset `diag demo` runs: the named one with --seeds and --formats applied.

    The one place the command's options meet the preset; every step is built from its result.
    """
    from training.formats import check_format

    if cfg.preset not in PRESETS:
        raise InputError(f"--preset {cfg.preset!r}: choose from {', '.join(PRESETS)}")
    preset = PRESETS[cfg.preset]
    if cfg.seeds is not None:
        if cfg.seeds < 1:
            raise InputError(f"--seeds {cfg.seeds}: must be at least 1")
        preset = replace(preset, seeds=cfg.seeds)
    if cfg.formats:
        preset = replace(preset, formats=tuple(check_format(f) for f in cfg.formats))
    if cfg.archs:
        from training.pretrain import ARCHS

        unknown = [a for a in cfg.archs if a not in ARCHS]
        if unknown:
            raise InputError(f"--archs {','.join(unknown)}: choose from {', '.join(ARCHS)}")
        preset = replace(preset, archs=tuple(dict.fromkeys(cfg.archs)))
    return preset


def base_cache_dir(cache: str | None) -> Path:
    """Where pretrained bases are kept across demos: --cache, $CODECOT_CACHE or ~/.cache/codecot."""
    root = cache or os.environ.get("CODECOT_CACHE") or Path.home() / ".cache" / "codecot"
    return Path(root) / "bases"


@dataclass(frozen=True)
class DemoLayout:
    """Where each step of one demo writes, all under --out: DemoLayout.under(Path(out))."""

    out: Path
    data: Path  # the toy world's triples (synth)
    triples: Path
    base_data: Path  # the base's own corpus, when the preset has one
    base_triples: Path
    base: Path
    diag: Path
    runs: Path  # where train/, eval/ and ablate/ go: out, or out/<arch> with several archs
    arch: str | None = None  # the base's architecture, when the demo has several

    @classmethod
    def under(cls, out: Path) -> DemoLayout:
        data, base_data = out / "data", out / "base_data"
        return cls(
            out=out,
            data=data,
            triples=data / "triples.jsonl",
            base_data=base_data,
            base_triples=base_data / "triples.jsonl",
            base=out / "base",
            diag=out / "diag",
            runs=out,
        )

    def for_arch(self, arch: str) -> DemoLayout:
        """The layout of one architecture's study: its base in bases/<arch>/ (the folder name is
        how result tables name a run's base), its runs and diagnostics under <arch>/."""
        runs = self.out / arch
        base = self.out / "bases" / arch
        return replace(self, base=base, diag=runs / "diag", runs=runs, arch=arch)

    def tag(self, name: str) -> str:
        """A step's name, with the architecture when the demo has several."""
        return f"{name} [{self.arch}]" if self.arch else name

    def train_dir(self, fmt: str, seed: int) -> Path:
        return self.runs / "train" / f"{fmt}-s{seed}"

    def eval_dir(self, name: str, split: str) -> Path:
        return self.runs / "eval" / f"{name}-{split}"

    def ablate_dir(self, fmt: str, seed: int) -> Path:
        return self.runs / "ablate" / f"{fmt}-s{seed}"


def sft_runs(preset: DemoPreset) -> list[tuple[str, int]]:
    """Every (format, seed) the demo trains, seed by seed: the order of the train and eval steps
    and of the models the diagnostics compare."""
    return [(fmt, seed) for seed in range(preset.seeds) for fmt in preset.formats]


def n_checkpoints(preset: DemoPreset) -> int:
    return max(1, preset.steps // preset.save_steps)


def _call(target: str, config: Any) -> Callable[[], Any]:
    """A step's action: `package.module:main` imported when the step runs, called on config."""
    return partial(invoke, target, config)


# 1. data (and the base's own corpus, when it has one)


def synth_step(name: str, n: int, world: dict, dest: Path) -> Step:
    from synthesis.pipeline import SynthConfig

    config = SynthConfig(sources=["toy"], n=n, toy_world=dict(world), out=str(dest), resume=True)
    return Step(name, dest, _call("synthesis.pipeline:main", config), weight=n / 40, after=())


def data_step(preset: DemoPreset, layout: DemoLayout) -> Step:
    name = "synth: toy world -> triples"
    return synth_step(name, preset.synth_n, preset.toy_world, layout.data)


def base_corpus_steps(preset: DemoPreset, layout: DemoLayout) -> list[Step]:
    """The base's own corpus (other toy families), when the preset has one."""
    if preset.base_world is None:
        return []
    name = "synth: the base's corpus (other toy families)"
    return [synth_step(name, preset.base_synth_n, preset.base_world, layout.base_data)]


# 2. the base model


def pretrain_config(preset: DemoPreset, layout: DemoLayout) -> PretrainConfig:
    """The base's pretraining: on the demo's own task text (base_text; its tokenizer also learns
    the SFT data when the base has a corpus of its own) or on the stdlib (cached across demos)."""
    from training.pretrain import PretrainConfig

    config = PretrainConfig(
        out=str(layout.base), preset=preset.base_preset, steps=preset.base_steps
    )
    if layout.arch is not None:
        config = replace(config, arch=layout.arch)
    if not preset.base_text:
        return config
    config = replace(config, stdlib=False, vocab_size=preset.base_vocab)
    if preset.base_world is not None:
        return replace(
            config, text=[str(layout.base_triples)], tokenizer_text=[str(layout.triples)]
        )
    return replace(config, text=[str(layout.triples)])


def base_location(preset: DemoPreset, config: PretrainConfig, cache: str | None) -> Path:
    """Where the base is pretrained: in the demo (its own data: nothing to share with other
    demos) or in the cache under a key of what decides its weights."""
    from training.pretrain import config_key

    if preset.base_text:
        return Path(config.out)
    key = json.dumps(config_key(config), sort_keys=True).encode()
    return base_cache_dir(cache) / f"{preset.base_preset}-{hashlib.sha1(key).hexdigest()[:12]}"


def pretrain_or_reuse(config: PretrainConfig, cached: Path) -> None:
    """Pretrain the base in the cache unless it is there already, then copy it into the demo."""
    from training.pretrain import is_finished_base, main

    probe = replace(config, out=str(cached))
    if not is_finished_base(cached, probe):
        main(replace(probe, overwrite=True))
    else:
        print(f"  reusing the cached base {cached}")
    base_dir = Path(config.out)
    if base_dir.exists():
        shutil.rmtree(base_dir)
    shutil.copytree(cached, base_dir)


def base_is_finished(config: PretrainConfig, data: Path) -> bool:
    """The demo's base is finished for this config, its data still there (the key hashes it)."""
    from training.pretrain import is_finished_base

    inputs = [data, *config.text]
    return all(Path(p).exists() for p in inputs) and is_finished_base(Path(config.out), config)


def pretrain_step(
    preset: DemoPreset,
    layout: DemoLayout,
    config: PretrainConfig,
    cached: Path,
    after: tuple[Path, ...] | None = None,
) -> Step:
    from training.pretrain import effective_preset

    if preset.base_world is not None:
        corpus = " on the other toy families (tokenizer: both corpora)"
    elif preset.base_text:
        corpus = " (tokenizer from the task text)"
    else:
        corpus = ""
    if preset.base_text:
        run = _call("training.pretrain:main", replace(config, overwrite=True))
    else:
        run = partial(pretrain_or_reuse, config, cached)
    steps_per_unit = {"small": 1.25, "toy": 0.4}.get(preset.base_preset, 0.15)
    arch = f" {layout.arch}" if layout.arch else ""
    return Step(
        f"pretrain: {preset.base_preset}{arch} base{corpus}",
        layout.base,
        run,
        # ~2.9 weight units a second, as the synth and train steps
        weight=max(5, effective_preset(config).steps * steps_per_unit),
        done=partial(base_is_finished, config, layout.triples),
        after=after,
        priority=0,
        solo=True,
    )


# 3. train every format and seed at the same budget


def train_step(preset: DemoPreset, layout: DemoLayout, fmt: str, seed: int) -> Step:
    from training.sft import TrainConfig

    out = layout.train_dir(fmt, seed)
    config = TrainConfig(
        data=str(layout.triples),
        format=fmt,
        base=str(layout.base),
        out=str(out),
        max_steps=preset.steps,
        save_steps=preset.save_steps,
        batch_size=preset.batch_size,
        lr=preset.lr,
        max_len=preset.max_len,
        seed=seed,
        logging_steps=max(1, preset.steps // 20),
        resume=True,
    )
    run = _call("training.sft:main", config)
    name = layout.tag(f"train: {fmt} (seed {seed})")
    # the formats with a CoT train longest (and precede's ablation waits on it): first
    first = 1 if fmt in ("precede", "follow") else 2
    return Step(name, out, run, preset.steps * 0.25, after=(layout.base,), priority=first)


# 4. evaluation: every checkpoint on test, the final model on OOD; the base on both


def eval_step(
    preset: DemoPreset,
    layout: DemoLayout,
    *,
    title: str,
    model: Path,
    out: Path,
    split: str,
    all_checkpoints: bool,
    fmt: str | None,
    weight: float,
) -> Step:  # reads `model` (a training run or the base): starts once it is finished
    from evaluation.run import EvalConfig

    config = EvalConfig(
        out=str(out),
        bench=f"jsonl:{layout.triples}",
        model=str(model),
        split=split,
        format=fmt,
        all_checkpoints=all_checkpoints,
        max_tasks=preset.eval_tasks if split == "test" else preset.ood_tasks,
        max_new_tokens=preset.max_new_tokens,
        resume=True,
    )
    name = f"eval: {title} on {split}" + (" (every checkpoint)" if all_checkpoints else "")
    run = _call("evaluation.run:main", config)
    return Step(layout.tag(name), out, run, weight, after=(model,), priority=3)


def run_eval_steps(preset: DemoPreset, layout: DemoLayout) -> list[Step]:
    """Each trained run: every checkpoint on the test split, the final model on OOD."""
    steps = []
    for fmt, seed in sft_runs(preset):
        for split, all_checkpoints in (("test", True), ("ood", False)):
            tasks = preset.eval_tasks if split == "test" else preset.ood_tasks
            models = n_checkpoints(preset) + 1 if all_checkpoints else 1
            step = eval_step(
                preset,
                layout,
                title=f"{fmt} (seed {seed})",
                model=layout.train_dir(fmt, seed),
                out=layout.eval_dir(f"{fmt}-s{seed}", split),
                split=split,
                all_checkpoints=all_checkpoints,
                fmt=None,
                weight=tasks * models * 0.03,
            )
            steps.append(step)
    return steps


def base_eval_steps(preset: DemoPreset, layout: DemoLayout) -> list[Step]:
    """The base (prompted as `wo`) on both splits: the floor every format starts from."""
    return [
        eval_step(
            preset,
            layout,
            title="base",
            model=layout.base,
            out=layout.eval_dir("base", split),
            split=split,
            all_checkpoints=False,
            fmt="wo",
            weight=preset.eval_tasks * 0.03,
        )
        for split in ("test", "ood")
    ]


# 5. diagnostics over the final models (every seed of every format in one call)


def final_models(preset: DemoPreset, layout: DemoLayout) -> list[str]:
    return [str(layout.train_dir(fmt, seed)) for fmt, seed in sft_runs(preset)]


def scoring_options(preset: DemoPreset, layout: DemoLayout, name: str) -> dict[str, Any]:
    """What ppl, kl and valloss share: the test examples they score and their folder diag/<name>."""
    data = {"data": str(layout.triples), "max_examples": preset.diag_examples}
    return {"out": str(layout.diag / name), "resume": True, **data}


def _reads(models: list[str]) -> dict[str, Any]:
    """A diagnostic's place in the schedule: after the models it reads, before the evals."""
    return {"after": tuple(Path(m) for m in models), "priority": 4}


def ppl_step(preset: DemoPreset, layout: DemoLayout) -> Step:
    from diagnostics.ppl import PplConfig

    models = final_models(preset, layout)
    config = PplConfig(model=models, **scoring_options(preset, layout, "ppl"))
    run = _call("diagnostics.ppl:main", config)
    name = layout.tag("ppl: conditional perplexity")
    return Step(name, layout.diag / "ppl", run, weight=len(models) * 2, **_reads(models))


def kl_step(preset: DemoPreset, layout: DemoLayout) -> Step:
    from diagnostics.kl import KlConfig

    models = final_models(preset, layout)
    config = KlConfig(model=models, save_tokens=True, **scoring_options(preset, layout, "kl"))
    run = _call("diagnostics.kl:main", config)
    name = layout.tag("kl: KL to base")
    return Step(name, layout.diag / "kl", run, weight=len(models) * 3, **_reads(models))


def valloss_step(preset: DemoPreset, layout: DemoLayout) -> Step:
    from diagnostics.valloss import ValLossConfig

    runs = final_models(preset, layout)
    config = ValLossConfig(run=runs, **scoring_options(preset, layout, "valloss"))
    return Step(
        layout.tag("valloss: loss and KL over checkpoints"),
        layout.diag / "valloss",
        _call("diagnostics.valloss:main", config),
        weight=len(runs) * n_checkpoints(preset) * 2,
        **_reads(runs),
    )


def attn_step(preset: DemoPreset, layout: DemoLayout) -> Step:
    from diagnostics.attn import AttnConfig

    models = final_models(preset, layout)
    out = layout.diag / "attn"
    config = AttnConfig(
        model=models,
        out=str(out),
        save_patterns=preset.attn_patterns,
        attribution=preset.attribution,
        resume=True,
        data=str(layout.triples),
        max_examples=preset.attn_examples or preset.diag_examples,
    )
    name = layout.tag("attn: span attention + attribution")
    run = _call("diagnostics.attn:main", config)
    return Step(name, out, run, weight=len(models) * 8, **_reads(models))


def ablate_steps(preset: DemoPreset, layout: DemoLayout) -> list[Step]:
    """Each ablated format that the demo trains, on seed 0 alone (every variant is a full
    retraining)."""
    from diagnostics.ablate import AblateConfig

    seed = 0
    steps = []
    for fmt in preset.ablate_formats:
        if fmt not in preset.formats:
            continue
        out = layout.ablate_dir(fmt, seed)
        config = AblateConfig(
            run=str(layout.train_dir(fmt, seed)),
            out=str(out),
            variants=",".join(preset.ablate_variants),
            max_tasks=preset.eval_tasks,
            max_new_tokens=preset.max_new_tokens,
            max_steps=preset.ablate_steps,
            save_steps=preset.ablate_save_steps,
            verify=preset.ablate_verify,
            resume=True,
        )
        retrain = (preset.ablate_steps or preset.steps) * 0.25 + preset.eval_tasks * 0.03 * 4
        steps.append(
            Step(
                layout.tag(f"ablate: {fmt} (seed {seed}): {', '.join(preset.ablate_variants)}"),
                out,
                _call("diagnostics.ablate:main", config),
                weight=len(preset.ablate_variants) * retrain,
                after=(layout.train_dir(fmt, seed),),
                priority=1,
            )
        )
    return steps


# 6. the replication summary, 7. the report


def summary_step(layout: DemoLayout) -> Step:
    from reports.replication import ReplicationConfig

    out = layout.out / "summary"
    config = ReplicationConfig(runs=[str(layout.out)], out=str(out))
    return Step("summary: replication table", out, _call("reports.replication:main", config), 2)


def report_step(layout: DemoLayout) -> Step:
    from reports.report import ReportConfig

    out = layout.out / "report"
    config = ReportConfig(runs=[str(layout.out)], out=str(out))
    return Step("report: figures", out, _call("reports.report:main", config), weight=10)


def study_steps(
    preset: DemoPreset, layout: DemoLayout, cache: str | None, data: tuple[Path, ...] = ()
) -> list[Step]:
    """One base's study: pretrain it (once `data`, the synth steps' folders, are there), train
    every format and seed, evaluate, diagnose, ablate."""
    base_config = pretrain_config(preset, layout)
    cached = base_location(preset, base_config, cache)
    return [
        pretrain_step(preset, layout, base_config, cached, after=data),
        *[train_step(preset, layout, fmt, seed) for fmt, seed in sft_runs(preset)],
        *run_eval_steps(preset, layout),
        *base_eval_steps(preset, layout),
        ppl_step(preset, layout),
        kl_step(preset, layout),
        valloss_step(preset, layout),
        attn_step(preset, layout),
        *ablate_steps(preset, layout),
    ]


def plan(cfg: DemoConfig) -> tuple[list[Step], dict[str, Any]]:
    """The demo's steps for a preset, in order; nothing runs here."""
    preset = resolve_preset(cfg)
    layout = DemoLayout.under(Path(cfg.out))
    # one architecture keeps the single-study layout (base/, train/, ...) of earlier demos
    studies = [layout] if preset.archs == ("llama",) else [layout.for_arch(a) for a in preset.archs]
    steps = [data_step(preset, layout), *base_corpus_steps(preset, layout)]
    data = tuple(s.out for s in steps)
    for study in studies:
        steps += study_steps(preset, study, cfg.cache, data)
    steps += [summary_step(layout), report_step(layout)]
    caches = [str(base_location(preset, pretrain_config(preset, s), cfg.cache)) for s in studies]
    return steps, {
        "preset": asdict(preset),
        "base_cache": caches[0] if len(caches) == 1 else caches,
    }


def main(cfg: DemoConfig) -> dict[str, Any]:
    out = Path(cfg.out)
    if cfg.overwrite and out.exists():
        shutil.rmtree(out)
    steps, info = plan(cfg)
    prepare_out_dir(out, resume=True)  # a finished demo is re-checked step by step, not redone
    if cfg.jobs < 1:
        raise InputError(f"--jobs {cfg.jobs}: must be >= 1")
    manifest = Manifest("demo", out, config=cfg, seed=0)
    progress = Progress(steps, jobs=cfg.jobs, logs=out / "logs")
    print(f"codecot demo ({cfg.preset}): {len(steps)} steps -> {out}", flush=True)
    timings = progress.run()
    wall = time.time() - progress.t0
    threads = progress.threads or None  # None: every step in this process, its threads
    manifest.finish(step_seconds=timings, step_threads=threads, wall_seconds=round(wall, 1), **info)
    report = out / "report" / "report.html"
    print(f"\ndemo finished in {_fmt_s(wall)}; report: {report}")
    print(f"explore: diag app --runs {out}")
    return {"report": str(report), "wall_seconds": wall, "steps": timings}
