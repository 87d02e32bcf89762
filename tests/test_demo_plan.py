"""What `diag demo` plans, step by step, for every preset: names, folders, ETA weights and the
exact config each step hands to its command (captured by running the steps with the commands'
`main` replaced by a recorder: nothing trains). The expectations are written out by hand and
held the plan of cli/demo.py before its step builders were split out of one function.

    pytest -q tests/test_demo_plan.py
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from cli import demo
from diagnostics.ablate import AblateConfig
from diagnostics.attn import AttnConfig
from diagnostics.kl import KlConfig
from diagnostics.ppl import PplConfig
from diagnostics.valloss import ValLossConfig
from evaluation.run import EvalConfig
from plumbing import InputError
from reports.replication import ReplicationConfig
from reports.report import ReportConfig
from synthesis.pipeline import SynthConfig
from training.pretrain import PretrainConfig
from training.sft import TrainConfig

COMMANDS = [
    "synthesis.pipeline",
    "training.pretrain",
    "training.sft",
    "evaluation.run",
    "diagnostics.ppl",
    "diagnostics.kl",
    "diagnostics.valloss",
    "diagnostics.attn",
    "diagnostics.ablate",
    "reports.replication",
    "reports.report",
]
FOUR = ("seed", "wo", "follow", "precede")


@dataclass
class Planned:
    name: str
    out: str
    weight: float
    calls: list[tuple[Any, ...]]  # (command, config) and, for the base, the cache's handling
    has_done: bool


@dataclass
class Recorder:
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    base_finished: bool = False  # what is_finished_base answers

    def command(self, module: str):
        return lambda config: self.calls.append((module, config))

    def is_finished_base(self, path, config) -> bool:
        self.calls.append(("is_finished_base", str(path), config))
        return self.base_finished


@pytest.fixture
def recorder(monkeypatch, tmp_path) -> Recorder:
    """Every command the demo calls replaced by a recorder; relative paths under tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CODECOT_CACHE", raising=False)
    rec = Recorder()
    for module in COMMANDS:
        monkeypatch.setattr(f"{module}.main", rec.command(module))
    monkeypatch.setattr("training.pretrain.is_finished_base", rec.is_finished_base)
    monkeypatch.setattr(shutil, "copytree", lambda a, b: rec.calls.append(("copy", str(a), str(b))))
    monkeypatch.setattr(shutil, "rmtree", lambda a: rec.calls.append(("rmtree", str(a))))
    return rec


def planned(rec: Recorder, **options) -> tuple[list[Planned], dict[str, Any]]:
    steps, info = demo.plan(demo.DemoConfig(out="demo", **options))
    result = []
    for step in steps:
        rec.calls.clear()
        step.run()
        result.append(
            Planned(step.name, str(step.out), step.weight, list(rec.calls), bool(step.done))
        )
    return result, info


# --- the expectations, preset by preset ----------------------------------------------------


def train_calls(fmts, seeds, *, steps, save_steps, logging_steps, weight) -> list[Planned]:
    return [
        Planned(
            f"train: {fmt} (seed {seed})",
            f"demo/train/{fmt}-s{seed}",
            weight,
            [
                (
                    "training.sft",
                    TrainConfig(
                        data="demo/data/triples.jsonl",
                        format=fmt,
                        base="demo/base",
                        out=f"demo/train/{fmt}-s{seed}",
                        max_steps=steps,
                        save_steps=save_steps,
                        batch_size=16,
                        lr=3e-3,
                        max_len=512,
                        seed=seed,
                        logging_steps=logging_steps,
                        resume=True,
                    ),
                )
            ],
            False,
        )
        for seed in range(seeds)
        for fmt in fmts
    ]


def eval_call(name, title, model, split, *, fmt, every, tasks, new_tokens, weight) -> Planned:
    out = f"demo/eval/{name}-{split}"
    config = EvalConfig(
        out=out,
        bench="jsonl:demo/data/triples.jsonl",
        model=model,
        split=split,
        format=fmt,
        all_checkpoints=every,
        max_tasks=tasks,
        max_new_tokens=new_tokens,
        resume=True,
    )
    label = f"eval: {title} on {split}" + (" (every checkpoint)" if every else "")
    return Planned(label, out, weight, [("evaluation.run", config)], False)


def eval_calls(fmts, seeds, *, test, ood, new_tokens, test_weight, ood_weight, base_weight):
    steps = []
    for seed in range(seeds):
        for fmt in fmts:
            run = f"demo/train/{fmt}-s{seed}"
            kw = {"fmt": None, "new_tokens": new_tokens}
            name, title = f"{fmt}-s{seed}", f"{fmt} (seed {seed})"
            steps.append(
                eval_call(
                    name, title, run, "test", every=True, tasks=test, weight=test_weight, **kw
                )
            )
            steps.append(
                eval_call(name, title, run, "ood", every=False, tasks=ood, weight=ood_weight, **kw)
            )
    for split, tasks in (("test", test), ("ood", ood)):
        kw = {"fmt": "wo", "new_tokens": new_tokens, "weight": base_weight}
        steps.append(eval_call("base", "base", "demo/base", split, every=False, tasks=tasks, **kw))
    return steps


def diag_calls(finals, *, examples, attn_examples, patterns, weights) -> list[Planned]:
    data = "demo/data/triples.jsonl"
    scored = {"data": data, "max_examples": examples, "resume": True}
    ppl = PplConfig(model=finals, out="demo/diag/ppl", **scored)
    kl = KlConfig(model=finals, out="demo/diag/kl", save_tokens=True, **scored)
    valloss = ValLossConfig(run=finals, out="demo/diag/valloss", **scored)
    attn = AttnConfig(
        model=finals,
        out="demo/diag/attn",
        data=data,
        max_examples=attn_examples,
        save_patterns=patterns,
        attribution=True,
        resume=True,
    )
    w_ppl, w_kl, w_valloss, w_attn = weights
    return [
        Planned(
            "ppl: conditional perplexity", "demo/diag/ppl", w_ppl, [("diagnostics.ppl", ppl)], False
        ),
        Planned("kl: KL to base", "demo/diag/kl", w_kl, [("diagnostics.kl", kl)], False),
        Planned(
            "valloss: loss and KL over checkpoints",
            "demo/diag/valloss",
            w_valloss,
            [("diagnostics.valloss", valloss)],
            False,
        ),
        Planned(
            "attn: span attention + attribution",
            "demo/diag/attn",
            w_attn,
            [("diagnostics.attn", attn)],
            False,
        ),
    ]


def ablate_call(fmt, variants, *, tasks, new_tokens, steps, save_steps, verify, weight) -> Planned:
    config = AblateConfig(
        run=f"demo/train/{fmt}-s0",
        out=f"demo/ablate/{fmt}-s0",
        variants=variants,
        max_tasks=tasks,
        max_new_tokens=new_tokens,
        max_steps=steps,
        save_steps=save_steps,
        verify=verify,
        resume=True,
    )
    name = f"ablate: {fmt} (seed 0): {variants.replace(',', ', ')}"
    return Planned(name, f"demo/ablate/{fmt}-s0", weight, [("diagnostics.ablate", config)], False)


SUMMARY_AND_REPORT = [
    Planned(
        "summary: replication table",
        "demo/summary",
        2,
        [("reports.replication", ReplicationConfig(runs=["demo"], out="demo/summary"))],
        False,
    ),
    Planned(
        "report: figures",
        "demo/report",
        10,
        [("reports.report", ReportConfig(runs=["demo"], out="demo/report"))],
        False,
    ),
]


def synth_call(name, out, n, world, weight) -> Planned:
    config = SynthConfig(sources=["toy"], n=n, toy_world=world, out=out, resume=True)
    return Planned(name, out, weight, [("synthesis.pipeline", config)], False)


def text_base(steps: int) -> PretrainConfig:
    """The default and full presets' base: the toy model on the base's own corpus."""
    return PretrainConfig(
        out="demo/base",
        preset="toy",
        steps=steps,
        stdlib=False,
        vocab_size=2048,
        text=["demo/base_data/triples.jsonl"],
        tokenizer_text=["demo/data/triples.jsonl"],
    )


def text_base_steps(synth_n, base_synth_n, base_steps, synth_weights, base_weight):
    """Synth, the base's corpus, and the base pretrained in the demo (never cached)."""
    return [
        synth_call(
            "synth: toy world -> triples",
            "demo/data",
            synth_n,
            demo.COMPACT_WORLD,
            synth_weights[0],
        ),
        synth_call(
            "synth: the base's corpus (other toy families)",
            "demo/base_data",
            base_synth_n,
            demo.BASE_WORLD,
            synth_weights[1],
        ),
        Planned(
            "pretrain: toy base on the other toy families (tokenizer: both corpora)",
            "demo/base",
            base_weight,
            [("training.pretrain", replace(text_base(base_steps), overwrite=True))],
            True,
        ),
    ]


# What each preset trains, evaluates and diagnoses, and each step's ETA weight, written out.
TRAIN = {  # seeds, steps, save_steps, logging_steps, weight
    "quick": (1, 24, 12, 1, 6.0),
    "default": (1, 800, 200, 40, 200.0),
    "full": (3, 1500, 250, 75, 375.0),
}
EVAL = {  # test tasks, OOD tasks, max_new_tokens, weights: a run on test, on OOD, the base
    "quick": (24, 16, 160, 2.16, 0.48, 0.72),
    "default": (80, 60, 200, 12.0, 1.8, 2.4),
    "full": (200, 200, 200, 42.0, 6.0, 6.0),
}
DIAG = {  # examples, attn examples, saved patterns, weights: ppl, kl, valloss, attn
    "quick": (12, 12, 2, (8, 12, 16, 32)),
    "default": (48, 20, 3, (8, 12, 32, 32)),
    "full": (200, 60, 4, (24, 36, 144, 96)),
}
ABLATE = {  # precede on seed 0: variants, max_steps, save_steps, verify, weight
    "quick": ("signature", 12, 6, True, 5.88),
    "default": None,  # no ablation in the default (its 11 minutes): `full` has it
    "full": ("signature,comments", None, None, False, 798.0),
}


def expected_after_the_base(preset: str) -> list[Planned]:
    """Train, eval, diagnostics, ablation, summary and report of a preset's four formats."""
    seeds, steps, save_steps, logging_steps, train_weight = TRAIN[preset]
    test, ood, new_tokens, test_weight, ood_weight, base_weight = EVAL[preset]
    examples, attn_examples, patterns, diag_weights = DIAG[preset]
    finals = [f"demo/train/{fmt}-s{seed}" for seed in range(seeds) for fmt in FOUR]
    return [
        *train_calls(
            FOUR,
            seeds,
            steps=steps,
            save_steps=save_steps,
            logging_steps=logging_steps,
            weight=train_weight,
        ),
        *eval_calls(
            FOUR,
            seeds,
            test=test,
            ood=ood,
            new_tokens=new_tokens,
            test_weight=test_weight,
            ood_weight=ood_weight,
            base_weight=base_weight,
        ),
        *diag_calls(
            finals,
            examples=examples,
            attn_examples=attn_examples,
            patterns=patterns,
            weights=diag_weights,
        ),
        *ablate_calls(preset, tasks=test, new_tokens=new_tokens),
        *SUMMARY_AND_REPORT,
    ]


def ablate_calls(preset: str, tasks: int, new_tokens: int) -> list[Planned]:
    if ABLATE[preset] is None:
        return []
    variants, steps, save_steps, verify, weight = ABLATE[preset]
    return [
        ablate_call(
            "precede",
            variants,
            tasks=tasks,
            new_tokens=new_tokens,
            steps=steps,
            save_steps=save_steps,
            verify=verify,
            weight=weight,
        )
    ]


def expected_quick(cached: str) -> list[Planned]:
    """The quick preset: the pipeline world and the tiny base, pretrained in the cache."""
    probe = PretrainConfig(out=cached, preset="tiny")
    return [
        synth_call("synth: toy world -> triples", "demo/data", 260, demo.PIPELINE_WORLD, 6.5),
        Planned(
            "pretrain: tiny base",
            "demo/base",
            6.0,
            [
                ("is_finished_base", cached, probe),
                ("training.pretrain", PretrainConfig(out=cached, preset="tiny", overwrite=True)),
                ("copy", cached, "demo/base"),
            ],
            True,
        ),
        *expected_after_the_base("quick"),
    ]


def expected_default() -> list[Planned]:
    return [
        *text_base_steps(6000, 5000, 800, (150.0, 125.0), 320.0),
        *expected_after_the_base("default"),
    ]


def expected_full() -> list[Planned]:
    return [
        *text_base_steps(12000, 8000, 1500, (300.0, 200.0), 600.0),
        *expected_after_the_base("full"),
    ]


def assert_same_plan(got: list[Planned], want: list[Planned]) -> None:
    assert [s.name for s in got] == [s.name for s in want]
    for g, w in zip(got, want, strict=True):
        assert (g.name, g.out, g.has_done) == (w.name, w.out, w.has_done)
        assert g.weight == pytest.approx(w.weight, rel=1e-12), g.name
        assert g.calls == w.calls, g.name


# --- the tests -------------------------------------------------------------------------------


def test_the_quick_preset_plans_its_steps_with_a_cached_tiny_base(recorder):
    got, info = planned(recorder, preset="quick", cache="cache")
    cached = info["base_cache"]
    assert re.fullmatch(r"cache/bases/tiny-[0-9a-f]{12}", cached)
    assert len(got) == 23
    assert_same_plan(got, expected_quick(cached))
    assert info["preset"]["formats"] == FOUR and info["preset"]["seeds"] == 1
    assert info["preset"]["steps"] == 24


def test_a_finished_cached_base_is_copied_not_retrained(recorder, capsys):
    recorder.base_finished = True
    steps, info = demo.plan(demo.DemoConfig(out="demo", preset="quick", cache="cache"))
    Path("demo/base").mkdir(parents=True)  # an older copy: replaced
    recorder.calls.clear()
    steps[1].run()
    cached = info["base_cache"]
    probe = PretrainConfig(out=cached, preset="tiny")
    assert recorder.calls == [
        ("is_finished_base", cached, probe),
        ("rmtree", "demo/base"),
        ("copy", cached, "demo/base"),
    ]
    assert f"reusing the cached base {cached}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("preset", "expected"), [("default", expected_default), ("full", expected_full)]
)
def test_the_default_and_full_presets_plan_their_steps_with_a_base_of_their_own(
    recorder, preset, expected
):
    got, info = planned(recorder, preset=preset, cache="cache")
    assert len(got) == {"default": 23, "full": 48}[preset]
    assert_same_plan(got, expected())
    assert info["base_cache"] == "demo/base"  # the demo's own data: never cached
    assert not Path("cache").exists()


@pytest.mark.parametrize("preset", ["quick", "default", "full"])
def test_the_base_is_finished_only_with_its_data_there(recorder, preset):
    steps, _ = demo.plan(demo.DemoConfig(out="demo", preset=preset, cache="cache"))
    [base] = [s for s in steps if s.done]
    recorder.base_finished = True
    assert not base.done() and recorder.calls == []  # no data yet: not even asked
    for data in ("demo/data", "demo/base_data"):
        Path(data).mkdir(parents=True)
        (Path(data) / "triples.jsonl").write_text("")
    assert base.done()
    want = text_base(800 if preset == "default" else 1500)
    [(what, where, config)] = recorder.calls
    assert (what, where) == ("is_finished_base", "demo/base")
    assert config == (PretrainConfig(out="demo/base", preset="tiny") if preset == "quick" else want)


def test_seeds_and_formats_override_the_preset(recorder):
    got, info = planned(recorder, preset="quick", cache="cache", seeds=2, formats=["follow"])
    assert [s.name for s in got] == [
        "synth: toy world -> triples",
        "pretrain: tiny base",
        "train: follow (seed 0)",
        "train: follow (seed 1)",
        "eval: follow (seed 0) on test (every checkpoint)",
        "eval: follow (seed 0) on ood",
        "eval: follow (seed 1) on test (every checkpoint)",
        "eval: follow (seed 1) on ood",
        "eval: base on test",
        "eval: base on ood",
        "ppl: conditional perplexity",
        "kl: KL to base",
        "valloss: loss and KL over checkpoints",
        "attn: span attention + attribution",
        # no ablation: its format (precede) is not trained
        "summary: replication table",
        "report: figures",
    ]
    finals = ["demo/train/follow-s0", "demo/train/follow-s1"]
    assert_same_plan(
        got[2:14],
        [
            *train_calls(["follow"], 2, steps=24, save_steps=12, logging_steps=1, weight=6.0),
            *eval_calls(
                ["follow"],
                2,
                test=24,
                ood=16,
                new_tokens=160,
                test_weight=2.16,
                ood_weight=0.48,
                base_weight=0.72,
            ),
            *diag_calls(finals, examples=12, attn_examples=12, patterns=2, weights=(4, 6, 8, 16)),
        ],
    )
    assert info["preset"]["seeds"] == 2 and info["preset"]["formats"] == ("follow",)


def test_the_base_cache_defaults_to_codecot_cache(recorder, monkeypatch):
    monkeypatch.setenv("CODECOT_CACHE", "shared")
    _, info = planned(recorder, preset="quick")
    assert re.fullmatch(r"shared/bases/tiny-[0-9a-f]{12}", info["base_cache"])
    _, same = planned(recorder, preset="quick", cache="mine")
    assert same["base_cache"] == "mine/bases/" + Path(info["base_cache"]).name  # same key


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"preset": "huge"}, "--preset 'huge': choose from quick, default, full, arch"),
        ({"preset": "quick", "archs": ["llama", "rwkv"]}, "--archs rwkv: choose from llama"),
        ({"preset": "quick", "seeds": 0}, "--seeds 0: must be at least 1"),
        ({"preset": "quick", "formats": ["cot"]}, "--format 'cot': unknown format"),
    ],
)
def test_bad_options_are_input_errors(recorder, options, message):
    with pytest.raises(InputError, match=re.escape(message)):
        demo.plan(demo.DemoConfig(out="demo", **options))


def test_the_arch_preset_runs_the_study_once_per_architecture(recorder):
    """Shared data; per architecture a base in bases/<arch> (its folder name is the base's name
    in every result table) and its runs, evaluations and diagnostics under <arch>/; one summary
    and one report over all of them."""
    got, info = planned(recorder, preset="arch", cache="cache")
    archs = ("llama", "gpt2", "gpt_neox")
    three = ("wo", "follow", "precede")
    assert info["preset"]["archs"] == archs and info["preset"]["formats"] == three
    assert [s.out for s in got[:2]] == ["demo/data", "demo/base_data"]
    assert [s.out for s in got[-2:]] == ["demo/summary", "demo/report"]
    per_arch = got[2:-2]
    assert len(per_arch) == 3 * (1 + 3 + 2 * 3 + 2 + 4)  # base, train, eval, base eval, diags
    for k, arch in enumerate(archs):
        study = per_arch[k * 16 : (k + 1) * 16]
        assert all(s.name.endswith(f"[{arch}]") for s in study[1:]), [s.name for s in study]
        pretrain = study[0]
        assert pretrain.name.startswith(f"pretrain: toy {arch} base")
        [(_, config)] = pretrain.calls
        assert config == replace(
            text_base(1000), out=f"demo/bases/{arch}", arch=arch, overwrite=True
        )
        trains = [c for s in study for (m, c) in s.calls if m == "training.sft"]
        assert [(c.format, c.base, c.out) for c in trains] == [
            (f, f"demo/bases/{arch}", f"demo/{arch}/train/{f}-s0") for f in three
        ]
        evals = [c for s in study for (m, c) in s.calls if m == "evaluation.run"]
        assert {c.model for c in evals} == {f"demo/bases/{arch}"} | {
            f"demo/{arch}/train/{f}-s0" for f in three
        }
        assert all(c.out.startswith(f"demo/{arch}/eval/") for c in evals)
        diags = [c for s in study for (m, c) in s.calls if m.startswith("diagnostics.")]
        assert [Path(c.out).parent.as_posix() for c in diags] == [f"demo/{arch}/diag"] * 4
    assert not any(m == "diagnostics.ablate" for s in got for (m, _) in s.calls)


def test_archs_option_turns_any_preset_cross_architecture(recorder):
    steps, info = demo.plan(
        demo.DemoConfig(out="demo", preset="quick", cache="cache", archs=["gpt2", "gpt2"])
    )
    assert info["preset"]["archs"] == ("gpt2",)
    assert [s.out for s in steps if s.done] == [Path("demo/bases/gpt2")]
    assert Path("demo/gpt2/train/precede-s0") in [s.out for s in steps]
