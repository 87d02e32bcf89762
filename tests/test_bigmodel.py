"""Big-model placement: `--device-map`, `--max-memory`, `--base-device` (`--base-device-map`).

How a model is split on a CPU-only machine: besides GPUs, accelerate's device map knows two
places, "cpu" and "disk". `max_memory={"cpu": <3/4 of the model's bytes>}` with
`device_map="auto"` fills the CPU budget with the first blocks and offloads the rest to "disk":
transformers 5 reads those weights straight from the model's safetensors file (no offload folder
needed) and accelerate's hooks put each offloaded block's weights in place just before it runs,
so its parameters sit on the `meta` device in between. (Half the model's bytes is too little:
accelerate keeps room on the CPU for the largest offloaded block to run in, so the embedding no
longer fits and the whole model goes to disk, `{"": "disk"}`, which is no split.) With an untied
output head (the `tuned` model here) the embedding stays on the CPU and the head goes to disk.
The scoring code then goes through the same paths as with a model over two GPUs: the input
device read from the embedding's hook, the output head's device read from its hook (its weights
on no real device), the hidden states handed from block to block by the hooks. Both places
compute on the CPU, so this shows that nothing changes the numbers (per example, to 1e-6) and
that the dispatched model is never moved; it does not measure transfers between two real
devices (no GPU here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_diag

from diagnostics.attn import AttnConfig
from diagnostics.attn import main as attn_main
from diagnostics.common import padded_batches
from diagnostics.forward import CausalScorer, per_example, score_batch
from diagnostics.kl import KlConfig
from diagnostics.kl import main as kl_main
from diagnostics.ppl import PplConfig
from diagnostics.ppl import main as ppl_main
from diagnostics.scoring import ExampleCache
from plumbing import InputError
from training.modeling import load_model, load_tokenizer, offloaded_modules, parse_max_memory

KEYS = ["example_id", "span"]


def cpu_budget(model_dir: Path) -> int:
    """A CPU budget that splits the model between cpu and disk: 3/4 of its safetensors bytes."""
    return sum(f.stat().st_size for f in model_dir.glob("*.safetensors")) * 3 // 4


@pytest.fixture(scope="module")
def tuned(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'fine-tuned' model: the tiny base with an untied output head (a copy of its tied
    embedding) and every weight nudged (fixed seed), so that KL > 0."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tuned") / "tuned"
    base = load_model(tiny_base, dtype="fp32", device="cpu")
    model = LlamaForCausalLM(LlamaConfig(**{**base.config.to_dict(), "tie_word_embeddings": False}))
    weights = base.state_dict()
    weights["lm_head.weight"] = weights["model.embed_tokens.weight"].clone()
    model.load_state_dict(weights)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=gen) * param.std())
    model.save_pretrained(out)
    load_tokenizer(tiny_base).save_pretrained(out)
    return out


def test_the_cpu_budget_really_splits_both_models(tiny_base, tuned) -> None:
    tied = load_model(
        tiny_base, dtype="fp32", device_map="auto", max_memory={"cpu": cpu_budget(tiny_base)}
    )
    assert set(tied.hf_device_map.values()) == {"cpu", "disk"}
    assert tied.hf_device_map["model.embed_tokens"] == "cpu" == tied.hf_device_map["lm_head"]
    untied = load_model(
        tuned, dtype="fp32", device_map="auto", max_memory={"cpu": cpu_budget(tuned)}
    )
    assert set(untied.hf_device_map.values()) == {"cpu", "disk"}
    assert untied.hf_device_map["model.embed_tokens"] == "cpu"
    assert untied.hf_device_map["lm_head"] == "disk"
    # offloaded weights wait on the meta device: the model was not moved after dispatch
    assert untied.lm_head.weight.device.type == "meta"
    offloaded = offloaded_modules(untied)
    assert "lm_head" in offloaded and "model.embed_tokens" not in offloaded
    assert offloaded_modules(load_model(tuned, dtype="fp32", device="cpu")) == []


def test_parse_max_memory_reads_devices_and_units_and_names_the_option_when_bad() -> None:
    assert parse_max_memory("0=20GiB, cuda:1=1.5GB,cpu=60gib,disk=100") == {
        0: 20 * 2**30,
        1: 1_500_000_000,
        "cpu": 60 * 2**30,
        "disk": 100,
    }
    assert parse_max_memory(None) is None and parse_max_memory(" ") is None
    for bad, why in [
        ("0:20GiB", "expected DEVICE=SIZE"),
        ("gpu0=20GiB", "device 'gpu0'"),
        ("0=20GX", "size '20GX'"),
        ("0=lots", "size 'lots'"),
        ("cpu=1GiB,cpu=2GiB", "given twice"),
        ("0=", "expected DEVICE=SIZE"),
    ]:
        with pytest.raises(InputError, match="--max-memory") as err:
            parse_max_memory(bad)
        assert why in str(err.value)


def test_bad_placement_options_fail_when_the_config_is_built(triples_file, tiny_base) -> None:
    common = {"model": [str(tiny_base)], "data": str(triples_file), "out": "unused"}
    cases = [
        ({"device_map": "auto", "max_memory": "0=20GX"}, "--max-memory '0=20GX'"),
        ({"device_map": "everywhere"}, "--device-map 'everywhere': choose from auto"),
        ({"max_memory": "cpu=1GiB"}, "--max-memory: only with --device-map"),
        ({"device": "cpu", "device_map": "auto"}, "--device cpu and --device-map auto"),
        ({"base_device_map": "auto", "base_max_memory": "cpu"}, "--base-max-memory 'cpu'"),
    ]
    for options, message in cases:
        with pytest.raises(InputError) as err:
            KlConfig(**common, **options)
        assert message in str(err.value)
    with pytest.raises(InputError, match="--max-memory"):
        PplConfig(**common, device_map="auto", max_memory="1=1GiB;cpu=2GiB")


def test_a_model_split_over_cpu_and_disk_scores_like_the_whole_model(tuned, triples_file) -> None:
    whole = load_model(tuned, dtype="fp32", device="cpu")
    split = load_model(
        tuned, dtype="fp32", device_map="auto", max_memory={"cpu": cpu_budget(tuned)}
    )
    assert set(split.hf_device_map.values()) == {"cpu", "disk"}
    tok = load_tokenizer(tuned)
    examples = ExampleCache(triples_file, "test").get("precede", tok)[0]
    scorers = [CausalScorer(m, chunk_rows=7) for m in (whole, split)]
    items = [{}, {}]
    for batch in padded_batches(examples, 4, tok.pad_token_id):
        for got, scorer in zip(items, scorers):
            scores = score_batch(batch, scorer, skip_prompt=False)
            got.update({it["example"].id: it for it in per_example(batch, scores)})
    assert [s.mode for s in scorers] == ["head", "head"]  # the chunked head path, not full logits
    assert str(scorers[1].head_device) == "cpu"  # read from the head's hook (weights on meta)
    for ex in examples:
        np.testing.assert_allclose(items[1][ex.id]["nll"], items[0][ex.id]["nll"], atol=1e-6)


def _ppl(tmp_path: Path, name: str, **options) -> pd.DataFrame:
    out = tmp_path / name
    ppl_main(PplConfig(out=str(out), n_resamples=100, dtype="fp32", **options))
    return pd.read_parquet(out / "ppl.parquet").sort_values(KEYS).reset_index(drop=True)


def test_ppl_with_a_device_map_equals_the_default(tuned, triples_file, tmp_path) -> None:
    common = {"model": [str(tuned)], "data": str(triples_file), "format": "precede"}
    default = _ppl(tmp_path, "default", **common)
    budget = f"cpu={cpu_budget(tuned)}"
    split = _ppl(tmp_path, "split", device_map="auto", max_memory=budget, **common)
    assert len(default) > 0 and default[KEYS].equals(split[KEYS])
    np.testing.assert_allclose(split["log_ppl"], default["log_ppl"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(split["nll_sum"], default["nll_sum"], atol=1e-5, rtol=0)


def _kl(tmp_path: Path, name: str, **options) -> pd.DataFrame:
    out = tmp_path / name
    kl_main(KlConfig(out=str(out), n_resamples=100, dtype="fp32", chunk_tokens=50, **options))
    return pd.read_parquet(out / "kl.parquet").sort_values(KEYS).reset_index(drop=True)


def test_kl_with_split_models_and_a_base_elsewhere_equals_the_default(
    tuned, tiny_base, triples_file, tmp_path
) -> None:
    common = {
        "model": [str(tuned)],
        "base": str(tiny_base),
        "data": str(triples_file),
        "format": "precede",
    }
    default = _kl(tmp_path, "default", **common)
    assert len(default) > 0 and (default["kl_mean"] > 1e-4).all()
    runs = {
        "--base-device cpu": _kl(tmp_path, "base_cpu", base_device="cpu", **common),
        # both models split over cpu and disk, each within its own budget
        "both split": _kl(
            tmp_path,
            "split",
            device_map="auto",
            max_memory=f"cpu={cpu_budget(tuned)}",
            base_device_map="sequential",
            base_max_memory=f"cpu={cpu_budget(tiny_base)}",
            **common,
        ),
    }
    for name, frame in runs.items():
        assert frame[KEYS].equals(default[KEYS]), name
        for column in ("kl_mean", "kl_max", "nll_mean", "nll_base_mean"):
            np.testing.assert_allclose(
                frame[column], default[column], atol=1e-6, rtol=0, err_msg=f"{name}: {column}"
            )


def test_attn_refuses_a_device_map_with_transformer_lens_before_writing(
    tiny_base, triples_file, tmp_path
) -> None:
    out = tmp_path / "attn"
    cfg = AttnConfig(
        model=[str(tiny_base)],
        data=str(triples_file),
        out=str(out),
        format="precede",
        backend="tl",
        device_map="auto",
    )
    with pytest.raises(InputError, match="--device-map auto with --backend tl: TransformerLens"):
        attn_main(cfg)
    assert not out.exists()
    proc = run_diag(
        "attn",
        *("--model", str(tiny_base), "--data", str(triples_file), "--out", str(out)),
        *("--format", "precede", "--backend", "tl", "--device-map", "auto"),
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "TransformerLens cannot load a model dispatched" in proc.stderr
    assert not out.exists()


def test_attn_hf_with_a_split_model_equals_the_whole_model(tuned, triples_file, tmp_path) -> None:
    common = {"model": [str(tuned)], "data": str(triples_file), "format": "precede"}
    frames = {}
    for name, options in {
        "whole": {},
        "split": {"device_map": "auto", "max_memory": f"cpu={cpu_budget(tuned)}"},
    }.items():
        out = tmp_path / name
        attn_main(
            AttnConfig(
                out=str(out), backend="hf", dtype="fp32", n_resamples=100, **common, **options
            )
        )
        frames[name] = pd.read_parquet(out / "attn_examples.parquet")
    whole, split = frames["whole"], frames["split"]
    assert len(whole) > 0 and whole[["example_id", "layer", "src", "dst"]].equals(
        split[["example_id", "layer", "src", "dst"]]
    )
    np.testing.assert_allclose(split["mass"], whole["mass"], atol=1e-6, rtol=0)


def test_gradnorm_refuses_a_model_whose_weights_were_offloaded(tuned, triples_file, tmp_path):
    from diagnostics.gradnorm import GradNormConfig
    from diagnostics.gradnorm import main as gradnorm_main

    out = tmp_path / "gradnorm"
    cfg = GradNormConfig(
        model=[str(tuned)],
        data=str(triples_file),
        out=str(out),
        format="precede",
        dtype="fp32",
        max_examples=2,
        device_map="auto",
        max_memory=f"cpu={cpu_budget(tuned)}",
    )
    with pytest.raises(InputError, match="offloaded .*gradnorm needs every weight resident"):
        gradnorm_main(cfg)
    assert not out.exists()
    with pytest.raises(InputError, match="--max-memory: only with --device-map"):
        gradnorm_main(GradNormConfig(**{**vars(cfg), "device_map": None}))
