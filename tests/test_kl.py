"""diag kl / valloss: chunked KL against a naive float64 computation, identities, vocabulary
slicing, tokenizer checks, per-checkpoint validation loss against HF's loss, CLI bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_diag_here

from diagnostics.forward import CausalScorer, common_vocab, per_example, score_batch
from diagnostics.kl import KlConfig
from diagnostics.kl import main as kl_main
from diagnostics.scoring import ExampleCache
from diagnostics.valloss import ValLossConfig
from diagnostics.valloss import main as valloss_main
from plumbing import InputError
from training.modeling import load_model, load_tokenizer


def _examples(run: Path, triples_file: Path, fmt: str, split: str = "test"):
    tok = load_tokenizer(run)
    return ExampleCache(triples_file, split).get(fmt, tok)[0], tok


def _batch_scores(ft, base, examples, tok, *, batch_size=8, **kwargs) -> dict[str, dict]:
    """{example_id: per-position item} over all examples."""
    from diagnostics.common import padded_batches

    out = {}
    for batch in padded_batches(examples, batch_size, tok.pad_token_id):
        scores = score_batch(batch, ft, base, skip_prompt=False, **kwargs)
        out.update({it["example"].id: it for it in per_example(batch, scores)})
    return out


def naive_kl(model_p, model_q, ids: list[int], vocab: int) -> np.ndarray:
    """[seq-1] KL(p || q) at positions 1..seq-1 from full float64 logits, vocab sliced."""
    x = torch.tensor([ids])
    with torch.no_grad():
        zp = model_p(input_ids=x).logits[0, :-1, :vocab].double()
        zq = model_q(input_ids=x).logits[0, :-1, :vocab].double()
    lp, lq = torch.log_softmax(zp, -1), torch.log_softmax(zq, -1)
    return (lp.exp() * (lp - lq)).sum(-1).numpy()


@pytest.fixture(scope="module")
def pair(tiny_runs, tiny_base):
    ft = load_model(tiny_runs["follow"], dtype="fp32", device="cpu")
    base = load_model(tiny_base, dtype="fp32", device="cpu")
    return ft, base


def test_chunked_kl_equals_naive_float64_with_a_ragged_chunk(pair, tiny_runs, triples_file):
    ft, base = pair
    examples, tok = _examples(tiny_runs["follow"], triples_file, "follow")
    n_positions = sum(len(e) - 1 for e in examples)
    assert n_positions % 7 != 0  # the last chunk is a partial one
    items = _batch_scores(CausalScorer(ft, chunk_rows=7), CausalScorer(base), examples, tok)
    for ex in examples:
        item = items[ex.id]
        assert item["pos"].tolist() == list(range(1, len(ex)))
        np.testing.assert_allclose(item["kl"], naive_kl(ft, base, ex.input_ids, 1024), atol=1e-5)
        assert (item["kl"] >= 0).all() and item["kl"].max() > 1e-3
        assert (item["mass_dropped"] == 0).all()


def test_kl_to_itself_is_zero_and_reverse_equals_swapping(pair, tiny_runs, triples_file):
    ft, base = pair
    examples, tok = _examples(tiny_runs["follow"], triples_file, "follow")
    same = _batch_scores(CausalScorer(ft), CausalScorer(ft), examples, tok)
    assert all((it["kl"] == 0).all() for it in same.values())
    reverse = _batch_scores(
        CausalScorer(ft), CausalScorer(base), examples, tok, direction="reverse"
    )
    swapped = _batch_scores(CausalScorer(base), CausalScorer(ft), examples, tok, batch_size=3)
    for ex_id, item in reverse.items():
        np.testing.assert_allclose(item["kl"], swapped[ex_id]["kl"], rtol=1e-5, atol=1e-7)
        assert not np.allclose(item["kl"], same[ex_id]["kl"])
        np.testing.assert_allclose(item["nll_base"], swapped[ex_id]["nll"], rtol=1e-6)


def test_padded_batch_equals_batch_size_one(pair, tiny_runs, triples_file):
    ft, base = pair
    examples, tok = _examples(tiny_runs["follow"], triples_file, "follow")
    padded = _batch_scores(CausalScorer(ft), CausalScorer(base), examples, tok, batch_size=8)
    single = _batch_scores(CausalScorer(ft), CausalScorer(base), examples, tok, batch_size=1)
    for ex_id in single:
        for key in ("kl", "nll", "nll_base"):
            np.testing.assert_allclose(padded[ex_id][key], single[ex_id][key], rtol=1e-5, atol=1e-6)


def _resized(model_dir: Path, out: Path, vocab: int) -> Path:
    """A copy of a model whose embedding/head was resized (mean-initialised new rows)."""
    model = load_model(model_dir, dtype="fp32", device="cpu")
    model.resize_token_embeddings(vocab)
    model.save_pretrained(out)
    load_tokenizer(model_dir).save_pretrained(out)
    return out


def test_vocabulary_slicing_of_a_resized_head(pair, tiny_runs, tiny_base, triples_file, tmp_path):
    """Rule: V = min(vocab_ft, vocab_base); both renormalised over ids < V; mass beyond V is
    measured. A resized copy of the base is then at KL 0 from the base, and a resized fine-tuned
    model at the same KL as before resizing."""
    ft, base = pair
    examples, tok = _examples(tiny_runs["follow"], triples_file, "follow")
    big_base = load_model(_resized(tiny_base, tmp_path / "base1030", 1030), device="cpu")
    big_ft = load_model(_resized(tiny_runs["follow"], tmp_path / "ft1030", 1030), device="cpu")
    assert big_ft.get_output_embeddings().weight.shape[0] == 1030
    base_s, big_ft_s = CausalScorer(base), CausalScorer(big_ft)
    assert common_vocab(big_ft_s, base_s, len(tok)) == 1024
    zero = _batch_scores(CausalScorer(big_base), base_s, examples, tok, vocab=1024)
    plain = _batch_scores(CausalScorer(ft), base_s, examples, tok)
    sliced = _batch_scores(big_ft_s, base_s, examples, tok, vocab=1024)
    for ex in examples:
        assert zero[ex.id]["kl"].max() < 1e-6
        assert zero[ex.id]["mass_dropped"].min() > 0  # the new rows did take probability mass
        np.testing.assert_allclose(sliced[ex.id]["kl"], plain[ex.id]["kl"], atol=1e-6)
        np.testing.assert_allclose(
            sliced[ex.id]["kl"], naive_kl(big_ft, base, ex.input_ids, 1024), atol=1e-5
        )
    with pytest.raises(InputError, match="more than the common vocabulary 1024"):
        common_vocab(big_ft_s, base_s, 1027)


@pytest.mark.slow
def test_kl_on_the_trained_pair_writes_consistent_tables(tiny_runs, triples_file, tmp_path):
    out = tmp_path / "kl"
    cfg = KlConfig(
        model=[str(tiny_runs["follow"]), str(tiny_runs["precede"])],
        data=str(triples_file),
        out=str(out),
        save_tokens=True,
        n_resamples=300,
        chunk_tokens=50,
    )
    kl_main(cfg)
    frame = pd.read_parquet(out / "kl.parquet")
    tokens = pd.read_parquet(out / "kl_tokens.parquet")
    assert len(frame) == 2 * 8 * 4 and set(frame["span"]) == {"prompt", "cot", "code", "response"}
    assert set(frame["direction"]) == {"forward"}
    assert (frame.kl_q10 <= frame.kl_q50).all() and (frame.kl_q50 <= frame.kl_q90).all()
    assert (frame.kl_q90 <= frame.kl_max).all()
    # the per-example means are the means of the per-token rows (two code paths over one pass)
    for row in frame[frame.span == "cot"].itertuples():
        sel = tokens[(tokens.label == row.label) & (tokens.example_id == row.example_id)]
        sel = sel[sel.span == "cot"]
        assert len(sel) == row.n_tokens and sel.kl.mean() == pytest.approx(row.kl_mean)
    tok = load_tokenizer(tiny_runs["follow"])
    first = tokens[(tokens.label == "follow-s0")].iloc[:5]
    assert first["token"].tolist() == [tok.decode([t]) for t in first["token_id"]]
    summary = pd.read_parquet(out / "kl_summary.parquet")
    assert {"mean_kl", "ci_low", "ci_high", "token_q50", "token_kl_mean"} <= set(summary.columns)
    pairs = pd.read_parquet(out / "summary_kl.parquet")
    assert set(pairs.metric) == {f"kl_mean:{s}" for s in ("prompt", "cot", "code", "response")}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["vocab"]["follow-s0"]["vocab_common"] == 1024
    assert Path(manifest["result"]["base"]).name == "tiny"  # from the training manifests
    # resumed from its parts alone (nothing rescored): the same tables, the same manifest record
    (out / "manifest.json").unlink()
    cfg.resume, cfg.save_tokens = True, False
    kl_main(cfg)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "kl_summary.parquet"), summary)
    assert json.loads((out / "manifest.json").read_text())["vocab"] == manifest["vocab"]


@pytest.mark.slow
def test_valloss_walks_checkpoints_and_matches_hf_loss(
    tiny_runs, tiny_base, triples_file, tmp_path
):
    out = tmp_path / "vl"
    cfg = ValLossConfig(run=[str(tiny_runs["precede"])], data=str(triples_file), out=str(out))
    cfg.n_resamples = 300
    valloss_main(cfg)
    table = pd.read_parquet(out / "valloss.parquet")
    index = json.loads((tiny_runs["precede"] / "checkpoints.json").read_text())
    assert sorted(set(table.step)) == [0, 4, 8]
    assert (
        table.groupby("step").span.apply(set).map(sorted).tolist() == [["all", "code", "cot"]] * 3
    )
    seen = table.drop_duplicates("step").set_index("step").loss_tokens_seen
    assert seen.to_dict() == {0: 0, **{e["step"]: e["loss_tokens_seen"] for e in index}}
    assert (table[table.step == 0].kl_to_base == 0).all() and (
        table[table.step > 0].kl_to_base > 0
    ).all()
    # loss over all response tokens == HF's loss (token-weighted over the val examples)
    examples, _ = _examples(tiny_runs["precede"], triples_file, "precede", split="val")
    for step, model_dir in ((0, tiny_base), (8, tiny_runs["precede"] / "checkpoint-8")):
        model = load_model(model_dir, dtype="fp32", device="cpu")
        nll, count = 0.0, 0
        for ex in examples:
            ids, labels = torch.tensor([ex.input_ids]), torch.tensor([ex.labels])
            with torch.no_grad():
                loss = float(model(input_ids=ids, labels=labels).loss)
            n = sum(lab != -100 for lab in ex.labels)
            nll, count = nll + loss * n, count + n
        row = table[(table.step == step) & (table.span == "all")].iloc[0]
        assert row.n_tokens == count and row.loss == pytest.approx(nll / count, rel=1e-5)
    # the KL at the last checkpoint equals diag kl's token-weighted mean on the same data
    kl_main(
        KlConfig(
            model=[str(tiny_runs["precede"] / "checkpoint-8")],
            data=str(triples_file),
            split="val",
            out=str(tmp_path / "kl8"),
            n_resamples=100,
        )
    )
    kl8 = pd.read_parquet(tmp_path / "kl8" / "kl_summary.parquet").set_index("span")
    last = table[table.step == 8].set_index("span")
    for span, kl_span in (("all", "response"), ("cot", "cot"), ("code", "code")):
        assert last.kl_to_base[span] == pytest.approx(kl8.token_kl_mean[kl_span], rel=1e-6)
    # resume: a lost checkpoint part is recomputed alone, with the same numbers
    part = next((out / "parts").glob("*step4.parquet"))
    others = {p: p.stat().st_mtime_ns for p in (out / "parts").glob("*.parquet") if p != part}
    part.unlink()
    (out / "manifest.json").unlink()
    cfg.resume = True
    valloss_main(cfg)
    assert {p: p.stat().st_mtime_ns for p in others} == others
    pd.testing.assert_frame_equal(pd.read_parquet(out / "valloss.parquet"), table)


def _model_with_other_tokenizer(tmp_path: Path) -> Path:
    from training.pretrain import PRESETS, build_model, train_tokenizer

    texts = ["def spam(eggs):\n    return eggs * 2\n" * 50, "class Ham:\n    pass\n" * 50]
    tok = train_tokenizer(texts, vocab_size=300)
    out = tmp_path / "other_tok"
    build_model(PRESETS["tiny"], tok, seed=1).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.slow
def test_cli_bad_inputs_exit_2_and_write_nothing(tiny_runs, tiny_base, triples_file, tmp_path):
    other = _model_with_other_tokenizer(tmp_path)
    empty_run = tmp_path / "empty_run"
    empty_run.mkdir()
    cases = [
        (["kl", "--model", str(other), "--base", str(tiny_base), "--format", "follow"],
         "tokenizers differ"),
        (["kl", "--model", str(tiny_runs["follow"]), "--max-len", "5"],
         "every example is longer than --max-len 5"),
        (["valloss", "--run", str(empty_run), "--base", str(tiny_base)], "holds no checkpoints"),
        (["kl", "--model", str(tiny_base), "--format", "follow"], "names its base; pass --base"),
    ]  # fmt: skip
    for i, (args, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        done = run_diag_here(*args, "--data", str(triples_file), "--out", str(out))
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not out.exists()


def test_linear_quantiles_equal_numpys_quantile_bit_for_bit() -> None:
    from diagnostics.kl import linear_quantiles

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 10, 57, 1000):
        for dtype in (np.float32, np.float64):
            x = rng.gamma(0.5, size=n).astype(dtype)
            assert linear_quantiles(x) == [float(v) for v in np.quantile(x, [0.1, 0.5, 0.9])]
