"""The teacher-swap table: one SFT study per teacher, side by side (the paper's robustness table).

    diag synth --source S --teacher openai:URL1#gpt-4 --out data/gpt-4      # one run per teacher
    diag synth --source S --teacher openai:URL2#gpt-4o --out data/gpt-4o
    ... diag train --data data/gpt-4/triples.jsonl ... / diag eval ... under studies/gpt-4, and
        the same for gpt-4o under studies/gpt-4o ...
    diag report --runs studies --out report \\
        --teacher-swap gpt-4=studies/gpt-4 --teacher-swap gpt-4o=studies/gpt-4o
    diag report --runs studies --out report \\
        --teacher-swap studies/gpt-4 --teacher-swap studies/gpt-4o    # named by provenance

    from reports.teacher_swap import parse_groups, teacher_swap
    swap = teacher_swap(parse_groups(["gpt-4=studies/gpt-4", "gpt-4o=studies/gpt-4o"]))
    swap.table, swap.comparisons, swap.markdown, swap.agrees

`--teacher-swap NAME=DIR` (repeatable, two or more) names the study under DIR (its eval runs,
found recursively as `diag report --runs` finds them) by its teacher NAME; a bare DIR is named
by the teacher its runs record. Provenance: an eval run's manifest names its model (`model` /
`run`), whose training run's manifest names its data (`data`: a triples.jsonl), whose folder's
`diag synth` manifest names the teacher (`teacher`; for runs made before it recorded one, the
`meta.teacher` of the first triple). The teachers found are shown next to each NAME, and a note
says when a study records another teacher than its NAME, none, several, or the same as another
study.

Per teacher (each study computed exactly as reports.replication computes one study: pass@1 at
each run's last step, format pooled over seeds, bootstrap CI over tasks, paired comparisons
pooled over seeds with the Wilcoxon signed-rank test):
    table        teacher, format, split, mean, ci_low, ci_high, n, seeds (metric pass@1)
    comparisons  teacher, a, b, split, diff (a - b), ci_low, ci_high, p_value, n, and `agrees`:
                 whether this difference has the same sign (strictly) under every teacher
    markdown     the table (a column per teacher), the comparisons, each teacher's ordering of
                 the formats on the test split and whether the orderings agree across teachers
`diag report` writes them as teacher_swap.md, teacher_swap.csv, teacher_swap_comparisons.csv and
a section of report.html.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumbing import InputError, read_manifest
from reports.replication import _fmt_key, ordering, replicate

# the headline comparison of the paper: code before the CoT vs after it
HEADLINE = ("precede", "follow")


@dataclass
class TeacherSwap:
    table: Any  # pandas DataFrame
    comparisons: Any  # pandas DataFrame
    orderings: dict[str, str]  # teacher -> "precede > follow" (test split)
    agrees: bool  # the orderings are the same under every teacher
    recorded: dict[str, list[str]]  # teacher NAME -> teachers its runs record
    notes: list[str] = field(default_factory=list)
    markdown: str = ""

    def summary(self) -> dict[str, Any]:
        """What `diag report` puts in its manifest and result."""
        return {"teachers": list(self.orderings), "orderings": self.orderings,
                "agrees": self.agrees, "recorded": self.recorded, "notes": self.notes}  # fmt: skip

    def write(self, folder: Path) -> list[str]:
        """teacher_swap.md/.csv and teacher_swap_comparisons.csv in `folder`; their names."""
        (folder / "teacher_swap.md").write_text(self.markdown, "utf-8")
        self.table.to_csv(folder / "teacher_swap.csv", index=False, lineterminator="\n")
        self.comparisons.to_csv(
            folder / "teacher_swap_comparisons.csv", index=False, lineterminator="\n"
        )
        return ["teacher_swap.md", "teacher_swap.csv", "teacher_swap_comparisons.csv"]

    def html(self) -> str:
        """A report.html section: the markdown, preformatted."""
        import html

        return (
            '<section id="teacher_swap"><h2>Teacher swap</h2>'
            f"<pre>{html.escape(self.markdown)}</pre>"
            '<p>(<a href="teacher_swap.md">md</a> · <a href="teacher_swap.csv">csv</a> · '
            '<a href="teacher_swap_comparisons.csv">comparisons csv</a>)</p></section>'
        )


def parse_groups(specs: list[str]) -> dict[str, Path]:
    """`--teacher-swap` values (NAME=DIR or DIR) -> {teacher name: study folder}, in order."""
    groups: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep:
            name, folder = "", spec
        name, folder = name.strip(), folder.strip()
        path = Path(folder)
        if not folder or not path.is_dir():
            raise InputError(f"--teacher-swap {spec!r}: {folder or 'DIR'}: no such folder")
        if not name:
            found = recorded_teachers(path)
            if len(found) != 1:
                what = ", ".join(found) if found else "none"
                raise InputError(
                    f"--teacher-swap {spec!r}: cannot name the study by its teacher (its runs "
                    f"record {what}); give NAME={folder}"
                )
            name = found[0]
        if name in groups:
            raise InputError(f"--teacher-swap {spec!r}: teacher {name!r} given twice")
        groups[name] = path
    if len(groups) < 2:
        raise InputError("--teacher-swap: give two or more studies (NAME=DIR, one per teacher)")
    return groups


# ---------------------------------------------------------------------------------------------
# provenance: eval run -> model -> training run -> triples -> synth run -> teacher


def _training_run(model: Path) -> dict[str, Any] | None:
    """The manifest of the `diag train` run a model folder belongs to (itself, or the run
    holding it as final/ or checkpoint-N/)."""
    for folder in (model, model.parent):
        manifest = read_manifest(folder) if folder.is_dir() else None
        if manifest is not None and manifest.get("command") == "train":
            return manifest
    return None


def synth_teacher(data: Path) -> str | None:
    """The teacher that made a triples file: its folder's synth manifest, else its first
    triple's meta.teacher."""
    manifest = read_manifest(data.parent) if data.parent.is_dir() else None
    if manifest is not None and manifest.get("command") == "synth" and manifest.get("teacher"):
        return str(manifest["teacher"])
    try:
        with data.open(encoding="utf-8") as handle:
            first = json.loads(handle.readline() or "null")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    teacher = first.get("meta", {}).get("teacher") if isinstance(first, dict) else None
    return str(teacher) if teacher else None


def recorded_teachers(folder: Path) -> list[str]:
    """The teachers the runs under `folder` trace back to (sorted; empty when none is known)."""
    from reports.results import find_runs

    runs, _ = find_runs([folder])
    found: set[str] = set()
    for run in runs:
        cfg = run.config
        trainings = [run.manifest] if run.command == "train" else []
        for key in ("model", "run"):
            given = cfg.get(key)
            for path in [given] if isinstance(given, str) else given or []:
                manifest = _training_run(Path(path))
                if manifest is not None:
                    trainings.append(manifest)
        for manifest in trainings:
            data = (manifest.get("config") or {}).get("data")
            teacher = synth_teacher(Path(data)) if isinstance(data, str) else None
            if teacher is not None:
                found.add(teacher)
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# the table


def _study(name: str, folder: Path, opts: Any) -> tuple[list[dict], list[dict]]:
    """pass@1 rows and paired comparisons of one teacher's study."""
    import pandas as pd

    from reports.results import ResultSet

    rs = ResultSet.load([folder])
    samples = rs.table("samples")
    if samples.empty:
        raise InputError(f"--teacher-swap {name}={folder}: no eval samples found (run diag eval)")
    if rs.several_bases:
        raise InputError(
            f"--teacher-swap {name}={folder}: runs of several base models ({', '.join(rs.bases())}); "
            "give one study (one base) per teacher"
        )
    empty = pd.DataFrame()
    rows, comparisons, _, _ = replicate(
        {"samples": samples, "ppl": empty, "kl": empty, "attn_examples": empty}, opts
    )
    rows = [{"teacher": name, **r} for r in rows if r["metric"] == "pass@1"]
    comps = []
    for c in comparisons:
        kind, split = str(c["metric"]).split(":", 1)
        if kind == "pass@1":
            comps.append({"teacher": name, "a": c["a"], "b": c["b"], "split": split,
                          "diff": c["diff"], "ci_low": c["ci_low"], "ci_high": c["ci_high"],
                          "p_value": c["p_value"], "n": c["n"], "test": c["test"]})  # fmt: skip
    return rows, comps


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def teacher_swap(groups: dict[str, Path], opts: Any = None) -> TeacherSwap:
    """The teacher-swap table of `groups` ({teacher name: study folder}, two or more)."""
    import pandas as pd

    from plumbing.stats import StatsOptions

    opts = opts or StatsOptions()
    rows: list[dict] = []
    comps: list[dict] = []
    recorded: dict[str, list[str]] = {}
    notes: list[str] = []
    for name, folder in groups.items():
        study_rows, study_comps = _study(name, folder, opts)
        rows += study_rows
        comps += study_comps
        recorded[name] = recorded_teachers(folder)
        if not recorded[name]:
            notes.append(f"{name} ({folder}): no run records the teacher its data came from")
        elif recorded[name] != [name]:
            notes.append(f"{name} ({folder}): its runs record teacher {', '.join(recorded[name])}")
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if recorded[a] and recorded[a] == recorded[b]:
                notes.append(f"{a} and {b}: both studies record teacher {', '.join(recorded[a])}")
    table = pd.DataFrame(rows).drop(columns="metric")
    comp = pd.DataFrame(comps)
    if not comp.empty:
        signs = comp.assign(sign=[_sign(d) for d in comp["diff"]])
        agree = signs.groupby(["a", "b", "split"])["sign"].agg(
            lambda s: len(s) == len(names) and s.iloc[0] != 0 and (s == s.iloc[0]).all()
        )
        comp["agrees"] = [
            bool(agree[(a, b, s)]) for a, b, s in zip(comp["a"], comp["b"], comp["split"])
        ]
    orderings = {
        name: ordering(table[table["teacher"] == name].assign(metric="pass@1")) for name in names
    }
    agrees = len(set(orderings.values())) == 1 and all(orderings.values())
    swap = TeacherSwap(table, comp, orderings, agrees, recorded, notes)
    swap.markdown = markdown(swap)
    return swap


def markdown(swap: TeacherSwap) -> str:
    """pass@1 per format under each teacher, the paired comparisons, the orderings."""
    table, comp = swap.table, swap.comparisons
    names = list(swap.orderings)
    splits = sorted(table["split"].unique(), key=lambda s: (s != "test", s))
    fmts = sorted(table["format"].unique(), key=_fmt_key)
    lines = []
    for name in names:
        found = swap.recorded.get(name) or []
        lines.append(f"- {name}: teacher recorded by its runs: {', '.join(found) or 'unknown'}")
    lines += ["", "| format | split | " + " | ".join(f"{n}: pass@1 (95% CI)" for n in names) + " |"]
    lines.append("|" + " --- |" * (2 + len(names)))
    for split in splits:
        for fmt in fmts:
            cells = []
            for name in names:
                sel = table[(table["teacher"] == name) & (table["format"] == fmt)
                            & (table["split"] == split)]  # fmt: skip
                r = sel.iloc[0] if not sel.empty else None
                cells.append(
                    "–" if r is None else
                    f"{100 * r['mean']:.1f}% [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"
                )  # fmt: skip
            lines.append(f"| {fmt} | {split} | " + " | ".join(cells) + " |")
    if not comp.empty:
        lines += ["", "| teacher | comparison | split | diff (a - b) | 95% CI | p (Wilcoxon) | "
                  "tasks | same sign under every teacher |", "|" + " --- |" * 8]  # fmt: skip
        head = comp.assign(
            headline=[(a, b) == HEADLINE for a, b in zip(comp["a"], comp["b"])]
        ).sort_values(["headline", "split", "a", "b"], ascending=[False, True, True, True],
                      kind="stable")  # fmt: skip
        for _, r in head.iterrows():
            lines.append(
                f"| {r['teacher']} | {r['a']} vs {r['b']} | {r['split']} | "
                f"{100 * r['diff']:+.1f} pts | [{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] "
                f"| {r['p_value']:.3g} | {int(r['n'])} | {'yes' if r['agrees'] else 'no'} |"
            )
    lines += ["", "Order of the formats on the test split (by mean pass@1), per teacher: "
              + "; ".join(f"{n}: {o or '–'}" for n, o in swap.orderings.items())
              + f". Same order under every teacher: {'yes' if swap.agrees else 'no'}."]  # fmt: skip
    if swap.notes:
        lines += ["", "Notes:", *[f"- {note}" for note in swap.notes]]
    return "\n".join(lines) + "\n"
