"""AST transforms of training triples for `diag ablate`, by registry.

    from diagnostics.transforms import TRANSFORMS, apply_transform
    new_triples, stats = apply_transform("comments", triples, seed=0)
    TRANSFORMS["signature"].code_fn(code, tests)      # one solution

Registry (each ablates ONE factor and keeps a trainable triple):

- `signature`: the function signatures stop stating the interface. In every `def` (top-level,
  nested, methods): parameter and return annotations are dropped, and positional parameters
  (and `*args` / `**kwargs`) are renamed `arg0, arg1, ...` (numbering continues into nested
  functions so names never clash), every reference to them in the body renamed with Python's
  scoping rules (nested functions, lambdas, comprehensions and class bodies that rebind a name
  shadow it; `global`/`nonlocal`, `except ... as`, imports, `def`/`class` or match captures of a
  parameter name make that parameter keep its name, as does any name used as a keyword
  argument in the code or its tests). Kept: the function's NAME (the benchmark calls the entry
  point by name, so a variant without it could not be evaluated and would only measure that),
  the arity, defaults, keyword-only parameter names (callers must spell them), decorators, the
  body. Why: the paper's finding is that the signature anchors the task to the code: in code-
  first order the `def` line restates the problem's interface (argument names and types) before
  any reasoning. This variant removes what the signature says beyond "a function of n
  arguments called f" while the code still runs and passes its tests (alpha-renaming).
- `comments`: comments (found with `tokenize`, so a `#` inside a string, f-string or multiline
  string is never touched) and docstrings (the first string statement of a module, class or
  function, found with `ast`) are removed; a body left empty gets `pass`. Semantics preserved.
- `typehints`: every annotation is removed: parameters, returns, and annotated assignments in
  modules and functions (`x: int = 1` -> `x = 1`; a bare `x: int` is deleted). Class-level
  annotations are kept: they declare fields (dataclasses, NamedTuple, TypedDict), not hints.
- `inconsistent`: each triple's CoT is replaced by another triple's CoT (a seeded derangement
  within the data set), code and problem unchanged: the CoT no longer explains the code.

Method: code transforms edit the source text (so formatting, quotes and untouched comments stay
as written) and are verified against the same transform done on the AST: `ast.dump` of the
edited source must equal `ast.dump` of the transformed tree. If it does not (a position the
tokenizer and the parser disagree on), the transformed tree is unparsed (`ast.unparse`) instead
and counted as a fallback. Code that does not parse is kept unchanged and counted.
"""

from __future__ import annotations

import ast
import io
import random
import re
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from synthesis.schema import Triple


class TransformError(ValueError):
    """The code could not be transformed (it does not parse)."""


# ---------------------------------------------------------------------------------------------
# source edits


class SourceText:
    """Absolute character offsets for AST (1-based line, UTF-8 byte column) and tokenize (1-based
    line, character column) positions, and non-overlapping edits applied back to front."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))
        self.edits: list[tuple[int, int, str]] = []

    def ast_offset(self, lineno: int, col_bytes: int) -> int:
        line = self.lines[lineno - 1] if lineno - 1 < len(self.lines) else ""
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col_bytes].decode("utf-8"))

    def tok_offset(self, pos: tuple[int, int]) -> int:
        return self.starts[pos[0] - 1] + pos[1]

    def node_range(self, node: ast.AST) -> tuple[int, int]:
        start = self.ast_offset(node.lineno, node.col_offset)
        end = self.ast_offset(node.end_lineno, node.end_col_offset)
        return start, end

    def line_bounds(self, offset: int) -> tuple[int, int]:
        """(start of the line holding offset, end of it including its newline)."""
        start = self.text.rfind("\n", 0, offset) + 1
        end = self.text.find("\n", offset)
        return start, (len(self.text) if end < 0 else end + 1)

    def edit(self, start: int, end: int, replacement: str) -> None:
        self.edits.append((start, end, replacement))

    def apply(self) -> str:
        text = self.text
        last = len(text) + 1
        for start, end, rep in sorted(self.edits, key=lambda e: (e[0], e[1]), reverse=True):
            if end > last:
                raise TransformError(f"overlapping edits at {start}:{end}")
            text = text[:start] + rep + text[end:]
            last = start
        return text


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    try:
        return list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError) as err:
        raise TransformError(f"does not tokenize: {err}") from None


def _parse(text: str) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError as err:
        raise TransformError(f"does not parse: {err.msg} (line {err.lineno})") from None


def remove_statements(src: SourceText, body_removals: dict[int, tuple[list, list]]) -> set[int]:
    """Delete statements; returns the ids of those replaced by `pass` instead.

    body_removals: id(body list) -> (the body, the statements of it to remove).
    A statement alone on its line(s) goes with its lines; one sharing a line with another
    statement becomes `pass`, and so does the first one of a body that would be left empty.
    """
    passed: set[int] = set()
    for body, stmts in body_removals.values():
        empty = len(stmts) == len(body)
        for k, stmt in enumerate(stmts):
            start, end = src.node_range(stmt)
            line_start, _ = src.line_bounds(start)
            _, line_end = src.line_bounds(max(end - 1, start))
            before = src.text[line_start:start]
            after = src.text[end:line_end]
            whole_lines = not before.strip() and not after.strip()
            if (empty and k == 0) or not whole_lines:
                src.edit(start, end, "pass")
                passed.add(id(stmt))
            else:
                src.edit(line_start, line_end, "")
    return passed


def _bodies(tree: ast.AST) -> list[tuple[ast.AST, str, list]]:
    """(node, field, statement list) of every statement list in the tree."""
    out = []
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            value = getattr(node, name, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                out.append((node, name, value))
    return out


def _drop_from_bodies(tree: ast.AST, doomed: set[int], passed: set[int]) -> None:
    """AST reference of remove_statements: `doomed` statements go, those in `passed` become
    `pass`."""
    for node, name, body in _bodies(tree):
        kept = [ast.Pass() if id(s) in passed else s for s in body if id(s) not in doomed - passed]
        setattr(node, name, kept)


def _finish(edited: str, reference: ast.AST, stats: dict[str, int] | None) -> str:
    """The edited source if it parses to the reference tree, else the unparsed reference."""
    want = ast.dump(reference)
    try:
        ok = ast.dump(ast.parse(edited)) == want
    except SyntaxError:
        ok = False
    if ok:
        return edited
    if stats is not None:
        stats["fallback"] = stats.get("fallback", 0) + 1
    return ast.unparse(reference)


# ---------------------------------------------------------------------------------------------
# comments and docstrings


def _docstring_stmt(node: ast.AST) -> ast.stmt | None:
    body = getattr(node, "body", None)
    if not isinstance(body, list) or not body:
        return None
    first = body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first
    return None


_DOC_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def strip_comments(code: str, tests: list[str] | None = None, stats: dict | None = None) -> str:
    """Remove `#` comments (tokenize) and docstrings (ast); see the module docstring."""
    tree = _parse(code)
    src = SourceText(code)
    for tok in _tokens(code):
        if tok.type != tokenize.COMMENT:
            continue
        start = src.tok_offset(tok.start)
        end = src.tok_offset(tok.end)
        line_start, line_end = src.line_bounds(start)
        if not src.text[line_start:start].strip():
            src.edit(line_start, line_end, "")  # a comment line: the whole line goes
        else:
            keep = len(src.text[line_start:start].rstrip())
            src.edit(line_start + keep, end, "")  # a trailing comment and the blanks before it
    no_comments = src.apply()
    if ast.dump(_parse(no_comments)) != ast.dump(tree):
        raise TransformError("removing comments changed the program (tokenizer disagreement)")
    tree = ast.parse(no_comments)
    src = SourceText(no_comments)
    removals: dict[int, tuple[list, list]] = {}
    doomed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, _DOC_OWNERS):
            doc = _docstring_stmt(node)
            if doc is not None:
                removals[id(node.body)] = (node.body, [doc])
                doomed.add(id(doc))
    passed = remove_statements(src, removals)
    edited = src.apply()
    _drop_from_bodies(tree, doomed, passed)
    return _finish(edited, tree, stats)


# ---------------------------------------------------------------------------------------------
# annotations


def _arrow_edit(src: SourceText, tokens: list[tokenize.TokenInfo], func: ast.AST) -> None:
    """Remove ` -> annotation` of a def: from the end of the token before `->` to its end."""
    ann_start = src.ast_offset(func.returns.lineno, func.returns.col_offset)
    _, ann_end = src.node_range(func.returns)
    arrow = None
    for k, tok in enumerate(tokens):
        if tok.type == tokenize.OP and tok.string == "->" and src.tok_offset(tok.start) < ann_start:
            arrow = k
        elif src.tok_offset(tok.start) >= ann_start:
            break
    if arrow is None:
        raise TransformError("no '->' before a return annotation")
    src.edit(src.tok_offset(tokens[arrow - 1].end), ann_end, "")


def _arg_edit(
    src: SourceText,
    tokens: list[tokenize.TokenInfo],
    arg: ast.arg,
    new_name: str | None,
    default: ast.AST | None,
) -> None:
    """Replace `name: annotation` (or `name`) by the new name (or the bare name); with a
    default, `name: annotation = value` becomes `name=value` (PEP 8 spacing without a hint)."""
    start, end = src.node_range(arg)
    name = new_name or arg.arg
    if arg.annotation is None:
        src.edit(start, end, name)
        return
    _, end = src.node_range(arg.annotation)
    if default is None:
        src.edit(start, end, name)
        return
    default_start = src.ast_offset(default.lineno, default.col_offset)
    for k, tok in enumerate(tokens):
        pos = src.tok_offset(tok.start)
        if tok.type == tokenize.OP and tok.string == "=" and end <= pos < default_start:
            src.edit(start, src.tok_offset(tokens[k + 1].start), name + "=")
            return
    raise TransformError("no '=' before a parameter default")


def _defaults(args: ast.arguments) -> dict[int, ast.AST]:
    """id(arg) -> its default value node."""
    positional = [*args.posonlyargs, *args.args]
    out = {
        id(a): d for a, d in zip(positional[len(positional) - len(args.defaults) :], args.defaults)
    }
    out.update({id(a): d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
    return out


def _all_args(args: ast.arguments) -> list[ast.arg]:
    out = [*args.posonlyargs, *args.args]
    if args.vararg:
        out.append(args.vararg)
    out.extend(args.kwonlyargs)
    if args.kwarg:
        out.append(args.kwarg)
    return out


def _class_level(tree: ast.AST) -> set[int]:
    """ids of statements directly in a class body (also inside if/try blocks there)."""
    out: set[int] = set()

    def mark(stmts: list[ast.stmt]) -> None:
        for stmt in stmts:
            out.add(id(stmt))
            for name in ("body", "orelse", "finalbody"):
                if not isinstance(stmt, _DOC_OWNERS) and isinstance(
                    getattr(stmt, name, None), list
                ):
                    mark(getattr(stmt, name))
            for handler in getattr(stmt, "handlers", []) or []:
                mark(handler.body)

    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            mark(node.body)
    return out


def strip_typehints(code: str, tests: list[str] | None = None, stats: dict | None = None) -> str:
    """Remove parameter/return annotations and module/function annotated assignments."""
    tree = _parse(code)
    tokens = _tokens(code)
    src = SourceText(code)
    in_class = _class_level(tree)
    removals: dict[int, tuple[list, list]] = {}
    doomed: set[int] = set()
    replaced: dict[int, ast.stmt] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            defaults = _defaults(node.args)
            for arg in _all_args(node.args):
                if arg.annotation is not None:
                    _arg_edit(src, tokens, arg, None, defaults.get(id(arg)))
            if node.returns is not None:
                _arrow_edit(src, tokens, node)
        elif isinstance(node, ast.AnnAssign) and id(node) not in in_class:
            if node.value is None:
                doomed.add(id(node))
            else:
                target_end = src.node_range(node.target)[1]
                ann_start = src.ast_offset(node.annotation.lineno, node.annotation.col_offset)
                colon = [
                    t
                    for t in tokens
                    if t.type == tokenize.OP
                    and t.string == ":"
                    and target_end <= src.tok_offset(t.start) < ann_start
                ]
                if not colon:
                    raise TransformError("no ':' in an annotated assignment")
                src.edit(src.tok_offset(colon[0].start), src.node_range(node.annotation)[1], "")
                replaced[id(node)] = ast.Assign(
                    targets=[node.target], value=node.value, type_comment=None
                )
    for _, _, body in _bodies(tree):
        gone = [s for s in body if id(s) in doomed]
        if gone:
            removals[id(body)] = (body, gone)
    passed = remove_statements(src, removals)
    edited = src.apply()
    # the AST reference
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for arg in _all_args(node.args):
                arg.annotation = None
            node.returns = None
        for name in ("body", "orelse", "finalbody"):
            value = getattr(node, name, None)
            if isinstance(value, list):
                setattr(node, name, [replaced.get(id(s), s) for s in value])
    _drop_from_bodies(tree, doomed, passed)
    return _finish(edited, tree, stats)


# ---------------------------------------------------------------------------------------------
# signatures


_FUNC_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMP_SCOPES = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _non_name_bindings(tree: ast.AST) -> set[str]:
    """Names bound other than by a plain Name or a parameter anywhere in the tree, or declared
    global/nonlocal: parameters with these names keep their names (conservative)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.name:
            out.add(node.name)
        elif isinstance(node, ast.alias):
            out.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            out.update(node.names)
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            out.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            out.add(node.rest)
    return out


def _store_names(nodes: list[ast.AST]) -> set[str]:
    """Names a scope binds with Name(Store/Del) among `nodes`, not descending into nested
    function/class scopes; in comprehensions only walrus targets count (they bind outside)."""
    out: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            out.add(node.id)
        if isinstance(node, (*_FUNC_SCOPES, ast.ClassDef)):
            continue  # a nested scope (its decorators/defaults are rare binders; ignored)
        if isinstance(node, _COMP_SCOPES):
            for sub in ast.walk(node):
                if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                    out.add(sub.target.id)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return out


class _Renamer:
    """Collect the edits of the signature transform (see module docstring)."""

    def __init__(self, tree: ast.AST, protected: set[str], prefix: str):
        self.protected = protected | _non_name_bindings(tree)
        self.prefix = prefix
        self.names: list[tuple[ast.Name, str]] = []  # references to rename
        # parameters: (arg, new name or None to keep it, its default)
        self.args: list[tuple[ast.arg, str | None, ast.AST | None]] = []
        self.funcs: list[ast.AST] = []  # defs whose return annotation goes

    # -- scopes --------------------------------------------------------------------------------
    def module(self, tree: ast.Module) -> None:
        for stmt in tree.body:
            self.visit(stmt, {}, {}, 0)

    def visit(self, node: ast.AST, active: dict, func_active: dict, depth: int) -> None:
        """active: renames visible here; func_active: what nested function scopes inherit (the
        enclosing function's renames: class bodies do not enclose their methods)."""
        if isinstance(node, ast.Name):
            if node.id in active:
                self.names.append((node, active[node.id]))
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for expr in [*node.decorator_list, *node.args.defaults]:
                self.visit(expr, active, func_active, depth)
            for expr in node.args.kw_defaults:
                if expr is not None:
                    self.visit(expr, active, func_active, depth)
            self.function(node, func_active, depth)
            return
        if isinstance(node, ast.Lambda):
            for expr in [*node.args.defaults, *[d for d in node.args.kw_defaults if d]]:
                self.visit(expr, active, func_active, depth)
            bound = {a.arg for a in _all_args(node.args)} | _store_names([node.body])
            inner = {k: v for k, v in func_active.items() if k not in bound}
            self.visit(node.body, inner, inner, depth)
            return
        if isinstance(node, ast.ClassDef):
            for expr in [*node.decorator_list, *node.bases, *[k.value for k in node.keywords]]:
                self.visit(expr, active, func_active, depth)
            bound = _store_names(node.body)
            class_active = {k: v for k, v in active.items() if k not in bound}
            for stmt in node.body:
                self.visit(stmt, class_active, func_active, depth)
            return
        if isinstance(node, _COMP_SCOPES):
            gens = node.generators
            self.visit(gens[0].iter, active, func_active, depth)  # evaluated outside
            bound = _store_names([g.target for g in gens])
            inner = {k: v for k, v in func_active.items() if k not in bound}
            for k, gen in enumerate(gens):
                self.visit(gen.target, inner, inner, depth)
                if k:
                    self.visit(gen.iter, inner, inner, depth)
                for cond in gen.ifs:
                    self.visit(cond, inner, inner, depth)
            elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for elt in elts:
                self.visit(elt, inner, inner, depth)
            return
        for child in ast.iter_child_nodes(node):
            self.visit(child, active, func_active, depth)

    def function(self, node: ast.AST, outer: dict, depth: int) -> None:
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        # self/cls of a method stays: a convention, not information about the task
        skip_first = bool(positional) and positional[0].arg in ("self", "cls")
        renamable = positional[1:] if skip_first else positional
        renamable = [*renamable, *(a for a in (args.vararg, args.kwarg) if a is not None)]
        own: dict[str, str] = {}
        counter = depth
        defaults = _defaults(args)
        for arg in _all_args(args):
            new = None
            if arg in renamable and arg.arg not in self.protected:
                new = f"{self.prefix}{counter}"
                counter += 1
                own[arg.arg] = new
            self.args.append((arg, new, defaults.get(id(arg))))
        if node.returns is not None:
            self.funcs.append(node)
        bound = {a.arg for a in _all_args(args)} | _store_names(node.body)
        inner = {k: v for k, v in outer.items() if k not in bound}
        inner.update(own)
        for stmt in node.body:
            self.visit(stmt, inner, inner, counter)


def _keyword_names(sources: list[str]) -> set[str]:
    out: set[str] = set()
    for text in sources:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg:
                out.add(node.arg)
    return out


def _fresh_prefix(tree: ast.AST, extra: list[str]) -> str:
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    names |= set(re.findall(r"[A-Za-z_]\w*", " ".join(extra)))
    prefix = "arg"
    while any(re.fullmatch(re.escape(prefix) + r"\d+", n) for n in names):
        prefix += "_"
    return prefix


def anonymize_signatures(
    code: str, tests: list[str] | None = None, stats: dict | None = None
) -> str:
    """Drop annotations from every def line and rename positional parameters (module docstring)."""
    tests = list(tests or [])
    tree = _parse(code)
    tokens = _tokens(code)
    src = SourceText(code)
    protected = _keyword_names([code, *tests])
    renamer = _Renamer(tree, protected, _fresh_prefix(tree, tests))
    renamer.module(tree)
    for name, new in renamer.names:
        start, end = src.node_range(name)
        src.edit(start, end, new)
    for arg, new, default in renamer.args:
        if new is not None or arg.annotation is not None:
            _arg_edit(src, tokens, arg, new, default)
    for func in renamer.funcs:
        _arrow_edit(src, tokens, func)
    edited = src.apply()
    for name, new in renamer.names:
        name.id = new
    for arg, new, _ in renamer.args:
        arg.arg = new or arg.arg
        arg.annotation = None
    for func in renamer.funcs:
        func.returns = None
    return _finish(edited, tree, stats)


# ---------------------------------------------------------------------------------------------
# registry


@dataclass
class TransformStats:
    n: int = 0
    changed: int = 0
    unchanged: int = 0  # nothing to remove (e.g. no comments)
    unparseable: int = 0  # kept as is
    fallback: int = 0  # source edits disagreed with the AST: unparsed instead
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "unparseable": self.unparseable,
            "fallback": self.fallback,
            "first_errors": self.errors[:5],
        }


CodeFn = Callable[..., str]


@dataclass(frozen=True)
class Transform:
    name: str
    summary: str
    preserves_semantics: bool  # the transformed code still passes the triple's tests
    code_fn: CodeFn | None = None  # per solution: (code, tests, stats) -> code
    data_fn: Callable[[list[Triple], int], tuple[list[Triple], TransformStats]] | None = None


def _per_code(fn: CodeFn) -> Callable[[list[Triple], int], tuple[list[Triple], TransformStats]]:
    def run(triples: list[Triple], seed: int) -> tuple[list[Triple], TransformStats]:
        stats = TransformStats()
        out = []
        for triple in triples:
            stats.n += 1
            counters: dict[str, int] = {}
            try:
                code = fn(triple.code, triple.tests, counters)
            except TransformError as err:
                stats.unparseable += 1
                stats.errors.append(f"{triple.id}: {err}")
                out.append(triple)
                continue
            stats.fallback += counters.get("fallback", 0)
            if code.strip() == triple.code.strip():
                stats.unchanged += 1
            else:
                stats.changed += 1
            out.append(replace(triple, code=code))
        return out, stats

    return run


def shuffle_cots(triples: list[Triple], seed: int) -> tuple[list[Triple], TransformStats]:
    """Each triple gets another triple's CoT: a seeded derangement (no CoT stays in place)."""
    stats = TransformStats(n=len(triples))
    with_cot = [i for i, t in enumerate(triples) if t.cot.strip()]
    if len(with_cot) < 2:
        from plumbing import InputError

        raise InputError("variant inconsistent: needs at least two triples with a CoT")
    rng = random.Random(seed)
    # a random cyclic shift of a shuffled order is a derangement
    order = with_cot[:]
    rng.shuffle(order)
    shift = rng.randrange(1, len(order))
    donor = {order[k]: order[(k + shift) % len(order)] for k in range(len(order))}
    out = []
    for i, triple in enumerate(triples):
        if i in donor:
            out.append(replace(triple, cot=triples[donor[i]].cot))
            stats.changed += 1
        else:
            out.append(triple)
            stats.unchanged += 1
    return out, stats


TRANSFORMS: dict[str, Transform] = {
    t.name: t
    for t in (
        Transform(
            "signature",
            "def lines stop stating the interface: annotations dropped, positional parameters "
            "renamed arg0.. (function names kept: the tests call them)",
            True,
            code_fn=anonymize_signatures,
        ),
        Transform(
            "comments",
            "comments (tokenize) and docstrings (ast) removed",
            True,
            code_fn=strip_comments,
        ),
        Transform(
            "typehints",
            "all parameter/return annotations and module/function annotated assignments removed",
            True,
            code_fn=strip_typehints,
        ),
        Transform(
            "inconsistent",
            "each CoT swapped for another triple's CoT (seeded derangement), code unchanged",
            True,
            data_fn=shuffle_cots,
        ),
    )
}


def describe() -> str:
    return "; ".join(f"{t.name}: {t.summary}" for t in TRANSFORMS.values())


def apply_transform(
    name: str, triples: list[Triple], seed: int = 0
) -> tuple[list[Triple], TransformStats]:
    """Apply a registered transform to a data set (order and ids kept)."""
    from plumbing import InputError

    if name not in TRANSFORMS:
        raise InputError(
            f"--variants {name!r}: unknown transform (choose from {', '.join(TRANSFORMS)})"
        )
    transform = TRANSFORMS[name]
    if transform.data_fn is not None:
        return transform.data_fn(triples, seed)
    return _per_code(transform.code_fn)(triples, seed)
