"""`diag demo`: the whole study on the embedded default, end to end, resumable.

    diag demo --out demo_out                       # default preset (<= 15 min on 2 cores)
    diag demo --out /tmp/q --preset quick          # smoke test (<= 3 min): numbers meaningless
    diag demo --out runs/full --preset full --seeds 3   # the replication (README table)

Steps (each writes its own run folder under --out; a finished step is never redone, an
interrupted one resumes where its command can):
  1. synth     the toy world through the full synthesis pipeline  -> data/
  2. pretrain  the base model (cached across demos by config)      -> base/
  3. train     seed, wo, follow, precede at the same budget        -> train/<fmt>-s<seed>/
  4. eval      every checkpoint on the toy test split, finals on OOD, the base too -> eval/
  5. ppl, kl + validation loss, attn, ablate                       -> diag/, ablate/
  6. summary   the replication table (pooled seeds, CIs, paired test) -> summary/
  7. report    every figure                                         -> report/report.html
One torch process at a time: every step runs in this process, one after another.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from plumbing import InputError, Manifest, prepare_out_dir, read_manifest
from training.formats import FORMATS

# The compositional part of the toy world (list pipelines: 1-3 stages + a terminal): TOYWORLD.md
# found that composed tasks separate the formats while one-step tasks saturate. pipe_spread
# (max - min of the pipeline's output) is held out as the out-of-distribution family.
PIPELINE_WORLD = {
    "families": [
        "pipe_list", "pipe_sum", "pipe_count", "pipe_max", "pipe_min", "pipe_spread",
        "pipe_join", "pipe_first", "pipe_last", "pipe_any", "pipe_all",
    ],
    "ood_families": ["pipe_spread"],
    "depth_weights": [0.4, 0.4, 0.2],
}  # fmt: skip
# A smaller cut of it for the 15-minute default: four terminals (spread held out), depth 1-2,
# six stage kinds, code in one style. From a base pretrained on whole tasks of BASE_WORLD every
# format passes the pass@1 transition on it within 1,000 steps of 16 (16-23% on the clean-clone
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
    Base:     base_preset (training.pretrain.PRESETS), base_steps (None: the preset's);
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
        ablate_variants=("signature", "comments"),
        ablate_steps=12,
        ablate_save_steps=6,
    ),
    "default": DemoPreset(
        # measured on 2 idle cores: README, "What the demo does"
        synth_n=6000,
        base_preset="toy",
        base_steps=1000,
        base_text=True,
        base_vocab=2048,
        base_world=dict(BASE_WORLD),
        base_synth_n=5000,
        steps=1000,
        save_steps=250,
        batch_size=16,
        lr=3e-3,
        max_len=512,
        eval_tasks=80,
        ood_tasks=60,
        max_new_tokens=200,
        diag_examples=48,
        attn_patterns=3,
        attribution=True,
        ablate_formats=("precede",),
        ablate_variants=("signature",),  # comments too in `full`: ~100 s more
        ablate_steps=None,
        ablate_save_steps=None,
        ablate_verify=False,  # the transforms' own tests check it; 73 s of a 15-minute budget
        attn_examples=20,
        toy_world=dict(COMPACT_WORLD),
    ),
}
# the default's world and model with twice the data, a longer-pretrained base, 1,500 SFT
# steps, three seeds, 200 test and 200 OOD tasks per checkpoint, 200-example diagnostics, and
# the comments ablation beside the signature one
PRESETS["full"] = replace(
    PRESETS["default"],
    synth_n=12000,
    base_steps=1500,
    base_synth_n=8000,
    steps=1500,
    eval_tasks=200,
    ood_tasks=200,
    diag_examples=200,
    attn_patterns=4,
    attn_examples=60,
    seeds=3,
    ablate_variants=("signature", "comments"),
)


@dataclass
class DemoConfig:
    """Options of `diag demo`: out, preset (quick | default | full), seeds (None: the
    preset's), formats (None: all four), cache (where pretrained bases are kept across demos;
    default $CODECOT_CACHE or ~/.cache/codecot), overwrite."""

    out: str = field(metadata={"help": "Folder for every step's run folder."})
    preset: str = field(
        default="default",
        metadata={"help": "quick (smoke, <= 3 min) | default (<= 15 min) | full (replication)."},
    )
    seeds: int | None = field(
        default=None, metadata={"help": "Seeds per format (default: the preset's)."}
    )
    formats: list[str] | None = field(
        default=None,
        metadata={"help": "Comma-separated subset of the four formats.", "comma": True},
    )
    cache: str | None = field(
        default=None, metadata={"help": "Cache of pretrained bases (default ~/.cache)."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Start from scratch in --out."})


@dataclass
class Step:
    name: str
    out: Path  # finished when out/manifest.json says so
    run: Callable[[], Any]
    weight: float  # expected relative cost (for the ETA)
    done: Callable[[], bool] | None = None


def _finished(path: Path) -> bool:
    manifest = read_manifest(path) if path.is_dir() else None
    return bool(manifest and manifest.get("status") == "finished")


def _fmt_s(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


class Progress:
    """One line per step: [k/n] name, elapsed and an ETA from the steps' expected weights."""

    def __init__(self, steps: list[Step]):
        self.steps = steps
        self.t0 = time.time()
        self.total = sum(s.weight for s in steps) or 1.0
        self.done_weight = 0.0
        self.worked = 0.0  # seconds spent on steps that ran (not cached)
        self.worked_weight = 0.0

    def eta(self) -> str:
        if self.worked_weight <= 0:
            return "?"
        rate = self.worked / self.worked_weight
        return _fmt_s(rate * (self.total - self.done_weight))

    def run(self) -> dict[str, float]:
        timings: dict[str, float] = {}
        n = len(self.steps)
        for k, step in enumerate(self.steps, start=1):
            head = f"[{k}/{n}] {step.name}"
            finished = step.done() if step.done else _finished(step.out)
            if finished:
                print(f"{head}: already done ({step.out})", flush=True)
                self.done_weight += step.weight
                continue
            elapsed = _fmt_s(time.time() - self.t0)
            print(f"{head} ... (elapsed {elapsed}, ETA {self.eta()})", flush=True)
            t = time.time()
            step.run()
            spent = time.time() - t
            timings[step.name] = round(spent, 1)
            self.worked += spent
            self.worked_weight += step.weight
            self.done_weight += step.weight
            print(f"{head}: done in {_fmt_s(spent)}", flush=True)
        return timings


def base_cache_dir(cfg: DemoConfig) -> Path:
    root = cfg.cache or os.environ.get("CODECOT_CACHE") or Path.home() / ".cache" / "codecot"
    return Path(root) / "bases"


def plan(cfg: DemoConfig) -> tuple[list[Step], dict[str, Any]]:
    """The demo's steps for a preset; nothing runs here."""
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
    out = Path(cfg.out)
    data_dir, base_dir = out / "data", out / "base"
    triples = data_dir / "triples.jsonl"
    steps: list[Step] = []

    # 1. data (and the base's own corpus, when it has one)
    def synth_step(name: str, n: int, world: dict, dest: Path) -> Step:
        def run() -> None:
            from synthesis.pipeline import SynthConfig, main

            main(
                SynthConfig(sources=["toy"], n=n, toy_world=dict(world), out=str(dest), resume=True)
            )

        return Step(name, dest, run, weight=n / 40)

    steps.append(
        synth_step("synth: toy world -> triples", preset.synth_n, preset.toy_world, data_dir)
    )
    base_data = out / "base_data"
    base_triples = base_data / "triples.jsonl"
    if preset.base_world is not None:
        name = "synth: the base's corpus (other toy families)"
        steps.append(synth_step(name, preset.base_synth_n, preset.base_world, base_data))

    # 2. base (cached across demos with the same config)
    from training.pretrain import PRESETS as BASES
    from training.pretrain import PretrainConfig, config_key, is_finished_base

    base_cfg = PretrainConfig(out=str(base_dir), preset=preset.base_preset, steps=preset.base_steps)
    if preset.base_text:  # the demo's own data: nothing to share with other demos
        base_cfg = replace(base_cfg, stdlib=False, vocab_size=preset.base_vocab)
        if preset.base_world is not None:
            base_cfg = replace(base_cfg, text=[str(base_triples)], tokenizer_text=[str(triples)])
        else:
            base_cfg = replace(base_cfg, text=[str(triples)])
        cached = base_dir
    else:
        key = json.dumps(config_key(base_cfg), sort_keys=True).encode()
        cached = base_cache_dir(cfg) / f"{preset.base_preset}-{hashlib.sha1(key).hexdigest()[:12]}"

    def pretrain() -> None:
        from training.pretrain import main

        if preset.base_text:
            main(replace(base_cfg, overwrite=True))
            return
        probe = replace(base_cfg, out=str(cached))
        if not is_finished_base(cached, probe):
            main(replace(probe, overwrite=True))
        else:
            print(f"  reusing the cached base {cached}")
        if base_dir.exists():
            shutil.rmtree(base_dir)
        shutil.copytree(cached, base_dir)

    base_steps = BASES[preset.base_preset].steps if preset.base_steps is None else preset.base_steps
    steps.append(
        Step(
            f"pretrain: {preset.base_preset} base"
            + (
                " on the other toy families (tokenizer: both corpora)"
                if preset.base_world is not None
                else " (tokenizer from the task text)"
                if preset.base_text
                else ""
            ),
            base_dir,
            pretrain,
            # ~2.9 weight units a second, as the synth and train steps
            weight=max(5, base_steps * {"small": 1.25, "toy": 0.4}.get(preset.base_preset, 0.15)),
            done=lambda: (
                all(Path(p).exists() for p in [triples, *base_cfg.text])
                and is_finished_base(base_dir, base_cfg)
            ),
        )
    )

    # 3. train every format and seed at the same budget
    runs: dict[tuple[str, int], Path] = {}
    for seed in range(preset.seeds):
        for fmt in preset.formats:
            run_dir = out / "train" / f"{fmt}-s{seed}"
            runs[(fmt, seed)] = run_dir

            def train(fmt: str = fmt, seed: int = seed, run_dir: Path = run_dir) -> None:
                from training.sft import TrainConfig, main

                main(
                    TrainConfig(
                        data=str(triples),
                        format=fmt,
                        base=str(base_dir),
                        out=str(run_dir),
                        max_steps=preset.steps,
                        save_steps=preset.save_steps,
                        batch_size=preset.batch_size,
                        lr=preset.lr,
                        max_len=preset.max_len,
                        seed=seed,
                        logging_steps=max(1, preset.steps // 20),
                        resume=True,
                    )
                )

            steps.append(
                Step(f"train: {fmt} (seed {seed})", run_dir, train, weight=preset.steps * 0.25)
            )

    # 4. evaluation: every checkpoint on test, the final model on OOD; the base on both
    def eval_step(model: Path, split: str, out_dir: Path, all_ckpts: bool, fmt: str | None):
        def run() -> None:
            from evaluation.run import EvalConfig, main

            main(
                EvalConfig(
                    out=str(out_dir),
                    bench=f"jsonl:{triples}",
                    model=str(model),
                    split=split,
                    format=fmt,
                    all_checkpoints=all_ckpts,
                    max_tasks=preset.eval_tasks if split == "test" else preset.ood_tasks,
                    max_new_tokens=preset.max_new_tokens,
                    resume=True,
                )
            )

        return run

    n_ckpts = max(1, preset.steps // preset.save_steps)
    for (fmt, seed), run_dir in runs.items():
        for split, all_ckpts in (("test", True), ("ood", False)):
            out_dir = out / "eval" / f"{fmt}-s{seed}-{split}"
            tasks = preset.eval_tasks if split == "test" else preset.ood_tasks
            steps.append(
                Step(
                    f"eval: {fmt} (seed {seed}) on {split}"
                    + (" (every checkpoint)" if all_ckpts else ""),
                    out_dir,
                    eval_step(run_dir, split, out_dir, all_ckpts, None),
                    weight=tasks * (n_ckpts + 1 if all_ckpts else 1) * 0.03,
                )
            )
    for split in ("test", "ood"):
        out_dir = out / "eval" / f"base-{split}"
        steps.append(
            Step(
                f"eval: base on {split}",
                out_dir,
                eval_step(base_dir, split, out_dir, False, "wo"),
                weight=preset.eval_tasks * 0.03,
            )
        )

    # 5. diagnostics over the final models (every seed of every format in one call)
    finals = [str(r) for r in runs.values()]
    diag = out / "diag"
    common: dict[str, Any] = {"data": str(triples), "max_examples": preset.diag_examples}

    def ppl() -> None:
        from diagnostics.ppl import PplConfig, main

        main(PplConfig(model=finals, out=str(diag / "ppl"), resume=True, **common))

    def kl() -> None:
        from diagnostics.kl import KlConfig, main

        main(KlConfig(model=finals, out=str(diag / "kl"), save_tokens=True, resume=True, **common))

    def valloss() -> None:
        from diagnostics.valloss import ValLossConfig, main

        main(
            ValLossConfig(
                run=finals,
                out=str(diag / "valloss"),
                data=str(triples),
                max_examples=preset.diag_examples,
                resume=True,
            )
        )

    def attn() -> None:
        from diagnostics.attn import AttnConfig, main

        main(
            AttnConfig(
                model=finals,
                out=str(diag / "attn"),
                save_patterns=preset.attn_patterns,
                attribution=preset.attribution,
                resume=True,
                data=str(triples),
                max_examples=preset.attn_examples or preset.diag_examples,
            )
        )

    n_models = len(finals)
    steps += [
        Step("ppl: conditional perplexity", diag / "ppl", ppl, weight=n_models * 2),
        Step("kl: KL to base", diag / "kl", kl, weight=n_models * 3),
        Step(
            "valloss: loss and KL over checkpoints",
            diag / "valloss",
            valloss,
            weight=n_models * n_ckpts * 2,
        ),
        Step("attn: span attention + attribution", diag / "attn", attn, weight=n_models * 8),
    ]

    for fmt in preset.ablate_formats:
        if fmt not in preset.formats:
            continue
        for seed in range(1):  # one seed: each variant is a full retraining
            run_dir = runs[(fmt, seed)]
            out_dir = out / "ablate" / f"{fmt}-s{seed}"

            def ablate(run_dir: Path = run_dir, out_dir: Path = out_dir) -> None:
                from diagnostics.ablate import AblateConfig, main

                main(
                    AblateConfig(
                        run=str(run_dir),
                        out=str(out_dir),
                        variants=",".join(preset.ablate_variants),
                        max_tasks=preset.eval_tasks,
                        max_new_tokens=preset.max_new_tokens,
                        max_steps=preset.ablate_steps,
                        save_steps=preset.ablate_save_steps,
                        verify=preset.ablate_verify,
                        resume=True,
                    )
                )

            steps.append(
                Step(
                    f"ablate: {fmt} (seed {seed}): {', '.join(preset.ablate_variants)}",
                    out_dir,
                    ablate,
                    weight=len(preset.ablate_variants)
                    * ((preset.ablate_steps or preset.steps) * 0.25 + preset.eval_tasks * 0.03 * 4),
                )
            )

    # 6. the replication summary, 7. the report
    def summary() -> None:
        from reports.replication import ReplicationConfig, main

        main(ReplicationConfig(runs=[str(out)], out=str(out / "summary")))

    def report() -> None:
        from reports.report import ReportConfig, main

        main(ReportConfig(runs=[str(out)], out=str(out / "report")))

    steps.append(Step("summary: replication table", out / "summary", summary, weight=2))
    steps.append(Step("report: figures", out / "report", report, weight=10))
    return steps, {"preset": asdict(preset), "base_cache": str(cached)}


def main(cfg: DemoConfig) -> dict[str, Any]:
    out = Path(cfg.out)
    if cfg.overwrite and out.exists():
        shutil.rmtree(out)
    steps, info = plan(cfg)
    prepare_out_dir(out, resume=True)  # a finished demo is re-checked step by step, not redone
    manifest = Manifest("demo", out, config=cfg, seed=0)
    progress = Progress(steps)
    print(f"codecot demo ({cfg.preset}): {len(steps)} steps -> {out}", flush=True)
    timings = progress.run()
    wall = time.time() - progress.t0
    manifest.finish(step_seconds=timings, wall_seconds=round(wall, 1), **info)
    report = out / "report" / "report.html"
    print(f"\ndemo finished in {_fmt_s(wall)}; report: {report}")
    print(f"explore: diag app --runs {out}")
    return {"report": str(report), "wall_seconds": wall, "steps": timings}
