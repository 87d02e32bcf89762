"""The Triple: one training/evaluation example, one JSON object a line in `triples.jsonl`.

Fields (docs/DESIGN.md, "Data model"):
    id           unique string
    problem      natural-language task (the prompt)
    cot          the [Analysis] text: reasoning about the task ("" only where no format needs it)
    code         the [Solution]: self-contained Python
    tests        list of assert statements (each one a complete statement)
    entry_point  the function the tests call, if any
    seed_answer  the source's original answer, rendered by the `seed` format
    source       where the seed came from ("toy", "jsonl:...", "pysrc:...")
    meta         free dict: family, difficulty, split (train/val/test/ood), teacher, verdicts, ...

Every line is validated on read. A bad line is reported with its file and line number and the
load fails; with `skip_bad=True` bad lines are counted and reported in the returned `LoadReport`,
never silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from plumbing import InputError, atomic_path, iter_jsonl

SPLITS = ("train", "val", "test", "ood")


@dataclass
class Triple:
    id: str
    problem: str
    cot: str
    code: str
    tests: list[str]
    entry_point: str | None = None
    seed_answer: str | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def split(self) -> str | None:
        return self.meta.get("split")

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


_REQUIRED_STR = ("id", "problem", "cot", "code")
_OPTIONAL_STR = ("entry_point", "seed_answer")
_KNOWN = {"id", "problem", "cot", "code", "tests", "entry_point", "seed_answer", "source", "meta"}


def triple_from_dict(obj: Any, where: str) -> Triple:
    """Validate one decoded JSON value; `where` ("file:line") prefixes every error."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - _KNOWN)
    if unknown:
        raise InputError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    for name in _REQUIRED_STR:
        if name not in obj:
            raise InputError(f"{where}: missing field '{name}'")
        if not isinstance(obj[name], str):
            raise InputError(
                f"{where}: field '{name}': expected a string, got {type(obj[name]).__name__}"
            )
    for name in ("id", "problem", "code"):
        if not obj[name].strip():
            raise InputError(f"{where}: field '{name}' is empty")
    for name in _OPTIONAL_STR:
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            raise InputError(
                f"{where}: field '{name}': expected a string or null, got {type(value).__name__}"
            )
    tests = obj.get("tests", [])
    if isinstance(tests, str):
        tests = [tests]
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise InputError(f"{where}: field 'tests': expected a list of strings")
    source = obj.get("source", "")
    if not isinstance(source, str):
        raise InputError(f"{where}: field 'source': expected a string")
    meta = obj.get("meta", {}) or {}
    if not isinstance(meta, dict):
        raise InputError(f"{where}: field 'meta': expected an object, got {type(meta).__name__}")
    split = meta.get("split")
    if split is not None and split not in SPLITS:
        raise InputError(
            f"{where}: field 'meta.split': {split!r} is not one of {', '.join(SPLITS)}"
        )
    return Triple(
        id=obj["id"],
        problem=obj["problem"],
        cot=obj["cot"],
        code=obj["code"],
        tests=list(tests),
        entry_point=obj.get("entry_point"),
        seed_answer=obj.get("seed_answer"),
        source=source,
        meta=meta,
    )


@dataclass
class LoadReport:
    path: str
    n_loaded: int = 0
    bad: list[str] = field(default_factory=list)  # "file:line: reason", only with skip_bad

    def summary(self) -> str:
        text = f"{self.path}: {self.n_loaded} triples"
        if self.bad:
            text += f", {len(self.bad)} bad line(s) skipped (first: {self.bad[0]})"
        return text


def iter_triples(
    path: str | Path, *, skip_bad: bool = False, report: LoadReport | None = None
) -> Iterator[Triple]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such triples file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a triples .jsonl file")
    report = report if report is not None else LoadReport(str(path))
    on_error = (lambda err: report.bad.append(str(err))) if skip_bad else None
    seen: dict[str, str] = {}
    for where, obj in iter_jsonl(path, "triples file", on_error=on_error):
        try:
            triple = triple_from_dict(obj, where)
            if triple.id in seen:
                raise InputError(
                    f"{where}: duplicate id {triple.id!r} (first at {seen[triple.id]})"
                )
            seen[triple.id] = where
        except InputError as err:
            if not skip_bad:
                raise
            report.bad.append(str(err))
            continue
        report.n_loaded += 1
        yield triple


def load_triples(
    path: str | Path,
    *,
    split: str | Iterable[str] | None = None,
    skip_bad: bool = False,
    max_examples: int | None = None,
) -> tuple[list[Triple], LoadReport]:
    """Load and validate a triples file; optionally keep only some splits (meta.split)."""
    report = LoadReport(str(path))
    triples = list(iter_triples(path, skip_bad=skip_bad, report=report))
    if split is not None:
        wanted = {split} if isinstance(split, str) else set(split)
        bad = wanted - set(SPLITS)
        if bad:
            raise InputError(f"--split: {', '.join(sorted(bad))} is not one of {', '.join(SPLITS)}")
        triples = [t for t in triples if t.split in wanted]
    if max_examples is not None:
        triples = triples[:max_examples]
    return triples, report


def write_triples(path: str | Path, triples: Iterable[Triple]) -> Path:
    """Write a whole triples file atomically (temp file, then rename)."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for triple in triples:
            handle.write(triple.to_json() + "\n")
    return Path(path)
