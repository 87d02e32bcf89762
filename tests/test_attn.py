"""diag attn: hooked span masses against full patterns, TransformerLens against HF, attribution
against manual ablation, the CLI end to end, and bad input (exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_diag, run_diag_here

from diagnostics.attn import (
    QUERY_SPANS,
    HFPatterns,
    TLPatterns,
    attention_masses,
    key_span_names,
    load_attention_model,
)
from diagnostics.common import load_examples
from training.formats import SPAN_ID
from training.modeling import load_tokenizer


def _examples(run: Path, data: Path, fmt: str, n: int = 5):
    tok = load_tokenizer(run)
    examples, _ = load_examples(data, "test", fmt, tok, max_examples=n)
    return tok, examples


def _reference_masses(pattern: np.ndarray, span_ids: list[int], sink: bool) -> np.ndarray:
    """The definition, by indexing: mean_{i in P} sum_{j in Q} A[h,i,j]; [heads, 3, n_dst]."""
    span_ids = np.asarray(span_ids)
    keys = {
        "prompt": span_ids == SPAN_ID["prompt"],
        "cot": span_ids == SPAN_ID["cot"],
        "code": span_ids == SPAN_ID["code"],
        "other": (span_ids == SPAN_ID["glue"]) | (span_ids == SPAN_ID["eos"]),
    }
    if sink:
        first = np.zeros_like(span_ids, dtype=bool)
        first[0] = True
        keys = {k: v & ~first for k, v in keys.items()}
        keys["sink"] = first
    names = key_span_names(sink)
    out = np.zeros((pattern.shape[0], len(QUERY_SPANS), len(names)))
    for p, src in enumerate(QUERY_SPANS):
        rows = np.nonzero(span_ids == SPAN_ID[src])[0]
        if rows.size == 0:
            continue
        for q, dst in enumerate(names):
            cols = np.nonzero(keys[dst])[0]
            out[:, p, q] = pattern[:, rows][:, :, cols].sum(axis=2).mean(axis=1)
    return out


@pytest.mark.parametrize("sink", [False, True])
def test_hooked_masses_equal_full_patterns_and_sum_to_one(tiny_runs, triples_file, sink):
    import torch

    run = tiny_runs["follow"]
    tok, examples = _examples(run, triples_file, "follow")
    model = load_attention_model(run / "final", "fp32", "cpu", "test")
    # padded batches of 3 (examples differ in length): padding must not change any mass
    masses, _ = attention_masses(
        HFPatterns(model, "test"), examples, pad_token_id=tok.pad_token_id, batch_size=3, sink=sink
    )
    for ex in examples:
        ids = torch.tensor([ex.input_ids])
        with torch.no_grad():
            full = model(ids, output_attentions=True).attentions  # layers x [1, h, T, T]
        assert len(full) == model.config.num_hidden_layers
        for layer, pattern in enumerate(full):
            pattern = pattern[0].double().numpy()  # [h, T, T]
            np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=1e-5)  # rows sum to 1
            ref = _reference_masses(pattern, ex.span_ids, sink)
            np.testing.assert_allclose(masses[ex.id][layer], ref, atol=1e-5, rtol=0)
        got = masses[ex.id]  # [layers, heads, 3, n_dst]
        for p, src in enumerate(QUERY_SPANS):
            if SPAN_ID[src] in ex.span_ids:
                np.testing.assert_allclose(got[:, :, p, :].sum(-1), 1.0, atol=1e-5)
        # follow: the cot comes before the code, so cot -> code is zero by causality
        cot, code = QUERY_SPANS.index("cot"), key_span_names(sink).index("code")
        assert np.abs(got[:, :, cot, code]).max() == 0.0
        assert got[:, :, QUERY_SPANS.index("code"), key_span_names(sink).index("cot")].min() > 0


def test_transformerlens_equals_hf_eager(tiny_runs, triples_file):
    from transformer_lens.model_bridge import TransformerBridge

    run = tiny_runs["precede"]
    tok, examples = _examples(run, triples_file, "precede")
    hf = load_attention_model(run / "final", "fp32", "cpu", "test")
    masses_hf, _ = attention_masses(
        HFPatterns(hf, "test"), examples, pad_token_id=tok.pad_token_id, batch_size=2
    )
    other = load_attention_model(run / "final", "fp32", "cpu", "test")  # the bridge alters it
    bridge = TransformerBridge.boot_transformers(
        str(run / "final"), hf_model=other, tokenizer=tok, device="cpu"
    )
    masses_tl, _ = attention_masses(
        TLPatterns(bridge), examples, pad_token_id=tok.pad_token_id, batch_size=2
    )
    assert set(masses_tl) == set(masses_hf) == {e.id for e in examples}
    for ex_id in masses_hf:
        assert masses_tl[ex_id].shape == masses_hf[ex_id].shape
        np.testing.assert_allclose(masses_tl[ex_id], masses_hf[ex_id], atol=1e-5, rtol=0)


def test_attribution_ablation_equals_manual_replacement_and_ig_completes(tiny_runs, triples_file):
    import torch

    from diagnostics.attribution import (
        GROUPS,
        AttributionOptions,
        group_ids,
        span_attribution,
        target_logprob,
    )
    from training.modeling import load_model

    run = tiny_runs["follow"]
    tok, examples = _examples(run, triples_file, "follow", n=2)
    model = load_model(run / "final", dtype="fp32", device="cpu")
    frame, info = span_attribution(
        model, tok, examples, AttributionOptions(methods=("ablation", "ig"), ig_steps=48)
    )
    assert info["baseline_token_id"] == tok.pad_token_id
    ex = examples[0]
    rows = frame[frame["example_id"] == ex.id]
    # follow: the code is driven by prompt, cot, other; the cot only by the prompt
    code_rows = rows[(rows["dst"] == "code") & (rows["method"] == "captum:FeatureAblation")]
    assert set(code_rows["src"]) == {"prompt", "cot", "other"}
    cot_rows = rows[(rows["dst"] == "cot") & (rows["method"] == "captum:FeatureAblation")]
    assert set(cot_rows["src"]) == {"prompt"}
    # manual: replace the cot tokens by pad, the drop in the code's log-prob per code token
    positions = [i for i, s in enumerate(ex.span_ids) if s == SPAN_ID["code"]]
    end = positions[-1] + 1
    ids = torch.tensor([ex.input_ids[:end]])
    pos = torch.tensor(positions)
    labels = ids[0, pos]
    groups = torch.tensor(group_ids(ex.span_ids[:end]))
    ablated = ids.clone()
    ablated[0, groups == GROUPS.index("cot")] = tok.pad_token_id
    with torch.no_grad():
        f_x = float(target_logprob(model, ids, pos, labels)[0])
        f_abl = float(target_logprob(model, ablated, pos, labels)[0])
    manual = (f_x - f_abl) / len(positions)
    got = float(code_rows.loc[code_rows["src"] == "cot", "score"].iloc[0])
    assert got == pytest.approx(manual, abs=1e-5)
    assert abs(manual) > 1e-4  # the cot does move the code's log-prob
    # IG completeness: scores of all groups sum to (f(x) - f(baseline)) / |T|, up to delta
    ig = rows[(rows["dst"] == "code") & (rows["method"] == "captum:LayerIntegratedGradients")]
    baseline = torch.full_like(ids, tok.pad_token_id)
    baseline[0, pos] = labels
    with torch.no_grad():
        f_base = float(target_logprob(model, baseline, pos, labels)[0])
    total = (f_x - f_base) / len(positions)
    assert ig["score"].sum() == pytest.approx(total, abs=abs(ig["delta"].iloc[0]) + 1e-4)
    assert abs(ig["delta"].iloc[0]) < 0.05 * abs(total) + 1e-3


@pytest.mark.slow
def test_attn_cli_end_to_end_with_attribution_patterns_and_resume(
    tiny_runs, triples_file, tmp_path
):
    out = tmp_path / "attn"
    args = [
        "attn",
        "--model",
        str(tiny_runs["follow"]),
        "--model",
        str(tiny_runs["precede"]),
        "--data",
        str(triples_file),
        "--out",
        str(out),
        "--max-examples",
        "4",
        "--attribution",
        "--ig-steps",
        "8",
        "--save-patterns",
        "2",
        "--n-resamples",
        "200",
    ]
    proc = run_diag(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    attn = pd.read_parquet(out / "attn.parquet")
    assert list(attn.columns) == [
        "label",
        "base",
        "format",
        "seed",
        "step",
        "layer",
        "head",
        "src",
        "dst",
        "mass",
        "n_examples",
        "visible",
    ]
    assert set(attn["label"]) == {"follow-s0", "precede-s0"}
    assert (attn["n_examples"] == 4).all()
    # per query span, the masses over every dst sum to 1 (per layer, head)
    sums = attn.groupby(["label", "layer", "head", "src"])["mass"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-5)
    pair = attn.set_index(["label", "src", "dst"]).sort_index()
    assert not pair.loc[("follow-s0", "cot", "code"), "visible"].any()
    assert pair.loc[("follow-s0", "cot", "code"), "mass"].max() == 0.0
    assert pair.loc[("precede-s0", "cot", "code"), "visible"].all()
    assert pair.loc[("precede-s0", "cot", "code"), "mass"].min() > 0
    summary = pd.read_parquet(out / "summary_attn.parquet")
    paired = summary[(summary["metric"] == "attn:second->first") & (summary["b"] != "")]
    assert len(paired) == 1 and paired["n"].iloc[0] == 4
    assert paired["ci_low"].iloc[0] <= paired["diff"].iloc[0] <= paired["ci_high"].iloc[0]
    attribution = pd.read_parquet(out / "attribution.parquet")
    assert list(attribution.columns) == [
        "label",
        "base",
        "format",
        "seed",
        "step",
        "method",
        "src",
        "dst",
        "score",
        "n_examples",
    ]
    assert {"captum:FeatureAblation", "captum:LayerIntegratedGradients"} == set(
        attribution["method"]
    )
    follow = attribution[attribution["label"] == "follow-s0"]
    assert ("cot", "code") in set(zip(follow["src"], follow["dst"]))
    assert ("code", "cot") not in set(zip(follow["src"], follow["dst"]))
    index = pd.read_parquet(out / "patterns.parquet")
    assert len(index) == 4  # 2 examples x 2 models
    with np.load(out / index["path"].iloc[0], allow_pickle=True) as npz:
        per_head, tokens, span_ids = npz["per_head"], npz["tokens"], npz["span_ids"]
        n = int(index["n_tokens"].iloc[0])
        assert per_head.shape == (2, 4, n, n) and len(tokens) == n == len(span_ids)
        np.testing.assert_allclose(per_head.astype(np.float32).sum(-1), 1.0, atol=1e-2)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert manifest["result"]["models"]["follow-s0"]["backend"] == "tl"
    # resume: both models are skipped, tables identical
    before = attn.copy()
    proc = run_diag(*args, "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "attn.parquet"), before)


def _tiny_mamba(tiny_base: Path, out: Path) -> Path:
    from transformers import MambaConfig, MambaForCausalLM

    tok = load_tokenizer(tiny_base)
    cfg = MambaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, state_size=4)
    MambaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_attn_cli_bad_input_exits_2_and_writes_nothing(
    tiny_base, tiny_runs, triples_file, tmp_path
):
    mamba = _tiny_mamba(tiny_base, tmp_path / "mamba")
    follow = str(tiny_runs["follow"])
    data = str(triples_file)
    cases = {
        "no attention": (
            ["--model", str(mamba), "--format", "follow"],
            "no attention layers that return post-softmax weights",
        ),
        "absent span": (
            ["--model", follow, "--format", "wo", "--spans", "cot"],
            "format 'wo' has no cot span",
        ),
        "empty split": (["--model", follow, "--split", "ood"], "no usable triples in split 'ood'"),
        "all too long": (["--model", follow, "--max-len", "5"], "longer than --max-len 5"),
        "bad backend": (["--model", follow, "--backend", "xla"], "--backend 'xla'"),
    }
    for name, (extra, message) in cases.items():
        out = tmp_path / name.replace(" ", "_")
        proc = run_diag_here(
            "attn", *extra, "--data", data, "--out", str(out), "--max-examples", "2"
        )
        assert proc.returncode == 2, (name, proc.stderr[-2000:])
        assert message in proc.stderr, (name, proc.stderr[-2000:])
        assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
        assert not out.exists(), name


def test_attn_summary_pairs_models_on_examples_and_skips_invisible_pairs():
    from diagnostics.attn import attn_summary
    from plumbing.stats import StatsOptions

    rows = []
    for model, fmt, seed, shift in (
        ("follow-s0", "follow", None, 0.0),
        ("precede-s0", "precede", None, 0.1),
    ):
        for i in range(6):
            for src, dst, mass in (("code", "cot", 0.3 + 0.01 * i), ("cot", "code", 0.2 + shift)):
                visible = (fmt, src) in {("follow", "code"), ("precede", "cot")}
                rows.append(
                    dict(model=model, label=model, format=fmt, seed=seed, step=None,
                         example_id=f"e{i}", layer=0, src=src, dst=dst,
                         mass=mass if visible else 0.0, visible=visible)
                )  # fmt: skip
    summary = attn_summary(pd.DataFrame(rows), StatsOptions(n_resamples=200))
    by = summary.set_index(["metric", "a", "b"])
    # code->cot exists only in follow, cot->code only in precede: no cross-model pair for them
    assert ("attn:code->cot", "follow-s0", "") in by.index
    assert ("attn:code->cot", "precede-s0", "") not in by.index
    assert ("attn:code->cot", "follow-s0", "precede-s0") not in by.index
    # second->first pairs follow's code->cot with precede's cot->code on the same examples
    row = by.loc[("attn:second->first", "follow-s0", "precede-s0")]
    assert row["n"] == 6
    assert row["diff"] == pytest.approx(np.mean([0.3 + 0.01 * i for i in range(6)]) - 0.3)
