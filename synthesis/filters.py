"""Stage 2 of `diag synth`: the AST and rule filter over a seed's code.

    from synthesis.filters import FilterConfig, check_code
    rejection = check_code(seed.code, FilterConfig())   # None when the code passes
    if rejection:
        print(rejection.reason, rejection.detail)       # e.g. "banned_import", "os (line 3)"

Rules, in the order they are checked (the first failing rule is the reason):
    syntax_error          the code does not parse with `ast`
    too_short / too_long  character or line count outside the bounds
    no_function_or_class  no `def` or `class` anywhere
    banned_import         an import of a banned top-level module (os, sys, subprocess, ...)
    banned_call           a call of a banned builtin (eval, exec, __import__, ...)
    input_call            a call of input()
    file_write            open() in a write/append/create mode (or a mode we cannot see),
                          or a .write_text()/.write_bytes()/.unlink()/.mkdir()-style method call
Every list is a field of `FilterConfig` (and a flag of `diag synth`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

DEFAULT_BANNED_IMPORTS = (
    "os",
    "sys",
    "subprocess",
    "socket",
    "shutil",
    "pathlib",
    "multiprocessing",
    "threading",
    "asyncio",
    "signal",
    "ctypes",
    "urllib",
    "http",
    "requests",
    "httpx",
    "ftplib",
    "smtplib",
    "telnetlib",
    "ssl",
    "select",
    "selectors",
    "pty",
    "tty",
    "fcntl",
    "resource",
    "glob",
    "tempfile",
    "pickle",
    "shelve",
    "importlib",
    "webbrowser",
    "tkinter",
    "builtins",
)
DEFAULT_BANNED_CALLS = ("eval", "exec", "compile", "__import__", "breakpoint", "exit", "quit")
# Method names that write to or change the file system whatever object they are called on
# (not `replace`: str.replace is far more common than Path.replace).
FILE_WRITE_METHODS = (
    "write_text",
    "write_bytes",
    "unlink",
    "rmdir",
    "mkdir",
    "touch",
    "rename",
    "symlink_to",
    "chmod",
)


@dataclass
class FilterConfig:
    min_chars: int = 20
    max_chars: int = 6000
    min_lines: int = 2
    max_lines: int = 200
    banned_imports: tuple[str, ...] = DEFAULT_BANNED_IMPORTS
    banned_calls: tuple[str, ...] = DEFAULT_BANNED_CALLS
    file_write_methods: tuple[str, ...] = FILE_WRITE_METHODS
    allow_input: bool = False


@dataclass
class Rejection:
    reason: str  # a short key, counted in stats.json
    detail: str = ""  # what exactly (module name, line), written to rejected.jsonl

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "detail": self.detail}


@dataclass
class _Findings:
    has_def: bool = False
    problems: list[Rejection] = field(default_factory=list)


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _open_mode(call: ast.Call) -> ast.expr | None:
    """The mode argument of an open(...) call (positional 2nd or mode=), or None if absent."""
    if len(call.args) >= 2:
        return call.args[1]
    for keyword in call.keywords:
        if keyword.arg == "mode":
            return keyword.value
    return None


def _writes_file(call: ast.Call) -> bool:
    """open() with a mode that writes, or a mode that is not a literal (we cannot tell)."""
    if any(keyword.arg is None for keyword in call.keywords) or any(
        isinstance(arg, ast.Starred) for arg in call.args
    ):
        return True
    mode = _open_mode(call)
    if mode is None:
        return False
    if not (isinstance(mode, ast.Constant) and isinstance(mode.value, str)):
        return True
    return any(flag in mode.value for flag in "wax+")


def _scan(tree: ast.AST, cfg: FilterConfig) -> _Findings:
    found = _Findings()
    banned_imports = set(cfg.banned_imports)
    banned_calls = set(cfg.banned_calls)
    write_methods = set(cfg.file_write_methods)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.has_def = True
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in banned_imports:
                    found.problems.append(Rejection("banned_import", f"{top} (line {line})"))
        elif isinstance(node, ast.ImportFrom):
            top = (node.module or "").split(".")[0]
            if node.level == 0 and top in banned_imports:
                found.problems.append(Rejection("banned_import", f"{top} (line {line})"))
        elif isinstance(node, ast.Call):
            name = _call_name(node.func)
            if name is None:
                continue
            bare = isinstance(node.func, ast.Name)
            if bare and name in banned_calls:
                found.problems.append(Rejection("banned_call", f"{name}() (line {line})"))
            elif bare and name == "input" and not cfg.allow_input:
                found.problems.append(Rejection("input_call", f"input() (line {line})"))
            elif name == "open" and _writes_file(node):
                found.problems.append(
                    Rejection("file_write", f"open(..., write mode) (line {line})")
                )
            elif not bare and name in write_methods:
                found.problems.append(Rejection("file_write", f".{name}() (line {line})"))
    return found


def check_code(code: str, cfg: FilterConfig) -> Rejection | None:
    """The first rule `code` breaks, or None when it passes every rule."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError) as err:  # ValueError: null bytes in the source
        line = getattr(err, "lineno", None)
        return Rejection("syntax_error", f"{getattr(err, 'msg', err)} (line {line})")
    n_chars = len(code.strip())
    n_lines = len(code.strip().splitlines())
    if n_chars < cfg.min_chars or n_lines < cfg.min_lines:
        return Rejection(
            "too_short", f"{n_chars} chars, {n_lines} lines (min {cfg.min_chars}, {cfg.min_lines})"
        )
    if n_chars > cfg.max_chars or n_lines > cfg.max_lines:
        return Rejection(
            "too_long", f"{n_chars} chars, {n_lines} lines (max {cfg.max_chars}, {cfg.max_lines})"
        )
    found = _scan(tree, cfg)
    if not found.has_def:
        return Rejection("no_function_or_class", "no def or class statement")
    if found.problems:
        return found.problems[0]
    return None
