"""Finding and loading models: a model dir, a training run dir, or one of its checkpoints.

    resolve_model_dir("runs/precede")            -> runs/precede/final
    resolve_model_dir("runs/precede/checkpoint-20") -> itself
    list_checkpoints("runs/precede")             -> [(10, .../checkpoint-10), (20, ...)]

Nothing here reaches a model hub: paths must exist locally (a hub name is refused unless the
caller opts in with `allow_hub=True`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plumbing import InputError

_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def resolve_model_dir(path: str | Path, what: str = "--model") -> Path:
    """The HF model directory behind `path` (a model dir, or a run dir holding `final/`)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {path}: no such directory")
    if not path.is_dir():
        raise InputError(f"{what} {path}: is a file, expected a model directory")
    if (path / "config.json").exists():
        return path
    if (path / "final" / "config.json").exists():
        return path / "final"
    ckpts = list_checkpoints(path, missing_ok=True)
    if ckpts:
        return ckpts[-1][1]
    raise InputError(
        f"{what} {path}: not a model directory (no config.json) and not a training run "
        "(no final/ or checkpoint-*/)"
    )


def list_checkpoints(run_dir: str | Path, missing_ok: bool = False) -> list[tuple[int, Path]]:
    """Checkpoints of a training run, by step. Uses checkpoints.json when present."""
    run_dir = Path(run_dir)
    index = run_dir / "checkpoints.json"
    found: list[tuple[int, Path]] = []
    if index.exists():
        for entry in json.loads(index.read_text(encoding="utf-8")):
            ckpt = Path(entry["path"])
            ckpt = ckpt if ckpt.is_absolute() else run_dir / ckpt
            if (ckpt / "config.json").exists():
                found.append((int(entry["step"]), ckpt))
    else:
        for child in run_dir.iterdir() if run_dir.is_dir() else []:
            match = _CKPT_RE.match(child.name)
            if match and (child / "config.json").exists():
                found.append((int(match.group(1)), child))
    found.sort()
    if not found and not missing_ok:
        raise InputError(f"{run_dir}: holds no checkpoints (no checkpoint-<step>/ with a model)")
    return found


def has_tokenizer(model_dir: str | Path) -> bool:
    return any((Path(model_dir) / name).exists() for name in _TOKENIZER_FILES)


# tokenizer_config.json classes that mean "tokenizer.json exactly as saved" (what
# `diag pretrain` writes, transformers 5 and 4)
_GENERIC_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")


def _declares_generic_tokenizer(model_dir: Path) -> bool:
    """Whether the dir's tokenizer is a plain tokenizer.json with no model-specific class.

    AutoTokenizer overrides that declaration for some model types (qwen2 among them: it
    rebuilds the tokenizer as Qwen2Tokenizer, with Qwen's own pre-tokenizer regex), so a
    Qwen2 base from `diag pretrain --arch qwen2` would split text differently from how it
    was pretrained and from the other architectures sharing its tokenizer.json.
    """
    config = model_dir / "tokenizer_config.json"
    if not (model_dir / "tokenizer.json").exists() or not config.exists():
        return False
    try:
        declared = json.loads(config.read_text(encoding="utf-8")).get("tokenizer_class")
    except (json.JSONDecodeError, OSError, AttributeError):
        return False
    return declared in _GENERIC_TOKENIZER_CLASSES


def load_tokenizer(path: str | Path, what: str = "--model") -> Any:
    """A fast tokenizer from a local model dir; clear errors when it is missing or slow."""
    from transformers import AutoTokenizer

    from training.formats import check_tokenizer

    model_dir = resolve_model_dir(path, what)
    if not has_tokenizer(model_dir):
        raise InputError(
            f"{what} {model_dir}: has no tokenizer (tokenizer.json / tokenizer_config.json)"
        )
    try:
        if _declares_generic_tokenizer(model_dir):
            from transformers import PreTrainedTokenizerFast

            tok = PreTrainedTokenizerFast.from_pretrained(str(model_dir), local_files_only=True)
        else:
            tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError) as err:
        raise InputError(f"{what} {model_dir}: tokenizer does not load ({err})") from None
    check_tokenizer(tok, f"{what} {model_dir}")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def torch_dtype(name: str, device: str = "cpu") -> Any:
    """'auto' -> bf16 on CUDA, fp32 on CPU; else the named dtype."""
    import torch

    if name == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16}
    table.update({"bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16})
    if name not in table:
        raise InputError(f"--dtype {name!r}: choose from auto, {', '.join(table)}")
    return table[name]


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(
    path: str | Path,
    *,
    dtype: str = "auto",
    device: str | None = None,
    attn_implementation: str | None = None,
    what: str = "--model",
) -> Any:
    """A causal LM from a local dir, in eval mode, on `device`."""
    from transformers import AutoModelForCausalLM

    model_dir = resolve_model_dir(path, what)
    device = device or default_device()
    kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype, device), "local_files_only": True}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    except Exception as err:  # OSError, ValueError, safetensors' SafetensorError, ...
        if isinstance(err, InputError):
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{what} {model_dir}: model does not load ({msg})") from None
    return model.to(device).eval()


def model_label(path: str | Path) -> str:
    """A short name for a model in result tables: the run's `format-sSEED`, else the dir name."""
    model_dir = Path(path)
    for candidate in (model_dir, model_dir.parent):
        manifest = candidate / "manifest.json"
        if manifest.exists():
            try:
                cfg = json.loads(manifest.read_text(encoding="utf-8")).get("config", {})
            except json.JSONDecodeError:
                continue
            if "format" in cfg:
                return f"{cfg['format']}-s{cfg.get('seed', 0)}"
            if "preset" in cfg:
                return "base"
    return model_dir.name


# ---------------------------------------------------------------------------------------------
# model identity: the one way every command names a model in its result tables


def train_manifest(model_dir: Path) -> tuple[Path | None, dict[str, Any]]:
    """(run folder, its manifest) of the `diag train` run a model dir belongs to, if any."""
    return _owning_manifest(model_dir, "train")


def _owning_manifest(model_dir: Path, command: str) -> tuple[Path | None, dict[str, Any]]:
    """(folder, manifest) of the `diag COMMAND` run that holds a model dir (the dir itself or
    the run folder around its final/ or checkpoint), if any."""
    for candidate in (model_dir, model_dir.parent):
        path = candidate / "manifest.json"
        if not path.exists():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
        if data.get("command") == command:
            return candidate, data
    return None, {}


def checkpoint_index(run_dir: Path) -> dict[int, dict[str, Any]]:
    """checkpoints.json of a training run by step ({} when there is none)."""
    index = run_dir / "checkpoints.json"
    if not index.exists():
        return {}
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{index}: not valid JSON ({err.msg}, line {err.lineno})") from None
    return {int(e["step"]): e for e in entries if isinstance(e, dict) and "step" in e}


def base_name(base_path: str | Path) -> str:
    """The name of a base model given by its path: the folder's name, or the run folder's name
    when the path is one of its model dirs (`bases/gpt2/final` -> gpt2)."""
    path = Path(str(base_path).rstrip("/"))
    if (path.name == "final" or _CKPT_RE.match(path.name)) and path.parent.name:
        path = path.parent
    return path.name


def model_base(model_dir: Path) -> str | None:
    """The base model a model dir descends from: for a model of a `diag train` run, the name of
    the base its manifest records (config `base`); for a base model itself (a `diag pretrain`
    folder, or its final/ or checkpoint), its own folder's name; None when unknown."""
    _, manifest = train_manifest(model_dir)
    if manifest:
        base = manifest.get("config", {}).get("base")
        return base_name(base) if base else None
    folder, _ = _owning_manifest(model_dir, "pretrain")
    return folder.resolve().name if folder is not None else None


@dataclass
class ModelRef:
    """A model as every result table names it (label, base, format, seed, step).

    `base` is the name of the base model a fine-tuned model was trained from (a base model's own
    folder name for a base model; None when unknown): two studies on two bases share labels
    (`precede-s0`), and `base` tells their rows apart.

    `step` is the training step the weights were saved at: N for `checkpoint-N/`, and for a
    run's `final/` the step its train manifest records (so a final model and the checkpoint of
    the same step are the same point on a curve); None for a model outside a training run.
    """

    path: Path  # the HF model dir actually loaded
    label: str  # e.g. precede-s0, base
    format: str | None  # the format it was trained on (None for a base model)
    seed: int | None
    step: int | None
    run_dir: Path | None  # the training run folder, if any
    checkpoint: str = ""  # the model dir's name: checkpoint-8, final, ...
    loss_tokens_seen: int | None = None  # response tokens trained on up to `step`
    base: str | None = None  # the base model's name (see the class docstring)

    @classmethod
    def from_path(cls, path: str | Path, what: str = "--model") -> ModelRef:
        model_dir = resolve_model_dir(path, what)
        run_dir, manifest = train_manifest(model_dir)
        cfg = manifest.get("config", {})
        match = _CKPT_RE.match(model_dir.name)
        if match:
            step: int | None = int(match.group(1))
        elif model_dir.name == "final" and run_dir is not None:
            step = manifest.get("result", {}).get("steps")
        else:
            step = None
        return cls(
            path=model_dir,
            label=model_label(model_dir),
            format=cfg.get("format"),
            seed=cfg.get("seed"),
            step=step,
            run_dir=run_dir,
            checkpoint=model_dir.name,
            loss_tokens_seen=tokens_seen(run_dir, step),
            base=model_base(model_dir),
        )

    def columns(self) -> dict[str, Any]:
        """The identifying columns every result row carries."""
        return {
            "label": self.label,
            "base": self.base,
            "format": self.format,
            "seed": self.seed,
            "step": self.step,
        }

    @property
    def key(self) -> str:
        """A unique folder-safe name: label, plus the step when there is one."""
        return self.label + (f"@{self.step}" if self.step is not None else "")


def tokens_seen(run_dir: Path | None, step: int | None) -> int | None:
    """Loss tokens a run had trained on at `step` (checkpoints.json), if recorded."""
    if run_dir is None or step is None:
        return None
    entry = checkpoint_index(run_dir).get(step)
    return int(entry["loss_tokens_seen"]) if entry and "loss_tokens_seen" in entry else None


def run_models(run_dir: Path, what: str = "--model") -> list[ModelRef]:
    """Every model of a training run, by step: each checkpoint, and final/ when no checkpoint
    holds its step (diag train always checkpoints the last step, so final/ is then the same
    weights and is not listed twice)."""
    refs = [ModelRef.from_path(path, what) for _, path in list_checkpoints(run_dir)]
    final = run_dir / "final"
    if (final / "config.json").exists():
        ref = ModelRef.from_path(final, what)
        if ref.step is None or ref.step not in {r.step for r in refs}:
            refs.append(ref)
    return refs
