"""A real OpenAI-compatible chat-completions server on 127.0.0.1, for tests and the bench.

    from fake_teacher import FakeTeacher, Fault
    with FakeTeacher(answer=lambda prompt: "...", latency_s=0.2) as server:
        server.url                   # "http://127.0.0.1:PORT/v1"
        server.requests              # POSTs received, in order (prompt of each)
    FakeTeacher(answer, faults=lambda prompt, attempt: Fault("status", status=429, retry_after=0))

It is the only test double in the synthesis tests (the teacher is the one thing outside the
machine). `answer(prompt)` writes the reply; `faults(prompt, attempt)` (attempt = how many times
this prompt was asked before) may make a request misbehave on purpose:
    Fault("status", status=429|500|400|401, retry_after=SECONDS or None)
    Fault("hang", seconds=S)          sleep S before answering (past the client's timeout)
    Fault("length")                   cut the answer in half, finish_reason "length"
    Fault("bytes", body=b"...")       send these raw bytes as a 200 body (non-UTF-8, not JSON)
    Fault("content_bytes")            valid JSON framing, a first line of invalid UTF-8 in the content
    Fault("drop")                     close the connection without answering
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from local_server import LocalServer


@dataclass
class Fault:
    kind: str
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    body: bytes = b""


class FakeTeacher(LocalServer):
    def __init__(
        self,
        answer: Callable[[str], str],
        *,
        latency_s: float = 0.0,
        faults: Callable[[str, int], Fault | None] | None = None,
        model: str = "fake-teacher",
    ):
        self.answer = answer
        self.latency_s = latency_s
        self.faults = faults
        self.model = model
        self.requests: list[str] = []
        self.auth: list[str | None] = []  # the Authorization header of each request
        self.asked: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests the server was handling at once
        self._lock = threading.Lock()
        self._listen()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length))
                if self.path != "/v1/chat/completions":
                    self._send(404, b'{"error": "not found"}')
                    return
                prompt = request["messages"][-1]["content"]
                with fake._lock:
                    attempt = fake.asked[prompt]
                    fake.asked[prompt] += 1
                    fake.requests.append(prompt)
                    fake.auth.append(self.headers.get("Authorization"))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if fake.latency_s:
                        time.sleep(fake.latency_s)
                    fault = fake.faults(prompt, attempt) if fake.faults else None
                    self._reply(request, prompt, fault)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to do
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _reply(self, request: dict, prompt: str, fault: Fault | None) -> None:
                text = fake.answer(prompt)
                finish = "stop"
                if fault is not None:
                    if fault.kind == "status":
                        headers = {}
                        if fault.retry_after is not None:
                            headers["Retry-After"] = f"{fault.retry_after:g}"
                        self._send(fault.status, b'{"error": {"message": "fault"}}', headers)
                        return
                    if fault.kind == "hang":
                        time.sleep(fault.seconds)
                    elif fault.kind == "length":
                        text, finish = text[: len(text) // 2], "length"
                    elif fault.kind == "bytes":
                        self._send(200, fault.body)
                        return
                    elif fault.kind == "drop":
                        self.close_connection = True
                        self.wfile.flush()
                        self.connection.close()
                        return
                body = json.dumps(
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "model": request.get("model", fake.model),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": finish,
                            }
                        ],
                    },
                    ensure_ascii=False,
                ).encode("utf-8")
                if fault is not None and fault.kind == "content_bytes":
                    body = body.replace(b'"content": "', b'"content": "\xff\xfe caf\xe9 \\n', 1)
                self._send(200, body)

        return Handler


# ---------------------------------------------------------------------------------------------
# answers


_CODE_RE = re.compile(r"```python\n(.*?)\n```", re.DOTALL)
_DEF_RE = re.compile(r"^def (\w+)\(", re.MULTILINE)


def prompt_code(prompt: str) -> str:
    """The code snippet a synthesis prompt shows the teacher."""
    match = _CODE_RE.search(prompt)
    assert match, "prompt without a ```python block"
    return match.group(1)


def sectioned(code: str, asserts: list[str], *, task: str | None = None, analysis: str = "") -> str:
    """A well-formed teacher response in the contract's format."""
    name = _DEF_RE.findall(code)[-1]
    parts = []
    if task is not None:
        parts.append(f"[Task]\n{task}\n")
    parts.append(
        "[Analysis]\n"
        + (analysis or f"1. Read the inputs of {name}.\n2. Apply the rule step by step.\n")
    )
    parts.append(f"[Solution]\n```python\n{code}\n```\n")
    parts.append("[Test]\n```python\n" + "\n".join(asserts) + "\n```\n")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# a small instruction data set with known tests

_TEMPLATES = [
    (
        "Write a function `{name}(xs)` that returns the elements of the list `xs` greater than "
        "{t}, each multiplied by {k}.",
        "def {name}(xs):\n    return [x * {k} for x in xs if x > {t}]",
        [
            "[]",
            "[{t}]",
            "[1, 2, 3, 4, 5, 6, 7, 8, 9]",
            "[-5, 0, 5, 10]",
            "[100]",
            "[{t}, {t} + 1]",
            "[3, 3, 3]",
            "list(range(20))",
            "[-1, -2]",
            "[42, 7, 13]",
        ],
    ),
    (
        "Write a function `{name}(n)` that returns the sum of the integers in range(n) that are "
        "divisible by {k}.",
        "def {name}(n):\n    total = 0\n    for i in range(n):\n        if i % {k} == 0:\n"
        "            total += i\n    return total",
        ["0", "1", "{k}", "{k} + 1", "10", "25", "50", "99", "100", "7"],
    ),
    (
        "Write a function `{name}(s)` that replaces every '{a}' in the string `s` with '{b}' and "
        "returns the result in upper case.",
        "def {name}(s):\n    return s.replace({a!r}, {b!r}).upper()",
        [
            "''",
            "'{a}'",
            "'{a}{a}'",
            "'abc'",
            "'xyz'",
            "'hello world'",
            "'{a}b{a}'",
            "'q'",
            "'mississippi'",
            "'banana'",
        ],
    ),
    (
        "Write a function `{name}(xs)` that counts the elements of `xs` whose remainder modulo "
        "{k} equals {r}.",
        "def {name}(xs):\n    count = 0\n    for x in xs:\n        if x % {k} == {r}:\n"
        "            count += 1\n    return count",
        [
            "[]",
            "[{r}]",
            "[{k}]",
            "list(range(10))",
            "list(range(30))",
            "[5, 10, 15]",
            "[-1, -2, -3]",
            "[{r} + {k}, {r} + 2 * {k}]",
            "[0]",
            "[7, 8, 9, 10, 11]",
        ],
    ),
]
_VERBS = ["scale", "sum", "swap", "count", "pick", "mark", "fold", "tally", "shift", "merge"]
_NOUNS = ["items", "values", "text", "numbers", "chars", "cells", "scores", "rows", "bits"]


def instruction_rows(n: int, start: int = 0) -> tuple[list[dict], dict[str, list[str]]]:
    """`n` instruction rows (instruction, output with fenced code, id) and their ten asserts
    by function name. Expected values come from running the reference code here (trusted)."""
    rows, asserts = [], {}
    for i in range(start, start + n):
        instr_t, code_t, args = _TEMPLATES[i % len(_TEMPLATES)]
        params = dict(
            name=f"{_VERBS[i % len(_VERBS)]}_{_NOUNS[i % len(_NOUNS)]}_{i}",
            k=2 + i % 5, t=i % 7, r=i % 2, a="aeiou"[i % 5], b="xyz"[i % 3],
        )  # fmt: skip
        code = code_t.format(**params)
        namespace: dict = {}
        exec(code, namespace)  # noqa: S102 (our own reference code)
        func = namespace[params["name"]]
        calls = [f"{params['name']}({arg.format(**params)})" for arg in args]
        asserts[params["name"]] = [f"assert {c} == {eval(c, namespace)!r}" for c in calls]  # noqa: S307
        rows.append(
            {
                "id": f"row{i}",
                "instruction": instr_t.format(**params),
                "output": f"Here is the code:\n```python\n{code}\n```",
            }
        )
        assert callable(func)
    return rows, asserts


def teacher_for(asserts: dict[str, list[str]]) -> Callable[[str], str]:
    """An answer function: the prompt's code as the solution, with its known asserts."""

    def answer(prompt: str) -> str:
        code = prompt_code(prompt)
        name = _DEF_RE.findall(code)[-1]
        return sectioned(
            code, asserts[name], task=f"Implement `{name}`." if "[Task]" in prompt else None
        )

    return answer
