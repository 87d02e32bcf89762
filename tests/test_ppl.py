"""diag ppl: span perplexity equals HF's own masked loss; padding, head path, CLI, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_diag, run_diag_here

from diagnostics.forward import CausalScorer
from diagnostics.ppl import PplConfig, main, score_model
from diagnostics.scoring import ExampleCache
from training.formats import SPAN_ID
from training.modeling import load_model, load_tokenizer


def _ppl(tmp_path: Path, name: str, **kwargs) -> pd.DataFrame:
    cfg = PplConfig(out=str(tmp_path / name), n_resamples=200, **kwargs)
    main(cfg)
    return pd.read_parquet(tmp_path / name / "ppl.parquet")


def hf_span_ppl(model, example, span_ids: tuple[int, ...]) -> float:
    """exp of HF's own loss with every label outside the span set to -100."""
    ids = torch.tensor([example.input_ids])
    labels = ids.clone()
    keep = torch.tensor([s in span_ids for s in example.span_ids])
    labels[0, ~keep] = -100
    with torch.no_grad():
        return math.exp(float(model(input_ids=ids, labels=labels).loss))


@pytest.mark.parametrize("fmt", ["follow", "precede"])
def test_span_ppl_equals_exp_of_hf_masked_loss(tiny_runs, triples_file, tmp_path, fmt) -> None:
    run = tiny_runs[fmt]
    other = "precede" if fmt == "follow" else "follow"
    frame = _ppl(tmp_path, "p", model=[str(run)], data=str(triples_file), score_format=[other])
    tok = load_tokenizer(run)
    model = load_model(run, dtype="fp32", device="cpu")
    spans = {
        "cot": (SPAN_ID["cot"],),
        "code": (SPAN_ID["code"],),
        "response": tuple(SPAN_ID[s] for s in ("cot", "code", "glue", "eos")),
    }
    checked = 0
    for score_format in (fmt, other):  # own text and cross-order text
        examples, _ = ExampleCache(triples_file, "test").get(score_format, tok)
        for ex in examples:
            rows = frame[(frame.example_id == ex.id) & (frame.score_format == score_format)]
            for span, ids in spans.items():
                ours = rows.loc[rows.span == span, "ppl"].item()
                assert ours == pytest.approx(hf_span_ppl(model, ex, ids), rel=1e-4)
                n = sum(s in ids for s in ex.span_ids)
                assert rows.loc[rows.span == span, "n_tokens"].item() == n
                checked += 1
            gap = rows.loc[rows.span == "gap", "log_ppl"].item()
            cot, code = (rows.loc[rows.span == s, "log_ppl"].item() for s in ("cot", "code"))
            assert gap == pytest.approx(cot - code, abs=1e-12)
    assert checked == 2 * 8 * 3
    assert set(frame["format"]) == {fmt} and set(frame["score_format"]) == {fmt, other}


def test_padded_batches_and_full_logits_path_agree_with_batch_size_one(tiny_runs, triples_file):
    run = tiny_runs["precede"]
    tok = load_tokenizer(run)
    model = load_model(run, dtype="fp32", device="cpu")
    examples, _ = ExampleCache(triples_file, "test").get("precede", tok)
    assert len({len(e) for e in examples}) > 1  # padding really happens

    def table(scorer: CausalScorer, batch_size: int) -> pd.DataFrame:
        rows = score_model(scorer, examples, batch_size=batch_size, pad_token_id=tok.pad_token_id)
        return pd.DataFrame(rows).sort_values(["example_id", "span"]).reset_index(drop=True)

    one = table(CausalScorer(model), 1)
    padded = table(CausalScorer(model), 8)
    full = CausalScorer(model, chunk_rows=5)
    full.mode = "full"  # the model's own forward() logits, not head(base_model(x))
    chunked_full = table(full, 3)
    assert padded["n_tokens"].tolist() == one["n_tokens"].tolist()
    np.testing.assert_allclose(padded["log_ppl"], one["log_ppl"], rtol=1e-5)
    np.testing.assert_allclose(chunked_full["log_ppl"], one["log_ppl"], rtol=1e-5)


def test_head_path_falls_back_when_forward_does_more(tiny_base, recwarn) -> None:
    model = load_model(tiny_base, dtype="fp32", device="cpu")
    scorer = CausalScorer(model, name="capped")
    scorer._scale = 0.5  # pretend the head needs a scale the model's forward does not apply
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    scorer.hidden(ids, torch.ones_like(ids))
    assert scorer.mode == "full"
    assert "differs from the model's logits" in str(recwarn.pop(UserWarning).message)
    assert CausalScorer(model).mode == "head"


def test_wo_format_reports_code_only(tiny_runs, triples_file, tmp_path) -> None:
    frame = _ppl(
        tmp_path, "wo", model=[str(tiny_runs["follow"])], data=str(triples_file), format="wo"
    )
    assert set(frame["span"]) == {"code", "response"}
    assert set(frame["score_format"]) == {"wo"} and set(frame["format"]) == {"follow"}


@pytest.mark.slow
def test_cli_pair_writes_tables_summary_and_resumes(tiny_runs, triples_file, tmp_path) -> None:
    out = tmp_path / "ppl"
    args = ["ppl", "--model", str(tiny_runs["follow"]), "--model", str(tiny_runs["precede"])]
    args += ["--data", str(triples_file), "--out", str(out), "--bootstrap", "300"]
    args += ["--score-format", "follow", "--score-format", "precede"]
    done = run_diag(*args, timeout=300)
    assert done.returncode == 0, done.stderr
    frame = pd.read_parquet(out / "ppl.parquet")
    assert len(frame) == 2 * 2 * 8 * 4  # models x score formats x examples x spans (+gap)
    summary = pd.read_parquet(out / "ppl_summary.parquet")
    assert {"mean_log_ppl", "ci_low", "ci_high", "n", "ppl", "corpus_ppl"} <= set(summary.columns)
    assert (summary.ci_low <= summary.mean_log_ppl).all()
    assert (summary.mean_log_ppl <= summary.ci_high).all()
    pairs = pd.read_parquet(out / "summary_ppl.parquet")
    own = pairs[(pairs.a == "follow-s0[follow]") & (pairs.b == "precede-s0[precede]")]
    assert set(own.metric) == {"log_ppl:cot", "log_ppl:code", "log_ppl:response", "log_ppl:gap"}
    for row in own.itertuples():  # the summary's diff is the mean of per-example differences
        span = row.metric.split(":")[1]
        a = frame[(frame.label == "follow-s0") & (frame.score_format == "follow")]
        b = frame[(frame.label == "precede-s0") & (frame.score_format == "precede")]
        a, b = (x[x.span == span].set_index("example_id").log_ppl for x in (a, b))
        assert row.diff == pytest.approx(float((a - b.loc[a.index]).mean()))
        assert row.n == 8 and 0 < row.p_value <= 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["scoring_mode"]["follow-s0"] == "head"
    # resume after losing the final tables: parts are reused untouched, tables rebuilt equal
    parts = {p: p.stat().st_mtime_ns for p in (out / "parts").glob("*.parquet")}
    assert len(parts) == 4
    (out / "ppl.parquet").unlink()
    (out / "manifest.json").unlink()
    done = run_diag(*args, "--resume", timeout=300)
    assert done.returncode == 0, done.stderr
    assert {p: p.stat().st_mtime_ns for p in parts} == parts
    pd.testing.assert_frame_equal(pd.read_parquet(out / "ppl.parquet"), frame)
    # a finished run is refused without --overwrite / --resume; a changed option on resume too
    done = run_diag_here(*args)
    assert done.returncode == 2 and "already holds a finished ppl run" in done.stderr
    done = run_diag_here(*args, "--resume", "--max-examples", "3")
    assert done.returncode == 2 and "options changed" in done.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--split", "ood"], "no usable triples in split 'ood'"),
        (["--max-len", "10"], "every example is longer than --max-len 10"),
        (["--format", "cot-first"], "unknown format"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(
    tiny_runs, triples_file, tmp_path, extra, message
):
    out = tmp_path / "never"
    args = ["ppl", "--model", str(tiny_runs["follow"]), "--data", str(triples_file)]
    done = run_diag_here(*args, "--out", str(out), *extra)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and done.stderr.startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_base_model_needs_a_format(tiny_base, triples_file, tmp_path) -> None:
    from plumbing import InputError

    with pytest.raises(InputError, match="pass --format"):
        main(PplConfig(model=[str(tiny_base)], data=str(triples_file), out=str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()
    frame = _ppl(tmp_path, "b", model=[str(tiny_base)], data=str(triples_file), format="precede")
    assert set(frame["label"]) == {"base"} and frame["format"].isna().all()


def test_pairwise_summary_pairs_conditions_and_pools_seeds() -> None:
    from diagnostics.scoring import add_condition, pairwise_summary
    from plumbing.stats import StatsOptions, compare_pooled

    rng = np.random.default_rng(0)
    ids = [f"e{i}" for i in range(30)]
    rows = []
    for fmt, shift in (("follow", 0.0), ("precede", 0.5)):
        for seed in (0, 1):
            values = rng.normal(size=30) + shift + 0.1 * seed
            for ex, v in zip(ids, values):
                rows.append(dict(label=f"{fmt}-s{seed}", format=fmt, seed=seed, step=None,
                                 score_format=fmt, example_id=ex, span="code", log_ppl=v))  # fmt: skip
    frame = add_condition(pd.DataFrame(rows), with_score_format=True)
    opts = StatsOptions(n_resamples=300)
    out = pd.DataFrame(
        pairwise_summary(
            frame, value="log_ppl", spans=["code", "cot"], opts=opts, group_cols=["score_format"]
        )  # fmt: skip
    )
    plain = out[~out.test.str.contains("pooled")]
    assert len(plain) == 6 and set(plain.metric) == {"log_ppl:code"}  # 4 conditions, 6 pairs
    pooled = out[out.test.str.contains("pooled")].iloc[0]
    assert pooled.a == "follow[follow] (2 seeds)" and pooled.b == "precede[precede] (2 seeds)"
    seeds = {
        lab: frame[frame.label == lab].set_index("example_id").log_ppl.loc[sorted(ids)].to_numpy()
        for lab in frame.label.unique()
    }
    direct = compare_pooled(
        [seeds["follow-s0"], seeds["follow-s1"]],
        [seeds["precede-s0"], seeds["precede-s1"]],
        metric="log_ppl:code", name_a="a", name_b="b", opts=opts,
    )  # fmt: skip
    assert pooled["diff"] == pytest.approx(direct["diff"]) and pooled.n == 30
    assert (pooled.ci_low, pooled.ci_high) == pytest.approx((direct["ci_low"], direct["ci_high"]))


def test_models_sharing_a_label_are_told_apart(tiny_runs) -> None:
    from diagnostics.scoring import resolve_refs

    run = str(tiny_runs["follow"])
    refs = resolve_refs([run, run, str(tiny_runs["precede"])])
    assert [r.label for r in refs] == ["follow-s0(follow)#0", "follow-s0(follow)#1", "precede-s0"]
    ckpt = resolve_refs([run, str(tiny_runs["follow"] / "checkpoint-4")])
    # a run's final/ carries the step it was saved at (8), as in diag eval
    assert [(r.label, r.step) for r in ckpt] == [("follow-s0", 8), ("follow-s0", 4)]
