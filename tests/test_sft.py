"""SFT: the CLI end to end, checkpoints, resume, packing, gradient accumulation, ZeRO-3, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import run_diag

from training.sft import TrainConfig, main


def _weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_train_cli_writes_loadable_model_and_checkpoints(tiny_base, triples_file, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    proc = run_diag(
        "train",
        "--data",
        str(triples_file),
        "--format",
        "precede",
        "--base",
        str(tiny_base),
        "--out",
        str(out),
        "--max-steps",
        "20",
        "--save-steps",
        "10",
        "--batch-size",
        "4",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    index = json.loads((out / "checkpoints.json").read_text())
    assert [c["step"] for c in index] == [10, 20]
    assert index[1]["loss_tokens_seen"] > index[0]["loss_tokens_seen"] > 0
    assert index[0]["input_tokens_seen"] > index[0]["loss_tokens_seen"]
    for ckpt in ("checkpoint-10", "checkpoint-20", "final"):
        model = AutoModelForCausalLM.from_pretrained(out / ckpt)
        assert model.config.vocab_size > 0
    # final == last checkpoint's weights
    final, last = _weights(out / "final"), _weights(out / "checkpoint-20")
    assert all(torch.equal(final[k], last[k]) for k in final)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["config"]["format"] == "precede"
    assert manifest["result"]["steps"] == 20 and manifest["git_revision"] is not None
    import pandas as pd

    log = pd.read_parquet(out / "train_log.parquet")
    assert {"step", "loss", "learning_rate", "loss_tokens_seen"} <= set(log.columns)
    assert log["loss_tokens_seen"].is_monotonic_increasing and log["step"].max() == 20
    stats = json.loads((out / "data_stats.json").read_text())
    assert stats["split"] == "train" and stats["n_encoded"] == 24  # 3 of every 5 are train

    # a finished run is refused without --overwrite / --resume, and left untouched
    again = run_diag(
        "train",
        "--data",
        str(triples_file),
        "--format",
        "precede",
        "--base",
        str(tiny_base),
        "--out",
        str(out),
        "--max-steps",
        "20",
    )
    assert again.returncode == 2
    assert "already holds a finished train run" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert _weights(out / "final").keys() == final.keys()


def _cfg(base, data, out, **kw) -> TrainConfig:
    args = dict(
        data=str(data),
        format="follow",
        base=str(base),
        out=str(out),
        max_steps=8,
        save_steps=4,
        batch_size=4,
        lr=3e-3,
        logging_steps=2,
    )
    args.update(kw)
    return TrainConfig(**args)


def test_resume_after_interruption_matches_uninterrupted(tiny_base, triples_file, tmp_path):
    import shutil

    import torch

    full = tmp_path / "full"
    main(_cfg(tiny_base, triples_file, full))
    # An interrupted run: only the first checkpoint survived, nothing finished.
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    for name in ("final", "checkpoint-8", "manifest.json"):
        path = cut / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(Exception, match="interrupted training run"):
        main(_cfg(tiny_base, triples_file, cut))
    main(_cfg(tiny_base, triples_file, cut, resume=True))
    a, b = _weights(full / "final"), _weights(cut / "final")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    steps = [c["step"] for c in json.loads((cut / "checkpoints.json").read_text())]
    assert steps == [4, 8]
    tokens_full = json.loads((full / "checkpoints.json").read_text())[-1]["loss_tokens_seen"]
    tokens_cut = json.loads((cut / "checkpoints.json").read_text())[-1]["loss_tokens_seen"]
    assert tokens_full == tokens_cut


def test_packing_has_no_cross_example_attention(tiny_base, triples_file):
    """Each example's logits in a packed row equal its logits alone (padded batch)."""
    import torch
    from transformers import AutoModelForCausalLM

    from synthesis.schema import load_triples
    from training.data import PackCollator, PadCollator
    from training.formats import encode_many
    from training.modeling import load_tokenizer

    tok = load_tokenizer(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    model.config.use_cache = False
    triples, _ = load_triples(triples_file)
    examples, _ = encode_many(triples[:5], "follow", tok)
    feats = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]

    def logits(batch) -> torch.Tensor:  # [batch, seq, vocab]
        with torch.no_grad():
            return model(**{k: v for k, v in batch.items() if k != "labels"}).logits

    padded = logits(PadCollator(tok.pad_token_id)(feats))
    packed_batch = PackCollator(tok.pad_token_id)([{"pack": feats}])
    packed = logits(packed_batch)[0]
    # without restarting positions the row is one long sequence: attention leaks across
    leaky_batch = dict(packed_batch)
    leaky_batch["position_ids"] = torch.arange(packed_batch["input_ids"].shape[1])[None]
    leaky = logits(leaky_batch)[0]
    start = 0
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        alone = padded[row, :n]
        assert torch.allclose(packed[start : start + n], alone, atol=1e-4)
        if row > 0:
            assert (leaky[start : start + n] - alone).abs().max() > 1e-2
        start += n
    # labels: every example keeps its own response labels, nothing crosses a boundary
    assert int((packed_batch["labels"] != -100).sum()) == sum(
        sum(1 for x in e.labels[1:] if x != -100) for e in examples
    )


def test_packed_training_runs(tiny_base, triples_file, tmp_path):
    result = main(_cfg(tiny_base, triples_file, tmp_path / "p", packing=True, max_len=512))
    assert result["steps"] == 8 and result["loss_tokens_seen"] > 0


def test_gradient_accumulation_matches_big_batch(tiny_base, triples_file, tmp_path):
    """One SGD step on 8 examples == one step on 2 x 4 accumulated (loss normalised by the
    label tokens of the whole accumulated batch, not averaged per micro-batch)."""
    import torch

    common = dict(max_steps=1, save_steps=1, optim="sgd", lr=0.5, warmup_ratio=0.0)
    common["scheduler"] = "constant"
    common["group_by_length"] = False
    main(_cfg(tiny_base, triples_file, tmp_path / "big", batch_size=8, **common))
    main(_cfg(tiny_base, triples_file, tmp_path / "acc", batch_size=4, grad_accum=2, **common))
    a, b = _weights(tmp_path / "big" / "final"), _weights(tmp_path / "acc" / "final")
    base = _weights(tiny_base)
    moved = max(float((a[k] - base[k]).abs().max()) for k in a)
    assert moved > 1e-3  # the step did something
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


ZERO3_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch, deepspeed
    from transformers import AutoModelForCausalLM
    from training.sft import TrainConfig, run_training
    base, data, out = sys.argv[1:4]
    trainer, result = run_training(TrainConfig(data=data, format="precede", base=base, out=out,
        max_steps=6, save_steps=3, batch_size=4, lr=3e-3, deepspeed="zero3"))
    assert trainer.is_deepspeed_enabled
    ids = torch.tensor([[5, 17, 42, 7, 99, 3, 11]])
    engine = trainer.model_wrapped
    params = list(engine.module.parameters())
    assert all(p.numel() == 0 or hasattr(p, "ds_id") for p in params)  # partitioned by ZeRO-3
    with torch.no_grad(), deepspeed.zero.GatheredParameters(params):
        live = engine.module(input_ids=ids).logits
    # Reloading happens in the test process: here zero.Init would partition a new model too.
    print(json.dumps({"logits": live[0].tolist(), "steps": result["steps"]}))
    """
)


@pytest.mark.slow
def test_zero3_trains_on_cpu_and_reloads_with_same_logits(tiny_base, triples_file, tmp_path):
    script = tmp_path / "z3.py"
    script.write_text(ZERO3_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tiny_base), str(triples_file), str(tmp_path / "z3")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["steps"] == 6
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "z3" / "final").eval()
    with torch.no_grad():
        again = reloaded(input_ids=torch.tensor([[5, 17, 42, 7, 99, 3, 11]])).logits[0]
    live = torch.tensor(report["logits"])
    assert float((live - again).abs().max()) < 1e-5
    base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    with torch.no_grad():
        before = base(input_ids=torch.tensor([[5, 17, 42, 7, 99, 3, 11]])).logits[0]
    assert float((live - before).abs().max()) > 1e-3  # training changed the model
    assert [c["step"] for c in json.loads((tmp_path / "z3" / "checkpoints.json").read_text())] == [
        3,
        6,
    ]


@pytest.mark.parametrize(
    "case, expect",
    [
        ("missing_data", "no such triples file"),
        ("bad_line", ":3: invalid JSON"),
        ("unknown_format", "unknown format"),
        ("no_tokenizer", "has no tokenizer"),
        ("empty_cot", "needs a non-empty cot"),
        ("not_a_model", "not a model directory"),
    ],
)
def test_bad_input_exits_2_with_one_line(case, expect, tiny_base, triples_file, tmp_path):
    import shutil

    data, base, fmt = str(triples_file), str(tiny_base), "follow"
    if case == "missing_data":
        data = str(tmp_path / "nope.jsonl")
    elif case == "bad_line":
        lines = triples_file.read_text().splitlines()
        lines[2] = lines[2][:40]
        (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
        data = str(tmp_path / "bad.jsonl")
    elif case == "unknown_format":
        fmt = "cot-last"
    elif case == "no_tokenizer":
        shutil.copytree(tiny_base, tmp_path / "notok")
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (tmp_path / "notok" / f).unlink()
        base = str(tmp_path / "notok")
    elif case == "empty_cot":
        rows = [json.loads(x) for x in triples_file.read_text().splitlines()]
        rows[0]["cot"] = ""
        (tmp_path / "nocot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        data = str(tmp_path / "nocot.jsonl")
    elif case == "not_a_model":
        (tmp_path / "empty").mkdir()
        base = str(tmp_path / "empty")
    out = tmp_path / "out"
    proc = run_diag("train", "--data", data, "--format", fmt, "--base", base, "--out", str(out))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert expect in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists()  # nothing half-written
