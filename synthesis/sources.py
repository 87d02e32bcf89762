"""Stage 1 of `diag synth`: sources that yield seeds (or say why a candidate is not one).

    from synthesis.sources import SOURCES, parse_source, iter_candidates
    spec = parse_source("jsonl:data/alpaca.jsonl")
    for item in iter_candidates(spec, FieldMap.from_flags(["instruction=question"]), limit=100):
        if isinstance(item, SourceReject): ...   # item.id, item.reason, item.detail
        else: ...                                # a synthesis.seeds.Seed

Source specs (`--source`, repeatable):
    jsonl:PATH      instruction data, one JSON object a line
    parquet:PATH    instruction data in a parquet file
    hf:DIR[#SPLIT]  a local Hugging Face `datasets` folder (load_from_disk; split of a DatasetDict,
                    default "train")
    pysrc:DIR       self-contained top-level functions of a Python source tree (raw code: the
                    teacher also writes the task)
    toy             the procedural toy world (`--n` seeds, `--seed`)

Instruction data fields (`--field NAME=COLUMN`): instruction (the task), answer (the original
answer, kept as `seed_answer`), code (the code the teacher sees; default: the fenced code of the
answer, or the whole answer if it parses as Python), id, entry_point. Unmapped names are looked
up among common column names (see FIELD_CANDIDATES).

A pysrc function is self-contained when every name it reads is its own (arguments, locals,
nested definitions), a builtin, itself, or bound by a module-level import of a standard-library
module; those imports are copied above it. Every other candidate is a `SourceReject` with the
reason (undefined_name, uses_module_name, non_stdlib_import, uses_global, file_syntax_error, ...).
"""

from __future__ import annotations

import ast
import builtins
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumbing import InputError, iter_jsonl
from synthesis.seeds import Seed

SOURCES = {
    "jsonl": "jsonl:PATH — instruction data, one JSON object a line",
    "parquet": "parquet:PATH — instruction data in a parquet file",
    "hf": "hf:DIR[#SPLIT] — a local Hugging Face datasets folder (load_from_disk)",
    "pysrc": "pysrc:DIR — self-contained functions extracted from a Python source tree",
    "toy": "toy — the procedural toy world (--n, --seed)",
}
LOGICAL_FIELDS = ("instruction", "answer", "code", "id", "entry_point")
FIELD_CANDIDATES = {
    "instruction": ("instruction", "prompt", "question", "problem", "query", "task"),
    "answer": ("output", "response", "answer", "completion", "solution"),
    "code": (),  # default: the code inside the answer
    "id": ("id", "task_id"),
    "entry_point": ("entry_point",),
}
_FENCED_RE = re.compile(r"```[\w+.-]*[ \t]*\n(.*?)```", re.DOTALL)
_BUILTINS = frozenset(dir(builtins))
_STDLIB = frozenset(sys.stdlib_module_names)


@dataclass
class SourceSpec:
    kind: str  # a key of SOURCES
    path: Path | None = None
    split: str | None = None  # hf DatasetDict split
    text: str = ""  # the spec as given

    @property
    def tag(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path.name}"


@dataclass
class SourceReject:
    """A candidate that is not a usable seed; it is recorded in rejected.jsonl (stage 'source')."""

    id: str
    reason: str
    detail: str
    source: str


@dataclass
class FieldMap:
    explicit: dict[str, str] = field(default_factory=dict)  # logical name -> column

    @classmethod
    def from_flags(cls, flags: list[str] | None) -> FieldMap:
        mapping: dict[str, str] = {}
        for flag in flags or []:
            name, sep, column = flag.partition("=")
            name, column = name.strip(), column.strip()
            if not sep or not name or not column:
                raise InputError(
                    f"--field {flag!r}: expected NAME=COLUMN, e.g. instruction=question"
                )
            if name not in LOGICAL_FIELDS:
                raise InputError(
                    f"--field {flag!r}: NAME must be one of {', '.join(LOGICAL_FIELDS)}"
                )
            mapping[name] = column
        return cls(mapping)

    def resolve(self, columns: list[str], where: str) -> dict[str, str | None]:
        """Logical name -> the column that holds it (None when absent), checked against a row."""
        resolved: dict[str, str | None] = {}
        for name in LOGICAL_FIELDS:
            if name in self.explicit:
                if self.explicit[name] not in columns:
                    raise InputError(
                        f"{where}: --field {name}={self.explicit[name]}: no such field "
                        f"(fields: {', '.join(columns)})"
                    )
                resolved[name] = self.explicit[name]
            else:
                resolved[name] = next((c for c in FIELD_CANDIDATES[name] if c in columns), None)
        if resolved["instruction"] is None:
            raise InputError(
                f"{where}: no instruction field among {', '.join(columns)} "
                "(map one with --field instruction=COLUMN)"
            )
        if resolved["answer"] is None and resolved["code"] is None:
            raise InputError(
                f"{where}: no answer or code field among {', '.join(columns)} "
                "(map one with --field answer=COLUMN or --field code=COLUMN)"
            )
        return resolved


def parse_source(text: str) -> SourceSpec:
    """Check a --source spec (kind and path) without reading the data."""
    kind, sep, rest = text.partition(":")
    if kind == "toy":
        if sep:
            raise InputError(f"--source {text!r}: the toy source takes no path (use --n, --seed)")
        return SourceSpec("toy", text=text)
    if kind not in SOURCES or not sep or not rest:
        raise InputError(
            f"--source {text!r}: expected one of "
            + "; ".join(SOURCES[k].split(" — ")[0] for k in SOURCES)
        )
    split = None
    if kind == "hf" and "#" in rest:
        rest, split = rest.rsplit("#", 1)
    path = Path(rest).expanduser()
    if not path.exists():
        raise InputError(f"--source {text}: {path}: no such file or directory")
    if kind in ("jsonl", "parquet") and path.is_dir():
        raise InputError(f"--source {text}: {path}: is a directory, expected a {kind} file")
    if kind in ("hf", "pysrc") and not path.is_dir():
        raise InputError(f"--source {text}: {path}: expected a directory")
    return SourceSpec(kind, path, split, text)


# ---------------------------------------------------------------------------------------------
# instruction data


def code_from_answer(answer: str) -> str | None:
    """The fenced code blocks of an answer, or the whole answer when it parses as Python."""
    blocks = [b.strip("\n") for b in _FENCED_RE.findall(answer) if b.strip()]
    if blocks:
        return "\n\n".join(blocks)
    try:
        ast.parse(answer)
    except (SyntaxError, ValueError):
        return None
    return answer.strip("\n") if answer.strip() else None


def jsonl_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    return iter_jsonl(path, "--source jsonl:")


def _parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a non-parquet file
        raise InputError(f"{path}: not a readable parquet file ({err})") from None
    index = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield f"{path}:row {index}", row
            index += 1


def _hf_rows(path: Path, split: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    import datasets

    try:
        data = datasets.load_from_disk(str(path))
    except Exception as err:  # FileNotFoundError, or a folder not written by save_to_disk
        raise InputError(f"{path}: not a datasets folder saved by save_to_disk ({err})") from None
    if isinstance(data, datasets.DatasetDict):
        name = split or "train"
        if name not in data:
            raise InputError(
                f"{path}: no split {name!r} (splits: {', '.join(data)}; choose one with hf:DIR#SPLIT)"
            )
        data = data[name]
    elif split is not None:
        raise InputError(f"{path}: a single dataset has no splits, drop '#{split}'")
    for index, row in enumerate(data):
        yield f"{path}:row {index}", row


def _instruction_candidates(
    spec: SourceSpec, fields: FieldMap, limit: int | None
) -> Iterator[Seed | SourceReject]:
    assert spec.path is not None
    if spec.kind == "jsonl":
        rows = jsonl_rows(spec.path)
    elif spec.kind == "parquet":
        rows = _parquet_rows(spec.path)
    else:
        rows = _hf_rows(spec.path, spec.split)
    resolved: dict[str, str | None] | None = None
    seen: dict[str, str] = {}
    for index, (where, row) in enumerate(rows):
        if limit is not None and index >= limit:
            break
        if resolved is None:
            resolved = fields.resolve(list(row), where)
        raw_id = row.get(resolved["id"]) if resolved["id"] else None
        seed_id = f"{spec.tag}:{raw_id if raw_id is not None else index}"
        if seed_id in seen:
            raise InputError(f"{where}: duplicate id {raw_id!r} (first at {seen[seed_id]})")
        seen[seed_id] = where

        def text(name: str, row: dict[str, Any] = row, columns: dict = resolved) -> str | None:
            column = columns[name]
            value = row.get(column) if column else None
            return value if isinstance(value, str) and value.strip() else None

        instruction, answer = text("instruction"), text("answer")
        if instruction is None:
            yield SourceReject(seed_id, "empty_field", f"{where}: no instruction", spec.text)
            continue
        if resolved["code"] is not None:
            code = text("code")
        else:
            code = code_from_answer(answer) if answer else None
        if code is None:
            yield SourceReject(seed_id, "no_code", f"{where}: no code in the answer", spec.text)
            continue
        yield Seed(
            id=seed_id,
            code=code,
            instruction=instruction,
            seed_answer=answer if answer is not None else f"```python\n{code}\n```",
            entry_point=text("entry_point"),
            source=spec.text,
            meta={"row": where.rsplit(":", 1)[-1]},
        )


# ---------------------------------------------------------------------------------------------
# raw code


@dataclass
class _ModuleNames:
    imports: dict[str, tuple[int, str, str]]  # bound name -> (line, import statement, module)
    others: set[str]  # names bound at module level otherwise (defs, classes, assignments)


def _module_names(tree: ast.Module) -> _ModuleNames:
    imports: dict[str, tuple[int, str, str]] = {}
    others: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                stmt = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
                imports[bound] = (node.lineno, stmt, alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                bound = alias.asname or alias.name
                stmt = f"from {module} import {alias.name}" + (
                    f" as {alias.asname}" if alias.asname else ""
                )
                imports[bound] = (node.lineno, stmt, module)
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    others.add(sub.name)
                elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    others.add(sub.id)
    return _ModuleNames(imports, others - set(imports))


def _free_names(func: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[list[str], list[str]]:
    """(names read but not bound inside `func`, names declared global) in first-use order."""
    bound = {func.name}
    globals_: list[str] = []
    for sub in ast.walk(func):
        if isinstance(sub, ast.arg):
            bound.add(sub.arg)
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store | ast.Del):
            bound.add(sub.id)
        elif isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(sub.name)
        elif isinstance(sub, ast.Import | ast.ImportFrom):
            for alias in sub.names:
                bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            bound.add(sub.name)
        elif isinstance(sub, ast.Global):
            globals_.extend(sub.names)
        elif isinstance(sub, ast.MatchAs | ast.MatchStar) and sub.name:
            bound.add(sub.name)
    free: list[str] = []
    for sub in ast.walk(func):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
            if sub.id not in bound and sub.id not in _BUILTINS and sub.id not in free:
                free.append(sub.id)
    return free, globals_


def _function_seed(
    func: ast.FunctionDef | ast.AsyncFunctionDef,
    lines: list[str],
    names: _ModuleNames,
    seed_id: str,
    spec: SourceSpec,
    rel: str,
) -> Seed | SourceReject:
    free, globals_ = _free_names(func)
    if globals_:
        return SourceReject(seed_id, "uses_global", f"global {', '.join(globals_)}", spec.text)
    needed: list[tuple[int, str]] = []
    for name in free:
        if name in names.imports:
            line, stmt, module = names.imports[name]
            top = module.split(".")[0]
            if module.startswith(".") or top not in _STDLIB:
                return SourceReject(
                    seed_id, "non_stdlib_import", f"{name} comes from {module}", spec.text
                )
            if (line, stmt) not in needed:
                needed.append((line, stmt))
        elif name in names.others:
            return SourceReject(
                seed_id, "uses_module_name", f"reads module-level name {name!r}", spec.text
            )
        else:
            return SourceReject(
                seed_id, "undefined_name", f"reads undefined name {name!r}", spec.text
            )
    first = min([func.lineno] + [d.lineno for d in func.decorator_list])
    body = "\n".join(lines[first - 1 : func.end_lineno]).rstrip()
    header = "\n".join(stmt for _, stmt in sorted(needed))
    code = f"{header}\n\n\n{body}" if header else body
    return Seed(
        id=seed_id,
        code=code,
        instruction=None,
        seed_answer=f"```python\n{code}\n```",
        entry_point=func.name,
        source=spec.text,
        meta={"file": rel, "line": func.lineno},
    )


def _pysrc_candidates(spec: SourceSpec, limit: int | None) -> Iterator[Seed | SourceReject]:
    assert spec.path is not None
    root = spec.path
    files = sorted(
        p
        for p in root.rglob("*.py")
        if p.is_file()
        and not any(
            part.startswith(".") or part == "__pycache__" for part in p.relative_to(root).parts
        )
    )
    count = 0
    for path in files:
        rel = path.relative_to(root).as_posix()
        file_id = f"{spec.tag}:{rel}"
        try:
            source = path.read_bytes().decode("utf-8")
            tree = ast.parse(source)
        except UnicodeDecodeError as err:
            yield SourceReject(file_id, "file_not_utf8", f"{rel}: {err.reason}", spec.text)
            continue
        except (SyntaxError, ValueError) as err:
            detail = f"{rel}:{getattr(err, 'lineno', '?')}: {getattr(err, 'msg', err)}"
            yield SourceReject(file_id, "file_syntax_error", detail, spec.text)
            continue
        names = _module_names(tree)
        lines = source.splitlines()
        used: set[str] = set()
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if limit is not None and count >= limit:
                return
            count += 1
            seed_id = f"{file_id}:{node.name}"
            if seed_id in used:  # a redefinition: name the later one by its line
                seed_id = f"{seed_id}@{node.lineno}"
            used.add(seed_id)
            yield _function_seed(node, lines, names, seed_id, spec, rel)


# ---------------------------------------------------------------------------------------------
# the toy world


def _toy_candidates(n: int, seed: int, world: dict[str, Any] | None) -> Iterator[Seed]:
    from synthesis.toyworld import ToyWorld

    for item in ToyWorld(seed, **(world or {})).generate(n):
        if not item.source:
            item.source = "toy"
        yield item


def iter_candidates(
    spec: SourceSpec,
    fields: FieldMap,
    *,
    limit: int | None = None,
    toy_n: int = 1000,
    seed: int = 0,
    toy_world: dict[str, Any] | None = None,
) -> Iterator[Seed | SourceReject]:
    """Every candidate of one source, in a stable order: seeds and the rejected ones.

    `toy_world`: keyword options of `ToyWorld` (families, ood_families, depth_weights, ...).
    """
    if spec.kind == "toy":
        yield from _toy_candidates(toy_n, seed, toy_world)
    elif spec.kind == "pysrc":
        yield from _pysrc_candidates(spec, limit)
    else:
        yield from _instruction_candidates(spec, fields, limit)
