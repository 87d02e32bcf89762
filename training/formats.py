"""The four training formats and the ONE tokenization path (training, eval prompts, diagnostics).

A triple renders to `(prompt, response)`:

    format   response                                    spans in order
    seed     the source's original answer, verbatim      cot/code/glue split at ``` fences
    wo       ```python\\n{code}\\n```                      glue code glue
    follow   {cot}\\n\\n```python\\n{code}\\n```            cot glue code glue      (CoT first)
    precede  ```python\\n{code}\\n```\\n\\n{cot}            glue code glue cot      (code first)

then EOS is appended as a token and trained. The prompt is the tokenizer's chat template applied
to the problem (one user turn, generation prompt added) when the tokenizer has one, and the plain
instruction template `PLAIN_TEMPLATE` otherwise (with BOS prepended when the tokenizer has one).

Tokenization: the prompt and the response are tokenized separately, so the prompt ids of a
training example are exactly the ids `diag eval` feeds the model, and labels are -100 exactly on
prompt tokens. The response is tokenized as one string (the tokens a model would generate) and
each token gets the span id of the character it starts at, from the tokenizer's offset mapping.

Boundary rule: a token belongs to the span holding its first character. Most tokenizers split at
our span boundaries (they sit at newlines and fences), and then decoding a span's tokens gives
back exactly its text. A tokenizer that fuses trailing whitespace into the preceding token (Qwen2-
style ` ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*`) moves that whitespace from the start of the next span into
the end of the previous one; such tokens are counted in `Encoded.n_boundary`, and span text
then round-trips modulo whitespace at span ends. Over-long examples are skipped and counted,
never truncated through the code.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from plumbing import InputError
from synthesis.schema import Triple

FORMATS = ("seed", "wo", "follow", "precede")
SPAN_NAMES = ("prompt", "cot", "code", "glue", "eos")
SPAN_ID = {name: i for i, name in enumerate(SPAN_NAMES)}
PAD_SPAN = -1  # span id of padding positions
IGNORE_INDEX = -100

PLAIN_TEMPLATE = "### Instruction:\n{problem}\n\n### Response:\n"

OPEN_FENCE = "```python\n"
CLOSE_FENCE = "\n```"
SEPARATOR = "\n\n"

# A fenced block inside a seed answer: ```lang\n ... \n```
_FENCE_RE = re.compile(r"```[\w+.-]*[ \t]*\n(.*?)\n?```", re.DOTALL)


@dataclass
class Span:
    name: str  # one of SPAN_NAMES
    start: int  # character offsets into `Rendered.text` (prompt + response)
    end: int


@dataclass
class Rendered:
    format: str
    prompt: str
    response: str  # without EOS (EOS is a token, appended at tokenization)
    spans: list[Span]  # cover prompt + response, in order, no gaps

    @property
    def text(self) -> str:
        return self.prompt + self.response

    def span_text(self, name: str) -> str:
        return "".join(self.text[s.start : s.end] for s in self.spans if s.name == name)


@dataclass
class Encoded:
    id: str
    format: str
    input_ids: list[int]  # [seq]
    labels: list[int]  # [seq], IGNORE_INDEX on prompt tokens
    span_ids: list[int]  # [seq], SPAN_ID of each token
    n_prompt: int  # number of prompt tokens (the first n_prompt positions)
    n_boundary: int = 0  # response tokens that cross a span boundary (see module docstring)
    rendered: Rendered | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class EncodeStats:
    n_in: int = 0
    n_encoded: int = 0
    n_too_long: int = 0
    n_boundary_tokens: int = 0
    tokens: int = 0
    span_tokens: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_in": self.n_in,
            "n_encoded": self.n_encoded,
            "n_too_long": self.n_too_long,
            "n_boundary_tokens": self.n_boundary_tokens,
            "tokens": self.tokens,
            "span_tokens": dict(self.span_tokens),
        }


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise InputError(f"--format {name!r}: unknown format (choose from {', '.join(FORMATS)})")
    return name


# ---------------------------------------------------------------------------------------------
# rendering


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(problem: str, tokenizer: Any = None) -> str:
    """The prompt text for a problem: chat template if the tokenizer has one, plain otherwise."""
    if tokenizer is not None and has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": problem}], add_generation_prompt=True, tokenize=False
        )
    return PLAIN_TEMPLATE.format(problem=problem)


def _clean_code(code: str) -> str:
    lines = code.rstrip().split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines)


def response_pieces(triple: Triple, fmt: str) -> list[tuple[str, str]]:
    """The response as (span name, text) pieces, in order."""
    check_format(fmt)
    code = _clean_code(triple.code)
    cot = triple.cot.strip()
    if fmt in ("follow", "precede") and not cot:
        raise InputError(f"format {fmt!r} needs a non-empty cot: triple {triple.id!r} has none")
    if fmt != "seed" and not code:
        raise InputError(f"format {fmt!r} needs code: triple {triple.id!r} has none")
    fenced = [("glue", OPEN_FENCE), ("code", code), ("glue", CLOSE_FENCE)]
    if fmt == "wo":
        return fenced
    if fmt == "follow":
        return [("cot", cot), ("glue", SEPARATOR + OPEN_FENCE), *fenced[1:]]
    if fmt == "precede":
        return [*fenced[:-1], ("glue", CLOSE_FENCE + SEPARATOR), ("cot", cot)]
    answer = (triple.seed_answer or "").strip()
    if not answer:
        raise InputError(f"format 'seed' needs a seed_answer: triple {triple.id!r} has none")
    return split_seed_answer(answer)


def split_seed_answer(answer: str) -> list[tuple[str, str]]:
    """Spans of a free-form answer: fenced code is `code`, fences `glue`, prose `cot`.

    An answer with no fence that parses as Python is all code; otherwise all prose.
    """
    pieces: list[tuple[str, str]] = []
    pos = 0
    for match in _FENCE_RE.finditer(answer):
        if match.start() > pos:
            pieces.append(("cot", answer[pos : match.start()]))
        body_start, body_end = match.span(1)
        pieces.append(("glue", answer[match.start() : body_start]))
        pieces.append(("code", answer[body_start:body_end]))
        pieces.append(("glue", answer[body_end : match.end()]))
        pos = match.end()
    if pieces:
        if pos < len(answer):
            pieces.append(("cot", answer[pos:]))
        return [(name, text) for name, text in pieces if text]
    try:
        ast.parse(answer)
        return [("code", answer)]
    except SyntaxError:
        return [("cot", answer)]


def render(triple: Triple, fmt: str, tokenizer: Any = None) -> Rendered:
    prompt = render_prompt(triple.problem, tokenizer)
    spans = [Span("prompt", 0, len(prompt))]
    pos = len(prompt)
    response = []
    for name, text in response_pieces(triple, fmt):
        spans.append(Span(name, pos, pos + len(text)))
        response.append(text)
        pos += len(text)
    return Rendered(format=fmt, prompt=prompt, response="".join(response), spans=spans)


# ---------------------------------------------------------------------------------------------
# tokenization


def check_tokenizer(tokenizer: Any, where: str = "tokenizer") -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(
            f"{where}: a slow tokenizer has no offset mapping; codecot needs a fast "
            "(tokenizers-backed) tokenizer for token-exact spans"
        )
    if tokenizer.eos_token_id is None:
        raise InputError(f"{where}: the tokenizer defines no eos_token")


def encode_prompt(prompt: str, tokenizer: Any) -> list[int]:
    """Token ids of a rendered prompt (chat-template text carries its own special tokens)."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if not has_chat_template(tokenizer) and bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids


def prompt_ids(problem: str, tokenizer: Any) -> list[int]:
    """What generation feeds the model for a problem: the same ids training used."""
    return encode_prompt(render_prompt(problem, tokenizer), tokenizer)


def encode_rendered(rendered: Rendered, tokenizer: Any, example_id: str = "") -> Encoded:
    p_ids = encode_prompt(rendered.prompt, tokenizer)
    enc = tokenizer(rendered.response, add_special_tokens=False, return_offsets_mapping=True)
    r_ids: list[int] = enc["input_ids"]
    offsets: list[tuple[int, int]] = enc["offset_mapping"]
    base = len(rendered.prompt)
    # span boundaries in response coordinates, for a start-offset -> span lookup
    r_spans = [(s.start - base, s.end - base, SPAN_ID[s.name]) for s in rendered.spans[1:]]
    span_ids: list[int] = []
    n_boundary = 0
    k = 0
    for start, end in offsets:
        while k + 1 < len(r_spans) and start >= r_spans[k][1]:
            k += 1
        span_ids.append(r_spans[k][2] if r_spans else SPAN_ID["glue"])
        if r_spans and end > r_spans[k][1]:
            n_boundary += 1
    eos = tokenizer.eos_token_id
    input_ids = [*p_ids, *r_ids, eos]
    labels = [IGNORE_INDEX] * len(p_ids) + [*r_ids, eos]
    spans = [SPAN_ID["prompt"]] * len(p_ids) + span_ids + [SPAN_ID["eos"]]
    return Encoded(
        id=example_id,
        format=rendered.format,
        input_ids=input_ids,
        labels=labels,
        span_ids=spans,
        n_prompt=len(p_ids),
        n_boundary=n_boundary,
        rendered=rendered,
    )


def encode(triple: Triple, fmt: str, tokenizer: Any) -> Encoded:
    return encode_rendered(render(triple, fmt, tokenizer), tokenizer, triple.id)


def encode_many(
    triples: list[Triple], fmt: str, tokenizer: Any, max_len: int | None = None
) -> tuple[list[Encoded], EncodeStats]:
    """Encode triples; those longer than `max_len` tokens are skipped and counted."""
    check_format(fmt)
    check_tokenizer(tokenizer)
    stats = EncodeStats()
    out: list[Encoded] = []
    for triple in triples:
        stats.n_in += 1
        example = encode(triple, fmt, tokenizer)
        if max_len is not None and len(example) > max_len:
            stats.n_too_long += 1
            continue
        stats.n_encoded += 1
        stats.n_boundary_tokens += example.n_boundary
        stats.tokens += len(example)
        stats.span_tokens.update(SPAN_NAMES[s] for s in example.span_ids)
        out.append(example)
    return out, stats


def span_token_text(example: Encoded, tokenizer: Any, name: str) -> str:
    """Decode the tokens of one span (all its pieces, in order) back to text."""
    sid = SPAN_ID[name]
    ids = [t for t, s in zip(example.input_ids, example.span_ids) if s == sid]
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
