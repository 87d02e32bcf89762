"""A real OpenAI-compatible /v1/completions server on 127.0.0.1 that runs a local model.

    from openai_server import CompletionsServer
    with CompletionsServer(model, tokenizer, served_model="m", fail_first=1) as server:
        server.url                   # "http://127.0.0.1:PORT/v1"
        server.prompts               # the token-id prompts received, in order
        server.statuses              # the HTTP status of each request

The test double of `vllm serve` for `diag eval --backend openai` (the server is the one thing
outside the process). It answers POST /v1/completions as vLLM does: `prompt` is token ids (one
list, or a list of lists), `n`, `max_tokens`, `temperature` (0: greedy), `top_p`, `seed` and
`stop` (strings) are honoured; a choice stops at EOS (finish_reason "stop", stop_reason null),
at the first stop string in its text (finish_reason "stop", stop_reason the string, the text cut
before it, completion tokens counted through the token that completed it) or at max_tokens
("length"). Generation is HF `generate` over one prompt at a time, WITHOUT a stopping criterion:
stop strings are applied afterwards, token by token, the way vLLM's detokenizer meets them, so
the client's stop handling is checked against an independent implementation. `fail_first=K`
answers the first K requests with HTTP 503; a wrong model name gets 404.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from local_server import LocalServer


class CompletionsServer(LocalServer):
    def __init__(self, model: Any, tokenizer: Any, *, served_model: str, fail_first: int = 0):
        self.model, self.tokenizer, self.served_model = model, tokenizer, served_model
        self.fail_first = fail_first
        self.prompts: list[list[int]] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()  # one generation at a time (and the counters)
        self._listen()

    def _choices(self, prompt: list[int], body: dict[str, Any]) -> tuple[list[dict], int]:
        import torch

        n, max_tokens = int(body.get("n", 1)), int(body.get("max_tokens", 16))
        temperature = float(body.get("temperature", 1.0))
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        eos = self.tokenizer.eos_token_id
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": eos}
        if temperature > 0:
            torch.manual_seed(int(body.get("seed", 0)))
            kwargs.update(do_sample=True, temperature=temperature, top_p=body.get("top_p", 1.0))
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        ids = torch.tensor([prompt] * n, dtype=torch.long)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), eos_token_id=eos, **kwargs
            )
        choices, used = [], 0
        for index, row in enumerate(out[:, len(prompt) :].tolist()):
            tokens, finish, matched = row, "length", None
            if eos in row:
                tokens, finish = row[: row.index(eos) + 1], "stop"
            text = self._decode(tokens)
            for k in range(1, len(tokens) + 1):  # the first token whose text holds a stop
                prefix = self._decode(tokens[:k])
                hit = [(prefix.find(s), s) for s in stops if s in prefix]
                if hit:
                    at, matched = min(hit)
                    tokens, text, finish = tokens[:k], prefix[:at], "stop"
                    break
            used += len(tokens)
            choices.append(
                {"index": index, "text": text, "finish_reason": finish, "stop_reason": matched}
            )
        return choices, used

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(
            tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode("utf-8")
                with server._lock:
                    server.statuses.append(status)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.rstrip("/") != "/v1/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if body.get("model") != server.served_model:
                    return self._send(404, {"error": {"message": "model does not exist"}})
                with server._lock:
                    failing = server.fail_first > 0
                    server.fail_first -= failing
                if failing:
                    return self._send(503, {"error": {"message": "warming up"}})
                prompt = body["prompt"]
                batch = prompt if prompt and isinstance(prompt[0], list) else [prompt]
                choices, used = [], 0
                for p in batch:
                    with server._lock:
                        server.prompts.append(list(p))
                        made, n_used = server._choices(list(p), body)
                    for c in made:
                        c["index"] = len(choices)
                        choices.append(c)
                    used += n_used
                n_prompt = sum(len(p) for p in batch)
                usage = {"prompt_tokens": n_prompt, "completion_tokens": used,
                         "total_tokens": n_prompt + used}  # fmt: skip
                return self._send(
                    200,
                    {"object": "text_completion", "model": server.served_model,
                     "choices": choices, "usage": usage},
                )  # fmt: skip

        return Handler
