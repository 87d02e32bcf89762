"""Finding and loading models: a model dir, a training run dir, or one of its checkpoints.

    resolve_model_dir("runs/precede")            -> runs/precede/final
    resolve_model_dir("runs/precede/checkpoint-20") -> itself
    list_checkpoints("runs/precede")             -> [(10, .../checkpoint-10), (20, ...)]
    load_model("runs/precede", device="cuda:1")  # the whole model on one device
    load_model("runs/precede", device_map="auto",
               max_memory=parse_max_memory("0=20GiB,1=20GiB,cpu=60GiB"))  # spread (accelerate)
    execution_device(model.get_output_embeddings())  # where a (maybe dispatched) module computes

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


# ---------------------------------------------------------------------------------------------
# big models: accelerate's device maps (layers over the visible GPUs, then CPU, then disk)

# the placement strategies `from_pretrained(device_map=...)` accepts by name
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]*)$", re.IGNORECASE)


def check_device_map(device_map: str | None, what: str = "--device-map") -> None:
    """InputError unless `device_map` is None or one of DEVICE_MAPS."""
    if device_map is not None and device_map not in DEVICE_MAPS:
        raise InputError(f"{what} {device_map!r}: choose from {', '.join(DEVICE_MAPS)}")


def parse_max_memory(text: str | None, what: str = "--max-memory") -> dict[int | str, int] | None:
    """`0=20GiB,1=20GiB,cpu=60GiB` -> {0: 21474836480, 1: ..., "cpu": ...} (bytes per device).

    Keys: a GPU index (`0`, or `cuda:0`), `cpu`, `mps` or `disk`, as accelerate names them.
    Sizes: a number of bytes, or a number with B, KB, MB, GB, TB (powers of 1000) or KiB, MiB,
    GiB, TiB (powers of 1024); unit letters in any case, and always bytes (accelerate would read
    a lower-case `b` as bits).
    """
    if text is None or not text.strip():
        return None
    budget: dict[int | str, int] = {}
    for item in text.split(","):
        key_text, sep, size_text = (part.strip() for part in item.partition("="))
        if not sep or not key_text or not size_text:
            raise InputError(f"{what} {text!r}: expected DEVICE=SIZE[,...], e.g. 0=20GiB,cpu=60GiB")
        low = key_text.lower()
        if low.isdigit() or (low.startswith("cuda:") and low[5:].isdigit()):
            key: int | str = int(low.removeprefix("cuda:"))
        elif low in ("cpu", "mps", "disk"):
            key = low
        else:
            raise InputError(
                f"{what} {text!r}: device {key_text!r} is none of a GPU index, cuda:N, cpu, "
                "mps, disk"
            )
        match = _SIZE_RE.match(size_text)
        unit = match.group(2).lower() if match else ""
        if not match or (unit and unit not in _SIZE_UNITS):
            raise InputError(
                f"{what} {text!r}: size {size_text!r} is not a number of bytes or a number with "
                "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"
            )
        if key in budget:
            raise InputError(f"{what} {text!r}: device {key_text!r} given twice")
        budget[key] = int(float(match.group(1)) * _SIZE_UNITS[unit or "b"])
    return budget


def map_starts_on_gpu(max_memory: dict[int | str, int] | None) -> bool:
    """Whether accelerate will put the first layers of a device map on a GPU: it fills the
    visible GPUs first, so yes when CUDA is available and `max_memory` leaves a GPU in."""
    import torch

    if not torch.cuda.is_available():
        return False
    return max_memory is None or any(isinstance(k, int) and v > 0 for k, v in max_memory.items())


def execution_device(module: Any) -> Any:
    """The device `module` computes on: the execution device of accelerate's hook when the model
    was dispatched (its weights may sit on the CPU or disk, i.e. `meta` here, until it runs),
    else the device of its first parameter (CPU for a module without parameters)."""
    import torch

    hook = getattr(module, "_hf_hook", None)
    for part in getattr(hook, "hooks", None) or ([hook] if hook is not None else []):
        device = getattr(part, "execution_device", None)
        if device is not None:
            return torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    param = next(module.parameters(), None)
    if param is None or param.device.type == "meta":
        return torch.device("cpu")
    return param.device


def offloaded_modules(model: Any) -> list[str]:
    """Modules of a dispatched model whose weights are offloaded (loaded only while they run):
    those on "disk", and those on "cpu" when the model computes on a GPU. Their parameters are
    `meta` tensors in between, so nothing can take gradients with respect to them (gradnorm)."""
    placed = getattr(model, "hf_device_map", None) or {}
    on_gpu = any(device not in ("cpu", "disk") for device in placed.values())
    offloaded = ("cpu", "disk") if on_gpu else ("disk",)
    return [name for name, device in placed.items() if device in offloaded]


def load_model(
    path: str | Path,
    *,
    dtype: str = "auto",
    device: str | None = None,
    attn_implementation: str | None = None,
    what: str = "--model",
    device_map: str | None = None,
    max_memory: dict[int | str, int] | None = None,
) -> Any:
    """A causal LM from a local dir, in eval mode: on `device`, or, with `device_map` (one of
    DEVICE_MAPS), spread by accelerate over the visible GPUs within `max_memory` (bytes per
    device, see parse_max_memory), the CPU and the disk taking what does not fit. A dispatched
    model stays where accelerate put it (moving it would break its hooks); its
    `hf_device_map` says where each block went. `dtype="auto"` is bf16 when the map starts on a
    GPU, as for `device="cuda"`."""
    from transformers import AutoModelForCausalLM

    model_dir = resolve_model_dir(path, what)
    check_device_map(device_map)
    if device_map is not None and device is not None:
        raise InputError(
            f"{what} {model_dir}: device {device} and device map {device_map}: give one"
        )
    if max_memory is not None and device_map is None:
        raise InputError(f"{what} {model_dir}: a memory budget needs a device map")
    if device_map is None:
        device = device or default_device()
        kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype, device)}
    else:
        map_device = "cuda" if map_starts_on_gpu(max_memory) else "cpu"
        kwargs = {"dtype": torch_dtype(dtype, map_device), "device_map": device_map}
        if max_memory is not None:
            kwargs["max_memory"] = max_memory
    kwargs["local_files_only"] = True
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    except Exception as err:  # OSError, ValueError, safetensors' SafetensorError, ...
        if isinstance(err, InputError):
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{what} {model_dir}: model does not load ({msg})") from None
    if device_map is not None:
        return model.eval()
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
