"""Stage 1 of `diag synth`: sources that yield seeds (or say why a candidate is not one).

    from synthesis.sources import SOURCES, RawCode, parse_source, iter_candidates, iter_units
    spec = parse_source("jsonl:data/alpaca.jsonl")
    for item in iter_candidates(spec, FieldMap.from_flags(["instruction=question"]), limit=100):
        if isinstance(item, SourceReject): ...   # item.id, item.reason, item.detail
        else: ...                                # a synthesis.seeds.Seed
    stack = parse_source("parquet:stack-python.parquet")   # raw code: a `content` column
    seeds = iter_candidates(stack, FieldMap(), raw=RawCode(unit="file", max_chars=4000))
    for unit in iter_units(stack, FieldMap()):      # rows/files, cut only when asked: --shard
        if synthesis.pipeline.shard_of(unit.id, 2) == 0:   # skips the others' parsing
            for item in unit.candidates(): ...

Source specs (`--source`, repeatable):
    jsonl:PATH      rows, one JSON object a line (instruction data or raw code)
    parquet:PATH    rows of a parquet file, streamed by row groups
    hf:DIR[#SPLIT]  a local Hugging Face `datasets` folder (load_from_disk; split of a DatasetDict,
                    default "train")
    pysrc:DIR       self-contained top-level functions of a Python source tree (raw code: the
                    teacher also writes the task)
    toy             the procedural toy world (`--n` seeds, `--seed`)
    NAME:PATH       one of the named seed datasets (SEED_DATASETS: magicoder-oss, evol-code, ...)
                    in its published layout: a .jsonl/.jsonl.gz, .json (array or lines), .parquet
                    file or a save_to_disk folder; the dataset maps its own columns (no --field)

Row fields (`--field NAME=COLUMN`): instruction (the task), answer (the original answer, kept as
`seed_answer`), code (the code the teacher sees; default: the fenced code of the answer, or the
whole answer if it parses as Python), id, entry_point, lang. Unmapped names are looked up among
common column names (see FIELD_CANDIDATES).

Raw code: a row with a code column (`--field code=COLUMN`, or one of RAW_CODE_COLUMNS: content,
code, source) and no instruction column is raw code, as in The Stack (`content`, `lang`,
`max_stars_repo_path`, `max_stars_count`). Its code is cut the way pysrc cuts a file (RawCode.unit
"function": each self-contained top-level function with its stdlib imports; "file": the whole
file up to RawCode.max_chars) and the teacher writes the task too. A row whose lang column is not
RawCode.lang (default python) is a SourceReject `other_lang`, for instruction rows too.

A pysrc/raw function is self-contained when every name it reads is its own (arguments, locals,
nested definitions), a builtin, itself, or bound by a module-level import of a standard-library
module; those imports are copied above it. Every other candidate is a `SourceReject` with the
reason (undefined_name, uses_module_name, non_stdlib_import, uses_global, file_syntax_error,
file_too_long, no_function, other_lang, ...).
"""

from __future__ import annotations

import ast
import builtins
import functools
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumbing import InputError, iter_jsonl
from synthesis.index import KeyIndex, open_index
from synthesis.seeds import Seed

SOURCES = {
    "jsonl": "jsonl:PATH — instruction data or raw code, one JSON object a line",
    "parquet": "parquet:PATH — instruction data or raw code in a parquet file (streamed)",
    "hf": "hf:DIR[#SPLIT] — a local Hugging Face datasets folder (load_from_disk)",
    "pysrc": "pysrc:DIR — self-contained functions extracted from a Python source tree",
    "toy": "toy — the procedural toy world (--n, --seed)",
}
LOGICAL_FIELDS = ("instruction", "answer", "code", "id", "entry_point", "lang")
FIELD_CANDIDATES = {
    "instruction": ("instruction", "prompt", "question", "problem", "query", "task"),
    "answer": ("output", "response", "answer", "completion", "solution"),
    "code": (),  # default: the code inside the answer (rows with an instruction)
    "id": ("id", "task_id"),
    "entry_point": ("entry_point",),
    "lang": ("lang", "language"),
}
# rows without an instruction column: the column that holds raw code (The Stack: content)
RAW_CODE_COLUMNS = ("content", "code", "source")
# row columns copied into a raw-code seed's meta (The Stack's provenance columns)
RAW_META_COLUMNS = (
    "max_stars_repo_name",
    "max_stars_repo_path",
    "max_stars_count",
    "repo_name",
    "path",
    "license",
)
RAW_UNITS = ("function", "file")
# --lang: the languages the pipeline can synthesise (its filter and sandbox run Python), with
# the spellings datasets use in their lang column (The Stack: "Python", Magicoder: "python")
LANG_SPELLINGS = {"python": ("python", "py", "python3", "python 3")}
_FENCED_RE = re.compile(r"```[\w+.-]*[ \t]*\n(.*?)```", re.DOTALL)
_BUILTINS = frozenset(dir(builtins))
_STDLIB = frozenset(sys.stdlib_module_names)


@dataclass
class Unit:
    """One row or file of a source (or one toy item): its id, and what cuts it into candidates
    (called at most once; cheap for instruction rows, an `ast` parse for raw code). --shard
    decides by the unit's id, before cutting."""

    id: str
    candidates: Callable[[], Iterator[Seed | SourceReject]]

    @classmethod
    def of(cls, unit_id: str, *items: Seed | SourceReject) -> Unit:
        """A unit whose candidates are already made."""
        return cls(unit_id, lambda: iter(items))


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
class RawCode:
    """How raw code is cut into candidates, and which language's rows are kept."""

    unit: str = "function"  # "function": self-contained top-level functions; "file": whole files
    max_chars: int = 6000  # unit "file": the longest file taken whole
    lang: str = "python"  # rows whose lang column names another language are rejected

    def check(self) -> None:
        if self.unit not in RAW_UNITS:
            raise InputError(f"--raw-unit {self.unit!r}: expected one of {', '.join(RAW_UNITS)}")
        if self.max_chars < 1:
            raise InputError(f"--raw-max-chars {self.max_chars}: must be >= 1")
        if _canonical_lang(self.lang) is None:
            known = ", ".join(sorted({s for v in LANG_SPELLINGS.values() for s in v}))
            raise InputError(
                f"--lang {self.lang!r}: unknown language (known: {known}; the filter and the "
                "sandbox run Python only)"
            )

    def keeps(self, row_lang: str) -> bool:
        return _canonical_lang(row_lang) == _canonical_lang(self.lang)


def _canonical_lang(value: str) -> str | None:
    folded = value.strip().casefold()
    return next((lang for lang, names in LANG_SPELLINGS.items() if folded in names), None)


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
            # raw code (The Stack's layout): a code column and no instruction
            if resolved["code"] is None:
                resolved["code"] = next((c for c in RAW_CODE_COLUMNS if c in columns), None)
            if resolved["code"] is None:
                raise InputError(
                    f"{where}: no instruction or code field among {', '.join(columns)} "
                    "(map one with --field instruction=COLUMN, or --field code=COLUMN for raw code)"
                )
            return resolved
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
    if (kind == "hf" or kind in SEED_DATASETS) and "#" in rest:
        rest, split = rest.rsplit("#", 1)
    path = Path(rest).expanduser()
    if not path.exists():
        raise InputError(f"--source {text}: {path}: no such file or directory")
    if kind in ("jsonl", "parquet") and path.is_dir():
        raise InputError(f"--source {text}: {path}: is a directory, expected a {kind} file")
    if kind in ("hf", "pysrc") and not path.is_dir():
        raise InputError(f"--source {text}: {path}: expected a directory")
    if kind in SEED_DATASETS and not path.is_dir() and _file_format(path) is None:
        raise InputError(
            f"--source {text}: {path}: expected a .jsonl, .jsonl.gz, .json or .parquet file "
            "or a save_to_disk folder"
        )
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
        # no pre-buffering: pyarrow would otherwise read the column chunks of every row group
        # ahead, so memory grew with the file
        parquet = pq.ParquetFile(path, pre_buffer=False)
    except Exception as err:  # pyarrow raises several types for a non-parquet file
        raise InputError(f"{path}: not a readable parquet file ({err})") from None
    index = 0
    for group in range(parquet.num_row_groups):  # one row group at a time, in batches
        for batch in parquet.iter_batches(batch_size=1024, row_groups=[group]):
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


_JSON_SEPARATORS = re.compile(r"[\s,]*")


def _json_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A .json file: a JSON array of objects (Code Alpaca, Evol-Instruct-Code publish these),
    decoded item by item from 64 KiB reads so the array is never held whole; or JSON lines."""
    decoder = json.JSONDecoder()
    with path.open(encoding="utf-8", errors="strict") as handle:
        buf = handle.read(1 << 16)
        if not buf.lstrip().startswith("["):
            yield from iter_jsonl(path, "--source")
            return
        pos, index = buf.index("[") + 1, 0
        while True:
            pos = _JSON_SEPARATORS.match(buf, pos).end()
            if pos == len(buf):
                more = handle.read(1 << 16)
                if not more:
                    raise InputError(f"{path}: the JSON array is not closed")
                buf, pos = buf[pos:] + more, 0
                continue
            if buf[pos] == "]":
                return
            try:
                obj, pos = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as err:
                more = handle.read(1 << 16)
                if not more:
                    raise InputError(f"{path}: item {index}: invalid JSON ({err.msg})") from None
                buf, pos = buf[pos:] + more, 0  # the item goes on in the next read
                continue
            if not isinstance(obj, dict):
                raise InputError(f"{path}: item {index}: expected a JSON object")
            yield f"{path}:item {index}", obj
            index += 1


def _file_format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, kind in ((".jsonl", "jsonl"), (".jsonl.gz", "jsonl"), (".json", "json"),
                         (".parquet", "parquet")):  # fmt: skip
        if name.endswith(suffix):
            return kind
    return None


def _rows(spec: SourceSpec) -> Iterator[tuple[str, dict[str, Any]]]:
    assert spec.path is not None
    kind = spec.kind
    if kind in SEED_DATASETS:  # a named dataset: the file's own format
        kind = "hf" if spec.path.is_dir() else _file_format(spec.path) or "jsonl"
    if kind == "jsonl":
        return jsonl_rows(spec.path)
    if kind == "json":
        return _json_rows(spec.path)
    if kind == "parquet":
        return _parquet_rows(spec.path)
    return _hf_rows(spec.path, spec.split)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _row_units(
    spec: SourceSpec, fields: FieldMap, limit: int | None, raw: RawCode
) -> Iterator[Unit]:
    """Rows of jsonl/parquet/hf files and named datasets, a unit each: instruction rows become
    one seed each; raw-code rows (a code column, no instruction column) are cut like pysrc files
    when their unit is read. The checks that raise (columns, duplicate ids) run on every row."""
    dataset = SEED_DATASETS.get(spec.kind)
    resolved: dict[str, str | None] | None = None
    # row ids seen (a seed id -> where it was): on disk, it grows with the source
    seen = KeyIndex(open_index(), "row_ids")
    for index, (where, row) in enumerate(_rows(spec)):
        if limit is not None and index >= limit:
            break
        if dataset is not None:
            if index == 0:
                dataset.check_columns(list(row), where)
            values = dataset.fields(row)
            raw_code = False
        else:
            if resolved is None:
                resolved = fields.resolve(list(row), where)
            values = {name: row.get(column) for name, column in resolved.items() if column}
            raw_code = resolved["instruction"] is None
        raw_id = values.get("id")
        seed_id = f"{spec.tag}:{raw_id if raw_id is not None else index}"
        first = seen.add(seed_id, where)
        if first is not None:
            raise InputError(f"{where}: duplicate id {raw_id!r} (first at {first})")
        row_lang = values.get("lang")
        if isinstance(row_lang, str) and not raw.keeps(row_lang):
            detail = f"{where}: lang {row_lang!r} (--lang {raw.lang})"
            yield Unit.of(seed_id, SourceReject(seed_id, "other_lang", detail, spec.text))
            continue
        extra = {k: v for k, v in values.get("meta", {}).items() if v is not None}
        meta = {"row": where.rsplit(":", 1)[-1], **extra}
        if raw_code:
            code = _text(values.get("code"))
            if code is None:
                yield Unit.of(
                    seed_id, SourceReject(seed_id, "empty_field", f"{where}: no code", spec.text)
                )
                continue
            meta.update((c, row[c]) for c in RAW_META_COLUMNS if row.get(c) is not None)
            args = (code, seed_id, where, spec, raw, meta)
            yield Unit(seed_id, functools.partial(_code_candidates, *args, report_empty=True))
            continue
        instruction, answer = _text(values.get("instruction")), _text(values.get("answer"))
        if instruction is None:
            detail = f"{where}: no instruction"
            yield Unit.of(seed_id, SourceReject(seed_id, "empty_field", detail, spec.text))
            continue
        if "code" in values:
            code = _text(values["code"])
        else:
            code = code_from_answer(answer) if answer else None
        if code is None:
            detail = f"{where}: no code in the answer"
            yield Unit.of(seed_id, SourceReject(seed_id, "no_code", detail, spec.text))
            continue
        yield Unit.of(
            seed_id,
            Seed(
                id=seed_id,
                code=code,
                instruction=instruction,
                seed_answer=answer if answer is not None else f"```python\n{code}\n```",
                entry_point=_text(values.get("entry_point")),
                source=spec.text,
                meta=meta,
            ),
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
    meta: dict[str, Any],
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
        meta={**meta, "line": func.lineno},
    )


def _code_candidates(
    source: str,
    file_id: str,
    where: str,
    spec: SourceSpec,
    raw: RawCode,
    meta: dict[str, Any],
    *,
    report_empty: bool = False,
) -> Iterator[Seed | SourceReject]:
    """The candidates of one file of code (a pysrc file or a raw-code row): its self-contained
    top-level functions (ids FILE_ID:NAME), or the whole file (id FILE_ID) under unit "file".
    A file that does not parse is one SourceReject; so is, with `report_empty`, a file without
    a top-level function (a row must end somewhere; a pysrc tree has many such modules)."""
    if raw.unit == "file" and len(source) > raw.max_chars:
        detail = f"{where}: {len(source)} chars > --raw-max-chars {raw.max_chars}"
        yield SourceReject(file_id, "file_too_long", detail, spec.text)
        return
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as err:
        detail = f"{where}:{getattr(err, 'lineno', '?')}: {getattr(err, 'msg', err)}"
        yield SourceReject(file_id, "file_syntax_error", detail, spec.text)
        return
    if raw.unit == "file":
        code = source.strip("\n")
        yield Seed(id=file_id, code=code, instruction=None,
                   seed_answer=f"```python\n{code}\n```", source=spec.text, meta=dict(meta))  # fmt: skip
        return
    names = _module_names(tree)
    lines = source.splitlines()
    used: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        seed_id = f"{file_id}:{node.name}"
        if seed_id in used:  # a redefinition: name the later one by its line
            seed_id = f"{seed_id}@{node.lineno}"
        used.add(seed_id)
        yield _function_seed(node, lines, names, seed_id, spec, meta)
    if report_empty and not used:
        detail = f"{where}: no top-level function (--raw-unit file takes whole files)"
        yield SourceReject(file_id, "no_function", detail, spec.text)


def _pysrc_file(
    path: Path, file_id: str, rel: str, spec: SourceSpec, raw: RawCode
) -> Iterator[Seed | SourceReject]:
    try:
        source = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        yield SourceReject(file_id, "file_not_utf8", f"{rel}: {err.reason}", spec.text)
        return
    yield from _code_candidates(source, file_id, rel, spec, raw, {"file": rel})


def _pysrc_units(spec: SourceSpec, limit: int | None, raw: RawCode) -> Iterator[Unit]:
    """A unit per .py file, read and cut when asked. With `limit` (functions, or files under
    --raw-unit file, not unreadable files) every file up to the limit is cut to count."""
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
        cut = functools.partial(_pysrc_file, path, file_id, rel, spec, raw)
        if limit is None:
            yield Unit(file_id, cut)
            continue
        items: list[Seed | SourceReject] = []
        full = False  # the first counted candidate past the limit ends the source
        for item in cut():
            counted = item.id != file_id or raw.unit == "file"
            if counted and count >= limit:
                full = True
                break
            count += counted
            items.append(item)
        if items:
            yield Unit.of(file_id, *items)
        if full:
            return


# ---------------------------------------------------------------------------------------------
# named seed datasets
#
# The instruction sets the paper seeds from, by name, each in its PUBLISHED column layout (so a
# downloaded file needs no --field). Column names were confirmed against the datasets' own
# dataset_info feature lists on the Hugging Face Hub (read through this project's documentation
# search, 2025): magicoder-oss (lang, raw_index, index, seed, openai_fingerprint, problem,
# solution), self-oss-instruct (fingerprint, sha1, seed, response, concepts, prompt,
# instruction, id), commitpackft (commit, old_file, new_file, old_contents, new_contents,
# subject, message, lang, license, repos), code-alpaca (instruction, input, output). For
# evol-code (Magicoder-Evol-Instruct-110K: instruction, response; its source
# evol-codealpaca-v1: instruction, output) and evol-instruct-code (Evol-Instruct-Code-80k-v1:
# instruction, output) the search confirmed the published files (.jsonl / a .json array) but
# not the column list: those come from the dataset cards as we know them, and a file that
# lacks them is refused on its first row with the columns it has.


@dataclass(frozen=True)
class SeedDataset:
    name: str
    hub_id: str  # where it is published
    files: str  # the published file(s)
    columns: tuple[str | tuple[str, ...], ...]  # required columns (a tuple: any one of them)
    fields: Callable[[dict[str, Any]], dict[str, Any]]  # row -> logical fields (+ "meta")
    summary: str

    def check_columns(self, columns: list[str], where: str) -> None:
        for need in self.columns:
            options = need if isinstance(need, tuple) else (need,)
            if not any(c in columns for c in options):
                raise InputError(
                    f"{where}: {self.name} expects column {' or '.join(options)} "
                    f"({self.hub_id}'s layout); the row has {', '.join(columns)}"
                )


SEED_DATASETS: dict[str, SeedDataset] = {}


def seed_dataset(
    name: str, hub_id: str, files: str, columns: tuple[str | tuple[str, ...], ...]
) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Callable]:
    """Register a named dataset (`--source NAME:PATH`); the function maps one row to the
    logical fields (instruction, answer or code, lang, meta) and does the dataset's cleaning."""

    def register(func: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable:
        summary = (func.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ").rstrip(".")
        SEED_DATASETS[name] = SeedDataset(name, hub_id, files, columns, func, summary)
        SOURCES[name] = f"{name}:PATH — {hub_id} ({files}): {summary}"
        return func

    return register


def _first(row: dict[str, Any], *columns: str) -> Any:
    return next((row[c] for c in columns if row.get(c) is not None), None)


@seed_dataset(
    "magicoder-oss",
    "ise-uiuc/Magicoder-OSS-Instruct-75K",
    "data-oss_instruct-decontaminated.jsonl",
    ("problem", "solution", "lang"),
)
def _magicoder_oss(row: dict[str, Any]) -> dict[str, Any]:
    """problem -> instruction, solution -> answer; rows of another lang rejected (other_lang)."""
    return {"instruction": row["problem"], "answer": row["solution"], "lang": row["lang"],
            "meta": {"dataset_index": row.get("index")}}  # fmt: skip


@seed_dataset(
    "evol-code",
    "ise-uiuc/Magicoder-Evol-Instruct-110K",
    "data-evol_instruct-decontaminated.jsonl",
    ("instruction", ("response", "output")),
)
def _evol_code(row: dict[str, Any]) -> dict[str, Any]:
    """instruction -> instruction, response (or evol-codealpaca-v1's output) -> answer; answers
    without Python code rejected (no_code)."""
    return {"instruction": row["instruction"], "answer": _first(row, "response", "output")}


@seed_dataset(
    "evol-instruct-code",
    "nickrosh/Evol-Instruct-Code-80k-v1",
    "EvolInstruct-Code-80k.json, a JSON array",
    ("instruction", "output"),
)
def _evol_instruct_code(row: dict[str, Any]) -> dict[str, Any]:
    """instruction -> instruction, output -> answer; answers without Python code rejected."""
    return {"instruction": row["instruction"], "answer": row["output"]}


@seed_dataset(
    "code-alpaca",
    "sahil2801/CodeAlpaca-20k",
    "code_alpaca_20k.json, a JSON array",
    ("instruction", "input", "output"),
)
def _code_alpaca(row: dict[str, Any]) -> dict[str, Any]:
    """instruction + its input (appended as "Input:" when not empty) -> instruction, output ->
    answer (bare code, taken when it parses as Python)."""
    instruction, extra = row["instruction"], _text(row.get("input"))
    if isinstance(instruction, str) and extra is not None:
        instruction = f"{instruction.rstrip()}\n\nInput:\n{extra.strip()}"
    return {"instruction": instruction, "answer": row["output"]}


@seed_dataset(
    "commitpackft",
    "bigcode/commitpackft",
    "data/python/data.jsonl",
    ("old_contents", "new_contents", "message", "lang"),
)
def _commitpackft(row: dict[str, Any]) -> dict[str, Any]:
    """message (the commit's request) with old_contents shown -> instruction, new_contents ->
    code; rows of another lang rejected (other_lang)."""
    message, old = (
        _text(row.get("message")) or _text(row.get("subject")),
        _text(row["old_contents"]),
    )
    instruction = message
    if message is not None and old is not None:
        instruction = (
            f"{message.strip()}\n\nChange this code accordingly:\n```python\n{old.rstrip()}\n```"
        )
    return {"instruction": instruction, "code": row["new_contents"], "lang": row["lang"],
            "meta": {"file": row.get("new_file"), "commit": row.get("commit")}}  # fmt: skip


@seed_dataset(
    "self-oss-instruct",
    "bigcode/self-oss-instruct-sc2-exec-filter-50k",
    "data/train-00000-of-00001.parquet",
    ("instruction", "response"),
)
def _self_oss_instruct(row: dict[str, Any]) -> dict[str, Any]:
    """instruction -> instruction, response -> answer (its fenced code); the dataset's id kept
    in meta."""
    return {"instruction": row["instruction"], "answer": row["response"],
            "meta": {"dataset_id": row.get("id")}}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# the toy world


def _toy_units(n: int, seed: int, world: dict[str, Any] | None) -> Iterator[Unit]:
    from synthesis.toyworld import ToyWorld

    for item in ToyWorld(seed, **(world or {})).generate(n):
        if not item.source:
            item.source = "toy"
        yield Unit.of(item.id, item)


def iter_units(
    spec: SourceSpec,
    fields: FieldMap,
    *,
    limit: int | None = None,
    toy_n: int = 1000,
    seed: int = 0,
    toy_world: dict[str, Any] | None = None,
    raw: RawCode | None = None,
) -> Iterator[Unit]:
    """The units of one source (rows, files, toy items) in a stable order; a unit's
    candidates are cut only when `unit.candidates()` is called, so a --shard run skips the
    parsing of other shards' rows.

    `limit`: rows (pysrc: functions, or files under --raw-unit file); `toy_n`, `seed`: the toy
    world's size and seed; `toy_world`: keyword options of `ToyWorld` (families, ood_families,
    depth_weights, ...); `raw`: how raw code (pysrc files, rows without an instruction) is cut,
    and the --lang kept.
    """
    raw = raw or RawCode()
    raw.check()
    if spec.kind == "toy":
        yield from _toy_units(toy_n, seed, toy_world)
    elif spec.kind == "pysrc":
        yield from _pysrc_units(spec, limit, raw)
    else:
        yield from _row_units(spec, fields, limit, raw)


def iter_candidates(
    spec: SourceSpec, fields: FieldMap, **options: Any
) -> Iterator[Seed | SourceReject]:
    """Every candidate of one source, in a stable order: seeds and the rejected ones (the
    units of iter_units, each cut; the same keyword options)."""
    for unit in iter_units(spec, fields, **options):
        yield from unit.candidates()
