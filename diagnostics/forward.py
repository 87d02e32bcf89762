"""Teacher-forced scoring shared by `diag ppl`, `diag kl` and `diag valloss`.

    from diagnostics.forward import CausalScorer, score_batch, per_example
    ft = CausalScorer(model_ft, name="precede-s0")           # checks itself on first use
    base = CausalScorer(model_base, name="base")
    for batch in padded_batches(examples, 8, pad_id):
        scores = score_batch(batch, ft, base, direction="forward", skip_prompt=False)
        for ex in per_example(batch, scores):                 # one dict of arrays per example
            ex["nll"], ex["kl"], ex["span"], ex["token_id"]   # [positions]

One forward pass per model and batch gives every span: position t (t >= 1) is scored from the
hidden state at t - 1 and the target `input_ids[t]`; its span is the span of token t.

Memory: the model is run up to its last hidden state (`model.base_model`, `[batch, seq, hidden]`)
and the output head is applied to the selected positions in row chunks (`chunk_rows`, auto: one
fp32 `[rows, vocab]` block of about `CHUNK_BYTES`: 2 MiB on CPU, 256 MiB on GPU), so no
`[tokens, vocab]` tensor for a batch is ever held. Per chunk, in fp32:
    nll_t  = logsumexp(z_t) - z_t[y_t]                          (full vocabulary of that model)
    log p  = log_softmax(z_ft[:, :V]),  log q = log_softmax(z_base[:, :V])
    KL(p || q)_t = sum_v p_v (log p_v - log q_v)                 (forward; reverse swaps p and q)
V is the common vocabulary (see `common_vocab`). Padding and (optionally) prompt positions are
never computed.

Devices: a model may be dispatched over several devices (`load_model(device_map=...)`): its
input goes to the device of its embedding (`CausalScorer.device`), the hidden rows are moved to
the device of its output head (`CausalScorer.head_device`) in chunks, and a base model on other
devices has its logits moved to the model's head device for the KL; targets follow the logits.

The head path is checked once per scorer against the model's own `forward()` logits on a short
prefix of the first sequence (a causal model's prefix logits do not depend on what follows); a
model whose forward does more than `head(base_model(x))` (known extras, Gemma-style final logit
soft-capping and Cohere-style `logit_scale`, are applied) falls back to the model's full logits,
recorded in `CausalScorer.mode`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from plumbing import InputError
from training.formats import PAD_SPAN, SPAN_ID
from training.modeling import execution_device

# auto chunk: one fp32 [rows, vocab] block of about this many bytes (at least 16 rows). On CPU a
# cache-sized block is 2-3x faster than a large one (measured: vocab 1024, 512 vs 16k rows;
# vocab 150k, 16 vs 111 rows); on GPU large blocks keep the kernels busy.
CHUNK_BYTES = {"cpu": 2 * 2**20, "cuda": 256 * 2**20}
_CHECK_PREFIX = 32  # tokens of the first sequence used to check the head path
DIRECTIONS = ("forward", "reverse")


class CausalScorer:
    """A causal LM split into `hidden(ids, mask)` and `logits(rows)` (chunk-friendly)."""

    def __init__(self, model: Any, *, name: str = "model", chunk_rows: int = 0):
        self.model = model
        self.name = name
        head = model.get_output_embeddings()
        self.vocab_size = int(head.weight.shape[0]) if head is not None else None
        self.mode = "head" if head is not None and model.base_model is not model else "full"
        self._head = head
        self._chunk_rows = chunk_rows
        self._checked = False
        cfg = model.config
        self._softcap = getattr(cfg, "final_logit_softcapping", None)
        self._scale = getattr(cfg, "logit_scale", None)
        if self.vocab_size is None:
            self.vocab_size = int(cfg.get_text_config().vocab_size)

    @property
    def device(self) -> Any:
        """Where the input ids go: the device the embedding computes on."""
        embeddings = self.model.get_input_embeddings()
        return execution_device(embeddings if embeddings is not None else self.model)

    @property
    def head_device(self) -> Any:
        """Where the output head computes (another device than the input's when dispatched)."""
        return execution_device(self._head) if self.mode == "head" else self.device

    def chunk_rows(self, vocab: int) -> int:
        if self._chunk_rows > 0:
            return self._chunk_rows
        budget = CHUNK_BYTES.get(self.head_device.type, CHUNK_BYTES["cpu"])
        return max(16, budget // (4 * max(vocab, 1)))

    def hidden(self, input_ids: Any, attention_mask: Any) -> Any:
        """[batch, seq, hidden] (head mode) or [batch, seq, vocab] logits (full mode), on the
        device the model's last block left them on."""
        import torch

        if not self._checked:
            self._check(input_ids[:1, :_CHECK_PREFIX], attention_mask[:1, :_CHECK_PREFIX])
        with torch.inference_mode():
            if self.mode == "full":
                out = self.model(
                    input_ids=input_ids, attention_mask=attention_mask, use_cache=False
                )
                return out.logits
            out = self.model.base_model(
                input_ids=input_ids, attention_mask=attention_mask, use_cache=False
            )
            return out.last_hidden_state

    def logits(self, rows: Any) -> Any:
        """[rows, vocab] fp32 logits from `hidden()` rows (on the head's device)."""
        import torch

        with torch.inference_mode():
            if self.mode == "full":
                return rows.float().clone()  # callers may work in place
            z = self._head(rows.to(self.head_device)).float()
            if self._scale is not None:
                z = z * float(self._scale)
            if self._softcap:
                z = torch.tanh(z / self._softcap) * self._softcap
            return z

    def _check(self, ids: Any, mask: Any) -> None:
        import torch

        self._checked = True
        if self.mode == "full":
            return
        with torch.inference_mode():
            ref = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits[0].float()
            mine = self.logits(self.hidden(ids, mask)[0]).to(ref.device)
        scale = max(1.0, float(ref.abs().max()))
        tol = (1e-4 if self.model.dtype == torch.float32 else 3e-2) * scale
        err = float((ref - mine).abs().max())
        if not err <= tol:
            warnings.warn(
                f"{self.name}: output head applied to the last hidden state differs from the "
                f"model's logits (max abs err {err:.2e}); scoring from full logits instead",
                stacklevel=2,
            )
            self.mode = "full"


def common_vocab(ft: CausalScorer, base: CausalScorer, tokenizer_size: int) -> int:
    """The vocabulary both distributions are compared over.

    Rule: V = min(vocab of the two heads). Rows beyond V exist in one model only (an embedding
    resized after the tokenizer, e.g. padded to a multiple of 64, or added tokens the other model
    lacks); both distributions are renormalised over ids 0..V-1, and the mass the larger model put
    beyond V is measured (`mass_dropped`). The tokenizer must fit inside V, so every input id and
    target is a shared id; otherwise the models do not share a vocabulary and KL is undefined.
    """
    vocab = min(ft.vocab_size, base.vocab_size)
    if tokenizer_size > vocab:
        raise InputError(
            f"{ft.name} (vocab {ft.vocab_size}) and {base.name} (vocab {base.vocab_size}): the "
            f"tokenizer has {tokenizer_size} tokens, more than the common vocabulary {vocab}"
        )
    return vocab


@dataclass
class BatchScores:
    """Per-position results of one batch: parallel arrays over the N scored positions."""

    row: np.ndarray  # [N] batch row
    pos: np.ndarray  # [N] position t of the target token (t >= 1)
    nll: np.ndarray  # [N] -log p_model(y_t | y_<t), full vocabulary, float64
    nll_base: np.ndarray | None = None  # [N] same under the base model
    kl: np.ndarray | None = None  # [N] KL over the common vocabulary (direction as asked)
    mass_dropped: np.ndarray | None = None  # [N] prob. mass beyond V (the larger model's)


def select_positions(batch: Any, skip_prompt: bool) -> tuple[Any, Any]:
    """(rows, positions) of every scored target token: t >= 1, not padding, not prompt if asked."""
    spans = batch.span_ids[:, 1:]  # [batch, seq-1]: span of the target at t = 1..seq-1
    keep = spans != PAD_SPAN
    if skip_prompt:
        keep &= spans != SPAN_ID["prompt"]
    rows, prev = keep.nonzero(as_tuple=True)  # prediction made at prev = t - 1
    return rows, prev + 1


def score_batch(
    batch: Any,
    model: CausalScorer,
    base: CausalScorer | None = None,
    *,
    direction: str = "forward",
    vocab: int | None = None,
    skip_prompt: bool = True,
) -> BatchScores:
    """NLL per scored position under `model` (and `base`), and KL between them if `base`."""
    import torch

    if direction not in DIRECTIONS:
        raise InputError(f"--direction {direction!r}: choose from {', '.join(DIRECTIONS)}")
    rows, pos = select_positions(batch, skip_prompt)
    targets = batch.input_ids[rows.to(batch.input_ids.device), pos.to(batch.input_ids.device)]
    h_model = scored_rows(model, batch, rows, pos)  # [N, hidden] (or [N, vocab_model])
    h_base = None
    if base is not None:
        h_base = scored_rows(base, batch, rows, pos)
        vocab = vocab or min(model.vocab_size, base.vocab_size)
    n = int(targets.shape[0])
    nll = torch.empty(n, dtype=torch.float64)
    nll_base = torch.empty(n, dtype=torch.float64) if base is not None else None
    kl = torch.empty(n, dtype=torch.float64) if base is not None else None
    dropped = torch.empty(n, dtype=torch.float64) if base is not None else None
    step = model.chunk_rows(max(model.vocab_size, base.vocab_size if base else 0))
    with torch.inference_mode():
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            # log_softmax is one fused kernel: on a small model's CPU run the KL math costs about
            # half of what logsumexp + in-place arithmetic did (bench/bench_diag.py part a)
            lp = torch.log_softmax(model.logits(h_model[lo:hi]), dim=-1)  # [c, V_model] fp32
            y = targets[lo:hi, None].to(lp.device)  # [c, 1]
            nll[lo:hi] = lp.gather(-1, y)[:, 0].neg().double().cpu()
            if base is None:
                del lp
                continue
            lq = torch.log_softmax(base.logits(h_base[lo:hi]).to(lp.device), dim=-1)  # [c, V_b]
            nll_base[lo:hi] = lq.gather(-1, y)[:, 0].neg().double().cpu()
            # renormalise over the common vocabulary; the log of the mass each model keeps there
            # (0, so nothing dropped, when its head is not sliced)
            lp, kept_p = _renormalise(lp, vocab)
            lq, kept_q = _renormalise(lq, vocab)
            # mass the larger head puts beyond the common vocabulary (exactly 0 when unsliced)
            out = torch.maximum(1 - torch.exp(kept_p), 1 - torch.exp(kept_q))
            dropped[lo:hi] = out.clamp_min_(0.0).double().cpu()
            if direction == "reverse":
                lp, lq = lq, lp
            # KL(p || q) = sum p (log p - log q): kl_div(input=log q, target=log p)
            kl_rows = torch.nn.functional.kl_div(lq, lp, reduction="none", log_target=True)
            kl[lo:hi] = kl_rows.sum(-1).clamp_min_(0.0).double().cpu()
            del lp, lq, kl_rows
    to_np = lambda t: t.numpy() if t is not None else None  # noqa: E731
    return BatchScores(
        row=rows.cpu().numpy(),
        pos=pos.cpu().numpy(),
        nll=nll.numpy(),
        nll_base=to_np(nll_base),
        kl=to_np(kl),
        mass_dropped=to_np(dropped),
    )


def scored_rows(scorer: CausalScorer, batch: Any, rows: Any, pos: Any) -> Any:
    """[N, hidden] (or [N, vocab] in full mode): the hidden state that predicts each scored
    target (row, pos), i.e. at pos - 1, left on the device the model's last block computed on
    (the index tensors follow it there; `logits()` moves the rows on to the head)."""
    device = scorer.device
    hidden = scorer.hidden(batch.input_ids.to(device), batch.attention_mask.to(device))
    return hidden[rows.to(hidden.device), (pos - 1).to(hidden.device)]


def _renormalise(logp: Any, vocab: int) -> tuple[Any, Any]:
    """(log-probabilities over ids 0..vocab-1, renormalised; log of the mass kept there): the
    input itself and zeros when it has no ids beyond `vocab`."""
    import torch

    if logp.shape[1] <= vocab:
        return logp, torch.zeros(logp.shape[0], dtype=logp.dtype, device=logp.device)
    kept = torch.logsumexp(logp[:, :vocab], dim=-1)  # [c] log mass inside the vocabulary
    return logp[:, :vocab] - kept[:, None], kept


def per_example(batch: Any, scores: BatchScores) -> list[dict[str, Any]]:
    """Split a batch's scores by example: dicts with `example`, `pos`, `token_id`, `span`, ...

    Arrays are over the example's scored positions in order.
    """
    span_ids = batch.span_ids.cpu().numpy()  # [batch, seq]
    input_ids = batch.input_ids.cpu().numpy()
    out = []
    for row, example in enumerate(batch.examples):
        sel = scores.row == row
        pos = scores.pos[sel]
        item: dict[str, Any] = {
            "example": example,
            "pos": pos,
            "token_id": input_ids[row, pos],
            "span": span_ids[row, pos],
            "nll": scores.nll[sel],
        }
        for name in ("nll_base", "kl", "mass_dropped"):
            values = getattr(scores, name)
            if values is not None:
                item[name] = values[sel]
        out.append(item)
    return out


def score_examples(
    examples: list[Any],
    model: CausalScorer,
    base: CausalScorer | None = None,
    *,
    batch_size: int,
    pad_token_id: int,
    direction: str = "forward",
    vocab: int | None = None,
    skip_prompt: bool = True,
    desc: str = "",
) -> Iterator[dict[str, Any]]:
    """`per_example` items over all examples: padded, length-sorted batches, a progress bar."""
    from diagnostics.common import padded_batches, progress

    n_batches = math.ceil(len(examples) / batch_size)
    batches = padded_batches(examples, batch_size, pad_token_id)
    for batch in progress(batches, total=n_batches, desc=desc):
        scores = score_batch(
            batch, model, base, direction=direction, vocab=vocab, skip_prompt=skip_prompt
        )
        yield from per_example(batch, scores)


# spans reported by the diagnostics: name -> the SPAN_IDs it covers
RESPONSE_SPANS = (SPAN_ID["cot"], SPAN_ID["code"], SPAN_ID["glue"], SPAN_ID["eos"])
REPORT_SPANS: dict[str, tuple[int, ...]] = {
    "prompt": (SPAN_ID["prompt"],),
    "cot": (SPAN_ID["cot"],),
    "code": (SPAN_ID["code"],),
    "response": RESPONSE_SPANS,
}


def span_mask(span_ids: np.ndarray, name: str) -> np.ndarray:
    """Boolean mask over positions for a reported span name (prompt, cot, code, response)."""
    return np.isin(span_ids, REPORT_SPANS[name])
