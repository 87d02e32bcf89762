"""`diag pretrain`: the embedded default base model, trained here from scratch.

    diag pretrain --preset tiny  --out /tmp/base    # tests: seconds
    diag pretrain --preset small --out runs/base    # the demo's base: a few minutes on 2 cores
    diag pretrain --preset tiny --arch gpt2 --out /tmp/base-gpt2   # llama | gpt2 | qwen2 | gpt_neox

A byte-level BPE tokenizer (the `tokenizers` library) and a small causal LM (`--arch`: Hugging
Face's own Llama, GPT-2, Qwen2 or GPT-NeoX class, the preset's sizes; `ARCHS`) are trained on
Python source every machine has: the interpreter's own standard library (tests and idlelib excluded; `--site-packages` adds installed packages). Files
are split by a stable hash of their path into train and held-out sets; the held-out loss (mean
next-token NLL over held-out stdlib files never trained on) goes into `pretrain.json` and the
manifest. The output is a normal HF directory (safetensors, tokenizer, chat template) loadable
with `AutoModelForCausalLM.from_pretrained(path)`. Training uses `transformers.Trainer`; it is
deterministic given `--seed`, and an interrupted run resumes from `<out>.work/`.

Task text. `--text triples.jsonl` adds the triples' train split (rendered as the follow and
precede formats train on them) to the tokenizer's and the pretraining corpus, and their val
split to the held-out set; `--no-stdlib` learns from that text alone, `--vocab-size` overrides
the preset's, and `--steps 0` saves the randomly initialised model (SFT then trains it from
scratch). Measured on the toy pipeline world (README, "Results"): SFT of the `small`
architecture from a 1,024-token tokenizer trained on the task text alone reads the prompt and
passes the pass@1 transition (precede: 0% at step 250, 13% at 500, 60% at 1,500, batch 32),
where the same SFT from the stdlib-pretrained `small` base stays at 0%.

    diag pretrain --preset small --text runs/toy/triples.jsonl --no-stdlib --vocab-size 1024 \
        --steps 0 --out runs/base-toytok
"""

from __future__ import annotations

import hashlib
import math
import shutil
import sysconfig
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from plumbing import (
    InputError,
    Manifest,
    atomic_dir,
    atomic_write_json,
    prepare_out_dir,
    read_manifest,
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|user|>", "<|assistant|>", "<|system|>"]
EOS, PAD = "<|endoftext|>", "<|pad|>"
# One user turn -> "<|user|>\n{content}\n<|assistant|>\n"; assistant turns end with EOS.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}<|assistant|>\n{{ m['content'] }}<|endoftext|>\n"
    "{% else %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass
class Preset:
    """Model size and pretraining budget. Sizes measured: see the README."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    seq_len: int
    batch_size: int
    steps: int
    lr: float
    warmup_steps: int
    max_files: int | None = None  # cap on training files (tiny: fast tokenizer training)
    max_position_embeddings: int = 2048


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        vocab_size=1024,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        intermediate_size=176,
        seq_len=128,
        batch_size=16,
        steps=40,
        lr=3e-3,
        warmup_steps=5,
        max_files=120,
    ),
    # The default demo's base: 0.42 M params, pretrained on the toy world's other families.
    # Smaller than `small` and quicker past the pass@1 transition per CPU second (precede 31%
    # after 1,500 x 16 SFT steps from scratch in 133 s where `small` was at 1% after 400 x 32
    # in 200 s); lr 4e-3 over 2e-3: held-out loss 0.714 vs 0.821 after 1,000 steps on the
    # default demo's base corpus (README, Results).
    "toy": Preset(
        vocab_size=2048,
        hidden_size=96,
        num_layers=2,
        num_heads=4,
        intermediate_size=256,
        seq_len=256,
        batch_size=16,
        steps=400,
        lr=4e-3,
        warmup_steps=40,
    ),
    "small": Preset(
        vocab_size=4096,
        hidden_size=192,
        num_layers=3,
        num_heads=4,
        intermediate_size=512,
        seq_len=256,
        batch_size=16,
        steps=400,
        lr=2e-3,
        warmup_steps=40,
    ),
}


# `tiny` with head_dim 64 (128 / 2 heads): vLLM's CPU attention rejects tiny's 16 (test_vllm.py)
PRESETS["vllm"] = replace(PRESETS["tiny"], hidden_size=128, num_heads=2, intermediate_size=344)


# ---------------------------------------------------------------------------------------------
# architectures


def _special_ids(tokenizer: Any) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": True,  # every arch: parameter counts stay comparable
        "use_cache": True,
    }


def _sizes(preset: Preset, tokenizer: Any) -> dict[str, Any]:
    """The preset's sizes under the config names Llama, Qwen2 and GPT-NeoX share."""
    return {
        "hidden_size": preset.hidden_size,
        "intermediate_size": preset.intermediate_size,
        "num_hidden_layers": preset.num_layers,
        "num_attention_heads": preset.num_heads,
        "max_position_embeddings": preset.max_position_embeddings,
        **_special_ids(tokenizer),
    }


def _llama(preset: Preset, tokenizer: Any) -> tuple[type, Any]:
    """Pre-norm RMSNorm, rotary positions on every head dim, gated SiLU MLP, no biases."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(num_key_value_heads=preset.num_heads, **_sizes(preset, tokenizer))
    return LlamaForCausalLM, config


def _qwen2(preset: Preset, tokenizer: Any) -> tuple[type, Any]:
    """Llama's blocks plus biases on the q/k/v projections."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(num_key_value_heads=preset.num_heads, **_sizes(preset, tokenizer))
    return Qwen2ForCausalLM, config


def _gpt2(preset: Preset, tokenizer: Any) -> tuple[type, Any]:
    """Learned absolute positions, LayerNorm with biases, a plain GELU MLP (Conv1D weights)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        n_embd=preset.hidden_size,
        n_inner=preset.intermediate_size,
        n_layer=preset.num_layers,
        n_head=preset.num_heads,
        n_positions=preset.max_position_embeddings,
        # GPT-2 defaults to dropout 0.1; Llama trains without dropout, so none here either
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        **_special_ids(tokenizer),
    )
    return GPT2LMHeadModel, config


def _gpt_neox(preset: Preset, tokenizer: Any) -> tuple[type, Any]:
    """Parallel residual (attention and MLP read the same input), rotary on a quarter of each
    head's dims, LayerNorm and biases, a plain GELU MLP; fused query_key_value projection."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(**_sizes(preset, tokenizer))
    return GPTNeoXForCausalLM, config


# --arch -> (model class, config) from a preset's sizes: vocab = the tokenizer's, hidden, layers,
# heads (no grouped-query sharing), MLP width, max positions, tied input/output embeddings and
# the tokenizer's bos/eos/pad ids for all. What differs is each architecture's own design (see
# each builder's docstring); the MLP is gated (3 matrices) in llama/qwen2 and plain (2) in
# gpt2/gpt_neox, and GPT-2 learns a position embedding per max position, so the same preset
# gives different parameter counts (tiny: llama 166 k, qwen2 167 k, gpt_neox 145 k, gpt2 276 k
# of which 131 k are 2,048 learned positions).
ARCHS: dict[str, Callable[[Preset, Any], tuple[type, Any]]] = {
    "llama": _llama,
    "gpt2": _gpt2,
    "qwen2": _qwen2,
    "gpt_neox": _gpt_neox,
}


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise InputError(f"--arch {arch!r}: choose from {', '.join(ARCHS)}")


def build_model(preset: Preset, tokenizer: Any, seed: int, arch: str = "llama") -> Any:
    """A randomly initialised causal LM of `arch` with the preset's sizes (seeded)."""
    check_arch(arch)
    from transformers import set_seed

    model_class, config = ARCHS[arch](preset, tokenizer)
    set_seed(seed)
    return model_class(config)


@dataclass
class PretrainConfig:
    """Options of `diag pretrain`.

    Output:  out (model dir), overwrite
    Model:   preset (tiny | toy | small | vllm); steps overrides the preset's step budget;
             arch (llama | gpt2 | qwen2 | gpt_neox: ARCHS) builds the preset's sizes
    Data:    site_packages (add installed packages' source), heldout_percent (by path hash),
             max_file_kb (skip generated data files); text (triples files: train split into
             the corpus, val split held out), stdlib (False: learn from text alone),
             tokenizer_text (triples files whose train split the tokenizer learns from but
             the model never trains on: the SFT data, so its words are tokens without the
             base having seen its tasks), vocab_size (None: the preset's)
    Run:     seed; steps 0 saves the randomly initialised model with its tokenizer
    """

    out: str = field(metadata={"help": "Model directory to write."})
    preset: str = field(
        default="small",
        metadata={"help": "tiny (tests, seconds) | toy (the default demo's model) | small."},
    )
    arch: str = field(
        default="llama",
        metadata={
            "help": f"Model architecture, the preset's sizes: {' | '.join(ARCHS)} "
            "(Hugging Face's own model classes)."
        },
    )
    steps: int | None = field(
        default=None,
        metadata={"help": "Override the preset's number of steps (0: save the random init)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed for tokenizer data order and weights."})
    site_packages: bool = field(default=False, metadata={"help": "Also learn from site-packages."})
    heldout_percent: int = field(
        default=3, metadata={"help": "Percent of source files held out (by path hash)."}
    )
    max_file_kb: int = field(
        default=256, metadata={"help": "Skip larger source files (generated data)."}
    )
    text: list[str] = field(
        default_factory=list,
        metadata={"help": "Triples file: its train split joins the corpus (repeatable)."},
    )
    stdlib: bool = field(
        default=True, metadata={"help": "Learn from the stdlib (--no-stdlib: --text only)."}
    )
    tokenizer_text: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Triples file whose train split only the tokenizer learns from (repeatable)."
        },
    )
    vocab_size: int | None = field(
        default=None, metadata={"help": "Override the preset's vocabulary size."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace a finished model in --out."})


# ---------------------------------------------------------------------------------------------
# corpus


def source_files(cfg: PretrainConfig) -> list[tuple[str, Path]]:
    """(relative name, path) of the Python files to learn from, sorted for determinism."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    roots = [("stdlib", stdlib)]
    if cfg.site_packages:
        roots.append(("site", Path(sysconfig.get_paths()["purelib"])))
    files: list[tuple[str, Path]] = []
    for tag, root in roots:
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            parts = rel.split("/")
            if tag == "stdlib" and (
                parts[0] in ("site-packages", "test", "idlelib", "lib2to3")
                or "tests" in parts
                or "test" in parts
            ):
                continue
            try:
                if path.stat().st_size > cfg.max_file_kb * 1024:
                    continue
            except OSError:
                continue
            files.append((f"{tag}/{rel}", path))
    return files


def is_heldout(name: str, percent: int) -> bool:
    digest = hashlib.sha1(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


def read_texts(files: list[tuple[str, Path]]) -> list[str]:
    texts = []
    for _, path in files:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    return texts


# Task text rendered in both CoT orders: what the tokenizer should cut well is what SFT trains on.
TEXT_FORMATS = ("follow", "precede")


def task_texts(paths: list[str]) -> tuple[list[str], list[str]]:
    """(train texts, held-out texts) of triples files: train split vs val split, rendered."""
    from synthesis.schema import load_triples
    from training.formats import render

    train: list[str] = []
    held: list[str] = []
    for path in paths:
        for split, into in (("train", train), ("val", held)):
            triples, _ = load_triples(path, split=split)
            into.extend(render(t, f).text for t in triples for f in TEXT_FORMATS)
    return train, held


def file_digest(path: str) -> str:
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    except OSError as err:
        raise InputError(f"--text {path}: cannot read ({err.strerror})") from None


def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """Byte-level BPE on the corpus, wrapped as a fast HF tokenizer with our chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # trim_offsets=False: offsets cover a token's leading space too (token-exact spans).
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=PAD, unk_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 1 << 30
    return fast


def copy_score(model: Any, vocab: range, seed: int = 0, n: int = 16, half: int = 48) -> dict:
    """Mean NLL of random token sequences on their first and on their repeated second copy.

    A model that copies from its context (induction heads, which any real code LLM has) scores
    far lower on the second copy. Reported in pretrain.json because toy-world tasks cannot be
    solved without copying the requested function and argument names from the prompt.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(vocab.start, vocab.stop, (n, half), generator=g)
    ids = torch.cat([ids, ids], 1).to(model.device)
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits.float(), -1)  # [n, 2*half, vocab]
    nll = -logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]  # [n, 2*half - 1]
    return {
        "first_copy_nll": round(float(nll[:, : half - 1].mean()), 3),
        "second_copy_nll": round(float(nll[:, half:].mean()), 3),
    }


def pack_corpus(texts: list[str], tokenizer: Any, seq_len: int) -> list[list[int]]:
    """Texts (EOS after each) packed into blocks of at most `seq_len` tokens.

    A text that fits in one block never straddles two: when the current block has no room for
    it, that block ends early (its rest is padding, never trained on) and the text starts the
    next. Longer texts (source files) flow across blocks as one stream. Why: a toy task cut in
    two (its prompt in one block, its code in the next) teaches the base that code need not
    copy its prompt's names, the very skill SFT needs. On the default demo's base corpus plain
    concatenation into 256-token blocks kept 18% of the rendered tasks whole; packed, every
    task that fits (86%) is whole, and `follow` went from 0% to 16% pass@1 (README, Results).
    A last block shorter than half of `seq_len` is dropped, as a stream's tail was.
    """
    blocks: list[list[int]] = []
    block: list[int] = []
    eos = tokenizer.eos_token_id
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids = [*ids, eos]
        if len(ids) <= seq_len and len(block) + len(ids) > seq_len:
            blocks.append(block)
            block = []
        while ids:
            room = seq_len - len(block)
            block.extend(ids[:room])
            ids = ids[room:]
            if len(block) == seq_len:
                blocks.append(block)
                block = []
    if 2 * len(block) >= seq_len:
        blocks.append(block)
    return blocks


class _Blocks:
    """A map-style dataset of token blocks for the Trainer (labels = input_ids, shifted inside),
    each padded to `seq_len` at its end with the pad token (label -100, masked)."""

    def __init__(self, blocks: list[list[int]], seq_len: int, pad_id: int):
        self.blocks, self.seq_len, self.pad_id = blocks, seq_len, pad_id

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        block = self.blocks[i]
        pad = self.seq_len - len(block)
        ids = torch.tensor(block + [self.pad_id] * pad, dtype=torch.long)
        labels = ids.clone()
        mask = torch.ones_like(ids)
        if pad:
            labels[-pad:] = -100
            mask[-pad:] = 0
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def config_key(cfg: PretrainConfig) -> dict[str, Any]:
    """What decides the weights: reuse a finished base only when this matches."""
    preset = effective_preset(cfg)
    key = {
        "preset": cfg.preset,
        "preset_values": asdict(preset),
        "steps": preset.steps,
        "seed": cfg.seed,
        "site_packages": cfg.site_packages,
        "heldout_percent": cfg.heldout_percent,
        "max_file_kb": cfg.max_file_kb,
        "packing": "whole-texts",  # pack_corpus (bases cut by plain concatenation differ)
    }
    if cfg.arch != "llama":  # keys of older (Llama) bases stay valid
        key["arch"] = cfg.arch
    if cfg.text or not cfg.stdlib:  # keys of older bases stay valid
        key.update(text=[file_digest(p) for p in cfg.text], stdlib=cfg.stdlib)
    if cfg.tokenizer_text:
        key.update(tokenizer_text=[file_digest(p) for p in cfg.tokenizer_text])
    return key


def effective_preset(cfg: PretrainConfig) -> Preset:
    """The preset with this run's overrides (steps, vocab_size) applied."""
    preset = PRESETS[cfg.preset]
    if cfg.steps is not None:
        preset = replace(preset, steps=cfg.steps)
    if cfg.vocab_size is not None:
        preset = replace(preset, vocab_size=cfg.vocab_size)
    return preset


def is_finished_base(out: str | Path, cfg: PretrainConfig) -> bool:
    manifest = read_manifest(out) if Path(out).is_dir() else None
    return bool(
        manifest
        and manifest.get("status") == "finished"
        and manifest.get("command") == "pretrain"
        and manifest.get("key") == config_key(cfg)
    )


def main(cfg: PretrainConfig) -> dict[str, Any]:
    if cfg.preset not in PRESETS:
        raise InputError(f"--preset {cfg.preset!r}: choose from {', '.join(PRESETS)}")
    check_arch(cfg.arch)
    if cfg.steps is not None and cfg.steps < 0:
        raise InputError(f"--steps {cfg.steps}: must be 0 (no pretraining) or positive")
    if cfg.vocab_size is not None and cfg.vocab_size < 300:
        raise InputError(f"--vocab-size {cfg.vocab_size}: at least 300 (256 bytes + specials)")
    if not cfg.stdlib and not cfg.text:
        raise InputError("--no-stdlib needs --text: there would be nothing to learn from")
    for path in cfg.text + cfg.tokenizer_text:
        file_digest(path)  # a missing or unreadable file fails before anything is written
    import torch  # after the checks: bad options fail at once, before these load
    from transformers import Trainer, TrainingArguments

    preset = effective_preset(cfg)
    steps = preset.steps
    out = Path(cfg.out)
    prepare_out_dir(out, overwrite=cfg.overwrite)
    work = out.with_name(out.name + ".work")
    manifest = Manifest("pretrain", out, config=cfg, seed=cfg.seed)

    with manifest.timed("corpus"):
        train_texts: list[str] = []
        held_texts: list[str] = []
        if cfg.stdlib:
            files = source_files(cfg)
            train_files = [f for f in files if not is_heldout(f[0], cfg.heldout_percent)]
            held_files = [f for f in files if is_heldout(f[0], cfg.heldout_percent)]
            if preset.max_files is not None:
                train_files = train_files[:: max(1, len(train_files) // preset.max_files)]
                held_files = held_files[: max(4, preset.max_files // 20)]
            train_texts, held_texts = read_texts(train_files), read_texts(held_files)
            if not train_texts or not held_texts:
                raise InputError("no Python source found to pretrain on (stdlib missing?)")
        n_source_files = (len(train_texts), len(held_texts))
        if cfg.text:
            text_train, text_held = task_texts(cfg.text)
            if not text_train or not text_held:
                raise InputError(
                    f"--text {', '.join(cfg.text)}: needs train and val split triples "
                    f"(found {len(text_train) // 2} train, {len(text_held) // 2} val)"
                )
            train_texts += text_train
            held_texts += text_held
        tokenizer_only = task_texts(cfg.tokenizer_text)[0] if cfg.tokenizer_text else []
        if cfg.tokenizer_text and not tokenizer_only:
            raise InputError(
                f"--tokenizer-text {', '.join(cfg.tokenizer_text)}: no train split triples"
            )

    with manifest.timed("tokenizer"):
        tokenizer = train_tokenizer(train_texts + tokenizer_only, preset.vocab_size)
        train_blocks = pack_corpus(train_texts, tokenizer, preset.seq_len)
        held_blocks = pack_corpus(held_texts, tokenizer, preset.seq_len)
        if not train_blocks or not held_blocks:
            raise InputError(
                f"the corpus is shorter than one {preset.seq_len}-token block "
                f"({len(train_blocks)} train, {len(held_blocks)} held-out blocks): add --text data"
            )

    torch.manual_seed(cfg.seed)
    model = build_model(preset, tokenizer, cfg.seed, cfg.arch)
    n_params = sum(p.numel() for p in model.parameters())
    resume = work.is_dir() and any(work.glob("checkpoint-*"))
    args = TrainingArguments(
        output_dir=str(work),
        max_steps=max(steps, 1),  # steps 0: the trainer only evaluates (never trains)
        per_device_train_batch_size=preset.batch_size,
        per_device_eval_batch_size=preset.batch_size,
        learning_rate=preset.lr,
        lr_scheduler_type="cosine",
        warmup_steps=preset.warmup_steps,
        weight_decay=0.1,
        logging_steps=max(1, steps // 20),
        save_strategy="steps",
        save_steps=max(10, steps // 4),
        save_total_limit=1,
        report_to=[],
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_Blocks(train_blocks, preset.seq_len, tokenizer.pad_token_id),
        processing_class=tokenizer,
    )
    t0 = time.perf_counter()
    with manifest.timed("train"):
        if steps > 0:
            trainer.train(resume_from_checkpoint=True if resume else None)
    train_s = time.perf_counter() - t0
    with manifest.timed("heldout"):
        held = trainer.evaluate(
            eval_dataset=_Blocks(held_blocks, preset.seq_len, tokenizer.pad_token_id)
        )
    heldout_loss = float(held["eval_loss"])
    copying = copy_score(trainer.model.eval(), range(len(SPECIAL_TOKENS), len(tokenizer)))
    log = [row for row in trainer.state.log_history if "loss" in row]
    # tokens trained on, padding excluded: the expected share of real tokens in a sampled block
    available = sum(map(len, train_blocks))
    fill = available / (len(train_blocks) * preset.seq_len)
    train_tokens = round(steps * preset.batch_size * preset.seq_len * fill)
    result = {
        "preset": cfg.preset,
        "arch": cfg.arch,
        "n_params": n_params,
        "vocab_size": len(tokenizer),
        "steps": steps,
        "train_tokens": train_tokens,
        "block_fill": round(fill, 3),
        "corpus": {
            "train_files": n_source_files[0],
            "heldout_files": n_source_files[1],
            "text_files": list(cfg.text),
            "tokenizer_text_files": list(cfg.tokenizer_text),
            "train_texts": len(train_texts),
            "heldout_texts": len(held_texts),
            "train_tokens_available": available,
            "heldout_tokens": sum(map(len, held_blocks)),
        },
        "train_seconds": round(train_s, 1),
        "tokens_per_second": round(train_tokens / train_s, 1) if steps else None,
        "final_train_loss": log[-1]["loss"] if log else None,
        "heldout_loss": round(heldout_loss, 4),
        "heldout_ppl": round(math.exp(heldout_loss), 2),
        "copying": copying,
    }
    model.config.use_cache = True
    with atomic_dir(out) as tmp:
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / "pretrain.json", {**result, "log": log})
        manifest.out_dir = tmp
        manifest.finish(key=config_key(cfg), result=result)
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"pretrained {cfg.preset} ({cfg.arch}): {n_params / 1e6:.2f} M params, {steps} steps in "
        f"{train_s:.0f} s; held-out loss {heldout_loss:.3f} (ppl {math.exp(heldout_loss):.1f}) "
        f"-> {out}"
    )
    return result
