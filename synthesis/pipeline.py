"""`diag synth`: sources -> filter -> dedup/decontam -> teacher -> parser -> sandbox -> triples.

    from synthesis.pipeline import SynthConfig, main
    stats = main(SynthConfig(sources=["toy"], n=2000, out="runs/toy"))
    stats = main(SynthConfig(sources=["pysrc:src/"], teacher="openai:http://127.0.0.1:8000/v1#m",
                             out="runs/raw", workers=16))
    stats = main(SynthConfig(sources=["parquet:stack-python.parquet"], fields=["code=content"],
                             raw_unit="file", teacher=..., out="runs/stack"))   # raw code rows

Stages, in order (each seed ends in exactly one place: `triples.jsonl` or `rejected.jsonl`):
    source   a candidate row/function that is not a seed (empty field, not self-contained, ...)
    filter   synthesis.filters.check_code (syntax, size, banned imports/calls, file writes)
    dedup    exact and MinHash near duplicates; decontamination against HumanEval and --decontam
    teacher  no answer after bounded retries, or the server refused the request
    parse    synthesis.parser.parse_response (sections, code blocks, asserts, truncation)
    sandbox  solution + tests did not pass in the sandbox (sentinel verdict)

The run folder holds:
    triples.jsonl    kept triples (synthesis.schema.Triple; meta.split in train/val/test/ood)
    rejected.jsonl   {id, stage, reason, detail, source, response_key?}
    responses.jsonl  the teacher's answers, cached by prompt hash (flushed one by one)
    stats.json       per stage: in, out, rejected, keep_rate, reasons; totals and throughput
    run_config.json  what identifies the run (sources, fields, n, seed, teacher, prompts, shard)
    candidates.jsonl --shard runs only: {id, pos, code?} per candidate of the shard, `pos` the
                     place of its unit (row, file, toy item) in the whole source stream (the
                     candidates of a unit share it, in order), `code` the seed code when it
                     reached the dedup stage (what `--merge` dedups across shards)
    manifest.json    written last (plumbing.Manifest; `teacher`: the teacher's name)
    .front.sqlite    scratch while the run works: stages 1-3's indexes (ids seen, exact and
                     MinHash LSH dedup keys, candidate order, seeds that passed; synthesis.index),
                     so memory stays flat with the source's size; removed when the run finishes

Sharding: `--shard I/N` keeps the units (rows, files, toy items: synthesis.sources.iter_units)
whose id hashes to I mod N (shard_of), decided as each unit leaves the source, before it is cut
into candidates (a raw-code row's parse) and before any filter or teacher work, so N runs
(processes or machines) over the same sources synthesise disjoint parts, each parsing only its
own rows. An instruction row or toy item is one candidate, its unit id its candidate id.
A shard removes only exact duplicates within itself (near duplication is not transitive: a seed
dropped for a shard-mate that another shard's seed drops would be lost); `--merge DIR ... --out
OUT` (synthesis.merge) joins the finished shards and redoes exact and near-duplicate removal over
all of them in source order, so the merged folder is the unsharded run's.

Memory: what grows with the source lives on disk (synthesis.index; .front.sqlite above): the
front stages stream the source (parquet by row batches) and keep ids, dedup keys and the
seeds that passed in sqlite; the teacher is asked TEACHER_CHUNK seeds at a time, earlier answers
found through an index of responses.jsonl; stats and the final seed-order rewrite go through
sqlite too, and so does the set of ids finished (kept or rejected) that resuming skips;
--merge (synthesis.merge) keeps the shards' candidates and outcomes in sqlite as well.

Resuming: a rerun over an unfinished folder (or `--resume` over a finished one) repairs a
half-written last line of each jsonl file, skips every seed already kept or rejected, answers
from responses.jsonl whatever was asked before, and retries seeds whose teacher request failed
for a transient reason. Stages 1-3 are recomputed (they are deterministic and cheap), so the
dedup decisions of a resumed run equal those of an uninterrupted one. When the run finishes,
triples.jsonl and rejected.jsonl are rewritten in seed order, so the files do not depend on the
order answers arrived in.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import queue
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from plumbing import (
    InputError,
    Manifest,
    atomic_path,
    atomic_write_json,
    prepare_out_dir,
    require_file,
)
from synthesis.dedup import Decontaminator, Deduplicator, load_benchmark_texts
from synthesis.filters import FilterConfig, Rejection, check_code
from synthesis.index import IdOrder, IdSet, IdSpool, KeyIndex, SeedSpool, open_index
from synthesis.parser import ParsedResponse, parse_response
from synthesis.schema import SPLITS, Triple
from synthesis.seeds import Seed
from synthesis.sources import (
    FieldMap,
    RawCode,
    SourceReject,
    iter_units,
    parse_source,
)
from synthesis.teacher import TeacherConfig, TeacherReply, TeacherRequest, make_teacher

STAGES = ("source", "filter", "dedup", "teacher", "parse", "sandbox")
KEPT = "kept"
TRIPLES, REJECTED, RESPONSES = "triples.jsonl", "rejected.jsonl", "responses.jsonl"
STATS, RUN_CONFIG, CANDIDATES = "stats.json", "run_config.json", "candidates.jsonl"
# seeds asked of the teacher per teacher.run call: the prompts held in memory at once
TEACHER_CHUNK = 4096
FRONT_INDEX = ".front.sqlite"  # the front stages' on-disk indexes (synthesis.index), scratch
# Placeholders a prompt template may use; every template needs {code} (the paper's code-snippet
# prompt has only {code}); {instruction} is the seed's task (empty for raw code).
PLACEHOLDERS = ("{instruction}", "{code}")
_PLACEHOLDER_RE = re.compile(r"\{(instruction|code)\}")
# What identifies a run: resuming with any of these changed is refused.
_IDENTITY = (
    "sources", "fields", "n", "seed", "toy_world", "split_ratios", "teacher", "prompts", "raw",
    "shard",
)  # fmt: skip
# a run_config.json written before a key existed holds that key's default
_IDENTITY_DEFAULTS = {"raw": {"unit": "function", "max_chars": 6000, "lang": "python"}}


@dataclass
class SynthConfig:
    sources: list[str] = field(
        default_factory=lambda: ["toy"], metadata={"help": "Repeatable.", "flag": "--source"}
    )
    out: str = "synth_out"
    n: int | None = field(
        default=None, metadata={"help": "toy: seeds to generate (1000); others: rows to read."}
    )
    seed: int = field(default=0, metadata={"help": "Seed (toy world, split hash)."})
    # ToyWorld options (families, ...): the CLI's --toy-* options
    toy_world: dict[str, Any] = field(default_factory=dict, metadata={"cli": False})
    fields: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Repeatable NAME=COLUMN: instruction, answer, code, id, entry_point.",
            "flag": "--field",
        },
    )
    teacher: list[str] = field(
        default_factory=lambda: ["toy"],
        metadata={
            "help": "Teacher; repeatable for a pool of openai: servers of one model (requests "
            "shared round-robin, a failed request retried on the next server):"
        },
    )
    prompt_file: str | None = field(
        default=None,
        metadata={
            "help": "Template for seeds with an instruction ({code}, and {instruction} where "
            "used). A template with {code} only (the paper's code-snippet prompt) also serves "
            "raw code unless --task-prompt-file is given."
        },
    )
    task_prompt_file: str | None = field(
        default=None,
        metadata={
            "help": "Template for raw code (pysrc, rows without an instruction), asking for "
            "[Task] too ({code}); wins over --prompt-file for raw code."
        },
    )
    raw_unit: str = field(
        default="function",
        metadata={
            "help": "Raw code (pysrc, rows with only code): cut into self-contained top-level "
            "functions with their stdlib imports (function) or taken as whole files (file)."
        },
    )
    raw_max_chars: int = field(
        default=6000,
        metadata={"help": "--raw-unit file: longest file taken whole (longer: file_too_long)."},
    )
    lang: str = field(
        default="python",
        metadata={"help": "Rows whose lang column names another language are rejected."},
    )
    # the CLI fills these two from its teacher and filter options
    teacher_cfg: TeacherConfig = field(default_factory=TeacherConfig, metadata={"cli": False})
    filters: FilterConfig = field(default_factory=FilterConfig, metadata={"cli": False})
    dedup: bool = field(default=True, metadata={"help": "Exact and near-duplicate removal."})
    near_dup_threshold: float | None = field(
        default=0.85, metadata={"help": "MinHash Jaccard threshold (0: exact dedup only)."}
    )
    decontam: list[str] = field(
        default_factory=lambda: ["humaneval"],
        metadata={"help": "Repeatable benchmark jsonl (prompt/canonical_solution/code/text)."},
    )
    decontam_ngram: int = field(default=10, metadata={"help": "Token n-gram size."})
    decontam_threshold: float = field(
        default=0.5,
        metadata={"help": "Share of a seed's n-grams found in a benchmark item."},
    )
    min_asserts: int = field(default=10, metadata={"help": "Asserts that call the entry point."})
    sandbox_workers: int | None = field(
        default=None, metadata={"help": "Parallel sandbox processes (default: CPU count)."}
    )
    sandbox_timeout_s: float = field(
        default=10.0, metadata={"help": "Seconds per program.", "flag": "--sandbox-timeout"}
    )
    # the sandbox's fork server (sandbox/__init__.py): every answer's process forked from one
    # pristine interpreter per batch, same isolation and limits; with a fast teacher (the toy
    # world) the filter is the bottleneck and this halves synthesis (6,000 toy seeds: 88 s ->
    # 46 s, the same triples and rejections byte for byte; 2026-12-04, 2 busy cores)
    fresh_interpreter: bool = field(
        default=False,
        metadata={"help": "Start a fresh interpreter per answer instead of the fork server."},
    )
    # parsed answers per run_programs call (each call starts a pool)
    sandbox_batch: int = field(default=512, metadata={"help": "Answers per sandbox call."})
    split_ratios: tuple[float, float, float] = field(
        default=(0.9, 0.05, 0.05), metadata={"help": "train,val,test by id hash."}
    )
    overwrite: bool = False
    resume: bool = field(
        default=False, metadata={"help": "Continue a run in --out (even finished)."}
    )
    progress: bool = True
    shard: str | None = field(
        default=None,
        metadata={
            "help": "I/N: synthesise only the rows/files whose id hashes to I of N (0 <= I < N; "
            "decided before a row is parsed), so N runs make disjoint parts; join them with "
            "--merge."
        },
    )
    merge: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Repeatable: a finished --shard run folder; joins shards 0..N-1 into --out "
            "(ids unique, dedup across shards, stats summed; no --source needed, the rest "
            "comes from the shards)."
        },
    )


# ---------------------------------------------------------------------------------------------
# prompts


@dataclass
class Prompts:
    instruction: str  # for seeds with an instruction: placeholders {instruction} and {code}
    task: str  # for raw code: placeholder {code}; asks for a [Task] section too

    def render(self, seed: Seed) -> str:
        template = self.task if seed.instruction is None else self.instruction
        values = {"instruction": seed.instruction or "", "code": seed.code}
        return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)


def _bundled(name: str) -> str:
    return resources.files("synthesis").joinpath("prompts", name).read_text("utf-8")


def _read_template(path: str, flag: str) -> str:
    require_file(path, flag)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{flag} {path}: not valid UTF-8 ({err.reason})") from None
    if not any(p in text for p in PLACEHOLDERS):
        raise InputError(
            f"{flag} {path}: no known placeholder (a template uses {{code}}, and {{instruction}} "
            "for seeds with a task)"
        )
    if "{code}" not in text:
        raise InputError(
            f"{flag} {path}: missing placeholder(s) {{code}} (the teacher must see the code)"
        )
    return text


def load_prompts(cfg: SynthConfig) -> Prompts:
    """The two templates. Raw code takes --task-prompt-file when given, else a --prompt-file
    that has {code} but no {instruction} (a code-snippet prompt, used as written), else the
    bundled teacher_task.txt; seeds with an instruction take --prompt-file or teacher.txt."""
    given = _read_template(cfg.prompt_file, "--prompt-file") if cfg.prompt_file else None
    if cfg.task_prompt_file:
        task = _read_template(cfg.task_prompt_file, "--task-prompt-file")
    elif given is not None and "{instruction}" not in given:
        task = given
    else:
        task = _bundled("teacher_task.txt")
    return Prompts(instruction=given or _bundled("teacher.txt"), task=task)


# ---------------------------------------------------------------------------------------------
# append-only logs


def repair_tail(path: Path) -> int:
    """Drop a half-written tail of an append-only jsonl file (truncated in place); returns the
    number of lines dropped (0 or 1). Read line by line, never whole.

    A kill -9 can leave the last line without its newline or cut mid-JSON; such a line is
    removed. A line that is not JSON with complete lines after it is an InputError.
    """
    if not path.exists():
        return 0
    good_end, corrupt = 0, None  # corrupt: the number of a line that is not JSON
    with path.open("rb") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):  # an unfinished last line
                break
            if corrupt is not None:
                raise InputError(f"{path}: line {corrupt} is corrupt (not JSON)")
            try:
                if line.strip():
                    json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                corrupt = lineno
                continue
            good_end += len(line)
        size = handle.seek(0, os.SEEK_END)
    if good_end == size:
        return 0
    with path.open("r+b") as handle:
        handle.truncate(good_end)
    return 1


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a jsonl log (repaired with repair_tail first), one at a time."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def repair_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Records of an append-only jsonl file, dropping a half-written tail (repair_tail)."""
    dropped = repair_tail(path)
    return list(iter_records(path)), dropped


class JsonlLog:
    """An append-only jsonl file: one os.write per record, so each line lands whole or not."""

    def __init__(self, path: Path):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict[str, Any]) -> None:
        self.append_line(json.dumps(record, ensure_ascii=False))

    def append_line(self, line: str) -> None:
        os.write(self._fd, (line + "\n").encode("utf-8"))

    def close(self) -> None:
        os.close(self._fd)


def _rewrite_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------
# helpers


def split_of(seed: Seed, salt: int, ratios: tuple[float, float, float]) -> str:
    """The seed's own split if its source decided one, else train/val/test by a stable hash."""
    given = seed.meta.get("split")
    if given in SPLITS:
        return given
    digest = hashlib.sha256(f"{salt}:{seed.id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    train, val, _ = ratios
    return "train" if u < train else "val" if u < train + val else "test"


def parse_shard(text: str) -> tuple[int, int]:
    """(I, N) of an --shard "I/N" with 0 <= I < N; anything else is an InputError."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    index, count = (int(match[1]), int(match[2])) if match else (-1, 0)
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/2")
    return index, count


def shard_of(seed_id: str, count: int) -> int:
    """The shard (of `count`) a candidate id belongs to: a stable hash, independent of the order
    or number of candidates, so equal ids from any source land in the same shard."""
    digest = hashlib.sha256(f"shard:{seed_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def shard_identity(cfg: SynthConfig) -> dict[str, Any] | None:
    """What a shard run records of its shard: I, N, the dedup settings --merge redoes, and
    that shards are cut by unit (rows, files; `pos` numbers units), so shards of runs made
    before, by candidate, are never merged with these."""
    if cfg.shard is None:
        return None
    index, count = parse_shard(cfg.shard)
    near = cfg.near_dup_threshold if cfg.dedup else None
    return {"index": index, "count": count, "by": "unit", "dedup": cfg.dedup,
            "near_dup_threshold": near}  # fmt: skip


def _reject(seed_id: str, stage: str, rej: Rejection, source: str, **extra: Any) -> dict[str, Any]:
    return {"id": seed_id, "stage": stage, "reason": rej.reason, "detail": rej.detail,
            "source": source, **extra}  # fmt: skip


def _sandbox_config(cfg: SynthConfig) -> Any:
    from sandbox import SandboxConfig

    return SandboxConfig(timeout_s=cfg.sandbox_timeout_s, fork_server=not cfg.fresh_interpreter)


def _identity(cfg: SynthConfig, prompts: Prompts, teacher_id: str) -> dict[str, Any]:
    def digest(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    return {
        "sources": list(cfg.sources),
        "fields": sorted(cfg.fields),
        "n": cfg.n,
        "seed": cfg.seed,
        "toy_world": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.toy_world.items()},
        "split_ratios": list(cfg.split_ratios),
        "teacher": teacher_id,  # model and settings, not the URL: a moved server is the same
        "prompts": {"instruction": digest(prompts.instruction), "task": digest(prompts.task)},
        "raw": {"unit": cfg.raw_unit, "max_chars": cfg.raw_max_chars, "lang": cfg.lang},
        "shard": shard_identity(cfg),
    }


def _check_config(cfg: SynthConfig) -> None:
    if not cfg.sources:
        raise InputError("--source: give at least one source")
    if cfg.n is not None and cfg.n < 1:
        raise InputError(f"--n {cfg.n}: must be >= 1")
    if len(cfg.split_ratios) != 3 or abs(sum(cfg.split_ratios) - 1.0) > 1e-6:
        raise InputError(f"--split-ratios {cfg.split_ratios}: three fractions summing to 1")
    if cfg.min_asserts < 1:
        raise InputError(f"--min-asserts {cfg.min_asserts}: must be >= 1")
    if cfg.sandbox_batch < 1:
        raise InputError(f"--sandbox-batch {cfg.sandbox_batch}: must be >= 1")
    raw_code(cfg).check()
    if cfg.dedup:  # a shard run dedups exact copies only, but its --merge uses the threshold
        Deduplicator.check_threshold(cfg.near_dup_threshold)
    if cfg.shard is not None:
        parse_shard(cfg.shard)


def raw_code(cfg: SynthConfig) -> RawCode:
    """How the run cuts raw code and which --lang it keeps."""
    return RawCode(unit=cfg.raw_unit, max_chars=cfg.raw_max_chars, lang=cfg.lang)


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class _Candidate:
    seed: Seed
    parsed: ParsedResponse
    key: str


class _Run:
    """The open logs of one attempt; the teacher loop and the sandbox thread both record here."""

    def __init__(self, cfg: SynthConfig, out: Path, finished: IdSet | None = None, bar: Any = None):
        self.cfg = cfg
        self.out = out
        self.triples = JsonlLog(out / TRIPLES)
        self.rejected = JsonlLog(out / REJECTED)
        self.responses = JsonlLog(out / RESPONSES)
        # ids kept or rejected (in earlier attempts too): on disk, as they grow with the source
        self.finished = finished if finished is not None else IdSet()
        self.counts: Counter[str] = Counter()
        self.bar = bar  # a tqdm bar, advanced once per seed that ends in this attempt
        self._lock = threading.Lock()

    def close(self) -> None:
        for log in (self.triples, self.rejected, self.responses):
            log.close()

    def _ended(self, seed_id: str, count: str, advance: bool) -> None:
        self.finished.add(seed_id)
        self.counts[count] += 1
        if advance and self.bar is not None:
            self.bar.update(1)

    def reject(self, record: dict[str, Any], advance: bool = True) -> None:
        with self._lock:
            self.rejected.append(record)
            self._ended(record["id"], f"rejected_{record['stage']}", advance)

    def keep(self, triple: Triple) -> None:
        with self._lock:
            self.triples.append_line(triple.to_json())
            self._ended(triple.id, "kept", True)


class _SandboxStage:
    """Runs batches of parsed answers in the sandbox on a background thread, so the teacher
    keeps answering meanwhile. At most `depth` batches wait; `close()` drains and re-raises."""

    def __init__(self, run: _Run, cfg: SynthConfig, teacher_name: str, depth: int = 2):
        self.run, self.cfg, self.teacher_name = run, cfg, teacher_name
        self._queue: queue.Queue[list[_Candidate] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="sandbox", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._error is None:
                try:
                    self._check(batch)
                except BaseException as err:  # re-raised in the main thread
                    self._error = err

    def _check(self, batch: list[_Candidate]) -> None:
        from sandbox import Program, run_programs

        programs = [Program(c.seed.id, c.parsed.code, c.parsed.tests) for c in batch]
        verdicts = run_programs(
            programs, _sandbox_config(self.cfg), workers=self.cfg.sandbox_workers
        )
        for cand, verdict in zip(batch, verdicts):
            if verdict.status == "passed":
                self.run.keep(_to_triple(cand, self.cfg, self.teacher_name))
            else:
                rej = Rejection(verdict.status, (verdict.detail or "")[:300])
                record = _reject(cand.seed.id, "sandbox", rej, cand.seed.source)
                self.run.reject({**record, "response_key": cand.key})

    def submit(self, batch: list[_Candidate]) -> None:
        if self._error is not None:
            raise self._error
        if batch:
            self._queue.put(batch)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def _load_state(out: Path) -> tuple[IdSet, dict[str, int]]:
    """Repair the logs of an earlier attempt; ids already finished; what was repaired."""
    bad_t, bad_r, bad_c = (repair_tail(out / name) for name in (TRIPLES, REJECTED, RESPONSES))
    # Transient teacher failures are retried: drop them from the log (atomic rewrite).
    retry = {
        r["id"]
        for r in iter_records(out / REJECTED)
        if r.get("stage") == "teacher" and r.get("retryable")
    }
    if retry:
        _rewrite_jsonl(
            out / REJECTED, (r for r in iter_records(out / REJECTED) if r["id"] not in retry)
        )
    finished = IdSet(r["id"] for name in (TRIPLES, REJECTED) for r in iter_records(out / name))
    repaired = {
        "triples": bad_t,
        "rejected": bad_r,
        "responses": bad_c,
        "teacher_retry": len(retry),
    }
    return finished, repaired


class _ResponseCache:
    """The answers already in responses.jsonl, looked up by prompt key through an on-disk index
    of their byte offsets (the last answer of a key wins), so a resumed run over many seeds does
    not hold every earlier answer in memory."""

    def __init__(self, path: Path, db: sqlite3.Connection):
        self.offsets = KeyIndex(db, "responses")
        self._handle = path.open("rb") if path.exists() else None
        offset = 0
        for raw in self._handle or ():
            self.offsets.put(json.loads(raw)["key"], str(offset))
            offset += len(raw)

    def get(self, key: str) -> dict[str, Any] | None:
        offset = self.offsets.get(key)
        if offset is None or self._handle is None:
            return None
        self._handle.seek(int(offset))
        return json.loads(self._handle.readline())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def _front_stages(
    cfg: SynthConfig, run: _Run | None, db: sqlite3.Connection | None = None
) -> tuple[IdSpool, SeedSpool, dict[str, Any]]:
    """Stages 1-3 over every candidate, streamed: returns (every candidate id in source order,
    the seeds that passed, sources info), the first two spooled to the sqlite database `db`
    (synthesis.index; default a private temporary one) with the dedup indexes, so memory does
    not grow with the source. Rejections of ids not finished before are written to the log. A
    --shard run takes only its share of the candidates and writes candidates.jsonl for
    --merge."""
    db = db if db is not None else open_index()
    fieldmap = FieldMap.from_flags(cfg.fields)
    specs = [parse_source(s) for s in cfg.sources]
    shard = parse_shard(cfg.shard) if cfg.shard is not None else None
    # a shard removes exact duplicates only: dropping C for a near-duplicate shard-mate B is
    # wrong when B itself is a near duplicate of a seed in another shard and C is not (--merge)
    near = cfg.near_dup_threshold if shard is None else None
    dedup = Deduplicator(near, db) if cfg.dedup else None
    decontam = (
        Decontaminator(
            load_benchmark_texts(cfg.decontam), cfg.decontam_ngram, cfg.decontam_threshold
        )
        if cfg.decontam
        else None
    )
    order, passed = IdSpool(db, "front_order"), SeedSpool(db, "front_passed")
    seen = KeyIndex(db, "front_ids")  # candidate id -> the source it came from
    shard_log = None  # candidates.jsonl of a shard run, renamed into place when complete
    with contextlib.ExitStack() as stack:
        if shard is not None and run is not None:
            shard_log = stack.enter_context(
                stack.enter_context(atomic_path(run.out / CANDIDATES)).open("w", encoding="utf-8")
            )
        position = -1  # the unit's place in the whole stream of units, every shard counting alike
        for spec in specs:
            for unit in iter_units(
                spec,
                fieldmap,
                limit=cfg.n,
                toy_n=cfg.n or 1000,
                seed=cfg.seed,
                toy_world=cfg.toy_world,
                raw=raw_code(cfg),
            ):
                position += 1
                # decided before the unit is cut: a shard parses only its own rows and files
                if shard is not None and shard_of(unit.id, shard[1]) != shard[0]:
                    continue
                for item in unit.candidates():
                    first = seen.add(item.id, spec.text)
                    if first is not None:
                        raise InputError(
                            f"--source {spec.text}: id {item.id!r} also comes from {first}"
                        )
                    order.append(item.id)
                    reached_dedup = _front_one(item, cfg, dedup, decontam, run, passed)
                    if shard_log is not None:
                        # a unit's candidates share its pos and follow each other in the file
                        row = {"id": item.id, "pos": position}
                        if reached_dedup:  # --merge dedups it again
                            row["code"] = item.code
                        shard_log.write(json.dumps(row, ensure_ascii=False) + "\n")
    return order, passed, {"sources": [s.text for s in specs]}


def _front_one(
    item: Seed | SourceReject,
    cfg: SynthConfig,
    dedup: Deduplicator | None,
    decontam: Decontaminator | None,
    run: _Run | None,
    passed: SeedSpool,
) -> bool:
    """Stages 1-3 of one candidate: spool it to `passed` or log its rejection (unless its id
    finished in an earlier attempt). Returns whether it passed the filter (reached dedup)."""
    fresh = run is not None and item.id not in run.finished
    if isinstance(item, SourceReject):
        if fresh:
            rej = Rejection(item.reason, item.detail)
            run.reject(_reject(item.id, "source", rej, item.source), advance=False)
        return False
    rejection, stage = check_code(item.code, cfg.filters), "filter"
    reached_dedup = rejection is None
    if rejection is None and dedup is not None:
        rejection, stage = dedup.check(item.id, item.code), "dedup"
    if rejection is None and decontam is not None:
        text = f"{item.instruction or ''}\n{item.code}"
        rejection, stage = decontam.check(text), "dedup"
    if rejection is not None:
        if fresh:
            run.reject(_reject(item.id, stage, rejection, item.source), advance=False)
    else:
        passed.append(item)
    return reached_dedup


def _teacher_replies(
    teacher: Any, requests: Iterable[TeacherRequest], cache: _ResponseCache, counts: Counter[str]
) -> Iterator[tuple[TeacherRequest, TeacherReply, bool]]:
    """Answers to `requests`, TEACHER_CHUNK requests at a time (the prompts of one chunk are
    all that is held): cached answers of a chunk first, then the teacher's; the bool says
    whether the answer is new. counts["cached"] counts the cached ones."""
    chunk: list[TeacherRequest] = []
    for request in itertools.chain(requests, [None]):
        if request is not None:
            chunk.append(request)
            if len(chunk) < TEACHER_CHUNK:
                continue
        fresh = []
        for pending in chunk:
            hit = cache.get(pending.key)
            if hit is None:
                fresh.append(pending)
                continue
            counts["cached"] += 1
            yield pending, TeacherReply(hit["text"], hit.get("finish_reason")), False
        for asked, reply in teacher.run(fresh):
            yield asked, reply, True
        chunk = []


def _to_triple(cand: _Candidate, cfg: SynthConfig, teacher_name: str) -> Triple:
    seed, parsed = cand.seed, cand.parsed
    meta = dict(seed.meta)
    meta.update(
        split=split_of(seed, cfg.seed, cfg.split_ratios),
        teacher=teacher_name,
        response_key=cand.key,
        n_asserts=parsed.n_asserts,
    )
    if seed.entry_point and seed.entry_point != parsed.entry_point:
        meta["seed_entry_point"] = seed.entry_point
    problem = parsed.task if seed.instruction is None else seed.instruction
    return Triple(
        id=seed.id,
        problem=problem or "",
        cot=parsed.analysis,
        code=parsed.code,
        tests=parsed.tests,
        entry_point=parsed.entry_point,
        seed_answer=seed.seed_answer,
        source=seed.source,
        meta=meta,
    )


def compute_stats(
    out: Path, order: IdOrder, db: sqlite3.Connection | None = None
) -> dict[str, Any]:
    """Per-stage counts from the files on disk (so they cover every resumed attempt). Each id's
    outcome is indexed in sqlite (`db`, default a private temporary one), so memory does not
    grow with the number of ids."""
    db = db if db is not None else open_index()
    db.execute("DROP TABLE IF EXISTS stats_outcome")
    db.execute("DROP TABLE IF EXISTS stats_wanted")
    final = KeyIndex(db, "stats_outcome")  # id -> [stage or "kept", reason] (the last record)
    for record in iter_records(out / TRIPLES):
        final.put(record["id"], json.dumps([KEPT, ""]))
    for record in iter_records(out / REJECTED):
        final.put(record["id"], json.dumps([record["stage"], record["reason"]]))
    wanted = KeyIndex(db, "stats_wanted")
    rank = {name: i for i, name in enumerate((*STAGES, KEPT))}
    reached: Counter[int] = Counter()  # furthest stage rank -> ids
    reasons: dict[str, Counter[str]] = {stage: Counter() for stage in STAGES}
    unfinished = 0
    for seed_id in order:
        wanted.add(seed_id, "")
        outcome = final.get(seed_id)
        if outcome is None:
            unfinished += 1
            continue
        stage, reason = json.loads(outcome)
        reached[rank[stage]] += 1
        if stage != KEPT:
            reasons[stage][reason] += 1
    per_stage: dict[str, Any] = {}
    for index, stage in enumerate(STAGES):
        n_in = sum(n for r, n in reached.items() if r >= index)
        n_rej = sum(reasons[stage].values())
        per_stage[stage] = {
            "in": n_in,
            "out": n_in - n_rej,
            "rejected": n_rej,
            "keep_rate": round((n_in - n_rej) / n_in, 4) if n_in else None,
            "reasons": dict(reasons[stage].most_common()),
        }
    kept = reached[rank[KEPT]]
    n_seeds = per_stage["source"]["out"]
    (stray,) = db.execute(
        "SELECT COUNT(*) FROM stats_outcome WHERE key NOT IN (SELECT key FROM stats_wanted)"
    ).fetchone()
    return {
        "candidates": len(order),
        "seeds": n_seeds,
        "kept": kept,
        "rejected": sum(s["rejected"] for s in per_stage.values()),
        "unfinished": unfinished,
        "keep_rate": round(kept / n_seeds, 4) if n_seeds else None,
        "stages": per_stage,
        "stray_ids": stray,  # in the logs but not among the sources now
    }


def _split_counts(out: Path) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for record in iter_records(out / TRIPLES):
        counts[record.get("meta", {}).get("split", "?")] += 1
    return dict(sorted(counts.items()))


def _finalize_order(out: Path, order: Iterable[str], db: sqlite3.Connection | None = None) -> None:
    """Rewrite triples.jsonl and rejected.jsonl in seed order (atomic), sorting through sqlite
    (`db`, default a private temporary one) rather than in memory; ids not in `order` go last,
    in file order."""
    db = db if db is not None else open_index()
    for table in ("final_rank", "final_sorted"):
        db.execute(f"DROP TABLE IF EXISTS {table}")
    ranks = KeyIndex(db, "final_rank")
    n_ranked = 0
    for pos, seed_id in enumerate(order):
        ranks.put(seed_id, str(pos))
        n_ranked = pos + 1
    for name in (TRIPLES, REJECTED):
        db.execute("DROP TABLE IF EXISTS final_sorted")
        db.execute("CREATE TABLE final_sorted (rank INTEGER, seq INTEGER, record TEXT)")
        for seq, record in enumerate(iter_records(out / name)):
            pos = ranks.get(record["id"])
            row = (
                n_ranked if pos is None else int(pos),
                seq,
                json.dumps(record, ensure_ascii=False),
            )
            db.execute("INSERT INTO final_sorted VALUES (?, ?, ?)", row)
        cur = db.execute("SELECT record FROM final_sorted ORDER BY rank, seq")
        with atomic_path(out / name) as tmp, tmp.open("w", encoding="utf-8") as handle:
            while rows := cur.fetchmany(1024):
                handle.writelines(record + "\n" for (record,) in rows)


def main(cfg: SynthConfig) -> dict[str, Any]:
    """Run (or resume) a synthesis; returns the stats written to stats.json."""
    from tqdm import tqdm

    if cfg.merge:
        from synthesis.merge import merge_shards

        if cfg.shard is not None:
            raise InputError("--merge joins finished shard runs: give it without --shard")
        return merge_shards(cfg.merge, cfg.out, overwrite=cfg.overwrite)
    t_start = time.perf_counter()
    _check_config(cfg)
    prompts = load_prompts(cfg)
    teachers = [cfg.teacher] if isinstance(cfg.teacher, str) else list(cfg.teacher)
    teacher = make_teacher(teachers, cfg.teacher_cfg)
    specs = [parse_source(spec) for spec in cfg.sources]  # a bad path fails before --out
    if teachers == ["toy"] and any(spec.kind != "toy" for spec in specs):
        raise InputError("--teacher toy answers only --source toy seeds; use openai: or hf:")
    FieldMap.from_flags(cfg.fields)
    for bench in cfg.decontam:
        if bench != "humaneval":
            require_file(bench, "--decontam")
    if any(spec.kind == "toy" for spec in specs):  # bad world options fail before --out
        from synthesis.toyworld.world import ToyWorld

        try:
            ToyWorld(cfg.seed, **cfg.toy_world)
        except TypeError as err:
            raise InputError(f"toy world options: {err}") from None

    out = prepare_out_dir(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume)
    identity = _identity(cfg, prompts, teacher.cache_id)
    previous = out / RUN_CONFIG
    if previous.exists():
        before = json.loads(previous.read_text(encoding="utf-8"))
        changed = [
            k for k in _IDENTITY if before.get(k, _IDENTITY_DEFAULTS.get(k)) != identity.get(k)
        ]
        if changed:
            raise InputError(
                f"--out {out}: holds a run with other {', '.join(changed)} "
                "(pass --overwrite to start over)"
            )
    else:
        atomic_write_json(previous, identity)
    manifest = Manifest("synth", out, config=cfg, seed=cfg.seed)

    finished, repaired = _load_state(out)
    run = _Run(cfg, out, finished)
    front_db = open_index(out / FRONT_INDEX)  # scratch, removed when the run finishes
    sandbox: _SandboxStage | None = None
    cache: _ResponseCache | None = None
    try:
        with manifest.timed("front_stages"):
            order, passed, info = _front_stages(cfg, run, front_db)
        # seeds not finished before, read lazily from the spool (the sandbox thread marks only
        # seeds already asked as finished, so filtering as they are read filters the same)
        n_pending = sum(1 for s in passed if s.id not in run.finished)
        requests = (
            TeacherRequest(hashlib.sha256(f"{teacher.cache_id}\n{p}".encode()).hexdigest(), p, seed)
            for seed in passed
            if seed.id not in run.finished
            for p in [prompts.render(seed)]
        )
        cache = _ResponseCache(out / RESPONSES, front_db)
        counts: Counter[str] = Counter()
        t_teacher = time.perf_counter()
        with tqdm(
            total=n_pending, desc="synth", unit="seed", disable=not cfg.progress, smoothing=0.1
        ) as bar:
            run.bar = bar
            sandbox = _SandboxStage(run, cfg, teacher.name)
            batch: list[_Candidate] = []
            for request, reply, new in _teacher_replies(teacher, requests, cache, counts):
                seed = request.seed
                if reply.error is not None:
                    rej = Rejection("teacher_error", reply.error[:300])
                    record = _reject(seed.id, "teacher", rej, seed.source)
                    run.reject({**record, "retryable": reply.retryable})
                    continue
                if new:
                    run.responses.append(
                        {"key": request.key, "seed_id": seed.id, "teacher": teacher.name,
                         "text": reply.text, "finish_reason": reply.finish_reason,
                         "attempts": reply.attempts, "seconds": round(reply.seconds, 3)}
                    )  # fmt: skip
                parsed = parse_response(
                    reply.text,
                    entry_point=seed.entry_point,
                    strict_entry_point=seed.instruction is not None,
                    want_task=seed.instruction is None,
                    min_asserts=cfg.min_asserts,
                    finish_reason=reply.finish_reason,
                )
                if isinstance(parsed, Rejection):
                    record = _reject(seed.id, "parse", parsed, seed.source)
                    run.reject({**record, "response_key": request.key})
                    continue
                batch.append(_Candidate(seed, parsed, request.key))
                if len(batch) >= cfg.sandbox_batch:
                    sandbox.submit(batch)
                    batch = []
            sandbox.submit(batch)
            sandbox, closing = None, sandbox
            closing.close()
        teacher_s = time.perf_counter() - t_teacher
    finally:
        if sandbox is not None:  # an error above: let the sandbox finish what it holds
            try:
                sandbox.close()
            except Exception:  # noqa: BLE001 (the first error is the one to report)
                pass
        run.close()
        run.finished.close()
        if cache is not None:
            cache.close()
    n_cached = counts["cached"]

    _finalize_order(out, order, front_db)
    stats = compute_stats(out, order, front_db)
    front_db.close()
    (out / FRONT_INDEX).unlink()
    wall = time.perf_counter() - t_start
    stats.update(
        splits=_split_counts(out),
        this_attempt={
            "processed": n_pending,
            "cached_responses": n_cached,
            "teacher_requests": getattr(teacher, "n_requests", n_pending - n_cached),
            "repaired": repaired,
            "kept": run.counts["kept"],
            "wall_s": round(wall, 3),
            "teacher_and_sandbox_s": round(teacher_s, 3),
            "seeds_per_s": round(n_pending / teacher_s, 2) if teacher_s > 0 else None,
            "kept_per_s": round(run.counts["kept"] / wall, 2) if wall > 0 else None,
        },
        **info,
    )
    atomic_write_json(out / STATS, stats)
    outputs = {"triples": TRIPLES, "rejected": REJECTED, "responses": RESPONSES, "stats": STATS}
    if cfg.shard is not None:
        outputs["candidates"] = CANDIDATES
    manifest.finish(
        outputs=outputs,
        summary={"kept": stats["kept"], "seeds": stats["seeds"], "keep_rate": stats["keep_rate"]},
        shard=cfg.shard,
        teacher=teacher.name,  # what reports trace an SFT study's data back to (teacher swap)
    )
    return stats
