"""plumbing.runner: a new diagnostic is a config, three functions and a registry line; resume,
identity, lazy run folders and unit keys behave the same for every command.

The diagnostic below is the worked example of docs/DESIGN.md ("Adding a diagnostic"), verbatim:
the surprise of the first K tokens of each span (how unexpected the start of the code or of the
explanation is), which reuses the one scoring path (`diagnostics.forward.score_examples`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest

from diagnostics.common import resolve_format
from diagnostics.forward import span_mask
from diagnostics.scoring import (
    ExampleCache,
    ScoringOptions,
    loaded_scorer,
    part_name,
    release_scorers,
    resolve_refs,
)
from plumbing import InputError
from plumbing.runner import (
    MAIN_TABLE,
    Command,
    PartStore,
    Plan,
    RunContext,
    Unit,
    UnitResult,
    run_command,
    run_command_context,
)

# --- the worked example ----------------------------------------------------------------------


@dataclass
class SurpriseConfig(ScoringOptions):
    """Options of the example diagnostic (data, out, batch size, resume, ... come with
    ScoringOptions)."""

    model: list[str] = field(default_factory=list, metadata={"help": "Models (repeatable)."})
    first_k: int = field(default=3, metadata={"help": "Tokens at the start of each span."})


def surprise_plan(cfg: SurpriseConfig) -> Plan:
    """One unit per model; bad input fails here, before --out is touched."""
    from training.modeling import load_tokenizer

    if cfg.first_k < 1:
        raise InputError(f"--first-k {cfg.first_k}: must be >= 1")
    cache = ExampleCache(cfg.data, cfg.split, max_examples=cfg.max_examples)
    units = []
    for i, ref in enumerate(resolve_refs(cfg.model)):
        tokenizer, fmt = load_tokenizer(ref.path), resolve_format(ref, cfg.format)
        cache.get(fmt, tokenizer)
        units.append(Unit(part_name(i, ref, fmt), (ref, tokenizer, fmt)))
    return Plan(units, identity=cfg.run_key(), context=cache)


def surprise_unit(cfg: SurpriseConfig, unit: Unit, ctx: RunContext) -> UnitResult:
    """Mean NLL of the first K tokens of the cot and code spans, per example."""
    from diagnostics.forward import score_examples

    ref, tokenizer, fmt = unit.data
    examples = ctx.take(ctx.plan.context.get(fmt, tokenizer)[0])  # this rank's share
    scorer = loaded_scorer(ctx, ref, cfg)
    rows = []
    for item in score_examples(
        examples, scorer, batch_size=cfg.batch_size, pad_token_id=tokenizer.pad_token_id
    ):
        for span in ("cot", "code"):
            nll = item["nll"][span_mask(item["span"], span)][: cfg.first_k]
            if len(nll):
                rows.append({"example_id": item["example"].id, "span": span, "nll": nll.mean()})
    return UnitResult({MAIN_TABLE: pd.DataFrame(rows).assign(**ref.columns())})


def surprise_summary(cfg: SurpriseConfig, ctx: RunContext) -> dict[str, Any]:
    """The per-example table from the parts; the manifest's result."""
    from plumbing import atomic_write_parquet

    frame = ctx.parts.read([u.key for u in ctx.plan.units])
    atomic_write_parquet(ctx.out / "surprise.parquet", frame)
    means = frame.groupby(["label", "span"])["nll"].mean()
    return {f"{label}:{span}": round(float(v), 5) for (label, span), v in means.items()}


SURPRISE = Command(
    "surprise", surprise_plan, surprise_unit, surprise_summary, finish=release_scorers
)

CONFIG = SurpriseConfig  # what cli.main.DIAGNOSTICS reads from a diagnostic's module


def main(cfg: SurpriseConfig) -> dict[str, Any]:
    return run_command(SURPRISE, cfg)


# --- tests -----------------------------------------------------------------------------------


def test_a_registered_diagnostic_is_a_diag_command(tiny_runs, triples_file, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import cli.main

    entry = (__name__, "Surprise of the first K tokens of each span.")
    monkeypatch.setitem(cli.main.DIAGNOSTICS, "surprise", entry)  # the one registry line
    runner, app = CliRunner(), cli.main.build_app()
    assert "surprise" in runner.invoke(app, ["--help"]).output
    shown = runner.invoke(app, ["surprise", "--help"]).output
    assert "--first-k" in shown and "Tokens at the start of each span." in shown
    assert "--n-resamples" in shown and "--model" in shown
    out = tmp_path / "s"
    args = ["surprise", "--model", str(tiny_runs["precede"]), "--data", str(triples_file)]
    done = runner.invoke(app, [*args, "--out", str(out), "--first-k", "2"])
    assert done.exit_code == 0, done.output
    frame = pd.read_parquet(out / "surprise.parquet")
    assert set(frame["label"]) == {"precede-s0"} and set(frame["span"]) == {"cot", "code"}
    bad = runner.invoke(app, [*args, "--out", str(tmp_path / "bad"), "--first-k", "0"])
    assert bad.exit_code != 0 and not (tmp_path / "bad").exists()


def test_the_worked_example_runs_resumes_and_equals_the_ppl_scoring_path(
    tiny_runs, triples_file, tmp_path
) -> None:
    from diagnostics.ppl import PplConfig
    from diagnostics.ppl import main as ppl_main

    out = tmp_path / "surprise"
    cfg = SurpriseConfig(model=[str(tiny_runs["follow"])], data=str(triples_file), out=str(out))
    result = run_command(SURPRISE, cfg)
    frame = pd.read_parquet(out / "surprise.parquet")
    assert set(frame["span"]) == {"cot", "code"} and (frame["nll"] > 0).all()
    assert frame["step"].unique().tolist() == [8]  # a final model carries its saved step
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "surprise" and manifest["result"] == result
    # with K large enough to cover every span, the mean is the span's log-ppl from diag ppl
    run_command(SURPRISE, SurpriseConfig(**{**vars(cfg), "first_k": 10_000, "overwrite": True}))
    ppl_main(PplConfig(model=cfg.model, data=cfg.data, out=str(tmp_path / "ppl"), n_resamples=50))
    ppl = pd.read_parquet(tmp_path / "ppl" / "ppl.parquet").set_index(["example_id", "span"])
    whole = pd.read_parquet(out / "surprise.parquet").set_index(["example_id", "span"])
    np.testing.assert_allclose(whole["nll"], ppl.loc[whole.index, "log_ppl"], rtol=1e-6)
    # resume: every part is found done and nothing is scored again; the same result
    again = run_command_context(
        SURPRISE, SurpriseConfig(**{**vars(cfg), "first_k": 10_000, "resume": True})
    )
    assert (
        again.resumed == [u.key for u in again.plan.units] and "load" not in again.manifest.timings
    )
    pd.testing.assert_frame_equal(pd.read_parquet(out / "surprise.parquet"), whole.reset_index())
    # resuming with an option that changes the numbers is refused, naming it
    with pytest.raises(InputError, match=r"other settings \(first_k\)"):
        run_command(SURPRISE, SurpriseConfig(**{**vars(cfg), "first_k": 2, "resume": True}))


def _counting_command(calls: list[str], fail_on: str | None = None) -> Command:
    """A model-free command: one unit per name in cfg.model; records the units it runs."""

    def plan(cfg: Any) -> Plan:
        return Plan([Unit(name, name) for name in cfg.model], identity={"model": cfg.model})

    def run_unit(cfg: Any, unit: Unit, ctx: RunContext) -> UnitResult:
        if unit.key == fail_on:
            raise RuntimeError(f"unit {unit.key} dies")
        calls.append(unit.key)
        return UnitResult({MAIN_TABLE: pd.DataFrame({"unit": [unit.key], "value": [len(calls)]})})

    def summarise(cfg: Any, ctx: RunContext) -> dict[str, Any]:
        return {"units": ctx.parts.read([u.key for u in ctx.plan.units])["unit"].tolist()}

    return Command("count", plan, run_unit, summarise)


@dataclass
class _Cfg:
    model: list[str]
    out: str
    resume: bool = False
    overwrite: bool = False


def test_a_unit_that_fails_first_leaves_no_run_folder(tmp_path) -> None:
    calls: list[str] = []
    with pytest.raises(RuntimeError):
        run_command(_counting_command(calls, fail_on="a"), _Cfg(["a", "b"], str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()


def test_a_killed_run_resumes_from_its_finished_parts(tmp_path) -> None:
    calls: list[str] = []
    cfg = _Cfg(["a", "b", "c"], str(tmp_path / "o"))
    with pytest.raises(RuntimeError):
        run_command(_counting_command(calls, fail_on="c"), cfg)
    assert calls == ["a", "b"] and not (tmp_path / "o" / "manifest.json").exists()
    # without --resume a scoring-style command starts again; with it only "c" runs
    calls.clear()
    cfg.resume = True
    ctx = run_command_context(_counting_command(calls), cfg)
    assert calls == ["c"] and ctx.resumed == ["a", "b"]
    assert ctx.result == {"units": ["a", "b", "c"]}
    # a part whose table was lost is not done: it runs again, alone
    PartStore(cfg.out).table_path("b").unlink()
    calls.clear()
    assert run_command(_counting_command(calls), cfg) == {"units": ["a", "b", "c"]}
    assert calls == ["b"]


def test_a_finished_run_is_refused_without_overwrite_or_resume(tmp_path) -> None:
    cfg = _Cfg(["a"], str(tmp_path / "o"))
    run_command(_counting_command([]), cfg)
    with pytest.raises(InputError, match="already holds a finished count run"):
        run_command(_counting_command([]), _Cfg(["a"], cfg.out))
    calls: list[str] = []
    run_command(_counting_command(calls), _Cfg(["a"], cfg.out, overwrite=True))
    assert calls == ["a"]


def test_resume_by_default_continues_without_the_flag_and_checks_identity(tmp_path) -> None:
    calls: list[str] = []
    base = _counting_command(calls, fail_on="b")
    eval_like = Command("count", base.plan, base.run_unit, base.summarise, resume_by_default=True)
    with pytest.raises(RuntimeError):
        run_command(eval_like, _Cfg(["a", "b"], str(tmp_path / "o")))
    calls.clear()
    ok = _counting_command(calls)
    eval_like = Command("count", ok.plan, ok.run_unit, ok.summarise, resume_by_default=True)
    with pytest.raises(InputError, match=r"other settings \(model\)"):
        run_command(eval_like, _Cfg(["a", "b", "c"], str(tmp_path / "o")))
    assert run_command(eval_like, _Cfg(["a", "b"], str(tmp_path / "o"))) == {"units": ["a", "b"]}
    assert calls == ["b"]


def test_two_units_with_one_key_are_refused_before_anything_runs(tmp_path) -> None:
    calls: list[str] = []
    with pytest.raises(InputError, match="share the key 'a'"):
        run_command(_counting_command(calls), _Cfg(["a", "a"], str(tmp_path / "o")))
    assert calls == [] and not (tmp_path / "o").exists()
