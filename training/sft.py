"""`diag train`: supervised fine-tuning of a causal LM on triples rendered in one of four formats.

    diag train --data triples.jsonl --format precede --base runs/base --out runs/precede \\
        --max-steps 400 --save-steps 50
    # multi-GPU, ZeRO-3 (config shipped in training/configs/):
    accelerate launch --config_file training/configs/accelerate_zero3.yaml -m cli.main train \\
        --data triples.jsonl --format precede --base /models/qwen-coder --out runs/p \\
        --deepspeed zero3 --bf16

Built on `transformers.Trainer` (no hand-written loop). Loss is on response tokens only (prompt
labels are -100) and stays correct under gradient accumulation (the Trainer normalises by the
number of label tokens in the whole accumulated batch). Batches are length-grouped; `--packing`
packs several examples into a row without cross-example attention. Every checkpoint is kept
(the diagnostics walk them) and indexed in `checkpoints.json` with the loss tokens seen so far,
so runs can be compared step-matched or token-matched. `--resume` continues an interrupted run.

Run folder: checkpoint-<step>/, final/, checkpoints.json, train_log.parquet, data_stats.json,
manifest.json.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumbing import (
    InputError,
    Manifest,
    atomic_write_json,
    atomic_write_parquet,
    check_out_dir,
    prepare_out_dir,
    read_manifest,
)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEEPSPEED_PRESETS = {"zero3": CONFIG_DIR / "zero3.json", "zero2": CONFIG_DIR / "zero2.json"}


@dataclass
class TrainConfig:
    """Options of `diag train`.

    Data:      data (triples.jsonl), split (train; ignored if the file has no splits),
               max_examples, skip_bad, format (seed | wo | follow | precede), max_len
    Model:     base (local HF dir or a run dir), out (run folder)
    Optimiser: lr, epochs, max_steps (overrides epochs when > 0), batch_size, grad_accum,
               warmup_ratio, weight_decay, scheduler, optim (a transformers optimizer name)
    Batching:  group_by_length, packing
    Saving:    save_steps, save_only_model (no optimizer state: smaller, cannot resume)
    Scale:     deepspeed (a config path, or zero3 / zero2 for the shipped ones), bf16
    Run:       seed, logging_steps, resume, overwrite
    """

    data: str
    format: str = field(metadata={"help": "seed | wo | follow | precede."})
    base: str = field(metadata={"help": "Base model: a local HF dir (or a run dir)."})
    out: str
    split: str = "train"
    max_examples: int | None = None
    skip_bad: bool = field(default=False, metadata={"help": "Skip (and count) invalid lines."})
    max_len: int = 1024
    lr: float = field(default=1e-3, metadata={"help": "Peak learning rate."})
    epochs: float = field(default=1.0, metadata={"help": "Epochs (ignored when --max-steps > 0)."})
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps (overrides epochs)."})
    batch_size: int = field(default=16, metadata={"help": "Examples (rows) per device step."})
    grad_accum: int = field(default=1, metadata={"help": "Gradient accumulation steps."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Warmup fraction."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    scheduler: str = field(default="cosine", metadata={"help": "LR schedule (transformers name)."})
    optim: str = field(default="adamw_torch", metadata={"help": "Optimizer (transformers name)."})
    group_by_length: bool = field(default=True, metadata={"help": "Length-grouped batches."})
    packing: bool = field(
        default=False, metadata={"help": "Pack examples into rows (no cross-attn)."}
    )
    save_steps: int = field(default=50, metadata={"help": "Checkpoint every N steps (all kept)."})
    save_only_model: bool = field(default=False, metadata={"help": "No optimizer state."})
    deepspeed: str | None = field(
        default=None, metadata={"help": "DeepSpeed config path, or zero3 / zero2."}
    )
    bf16: bool = field(default=False, metadata={"help": "bf16 mixed precision (GPU)."})
    seed: int = field(default=0, metadata={"help": "Seed (data order, init of new params)."})
    logging_steps: int = field(default=10, metadata={"help": "Log every N steps."})
    resume: bool = False
    overwrite: bool = False


def _ensure_distributed_env() -> None:
    """A single-process DeepSpeed run needs the torch.distributed env (else it looks for MPI)."""
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if "WORLD_SIZE" in os.environ:
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for key, value in dict(
        RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    ).items():
        os.environ.setdefault(key, value)


def resolve_deepspeed(name: str | None) -> str | None:
    if not name:
        return None
    path = DEEPSPEED_PRESETS.get(name, Path(name))
    if not Path(path).exists():
        raise InputError(f"--deepspeed {name}: no such config (or use zero3 / zero2)")
    try:
        json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(
            f"--deepspeed {path}: invalid JSON ({err.msg}, line {err.lineno})"
        ) from None
    return str(path)


def load_examples(cfg: TrainConfig, tokenizer: Any) -> tuple[list[Any], dict[str, Any]]:
    """Triples of the split, encoded in the format; over-long ones skipped and counted."""
    from synthesis.schema import load_triples
    from training.formats import check_format, encode_many

    check_format(cfg.format)
    triples, report = load_triples(cfg.data, skip_bad=cfg.skip_bad)
    has_splits = any(t.split for t in triples)
    if has_splits and cfg.split != "all":
        triples = [t for t in triples if t.split == cfg.split]
    if cfg.max_examples:
        triples = triples[: cfg.max_examples]
    if not triples:
        raise InputError(f"--data {cfg.data}: no triples in split {cfg.split!r}")
    examples, stats = encode_many(triples, cfg.format, tokenizer, max_len=cfg.max_len)
    if not examples:
        raise InputError(
            f"--data {cfg.data}: all {stats.n_in} examples are longer than --max-len {cfg.max_len}"
        )
    info = {
        **stats.as_dict(),
        "split": cfg.split if has_splits else "all (file has no splits)",
        "bad_lines": report.bad,
    }
    return examples, info


def _make_trainer_classes() -> tuple[type, type]:
    """Trainer subclass + callback, defined lazily so importing this module stays light."""
    import torch
    from transformers import Trainer, TrainerCallback
    from transformers.trainer_callback import ExportableState

    class TokenCounter(TrainerCallback, ExportableState):
        """Loss tokens (labels != -100) seen, summed over ranks; saved with each checkpoint."""

        def __init__(self, loss_tokens_seen: int = 0):
            self.loss_tokens_seen = loss_tokens_seen
            self.run_dir: Path | None = None
            self.checkpoints: list[dict[str, Any]] = []

        def state(self) -> dict[str, Any]:
            return {"args": {}, "attributes": {"loss_tokens_seen": self.loss_tokens_seen}}

        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
            if not state.is_world_process_zero or self.run_dir is None:
                return
            ckpt = f"checkpoint-{state.global_step}"
            entry = {
                "step": state.global_step,
                "path": ckpt,
                "epoch": state.epoch,
                "loss_tokens_seen": self.loss_tokens_seen,
                "input_tokens_seen": state.num_input_tokens_seen,
            }
            self.checkpoints = [c for c in self.checkpoints if c["step"] != state.global_step]
            self.checkpoints.append(entry)
            self.checkpoints.sort(key=lambda c: c["step"])
            atomic_write_json(self.run_dir / "checkpoints.json", self.checkpoints)

    class CodecotTrainer(Trainer):
        token_counter: TokenCounter

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            if model.training:
                n = (inputs["labels"][..., 1:] != -100).sum().to(self.args.device)
                self.token_counter.loss_tokens_seen += int(self.accelerator.gather(n).sum())
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

        def log(self, logs, *args, **kwargs):  # noqa: ANN001
            logs["loss_tokens_seen"] = self.token_counter.loss_tokens_seen  # into log_history
            return super().log(logs, *args, **kwargs)

    del torch
    return CodecotTrainer, TokenCounter


def main(cfg: TrainConfig) -> dict[str, Any]:
    """Run `diag train`; returns the result summary written into the manifest."""
    return run_training(cfg)[1]


def run_training(cfg: TrainConfig) -> tuple[Any, dict[str, Any]]:
    """Train and save; returns (the Trainer, the result summary). Tests use the Trainer."""
    import torch
    from transformers import AutoModelForCausalLM, TrainingArguments

    from training.data import PackCollator, PackedDataset, PadCollator, SFTDataset
    from training.formats import check_format
    from training.modeling import list_checkpoints, load_tokenizer, resolve_model_dir

    check_format(cfg.format)
    ds_config = resolve_deepspeed(cfg.deepspeed)
    out = check_out_dir(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume)
    previous = read_manifest(out) if out.is_dir() else None
    if cfg.resume and previous and previous.get("status") == "finished":
        print(f"{out}: already finished; nothing to resume")
        return None, previous.get("result", {})
    has_ckpts = out.is_dir() and bool(list_checkpoints(out, missing_ok=True))
    if has_ckpts and not (cfg.resume or cfg.overwrite):
        raise InputError(
            f"--out {out}: holds an interrupted training run (checkpoints, no finished manifest); "
            "pass --resume to continue it or --overwrite to start again"
        )
    base_dir = resolve_model_dir(cfg.base, "--base")
    tokenizer = load_tokenizer(base_dir, "--base")
    examples, data_info = load_examples(cfg, tokenizer)
    prepare_out_dir(out, overwrite=cfg.overwrite, resume=cfg.resume)
    manifest = Manifest("train", out, config=cfg, seed=cfg.seed)
    atomic_write_json(out / "data_stats.json", data_info)

    if ds_config:
        _ensure_distributed_env()
    CodecotTrainer, TokenCounter = _make_trainer_classes()
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), local_files_only=True)
    model.config.use_cache = False  # no KV cache in training (and packing needs cache=None)
    if cfg.packing:
        dataset = PackedDataset(examples, cfg.max_len, seed=cfg.seed)
        collator = PackCollator(tokenizer.pad_token_id)
    else:
        dataset = SFTDataset(examples)
        collator = PadCollator(tokenizer.pad_token_id)
    use_cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(out),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps and cfg.max_steps > 0 else -1,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.scheduler,
        optim=cfg.optim,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=None,
        save_only_model=cfg.save_only_model,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        report_to=[],
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
        bf16=cfg.bf16,
        use_cpu=not use_cuda,
        deepspeed=ds_config,
        ddp_backend=None if use_cuda else ("gloo" if ds_config else None),
        disable_tqdm=False,
    )
    counter = TokenCounter()
    counter.run_dir = out
    index = out / "checkpoints.json"
    resume_from = bool(cfg.resume and has_ckpts)
    if resume_from:
        # Restore the count saved with the checkpoint the Trainer resumes from (the last one).
        # (The Trainer's own callback restore would replace this object; we keep ours.)
        step, last = list_checkpoints(out)[-1]
        saved = json.loads((last / "trainer_state.json").read_text(encoding="utf-8"))
        attrs = saved.get("stateful_callbacks", {}).get("TokenCounter", {}).get("attributes", {})
        counter.loss_tokens_seen = int(attrs.get("loss_tokens_seen", 0))
        if index.exists():
            entries = json.loads(index.read_text(encoding="utf-8"))
            counter.checkpoints = [c for c in entries if c["step"] <= step]
    trainer = CodecotTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[counter],
    )
    trainer.token_counter = counter
    t0 = time.perf_counter()
    with manifest.timed("train"):
        train_out = trainer.train(resume_from_checkpoint=True if resume_from else None)
    train_s = time.perf_counter() - t0
    # The last step is always a checkpoint too, so curves end where training ended.
    if not any(c["step"] == trainer.state.global_step for c in counter.checkpoints):
        trainer._save_checkpoint(trainer.model, trial=None)
        counter.on_save(args, trainer.state, trainer.control)
    log = [
        {k: v for k, v in row.items() if isinstance(v, int | float)}
        for row in trainer.state.log_history
        if "loss" in row
    ]
    result = {
        "format": cfg.format,
        "steps": trainer.state.global_step,
        "n_examples": len(examples),
        "loss_tokens_seen": counter.loss_tokens_seen,
        "input_tokens_seen": trainer.state.num_input_tokens_seen,
        "train_seconds": round(train_s, 2),
        "train_loss": round(float(train_out.training_loss), 5),
        "checkpoints": [c["path"] for c in counter.checkpoints],
    }
    if trainer.is_world_process_zero():
        atomic_write_parquet(out / "train_log.parquet", log)
    trainer.model.config.use_cache = True
    final, partial = out / "final", out / ".final.partial"
    trainer.save_model(str(partial))  # collective under DeepSpeed: gathers ZeRO-3 shards
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(partial))
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
    if trainer.is_world_process_zero():
        manifest.finish(result=result, base=str(base_dir), data_stats=data_info)
        print(
            f"trained {cfg.format}: {result['steps']} steps in {train_s:.0f} s, "
            f"{len(counter.checkpoints)} checkpoints -> {out}"
        )
    return trainer, result
