"""Stage 5 of `diag synth`: split a teacher response into task, analysis, solution and tests.

    from synthesis.parser import parse_response
    result = parse_response(text, entry_point="f", want_task=False, min_asserts=10)
    if isinstance(result, Rejection): ...        # result.reason, result.detail
    else: result.analysis, result.code, result.tests, result.entry_point

The format (docs/CONTRACTS.md): headers `[Task]` (only when asked), `[Analysis]`, `[Solution]`,
`[Test]`, each at the start of its own line (a markdown `#`/`**` wrapper is tolerated), each
exactly once, in that order; headers inside fenced code blocks do not count. Code comes from the
fenced blocks of [Solution] and [Test] (several blocks are joined). Rejection reasons:

    truncated              the teacher stopped at its token limit (finish_reason == "length")
    unclosed_fence         a ``` block never closes (a truncation the server did not report)
    missing_section / duplicate_section / section_order / empty_section
    no_code_block          [Solution] or [Test] holds no fenced block
    solution_syntax_error / test_syntax_error
    entry_point_missing    the solution defines no function or class (or not the one required)
    test_binds_entry_point the tests define, assign or import the entry point themselves
    trivial_assert         an assert that is constant or true whatever the code does
    too_few_asserts        fewer than `min_asserts` asserts that call the entry point
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from synthesis.filters import Rejection

SECTIONS = ("Task", "Analysis", "Solution", "Test")
_HEADER_RE = re.compile(
    r"^(?:#{1,6}[ \t]*)?(?:\*\*)?\[(Task|Analysis|Solution|Test)\](?:\*\*)?:?[ \t]*(.*)$"
)
_FENCE_RE = re.compile(r"^[ \t]*```")
_BLOCK_RE = re.compile(r"^[ \t]*```[^\n`]*\n(.*?)^[ \t]*```[ \t]*$", re.DOTALL | re.MULTILINE)


@dataclass
class ParsedResponse:
    analysis: str
    code: str
    tests: list[str]  # top-level statements of the [Test] code, asserts and setup lines
    entry_point: str
    task: str | None = None
    n_asserts: int = 0  # asserts that call the entry point
    dropped: list[str] = field(default_factory=list)  # test lines removed (prints, self-imports)


def _split_sections(text: str) -> dict[str, list[str]] | Rejection:
    """Header name -> the bodies under each of its occurrences (outside fences), in order."""
    found: list[tuple[str, list[str]]] = []
    in_fence = False
    for line in text.splitlines():
        if _FENCE_RE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            match = _HEADER_RE.match(line)
            if match:
                found.append((match.group(1), [match.group(2)] if match.group(2) else []))
                continue
        if found:
            found[-1][1].append(line)
    if in_fence:
        return Rejection("unclosed_fence", "a ``` block is never closed (truncated answer?)")
    names = [name for name, _ in found]
    for name in SECTIONS:
        if names.count(name) > 1:
            return Rejection("duplicate_section", f"[{name}] appears {names.count(name)} times")
    order = [name for name in SECTIONS if name in names]
    if names != order:
        return Rejection("section_order", "sections in order " + ", ".join(names))
    return {name: body for name, body in found}


def _code_blocks(body: str) -> str | None:
    blocks = [block.strip("\n") for block in _BLOCK_RE.findall(body + "\n")]
    blocks = [block for block in blocks if block.strip()]
    return "\n\n".join(blocks) if blocks else None


def _calls_name(node: ast.AST, name: str) -> bool:
    return any(
        isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == name
        for sub in ast.walk(node)
    )


def _is_trivial(test: ast.expr) -> bool:
    """True for asserts that hold whatever the solution does (or never depend on it)."""
    if not any(isinstance(sub, ast.Name | ast.Call) for sub in ast.walk(test)):
        return True  # only constants: assert True, assert 1 == 1, assert "x"
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or):
        return any(
            isinstance(v, ast.Constant) and bool(v.value) for v in test.values
        )  # assert f(x) or True
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        same = ast.dump(test.left) == ast.dump(test.comparators[0])
        if same and isinstance(test.ops[0], ast.Eq | ast.Is | ast.LtE | ast.GtE):
            return True  # assert f(1) == f(1)
    return False


def _binds(stmt: ast.stmt, name: str) -> bool:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return stmt.name == name
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return any((a.asname or a.name.split(".")[0]) == name for a in stmt.names)
    return any(
        isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store) and sub.id == name
        for sub in ast.walk(stmt)
    )


def _choose_entry_point(
    defined: list[str], asserts: list[ast.Assert], wanted: str | None, strict: bool
) -> str | Rejection:
    if not defined:
        return Rejection("entry_point_missing", "the solution defines no function or class")
    if wanted in defined:
        return wanted
    if wanted is not None and strict:
        return Rejection(
            "entry_point_missing", f"the solution does not define {wanted!r} (defines {defined})"
        )
    # The defined name most asserts call; ties go to the one defined last.
    counts = {name: sum(_calls_name(a, name) for a in asserts) for name in defined}
    return max(reversed(defined), key=lambda name: counts[name])


def parse_response(
    text: str,
    *,
    entry_point: str | None = None,
    strict_entry_point: bool = False,
    want_task: bool = False,
    min_asserts: int = 10,
    finish_reason: str | None = None,
) -> ParsedResponse | Rejection:
    """Parse one teacher response, or say why it cannot be used."""
    if finish_reason == "length":
        return Rejection("truncated", "the teacher stopped at its token limit")
    sections = _split_sections(text)
    if isinstance(sections, Rejection):
        return sections
    required = ("Task", "Analysis", "Solution", "Test") if want_task else SECTIONS[1:]
    for name in required:
        if name not in sections:
            return Rejection("missing_section", f"no [{name}] header")
    bodies = {name: "\n".join(lines).strip() for name, lines in sections.items()}
    for name in required:
        if not bodies[name]:
            return Rejection("empty_section", f"[{name}] is empty")
    code = _code_blocks(bodies["Solution"])
    if code is None:
        return Rejection("no_code_block", "[Solution] holds no fenced code block")
    test_code = _code_blocks(bodies["Test"])
    if test_code is None:
        return Rejection("no_code_block", "[Test] holds no fenced code block")
    try:
        solution_tree = ast.parse(code)
    except (SyntaxError, ValueError) as err:
        return Rejection("solution_syntax_error", f"{getattr(err, 'msg', err)}")
    try:
        test_tree = ast.parse(test_code)
    except (SyntaxError, ValueError) as err:
        return Rejection("test_syntax_error", f"{getattr(err, 'msg', err)}")

    defined = [
        node.name
        for node in solution_tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    asserts = [stmt for stmt in test_tree.body if isinstance(stmt, ast.Assert)]
    chosen = _choose_entry_point(defined, asserts, entry_point, strict_entry_point)
    if isinstance(chosen, Rejection):
        return chosen

    tests: list[str] = []
    dropped: list[str] = []
    n_calling = 0
    for stmt in test_tree.body:
        source = ast.get_source_segment(test_code, stmt) or ast.unparse(stmt)
        if isinstance(stmt, ast.Assert):
            if _is_trivial(stmt.test):
                return Rejection("trivial_assert", source.splitlines()[0][:120])
            n_calling += _calls_name(stmt, chosen)
        elif isinstance(stmt, ast.ImportFrom) and any(a.name == chosen for a in stmt.names):
            dropped.append(source)  # from solution import f: the code is already in scope
            continue
        elif (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name)
            and stmt.value.func.id == "print"
        ):
            dropped.append(source)
            continue
        elif _binds(stmt, chosen):
            return Rejection("test_binds_entry_point", source.splitlines()[0][:120])
        tests.append(source)
    if n_calling < min_asserts:
        return Rejection(
            "too_few_asserts", f"{n_calling} asserts call {chosen}() (need {min_asserts})"
        )
    return ParsedResponse(
        analysis=bodies["Analysis"],
        code=code,
        tests=tests,
        entry_point=chosen,
        task=bodies.get("Task") if want_task else None,
        n_asserts=n_calling,
        dropped=dropped,
    )
