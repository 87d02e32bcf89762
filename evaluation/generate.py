"""Batched generation with a Hugging Face causal LM (left padding, KV cache).

    from evaluation.generate import GenConfig, generate
    outs = generate(model, tokenizer, prompt_ids_list, GenConfig(n_samples=1))
    outs[i][s].text, outs[i][s].n_tokens, outs[i][s].finish    # prompt i, sample s

Prompts are sorted by length (longest first, so a batch that does not fit fails at once) and cut
into batches of `batch_size` rows; a prompt with n samples takes n rows. Decoder-only models
need left padding: the tokenizer's padding side is set to "left" for the call and the attention
mask marks the pads. Greedy by default; with `temperature > 0` sampling (top_p), seeded once
per call with `seed`, so a rerun of the same model on the same prompts gives the same samples on
the same hardware. The results come back in the input order.

`code_stop` (GenConfig): a string that ends a sample as soon as its generated text contains it
(vLLM's `stop` semantics, for this backend): the row stops, the others in its batch go on. The
kept text runs through the end of the string (an API drops it; `evaluation.backends` puts it
back, so every backend saves the same text) and the sample's finish is "stop_code".
`stop_at_code(fmt)` is the string for the formats whose code comes first.

`stop_tokens` (GenConfig): a benchmark's stop strings (MultiPL-E's per-language `stop_tokens`,
e.g. "\n}" for C++): a sample ends at the first of them, which is dropped, as MultiPL-E's
`stop_at_stop_token` drops it (its tests start by closing the function); finish "stop_token".
MultiPL-E looks for them only in what follows its prompt, the function header; a response to
an instruction writes that header itself first (and "\nfunction" of JavaScript and PHP would
match it), so with `stop_after` (one string per prompt, the header line) a stop token counts only
after the first line that repeats it (whitespace ignored); a response that never repeats it is
not cut. With the code stop too, the earliest match decides (`cut_at_stops`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from training.formats import CLOSE_FENCE

# Formats whose response starts with the code block the score reads: precede (code, then the
# explanation pass@k never reads) and wo (code only). Not follow (code last) nor seed (free-form
# answers, prose may come first and the extractor may prefer a later, longer block).
CODE_FIRST_FORMATS = ("precede", "wo")
# The end of a code block as the formats write it: the closing fence on its own line (precede
# puts "\n\n" + explanation after it). The newline after ``` tells it from an opening fence, which
# always carries a language tag (```python\n) in these formats.
CODE_STOP = CLOSE_FENCE + "\n"
STOP_CODE = "stop_code"  # Generation.finish of a sample cut at CODE_STOP
STOP_TOKEN = "stop_token"  # Generation.finish of a sample cut at one of GenConfig.stop_tokens


@dataclass
class GenConfig:
    n_samples: int = 1
    temperature: float = 0.0  # 0: greedy
    top_p: float = 0.95
    max_new_tokens: int = 512
    batch_size: int = 32  # rows (prompt x sample) per generate() call
    seed: int = 0
    code_stop: str | None = None  # end a sample once its text holds this (see module doc)
    stop_tokens: tuple[str, ...] = ()  # end a sample before the first of these (module doc)
    stop_after: tuple[str, ...] = ()  # per prompt: stop tokens count after this line (module doc)

    @property
    def server_stops(self) -> list[str]:
        """The stop strings a server may apply itself (the code stop first): stop tokens only
        when they count anywhere (no `stop_after`); else they are cut afterwards."""
        tokens = list(self.stop_tokens) if not self.stop_after else []
        return ([self.code_stop] if self.code_stop else []) + tokens

    def after(self, prompt: int) -> str | None:
        """The line prompt `prompt`'s stop tokens count after (None: anywhere)."""
        return self.stop_after[prompt] if self.stop_after else None


@dataclass
class Generation:
    text: str
    n_tokens: int  # generated tokens, EOS included, pads excluded
    finish: str  # "eos" | "length" | "stop_code" | "stop_token"


def stop_at_code(fmt: str) -> str | None:
    """The stop string that ends a sample of format `fmt` at its first code block, or None."""
    return CODE_STOP if fmt in CODE_FIRST_FORMATS else None


def cut_at_stop(text: str, stop: str) -> str | None:
    """`text` through the end of the first `stop` in it, or None when it holds none."""
    at = text.find(stop)
    return None if at < 0 else text[: at + len(stop)]


def _squeezed(line: str) -> str:
    return "".join(line.split())


def after_line(text: str, line: str) -> int | None:
    """The offset just past the first line of `text` equal to `line` (whitespace ignored),
    None when no line is."""
    want, start = _squeezed(line), 0
    for part in text.split("\n"):
        start += len(part) + 1
        if want and _squeezed(part) == want:
            return min(start, len(text))
    return None


def cut_at_stops(
    text: str, code_stop: str | None, stop_tokens: Sequence[str], after: str | None = None
) -> tuple[str, str] | None:
    """(text, finish) cut at the earliest stop in it: through the code stop (STOP_CODE), or
    before a stop token (STOP_TOKEN), which counts only past the line `after` when given;
    None when it holds none."""
    region = 0 if after is None else after_line(text, after)
    found = []
    if region is not None:
        found = [(at, 1, s) for s in stop_tokens if s and (at := text.find(s, region)) >= 0]
    if code_stop and code_stop in text:
        found.append((text.find(code_stop), 0, code_stop))
    if not found:
        return None
    at, _, stop = min(found)
    if stop == code_stop:
        return text[: at + len(stop)], STOP_CODE
    return text[:at], STOP_TOKEN


@dataclass
class GenStats:
    samples: int = 0
    new_tokens: int = 0
    seconds: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else float("nan")


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS ids: the tokenizer's (what training appends) plus the generation config's."""
    ids = [tokenizer.eos_token_id]
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.append(gen_eos)
    elif isinstance(gen_eos, list | tuple):
        ids.extend(gen_eos)
    return list(dict.fromkeys(i for i in ids if i is not None))


class _CodeStopCriteria:
    """A per-row stopping criterion: a row stops once its generated text holds the code stop or
    a stop token (past its row's `after` line, when it has one: `cut_at_stops`).

    Only the last few generated tokens are decoded each step (the stop strings are short, and
    every token spans at least one character of one); the whole text is decoded only when that
    tail holds a stop token and the row has an `after` line. The step a row first matched is
    recorded, so the caller cuts that row there.
    """

    def __init__(
        self,
        tokenizer: Any,
        code_stop: str | None,
        stop_tokens: Sequence[str],
        width: int,
        afters: Sequence[str | None] = (),
    ):
        self.tokenizer, self.width = tokenizer, width
        self.code_stop, self.stop_tokens = code_stop, tuple(stop_tokens)
        self.afters = list(afters)  # per row
        stops = ([code_stop] if code_stop else []) + list(self.stop_tokens)
        self.tail = max(len(s) for s in stops) + 3
        self.fired: dict[int, int] = {}  # row -> generated tokens when it matched

    def _matched(self, input_ids: Any, row: int, tail: str) -> bool:
        if self.code_stop and self.code_stop in tail:
            return True
        if not any(stop in tail for stop in self.stop_tokens):
            return False
        after = self.afters[row] if self.afters else None
        if after is None:
            return True
        text = self.tokenizer.decode(
            input_ids[row, self.width :].tolist(),
            skip_special_tokens=True,
            clean_up_tokenization_spaces=False,
        )
        return cut_at_stops(text, None, self.stop_tokens, after) is not None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        n_new = input_ids.shape[1] - self.width
        start = max(self.width, input_ids.shape[1] - self.tail)
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row in range(input_ids.shape[0]):
            if row not in self.fired:
                tail = self.tokenizer.decode(
                    input_ids[row, start:].tolist(),
                    skip_special_tokens=True,
                    clean_up_tokenization_spaces=False,
                )
                if self._matched(input_ids, row, tail):
                    self.fired[row] = n_new
            done[row] = row in self.fired
        return done


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    cfg: GenConfig,
    *,
    progress: bool = False,
    stats: GenStats | None = None,
) -> list[list[Generation]]:
    """`cfg.n_samples` generations for each prompt (token ids), in input order."""
    import torch
    from transformers import set_seed

    if cfg.n_samples > 1 and cfg.temperature <= 0:
        raise ValueError("n_samples > 1 needs temperature > 0 (greedy samples are identical)")
    if cfg.stop_after and len(cfg.stop_after) != len(prompts):
        raise ValueError(f"stop_after: {len(cfg.stop_after)} lines for {len(prompts)} prompts")
    stats = stats if stats is not None else GenStats()
    device = next(model.parameters()).device
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    stops = stop_token_ids(model, tokenizer)
    rows = [(i, s) for i in range(len(prompts)) for s in range(cfg.n_samples)]
    rows.sort(key=lambda r: (-len(prompts[r[0]]), r[0], r[1]))
    out: list[list[Generation | None]] = [[None] * cfg.n_samples for _ in prompts]
    sampling = cfg.temperature > 0
    gen_kwargs: dict[str, Any] = {
        "max_new_tokens": cfg.max_new_tokens,
        "do_sample": sampling,
        "pad_token_id": pad_id,
        "eos_token_id": stops,
        "use_cache": True,
    }
    if sampling:
        gen_kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p, top_k=0)
    else:  # silence sampling defaults a model's generation_config may carry
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    set_seed(cfg.seed)
    batches = [rows[i : i + cfg.batch_size] for i in range(0, len(rows), cfg.batch_size)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(rows), desc="generate", unit="sample", leave=False)
    t0 = time.perf_counter()
    for batch in batches:
        width = max(len(prompts[i]) for i, _ in batch)
        code_stop = None
        if cfg.code_stop or cfg.stop_tokens:
            from transformers import StoppingCriteriaList

            afters = [cfg.after(i) for i, _ in batch]
            code_stop = _CodeStopCriteria(tokenizer, cfg.code_stop, cfg.stop_tokens, width, afters)
            gen_kwargs["stopping_criteria"] = StoppingCriteriaList([code_stop])
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # [rows, width]
        mask = torch.zeros((len(batch), width), dtype=torch.long)  # [rows, width]
        for r, (i, _) in enumerate(batch):
            p = list(prompts[i])
            ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)  # left padding
            mask[r, width - len(p) :] = 1
        with torch.inference_mode():
            result = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), **gen_kwargs
            )  # [rows, width + new]
        new = result[:, width:].cpu().tolist()  # [rows, new]
        for row, ((i, s), tokens) in enumerate(zip(batch, new)):
            finish = "length"
            for pos, tok in enumerate(tokens):
                if tok in stops:
                    tokens = tokens[: pos + 1]
                    finish = "eos"
                    break
            fired = code_stop.fired.get(row) if code_stop is not None else None
            if fired is not None and fired <= len(tokens):
                tokens, finish = tokens[:fired], STOP_CODE  # the step the row matched
            text = tokenizer.decode(
                tokens[:-1] if finish == "eos" else tokens,
                skip_special_tokens=True,
                clean_up_tokenization_spaces=False,
            )
            if finish == STOP_CODE:  # the stop that fired: the code stop or a stop token
                cut = cut_at_stops(text, cfg.code_stop, cfg.stop_tokens, cfg.after(i))
                text, finish = cut or (text, finish)
            out[i][s] = Generation(text=text, n_tokens=len(tokens), finish=finish)
            stats.new_tokens += len(tokens)
        stats.samples += len(batch)
        if bar is not None:
            bar.update(len(batch))
    stats.seconds += time.perf_counter() - t0
    if bar is not None:
        bar.close()
    return [[g for g in per if g is not None] for per in out]
