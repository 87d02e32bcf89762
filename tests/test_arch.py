"""`diag pretrain --arch`: each architecture (Llama, GPT-2, Qwen2, GPT-NeoX) through the project.

One tiny base per architecture (the `tiny` preset's sizes, a few pretraining steps on the test
triples, the same tokenizer.json for all) and a short `precede` SFT run of each, built once per
module. Checked per architecture: the HF class and sizes, the shared tokenizer and exact spans,
the CausalScorer's chunked head against the model's own logits, batched (left-padded)
generation against one by one, HF eager attention masses against TransformerLens, and every
diagnostic (ppl, kl, valloss, attn, gradnorm) plus `diag eval` end to end, in-process.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import make_triples

from plumbing import InputError
from training.formats import FORMATS, SPAN_ID, encode, span_token_text
from training.pretrain import ARCHS, PRESETS, PretrainConfig, config_key
from training.pretrain import main as pretrain

HF_CLASSES = {
    "llama": "LlamaForCausalLM",
    "gpt2": "GPT2LMHeadModel",
    "qwen2": "Qwen2ForCausalLM",
    "gpt_neox": "GPTNeoXForCausalLM",
}


def _base_config(out: Path, arch: str, triples_file: Path) -> PretrainConfig:
    # the task text alone, 4 steps: a real pretrained base in well under a second per arch
    return PretrainConfig(
        out=str(out),
        preset="tiny",
        arch=arch,
        text=[str(triples_file)],
        stdlib=False,
        vocab_size=512,
        steps=4,
        seed=0,
    )


@pytest.fixture(scope="module")
def bases(triples_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("arch-bases")
    out = {}
    for arch in ARCHS:
        pretrain(_base_config(root / arch, arch, triples_file))
        out[arch] = root / arch
    return out


@pytest.fixture(scope="module")
def runs(bases, triples_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A `precede` SFT run per architecture: checkpoints at 2 and 4."""
    from training.sft import TrainConfig, main

    root = tmp_path_factory.mktemp("arch-runs")
    out = {}
    for arch, base in bases.items():
        main(
            TrainConfig(
                data=str(triples_file),
                format="precede",
                base=str(base),
                out=str(root / arch),
                max_steps=4,
                save_steps=2,
                batch_size=4,
                lr=3e-3,
                logging_steps=2,
            )
        )
        out[arch] = root / arch
    return out


def test_registry_lists_the_four_archs_and_help_shows_them():
    from typer.testing import CliRunner

    from cli.main import build_app

    assert list(ARCHS) == list(HF_CLASSES)
    result = CliRunner().invoke(
        build_app(("pretrain",)), ["pretrain", "--help"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # help text wraps at the terminal's width
    assert (
        "--arch <str> Model architecture, the preset's sizes: llama | gpt2 | qwen2 | gpt_neox"
        in text
    )


def test_unknown_arch_fails_before_any_work(tmp_path):
    from training.pretrain import build_model

    with pytest.raises(InputError, match=r"--arch 'bert': choose from llama, gpt2, qwen2"):
        pretrain(PretrainConfig(out=str(tmp_path / "b"), preset="tiny", arch="bert"))
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.work").exists()
    with pytest.raises(InputError, match="--arch"):
        build_model(PRESETS["tiny"], None, 0, arch="bert")


def test_config_key_separates_archs_and_keeps_llama_keys():
    keys = {arch: config_key(PretrainConfig(out="x", preset="tiny", arch=arch)) for arch in ARCHS}
    assert len({json.dumps(k, sort_keys=True) for k in keys.values()}) == len(ARCHS)
    # a Llama base's key is what it was before --arch existed: finished bases stay reusable
    assert "arch" not in keys["llama"] and keys["gpt2"]["arch"] == "gpt2"


@pytest.mark.parametrize("arch", list(ARCHS))
def test_base_is_the_hf_class_with_the_preset_sizes(bases, arch):
    from transformers import AutoModelForCausalLM

    from training.modeling import load_tokenizer
    from training.pretrain import is_finished_base

    base = bases[arch]
    model = AutoModelForCausalLM.from_pretrained(base)
    tok = load_tokenizer(base)
    cfg, tiny = model.config, PRESETS["tiny"]
    assert type(model).__name__ == HF_CLASSES[arch]
    sizes = cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads
    assert sizes == (tiny.hidden_size, tiny.num_layers, tiny.num_heads)
    mlp_width = cfg.n_inner if arch == "gpt2" else cfg.intermediate_size
    assert mlp_width == tiny.intermediate_size
    positions = cfg.n_positions if arch == "gpt2" else cfg.max_position_embeddings
    assert positions == tiny.max_position_embeddings
    assert cfg.vocab_size == len(tok) and cfg.tie_word_embeddings
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    ids = (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id)
    assert ids == (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    report = json.loads((base / "pretrain.json").read_text())
    manifest = json.loads((base / "manifest.json").read_text())
    assert report["arch"] == arch and manifest["config"]["arch"] == arch
    assert report["n_params"] == sum(p.numel() for p in model.parameters())
    assert math.isfinite(report["heldout_loss"])
    cfg_args = dict(out="x", preset="tiny", text=[manifest["config"]["text"][0]], stdlib=False)
    cfg_args.update(vocab_size=512, steps=4, seed=0)
    assert is_finished_base(base, PretrainConfig(arch=arch, **cfg_args))
    other = "gpt2" if arch == "llama" else "llama"
    assert not is_finished_base(base, PretrainConfig(arch=other, **cfg_args))


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_arch_loads_the_same_tokenizer_and_spans_round_trip(bases, arch):
    """The model type never swaps the tokenizer (AutoTokenizer would make Qwen2's a
    Qwen2Tokenizer with another pre-tokenizer); spans decode to exactly their text."""
    from diagnostics.common import padded_batches
    from training.modeling import load_tokenizer

    tok, ref = load_tokenizer(bases[arch]), load_tokenizer(bases["llama"])
    text = "def f(x):\n    return x.\n\n# done\n"
    assert tok(text)["input_ids"] == ref(text)["input_ids"]
    examples = []
    for triple in make_triples(6):
        for fmt in FORMATS:
            ex = encode(triple, fmt, tok)
            assert ex.input_ids == encode(triple, fmt, ref).input_ids
            assert ex.n_boundary == 0
            for name in ("prompt", "cot", "code", "glue"):
                assert span_token_text(ex, tok, name) == ex.rendered.span_text(name), (fmt, name)
            assert ex.input_ids[-1] == tok.eos_token_id and ex.span_ids[-1] == SPAN_ID["eos"]
            examples.append(ex)
    # span masks line up with the model's (padded) inputs, row by row
    for batch in padded_batches(examples, 5, tok.pad_token_id):
        for row, ex in enumerate(batch.examples):
            n = len(ex)
            assert batch.input_ids[row, :n].tolist() == ex.input_ids
            assert batch.span_ids[row, :n].tolist() == ex.span_ids
            assert int(batch.attention_mask[row].sum()) == n


@pytest.mark.parametrize("arch", list(ARCHS))
def test_scorer_head_path_equals_the_models_own_logits(bases, triples_file, arch):
    import torch

    from diagnostics.common import padded_batches
    from diagnostics.forward import CausalScorer, per_example, score_batch
    from diagnostics.scoring import ExampleCache
    from training.modeling import load_model, load_tokenizer

    tok = load_tokenizer(bases[arch])
    model = load_model(bases[arch], dtype="fp32", device="cpu")
    examples = ExampleCache(triples_file, "test").get("precede", tok)[0][:4]
    scorer = CausalScorer(model, name=arch, chunk_rows=7)  # ragged chunks
    (batch,) = padded_batches(examples, 4, tok.pad_token_id)
    scores = score_batch(batch, scorer, skip_prompt=False)
    assert scorer.mode == "head"  # base_model + the (tied) output head, no fallback
    for item in per_example(batch, scores):
        ids = torch.tensor([item["example"].input_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].double()
            # the scorer's own pieces, unpadded: head(base_model(x)) == forward(x).logits
            mine = scorer.logits(scorer.hidden(ids, torch.ones_like(ids))[0, :-1]).double()
        torch.testing.assert_close(mine, logits, atol=1e-5, rtol=0)
        nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none")
        np.testing.assert_allclose(item["nll"], nll.numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_batched_left_padded_generation_equals_one_by_one(bases, triples_file, arch):
    """GPT-2's learned positions must follow the attention mask under left padding."""
    from evaluation.generate import GenConfig, generate
    from synthesis.schema import load_triples
    from training.formats import prompt_ids
    from training.modeling import load_model, load_tokenizer

    tok = load_tokenizer(bases[arch])
    model = load_model(bases[arch], dtype="fp32", device="cpu")
    triples = load_triples(triples_file)[0][:4]
    # the fixture's problems tokenize to one length: a few words more make the lengths differ
    prompts = [prompt_ids(t.problem + " Be brief." * i, tok) for i, t in enumerate(triples)]
    assert len({len(p) for p in prompts}) > 1  # lengths differ: left padding is exercised
    batched = generate(model, tok, prompts, GenConfig(max_new_tokens=12, batch_size=4))
    single = generate(model, tok, prompts, GenConfig(max_new_tokens=12, batch_size=1))
    assert [(p[0].text, p[0].n_tokens) for p in batched] == [
        (p[0].text, p[0].n_tokens) for p in single
    ]


@pytest.mark.parametrize("arch", list(ARCHS))
def test_packed_rows_never_attend_across_examples(bases, triples_file, arch):
    """`diag train --packing` restarts position_ids per example and passes no mask: each arch
    must read packed sequence boundaries from them (the llama test is tests/test_sft.py's)."""
    import torch

    from synthesis.schema import load_triples
    from training.data import PackCollator, PadCollator
    from training.formats import encode_many
    from training.modeling import load_model, load_tokenizer

    tok = load_tokenizer(bases[arch])
    model = load_model(bases[arch], dtype="fp32", device="cpu")
    examples, _ = encode_many(load_triples(triples_file)[0][:3], "follow", tok)
    feats = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    padded = PadCollator(tok.pad_token_id)(feats)
    packed = PackCollator(tok.pad_token_id)([{"pack": feats}])
    with torch.no_grad():
        alone = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"])
        # no KV cache, as in training: HF reads packed boundaries only without one
        together = model(**{k: packed[k] for k in ("input_ids", "position_ids")}, use_cache=False)
    start = 0
    for row, ex in enumerate(examples):
        n = len(ex)
        got = together.logits[0, start : start + n]
        torch.testing.assert_close(got, alone.logits[row, :n], atol=1e-4, rtol=0)
        start += n


@pytest.mark.parametrize("arch", list(ARCHS))
def test_hf_eager_attention_equals_transformerlens(bases, triples_file, arch):
    import torch
    from transformer_lens.model_bridge import TransformerBridge

    from diagnostics.attn import HFPatterns, TLPatterns, attention_masses, load_attention_model
    from diagnostics.scoring import ExampleCache
    from training.modeling import load_tokenizer

    base = bases[arch]
    tok = load_tokenizer(base)
    examples = ExampleCache(triples_file, "test").get("precede", tok)[0][:3]
    hf = load_attention_model(base, "fp32", "cpu", arch)
    masses_hf, _ = attention_masses(
        HFPatterns(hf, arch), examples, pad_token_id=tok.pad_token_id, batch_size=2
    )
    ids = torch.tensor([examples[0].input_ids])
    with torch.no_grad():
        full = hf(ids, output_attentions=True).attentions  # layers x [1, heads, T, T]
    np.testing.assert_allclose(full[0][0].sum(-1).numpy(), 1.0, atol=1e-5)
    other = load_attention_model(base, "fp32", "cpu", arch)  # the bridge alters its model
    bridge = TransformerBridge.boot_transformers(
        str(base), hf_model=other, tokenizer=tok, device="cpu"
    )
    masses_tl, _ = attention_masses(
        TLPatterns(bridge), examples, pad_token_id=tok.pad_token_id, batch_size=2
    )
    assert set(masses_tl) == set(masses_hf) == {e.id for e in examples}
    for ex_id, mass in masses_hf.items():
        assert mass.shape == (PRESETS["tiny"].num_layers, PRESETS["tiny"].num_heads, 3, 4)
        np.testing.assert_allclose(masses_tl[ex_id], mass, atol=1e-5, rtol=0)


def _finite(frame: pd.DataFrame, column: str) -> bool:
    return len(frame) > 0 and bool(np.isfinite(frame[column].to_numpy(dtype=float)).all())


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(ARCHS))
def test_sft_eval_and_every_diagnostic_run_on_each_arch(runs, bases, triples_file, tmp_path, arch):
    from diagnostics.attn import AttnConfig
    from diagnostics.attn import main as attn
    from diagnostics.gradnorm import GradNormConfig
    from diagnostics.gradnorm import main as gradnorm
    from diagnostics.kl import KlConfig
    from diagnostics.kl import main as kl
    from diagnostics.ppl import PplConfig
    from diagnostics.ppl import main as ppl
    from diagnostics.valloss import ValLossConfig
    from diagnostics.valloss import main as valloss
    from evaluation.run import EvalConfig
    from evaluation.run import main as evaluate

    run, data = runs[arch], str(triples_file)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["result"]["steps"] == 4 and math.isfinite(manifest["result"]["train_loss"])
    assert [c["step"] for c in json.loads((run / "checkpoints.json").read_text())] == [2, 4]

    summary = evaluate(
        EvalConfig(
            model=str(run),
            bench=f"jsonl:{data}",
            max_new_tokens=16,
            ks=(1,),
            out=str(tmp_path / "eval"),
            progress=False,
        )
    )
    samples = pd.read_parquet(tmp_path / "eval" / "samples.parquet")
    assert len(samples) == 8 and samples["n_new_tokens"].between(1, 16).all()
    assert summary["models"][0]["step"] == 4

    few = dict(data=data, n_resamples=100)
    ppl(PplConfig(model=[str(run)], out=str(tmp_path / "ppl"), **few))
    frame = pd.read_parquet(tmp_path / "ppl" / "ppl.parquet")
    assert _finite(frame, "ppl") and {"cot", "code", "response"} <= set(frame["span"])

    kl(KlConfig(model=[str(run)], base=str(bases[arch]), out=str(tmp_path / "kl"), **few))
    frame = pd.read_parquet(tmp_path / "kl" / "kl.parquet")
    assert _finite(frame, "kl_mean") and (frame["kl_mean"] >= 0).all()
    assert frame["kl_mean"].max() > 0

    valloss(ValLossConfig(run=[str(run)], out=str(tmp_path / "vl"), **few))
    frame = pd.read_parquet(tmp_path / "vl" / "valloss.parquet")
    assert _finite(frame, "loss") and set(frame["step"]) == {0, 2, 4}  # the base is step 0

    result = attn(
        AttnConfig(
            model=[str(run)],
            out=str(tmp_path / "attn"),
            max_examples=2,
            attribution=True,  # captum through each arch's input embeddings
            ig_steps=4,
            **few,
        )
    )
    (info,) = result["models"].values()
    assert info["backend"] == "tl"  # TransformerLens bridges all four
    frame = pd.read_parquet(tmp_path / "attn" / "attn.parquet")
    assert _finite(frame, "mass") and set(frame["layer"]) == {0, 1}
    frame = pd.read_parquet(tmp_path / "attn" / "attribution_examples.parquet")
    assert _finite(frame, "score") and frame["method"].nunique() == 2

    gradnorm(GradNormConfig(model=[str(run)], out=str(tmp_path / "gn"), max_examples=2, **few))
    frame = pd.read_parquet(tmp_path / "gn" / "gradnorm.parquet")
    assert _finite(frame, "grad_norm") and (frame["grad_norm"] > 0).all()
    assert {"embed", "layer.0", "layer.1"} <= set(frame["group"])
