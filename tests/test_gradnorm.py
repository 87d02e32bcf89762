"""diag gradnorm: per-span gradient norms against HF's own loss + backward, group norms adding up,
the CLI, and bad input."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from conftest import run_diag, run_diag_here

from diagnostics.common import load_examples
from diagnostics.gradnorm import example_grad_norms, param_group, span_positions
from training.modeling import load_model, load_tokenizer


def test_span_grad_norm_equals_hf_loss_backward(tiny_runs, triples_file):
    import torch

    run = tiny_runs["precede"]
    tok = load_tokenizer(run)
    examples, _ = load_examples(triples_file, "test", "precede", tok, max_examples=2)
    model = load_model(run / "final", dtype="fp32", device="cpu")
    named = list(model.named_parameters())
    params = [p for _, p in named]
    embed = model.get_input_embeddings().weight
    groups = [param_group(n, p is embed, False) for n, p in named]
    rows = pd.DataFrame(
        example_grad_norms(model, examples[0], ["cot", "code", "response"], groups, params)
    )
    reference = load_model(run / "final", dtype="fp32", device="cpu")  # a second instance
    ex = examples[0]
    for span in ("cot", "code", "response"):
        labels = torch.full((1, len(ex)), -100)
        for t in span_positions(ex.span_ids, span):
            labels[0, t] = ex.input_ids[t]
        reference.zero_grad()
        out = reference(torch.tensor([ex.input_ids]), labels=labels)  # HF shifts the labels
        out.loss.backward()
        norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in reference.parameters()))
        got = rows[(rows["span"] == span) & (rows["group"] == "all")].iloc[0]
        assert got["loss"] == pytest.approx(float(out.loss.detach()), rel=1e-5)
        assert got["grad_norm"] == pytest.approx(norm, rel=1e-4)
        parts = rows[(rows["span"] == span) & (rows["group"] != "all")]
        assert set(parts["group"]) == {"embed", "layer.0", "layer.1", "other"}
        assert math.sqrt((parts["grad_norm"] ** 2).sum()) == pytest.approx(norm, rel=1e-4)
    n_code = rows.loc[(rows["span"] == "code") & (rows["group"] == "all"), "n_tokens"].iloc[0]
    assert n_code == sum(1 for s in ex.span_ids if s == 2)


def test_gradnorm_cli_tables_and_bad_input(tiny_runs, triples_file, tmp_path):
    out = tmp_path / "gn"
    proc = run_diag(
        "gradnorm",
        "--model",
        str(tiny_runs["follow"]),
        "--model",
        str(tiny_runs["precede"]),
        "--data",
        str(triples_file),
        "--out",
        str(out),
        "--max-examples",
        "3",
        "--n-resamples",
        "200",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = pd.read_parquet(out / "gradnorm.parquet")
    assert list(table.columns) == [
        "label",
        "base",
        "format",
        "seed",
        "step",
        "example_id",
        "span",
        "group",
        "n_tokens",
        "loss",
        "grad_norm",
    ]
    total = table[table["group"] == "all"]
    assert len(total) == 2 * 3 * 3  # models x examples x spans (cot, code, response)
    assert (total["grad_norm"] > 0).all()
    summary = pd.read_parquet(out / "summary_gradnorm.parquet")
    within = summary[summary["metric"] == "grad_norm:code-cot"]
    assert set(within["a"]) == {"follow-s0:code", "precede-s0:code"}
    assert json.loads((out / "manifest.json").read_text())["status"] == "finished"

    bad = tmp_path / "bad"
    proc = run_diag_here(
        "gradnorm",
        "--model",
        str(tiny_runs["follow"]),
        "--format",
        "wo",
        "--spans",
        "cot",
        "--data",
        str(triples_file),
        "--out",
        str(bad),
    )
    assert proc.returncode == 2 and "format 'wo' has no cot span" in proc.stderr
    assert not bad.exists()
