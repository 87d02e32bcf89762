"""Find result runs and read their tidy tables: the one reading path of `diag report` and `diag app`.

    from reports.results import ResultSet
    rs = ResultSet.load(["demo_out/"])          # run folders, or folders holding runs (recursive)
    rs.runs                                     # [Run(path, command, manifest, name)]
    rs.table("pass_at_k")                       # every run's pass_at_k.parquet, concatenated
    rs.has("kl_tokens"), rs.missing("kl_tokens")  # the exact `diag ...` command that makes it

A run is a folder holding a finished `manifest.json` (written last by every command). Each
table a run holds is read from its parquet file and tagged with the run's identity: `run` (the
folder, relative to the `--runs` root it was found under) and `command`; tables without the
`label`/`base`/`format`/`seed` columns (a training run's train_log, tables written before the
`base` column) get them from the run's manifest.

Runs are keyed by their base model: when the runs hold models fine-tuned from more than one base,
every table's `label` is shown as `<base>/<format>-s<seed>` (`display_label`), so two studies on
two bases never share a label; with one base, labels are unchanged (`precede-s0`).
Nothing here imports torch or plotly: the dashboard imports this module on page load.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from plumbing import MANIFEST, InputError

# The identity columns every result table carries (CONTRACTS.md, "Result files").
IDENTITY = ("label", "base", "format", "seed", "step")
# Large tables whose models every run also names in a small one (pass_at_k, kl, attn): the set
# of bases is read from the small ones.
_LARGE_TABLES = ("samples", "kl_tokens", "attn_examples")


@dataclass(frozen=True)
class TableSpec:
    """One kind of result file: where it lives in a run folder and which command writes it."""

    pattern: str  # file name (or glob) inside a run folder
    made_by: str  # the `diag` command that writes it
    how: str  # the exact command line that makes it (shown when it is missing)
    what: str  # one line: one row per ...


# Registry of the result files reports/ and app/ read (CONTRACTS.md "Result files").
TABLES: dict[str, TableSpec] = {
    "train_log": TableSpec(
        "train_log.parquet",
        "train",
        "diag train --data triples.jsonl --format FORMAT --base BASE --out runs/FORMAT",
        "training step (loss, learning rate, loss tokens seen)",
    ),
    "samples": TableSpec(
        "samples.parquet",
        "eval",
        "diag eval --model runs/FORMAT --bench jsonl:triples.jsonl --split test "
        "--out runs/eval-FORMAT",
        "model x task x sample (completion, extracted code, verdict)",
    ),
    "pass_at_k": TableSpec(
        "pass_at_k.parquet",
        "eval",
        "diag eval --model runs/FORMAT --bench jsonl:triples.jsonl --split test "
        "--out runs/eval-FORMAT",
        "model x bench/split x k x group (pass@k with a bootstrap CI)",
    ),
    "ppl": TableSpec(
        "ppl.parquet",
        "ppl",
        "diag ppl --model runs/follow --model runs/precede --data triples.jsonl --out runs/ppl",
        "model x example x span (conditional perplexity under teacher forcing)",
    ),
    "kl": TableSpec(
        "kl.parquet",
        "kl",
        "diag kl --model runs/follow --model runs/precede --data triples.jsonl --out runs/kl",
        "model x example x span (KL from the fine-tuned model to its base)",
    ),
    "kl_tokens": TableSpec(
        "kl_tokens.parquet",
        "kl",
        "diag kl --model runs/follow --model runs/precede --data triples.jsonl --save-tokens "
        "--out runs/kl",
        "model x example x token (KL to base and NLL of every token)",
    ),
    "valloss": TableSpec(
        "valloss.parquet",
        "valloss",
        "diag valloss --run runs/follow --run runs/precede --data triples.jsonl --out runs/valloss",
        "checkpoint x span (validation loss and KL to base over training)",
    ),
    "attn": TableSpec(
        "attn.parquet",
        "attn",
        "diag attn --model runs/follow --model runs/precede --data triples.jsonl --out runs/attn",
        "model x layer x head x span pair (attention mass)",
    ),
    "attn_examples": TableSpec(
        "attn_examples.parquet",
        "attn",
        "diag attn --model runs/follow --model runs/precede --data triples.jsonl --out runs/attn",
        "model x example x layer x span pair (attention mass, mean over heads)",
    ),
    "patterns": TableSpec(
        "patterns.parquet",
        "attn",
        "diag attn --model runs/follow --model runs/precede --data triples.jsonl "
        "--save-patterns 4 --out runs/attn",
        "saved full attention pattern (index of patterns/*.npz)",
    ),
    "attribution": TableSpec(
        "attribution.parquet",
        "attn",
        "diag attn --model runs/follow --model runs/precede --data triples.jsonl --attribution "
        "--out runs/attn",
        "model x direction x method (span-to-span attribution)",
    ),
    "ablate_curves": TableSpec(
        "ablate_curves.parquet",
        "ablate",
        "diag ablate --data triples.jsonl --format FORMAT --base BASE --out ablate/FORMAT",
        "ablation variant x checkpoint (pass@1 with a CI)",
    ),
    "gradnorm": TableSpec(
        "gradnorm.parquet",
        "gradnorm",
        "diag gradnorm --model runs/follow --model runs/precede --data triples.jsonl "
        "--out runs/gradnorm",
        "model x example x span x parameter group (gradient norm of the span's loss)",
    ),
    "comparisons": TableSpec(
        "summary_*.parquet",
        "ppl/kl/eval",
        "diag ppl / diag kl / diag attn over two or more models (each writes a "
        "summary_*.parquet of paired comparisons)",
        "comparison (paired difference with a CI and a test)",
    ),
}


@dataclass(frozen=True)
class Run:
    """A finished run folder."""

    path: Path
    command: str
    manifest: dict[str, Any] = field(repr=False, compare=False, hash=False)
    name: str = ""  # relative to the --runs root it was found under (for tables and captions)
    inside: str | None = None  # command of the nearest run folder around this one, if any

    @property
    def summarised(self) -> bool:
        """A step of a larger command whose own table summarises it: the retraining and
        evaluation runs inside a `diag ablate` folder (ablate_curves.parquet holds their
        numbers; read as ordinary runs they would repeat the unablated run's labels)."""
        return self.inside == "ablate"

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest.get("config") or {}

    def identity(self) -> dict[str, Any]:
        """label/base/format/seed from the manifest (for tables that do not carry them)."""
        from training.modeling import base_name

        cfg = self.config
        fmt = cfg.get("format")
        seed = cfg.get("seed", self.manifest.get("seed"))
        base = None
        if fmt is not None:
            label = f"{fmt}-s{seed if seed is not None else 0}"
        elif "preset" in cfg:
            label = "base"
        else:
            label = self.path.name
        if fmt is not None and cfg.get("base"):  # train, ablate: the base fine-tuned from
            base = base_name(cfg["base"])
        elif self.command == "pretrain":
            base = self.path.resolve().name
        return {"label": label, "base": base, "format": fmt, "seed": seed}

    def manifest_bases(self) -> dict[str, str | None]:
        """label -> base of the models this run names in its manifest: itself for a train or
        pretrain run, else the models of its config (`model`, `run`) that still exist (a table
        written before the `base` column gets its bases from here)."""
        from training.modeling import model_base, model_label, resolve_model_dir

        if self.command in ("train", "pretrain", "ablate"):
            ident = self.identity()
            return {ident["label"]: ident["base"]}
        out: dict[str, str | None] = {}
        label = self.config.get("label")  # diag eval --label names its one model
        for key in ("model", "run"):
            given = self.config.get(key)
            for path in [given] if isinstance(given, str) else given or []:
                try:
                    model_dir = resolve_model_dir(path)
                except (InputError, OSError):
                    continue
                name = label if isinstance(label, str) and label else model_label(model_dir)
                out.setdefault(name, model_base(model_dir))
        return out

    def files(self, table: str) -> list[Path]:
        return sorted(self.path.glob(TABLES[table].pattern))


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def find_runs(roots: Sequence[str | Path]) -> tuple[list[Run], list[str]]:
    """Finished runs under each root (a run folder or a folder holding runs, found recursively).

    Returns (runs sorted by path, notes on folders that were skipped). Hidden folders (temporary
    `.name.tmp` dirs of atomic writes) are not entered. A root that does not exist is an
    InputError; one with no run under it is too.
    """
    runs: dict[Path, Run] = {}
    notes: list[str] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise InputError(f"--runs {root}: no such folder")
        if not root.is_dir():
            raise InputError(f"--runs {root}: not a folder (give a run folder or one holding runs)")
        found = 0
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            if MANIFEST not in filenames:
                continue
            path = Path(dirpath)
            manifest = _read_manifest(path / MANIFEST)
            if manifest is None:
                notes.append(f"{path}: manifest.json is not valid JSON; skipped")
                continue
            if manifest.get("status") != "finished":
                notes.append(
                    f"{path}: {manifest.get('command', '?')} run not finished "
                    f"(status {manifest.get('status')!r}); skipped"
                )
                continue
            command = str(manifest.get("command", "?"))
            if command == "report":
                continue  # our own output (a report written inside a runs folder)
            rel = path.resolve().relative_to(root.resolve())
            name = str(rel) if str(rel) != "." else path.resolve().name
            found += 1
            runs.setdefault(
                path.resolve(), Run(path=path, command=command, manifest=manifest, name=name)
            )
        if found == 0:
            raise InputError(
                f"--runs {root}: no finished run under it (a run folder holds manifest.json)"
            )
    found_runs = sorted(runs.values(), key=lambda r: (r.name, str(r.path)))
    by_path = {r.path.resolve(): r for r in found_runs}
    out = []
    for run in found_runs:
        inside = None
        for parent in run.path.resolve().parents:
            if parent in by_path:
                inside = by_path[parent].command
                break
        out.append(replace(run, inside=inside))
    return out, notes


def display_label(label: Any, base: Any, several_bases: bool) -> Any:
    """A model's label as reports and the app show it: `<base>/<label>` (gpt2/precede-s0) when
    the result set holds runs of more than one base, else the label unchanged."""
    if not several_bases or not isinstance(base, str) or not base or not isinstance(label, str):
        return label
    if label.startswith(f"{base}/"):  # named by its base already (diagnostics.unique_labels)
        return label
    return f"{base}/{label}"


def split_label(label: str) -> tuple[str, str]:
    """(base, label without it) of a display label: 'gpt2/precede-s0' -> ('gpt2', 'precede-s0');
    ('', label) when it names no base."""
    base, _, rest = str(label).rpartition("/")
    return base, rest


def format_key(label: str) -> str:
    """A label's base and format: 'gpt2/precede-s0' -> 'gpt2/precede', 'follow-s1' -> 'follow'."""
    base, rest = split_label(label)
    fmt = rest.split("-", 1)[0]
    return f"{base}/{fmt}" if base else fmt


def _label_bases(path: Path) -> dict[str, str | None]:
    """label -> base of a result file that carries both columns ({} when it does not)."""
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
    except Exception:  # a damaged file: reading the table says so
        return {}
    if not {"label", "base"} <= names:
        return {}
    pairs = _read_parquet(path, columns=["label", "base"]).drop_duplicates()
    return {str(lb): (b if isinstance(b, str) else None) for lb, b in pairs.itertuples(index=False)}


def _read_parquet(path: Path, columns: list[str] | None = None) -> Any:
    import pandas as pd

    try:
        return pd.read_parquet(path, columns=columns)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path}: not a readable parquet file ({err})") from None


@dataclass
class ResultSet:
    """The runs found under some roots and their tables (read lazily, once)."""

    runs: list[Run]
    notes: list[str] = field(default_factory=list)
    keep_labels: frozenset[str] | None = None  # subset(): only rows of these labels
    _tables: dict[str, Any] = field(default_factory=dict, repr=False)
    _run_bases: dict[str, dict[str, str | None]] = field(default_factory=dict, repr=False)
    _bases: list[str] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, roots: Sequence[str | Path]) -> ResultSet:
        runs, notes = find_runs(roots)
        return cls(runs=runs, notes=notes)

    def has(self, table: str) -> bool:
        return not self.table(table).empty

    def table(self, table: str) -> Any:
        """Every run's `table` concatenated (a pandas DataFrame; empty when no run has it)."""
        import pandas as pd

        if table not in TABLES:
            raise KeyError(f"unknown result table {table!r} (known: {', '.join(TABLES)})")
        if table in self._tables:
            return self._tables[table]
        frames = []
        for run in self.runs:
            if run.summarised:
                continue
            for path in run.files(table):
                frame = _read_parquet(path)
                if frame.empty:
                    continue
                if table == "comparisons":
                    frame["source"] = path.stem  # summary_ppl, summary_attn, ...
                else:
                    ident = run.identity()
                    for col in ("label", "format", "seed"):
                        if col not in frame.columns:
                            frame[col] = ident[col]
                    if "base" not in frame.columns or frame["base"].isna().all():
                        frame["base"] = self._manifest_base(run, frame["label"])
                frame = self._display(run, table, frame)
                frame["run"] = run.name
                frame["command"] = run.command
                frames.append(frame)
        out = pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame()
        out = self._filter(table, out)
        self._tables[table] = out
        return out

    def run_bases(self, run: Run) -> dict[str, str | None]:
        """label -> base of the models of one run: from its manifest, then from the `label` and
        `base` columns of its small tables (read once)."""
        if run.name in self._run_bases:
            return self._run_bases[run.name]
        found = run.manifest_bases()
        for table in TABLES:
            if table in ("comparisons", *_LARGE_TABLES):
                continue
            for path in run.files(table):
                found.update(_label_bases(path))
        self._run_bases[run.name] = found
        return found

    def bases(self) -> list[str]:
        """The distinct base models of the runs' models, sorted."""
        if self._bases is None:
            found = set()
            for run in self.runs:
                if not run.summarised:
                    found.update(b for b in self.run_bases(run).values() if b)
            self._bases = sorted(found)
        return self._bases

    @property
    def several_bases(self) -> bool:
        """Whether the runs hold models of more than one base (labels then name their base)."""
        return len(self.bases()) > 1

    def _manifest_base(self, run: Run, labels: Any) -> list[str | None]:
        """The base of each row of a table without a `base` column, from the run's manifest:
        the base of its label, else the run's only base, else None."""
        bases = self.run_bases(run)
        known = {b for b in bases.values() if b}
        only = next(iter(known)) if len(known) == 1 else None
        return [bases.get(str(label)) or only for label in labels]

    def _display(self, run: Run, table: str, frame: Any) -> Any:
        """Labels as shown: `<base>/<label>` when the runs hold several bases (display_label);
        comparison sides (label[@stepN][[fmt]], or a pooled format) get their model's base."""
        if not self.several_bases:
            return frame
        if table != "comparisons":
            frame["label"] = [
                display_label(lb, b, True) for lb, b in zip(frame["label"], frame["base"])
            ]
            return frame
        bases = self.run_bases(run)
        known = {b for b in bases.values() if b}
        only = next(iter(known)) if len(known) == 1 else None

        def side(text: Any) -> Any:
            if not isinstance(text, str) or not text:
                return text
            head = re.split(r"[@\[ ]", text, maxsplit=1)[0]
            base = bases.get(head) or only
            return f"{base}/{text}" if base else text

        for col in ("a", "b"):
            if col in frame.columns:
                frame[col] = frame[col].map(side)
        return frame

    def load_all(self, skip: Sequence[str] = ()) -> ResultSet:
        """Read every table now (except `skip`); returns self."""
        for name in TABLES:
            if name not in skip:
                self.table(name)
        return self

    def subset(self, labels: Iterable[str]) -> ResultSet:
        """A ResultSet over the same runs whose tables keep only rows of these model labels
        (tables read later are filtered as they are read)."""
        out = ResultSet(runs=self.runs, notes=self.notes, keep_labels=frozenset(map(str, labels)))
        out._run_bases, out._bases = self._run_bases, self._bases
        for name, frame in self._tables.items():
            out._tables[name] = out._filter(name, frame)
        return out

    def _filter(self, name: str, frame: Any) -> Any:
        if self.keep_labels is None or frame.empty:
            return frame
        keep = self.keep_labels
        formats = {format_key(x) for x in keep}

        def mentioned(side: Any) -> bool:
            # comparison sides (diagnostics.scoring.condition): label[@stepN][[score_format]],
            # or a pooled format "follow@step8 (2 seeds)"
            head = re.split(r"[@\[ ]", str(side), maxsplit=1)[0]
            return head in keep or head in formats

        if name == "comparisons":
            frame = frame[frame["a"].map(mentioned) & frame["b"].map(mentioned)]
        elif "label" in frame.columns:
            frame = frame[frame["label"].astype(str).isin(keep)]
        return frame.reset_index(drop=True)

    def run_labels(self, run: Run) -> list[str]:
        """The model labels in the tables (read so far) that come from this run."""
        found: set[str] = set()
        for frame in self._tables.values():
            if not frame.empty and {"run", "label"} <= set(frame.columns):
                found.update(frame.loc[frame["run"] == run.name, "label"].dropna().astype(str))
        return sort_labels(found)

    def labels(self) -> list[str]:
        """Every model label in the tables read so far (study order)."""
        found: set[str] = set()
        for frame in self._tables.values():
            if not frame.empty and "label" in frame.columns:
                found.update(frame["label"].dropna().astype(str))
        return sort_labels(found)

    def missing(self, table: str) -> str:
        """What to run to get `table`: one line with the exact command."""
        spec = TABLES[table]
        return f"no {spec.pattern} under the runs ({spec.what}); make it with: {spec.how}"

    def fingerprint(self) -> tuple[tuple[str, float], ...]:
        """(file, mtime) of every result file: a cache key that changes when a run changes."""
        out = []
        for run in self.runs:
            out.append((str(run.path / MANIFEST), (run.path / MANIFEST).stat().st_mtime))
            for table in TABLES:
                out.extend((str(p), p.stat().st_mtime) for p in run.files(table))
        return tuple(out)


def labels_of(frame: Any) -> list[str]:
    """Sorted distinct labels of a table (format order first: seed, wo, follow, precede)."""
    if frame is None or frame.empty or "label" not in frame.columns:
        return []
    return sort_labels(frame["label"].dropna().unique())


FORMAT_ORDER = ("base", "seed", "wo", "follow", "precede")


def sort_labels(labels: Iterable[str]) -> list[str]:
    """Labels in study order: by base model (when labels name one), then base, seed, wo, follow,
    precede; ties by name."""

    def key(label: str) -> tuple[str, int, str]:
        base, rest = split_label(label)
        head = rest.split("-", 1)[0]
        rank = FORMAT_ORDER.index(head) if head in FORMAT_ORDER else len(FORMAT_ORDER)
        return base, rank, str(label)

    return sorted({str(x) for x in labels}, key=key)
