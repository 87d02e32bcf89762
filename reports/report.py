"""`diag report`: every paper figure and table the runs support, plus one report.html.

    from reports.report import ReportConfig, main
    main(ReportConfig(runs=["demo_out"], out="report"))

Output folder (built under a temporary name, renamed into place when complete):
    report.html            all figures with a caption each (what was measured, on what), notes on
                           the figures that were skipped and the exact command that makes their input
    <figure>.html          one interactive figure (plotly; loads plotly.min.js from this folder)
    <figure>.png / .svg    static exports (kaleido + Chromium, batched through one kaleido server)
    <figure>.csv           the numbers drawn
    multipl.md / .csv      MultiPL-E pass@1 per model per language with CIs and paired tests
                           (reports/multipl.py; only when the runs hold MultiPL-E samples)
    plotly.min.js          the plotly.js bundle the HTML files load (works offline)
    manifest.json          config, inputs (runs, result files), figures made and skipped

Deterministic: the same result files give byte-identical HTML, CSV and SVG (plotly's random
element ids are replaced by ids derived from the figure name) and PNG. A previous report in --out
is replaced; a folder holding anything else is refused.
"""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumbing import (
    MANIFEST,
    InputError,
    Manifest,
    atomic_dir,
    read_manifest,
)
from reports.figures import FIGURES as PAPER_FIGURES
from reports.figures import Made, Skip
from reports.multipl import report_section
from reports.perf import PERF_FIGURES
from reports.results import TABLES, ResultSet

# the paper's figures, then the instruction cost per format (reports/perf.py)
FIGURES = {**PAPER_FIGURES, **PERF_FIGURES}

IMAGE_FORMATS = ("png", "svg")
CHROMIUM_HINT = (
    "PNG/SVG export needs Chromium (kaleido drives it) and none was found: install it with "
    "`make chromium` (Debian: apt-get install -y chromium), or pass --no-images for HTML only"
)


@dataclass
class ReportConfig:
    runs: list[str] = field(
        default_factory=list,
        metadata={"help": "Run folder, or a folder holding runs (repeat for more)."},
    )
    out: str = field(
        default="report",
        metadata={"help": "Folder to write (a previous report there is replaced)."},
    )
    only: list[str] = field(
        default_factory=list,
        metadata={"help": "Make only this figure (repeatable; names listed above)."},
    )
    images: bool = field(default=True, metadata={"help": "Also write PNG + SVG (needs Chromium)."})
    scale: float = field(default=2.0, metadata={"help": "PNG pixel scale."})
    teacher_swap: list[str] = field(
        default_factory=list,
        metadata={
            "flag": "--teacher-swap",
            "help": "NAME=DIR: the SFT study (eval runs) under DIR, whose data teacher NAME "
            "synthesised; repeat per teacher (two or more) for the teacher-swap table "
            "(teacher_swap.md/.csv: pass@1 per format with CIs under each teacher, the paired "
            "tests, whether the format ordering agrees). A bare DIR is named by the teacher "
            "its runs record (eval -> train run -> triples -> diag synth manifest).",
        },
    )


def find_chromium() -> str | None:
    """The Chrome/Chromium kaleido will use, if any (kaleido's own lookup, then PATH)."""
    try:
        from choreographer.browsers.chromium import Chromium  # kaleido's browser finder

        found = Chromium.find_browser(skip_local=False)
        if found:
            return str(found)
    except Exception:  # noqa: BLE001 - any failure of the finder: fall back to PATH
        pass
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        manifest = read_manifest(out)
        if manifest is None or manifest.get("command") != "report":
            raise InputError(
                f"--out {out}: not empty and not a previous report (refusing to replace it)"
            )


def _uid_for(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:6]


def stable_svg(svg: str, name: str) -> str:
    """Replace plotly.js's random per-render id (in clip-path and defs ids) by one from `name`."""
    found = re.search(r'id="defs-([0-9a-z]+)"', svg)
    if not found:
        return svg
    return svg.replace(found.group(1), _uid_for(name))


def stable_uids(made: Made, name: str) -> None:
    """Give every trace a uid derived from the figure name (plotly.js draws random ones)."""
    for i, trace in enumerate(made.fig.data):
        trace.uid = f"{_uid_for(name)}{i:03d}"


def _figure_html(made: Made, name: str) -> str:
    return made.fig.to_html(
        full_html=True,
        include_plotlyjs="plotly.min.js",
        div_id=f"fig-{name}",
        config={"displaylogo": False, "responsive": True},
    )


def _write_images(made_figs: dict[str, Made], out: Path, scale: float) -> None:
    """PNG + SVG of every figure through one kaleido server (one Chromium for the batch)."""
    import kaleido

    if find_chromium() is None:
        raise InputError(CHROMIUM_HINT)
    kaleido.start_sync_server(silence_warnings=True)
    try:
        with warnings.catch_warnings():
            # plotly warns per image that its kaleido options go unused under a shared server
            warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            for name, made in made_figs.items():
                for ext in IMAGE_FORMATS:
                    _write_image(made, name, out / f"{name}.{ext}", ext, scale)
    finally:
        kaleido.stop_sync_server(silence_warnings=True)


def _write_image(made: Made, name: str, path: Path, ext: str, scale: float) -> None:
    try:
        made.fig.write_image(
            str(path),
            format=ext,
            width=made.width,
            height=made.height,
            scale=scale if ext == "png" else 1,
        )
    except RuntimeError as err:
        if "chrome" in str(err).lower():
            raise InputError(CHROMIUM_HINT) from None
        raise
    if ext == "svg":
        path.write_text(stable_svg(path.read_text("utf-8"), name), "utf-8")
    path.chmod(0o644)


def _report_html(
    rs: ResultSet,
    made_figs: dict[str, Made],
    skipped: dict[str, str],
    images: bool,
    sections: str = "",
) -> str:
    """One page: runs, then every figure with its caption, then the notes on skipped figures."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>codecot report</title>",
        '<script src="plotly.min.js"></script>',
        "<style>body{font-family:'DejaVu Sans',Arial,sans-serif;max-width:1250px;margin:2em auto;"
        "padding:0 1em;color:#222}figure{margin:2.5em 0;border-top:1px solid #ddd;"
        "padding-top:1em}figcaption{color:#444;font-size:0.95em;max-width:1000px}"
        "code{background:#f4f4f4;padding:0 3px}.skip{color:#8a6d3b}"
        "table.runs td{padding:0 1em 0 0}</style>",
        "</head><body>",
        "<h1>codecot report</h1>",
        f"<p>{len(made_figs)} figures from {len(rs.runs)} runs; "
        f"{len(skipped)} figures skipped (see the end).</p>",
        "<h2>Runs</h2><table class='runs'>",
        "<tr><th>folder</th><th>command</th><th>models</th><th>tables</th></tr>",
    ]
    for run in rs.runs:
        tables = [t for t in TABLES if run.files(t)]
        use = f"summarised by its {run.inside} run" if run.summarised else ", ".join(tables) or "–"
        parts.append(
            f"<tr><td><code>{esc(run.name)}</code></td><td>{esc(run.command)}</td>"
            f"<td>{esc(', '.join(rs.run_labels(run)) or '–')}</td><td>{esc(use)}</td></tr>"
        )
    parts.append("</table>")
    parts.append("<h2>Contents</h2><ul>")
    for name, spec in FIGURES.items():
        if name in made_figs:
            parts.append(f'<li><a href="#{name}">{esc(spec.title)}</a></li>')
    parts.append("</ul>")
    for name, made in made_figs.items():
        div = made.fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"fig-{name}",
            config={"displaylogo": False, "responsive": True},
        )
        links = [f'<a href="{name}.html">html</a>', f'<a href="{name}.csv">csv</a>']
        if images:
            links += [f'<a href="{name}.{ext}">{ext}</a>' for ext in IMAGE_FORMATS]
        parts += [
            f'<figure id="{name}">',
            f"<h2>{esc(FIGURES[name].title)}</h2>",
            div,
            f"<figcaption><b>{esc(name)}.</b> {esc(made.caption)} "
            f"({' · '.join(links)})</figcaption>",
            "</figure>",
        ]
    if sections:  # tables beside the figures (reports/multipl.py)
        parts.append(sections)
    if skipped or rs.notes:
        parts.append("<h2>Skipped</h2><ul>")
        for name, note in skipped.items():
            parts.append(f"<li class='skip'><b>{esc(name)}</b>: {esc(note)}</li>")
        for note in rs.notes:
            parts.append(f"<li class='skip'>{esc(note)}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def build_figures(
    rs: ResultSet, only: list[str] | None = None
) -> tuple[dict[str, Made], dict[str, str]]:
    """Run every registered figure (or `only` those): (made by name, skip note by name)."""
    names = list(FIGURES)
    if only:
        unknown = [n for n in only if n not in FIGURES]
        if unknown:
            raise InputError(
                f"--only {', '.join(unknown)}: unknown figure (known: {', '.join(FIGURES)})"
            )
        names = [n for n in names if n in only]
    made_figs: dict[str, Made] = {}
    skipped: dict[str, str] = {}
    for name in names:
        spec = FIGURES[name]
        if not spec.applies(rs):
            if only:
                skipped[name] = getattr(spec, "why_not_applicable", None) or (
                    f"needs runs of two or more base models (found: {rs.bases()})"
                )
            continue
        missing = spec.missing(rs)
        if missing:
            skipped[name] = "; ".join(rs.missing(t) for t in missing)
            continue
        try:
            made_figs[name] = spec.func(rs)
        except Skip as why:
            skipped[name] = str(why)
            continue
        stable_uids(made_figs[name], name)
    return made_figs, skipped


def main(cfg: ReportConfig) -> dict[str, Any]:
    if not cfg.runs:
        raise InputError("--runs: give at least one run folder (or a folder holding runs)")
    out = Path(cfg.out)
    _check_out(out)
    rs = ResultSet.load(cfg.runs)
    made_figs, skipped = build_figures(rs, cfg.only)
    swap = _teacher_swap(cfg.teacher_swap)
    if cfg.images and made_figs and find_chromium() is None:
        raise InputError(CHROMIUM_HINT)
    import plotly.offline

    with atomic_dir(out) as tmp:
        tmp.chmod(0o755)  # a report is for reading (mkdtemp makes 0700)
        manifest = Manifest("report", tmp, config=cfg)
        with manifest.timed("html"):
            # plain writes: the whole folder is renamed into place when complete (atomic_dir)
            (tmp / "plotly.min.js").write_text(plotly.offline.get_plotlyjs(), "utf-8")
            for name, made in made_figs.items():
                (tmp / f"{name}.html").write_text(_figure_html(made, name), "utf-8")
                (tmp / f"{name}.csv").write_text(
                    made.data.to_csv(index=False, lineterminator="\n"),
                    "utf-8",
                )
            sections = report_section(rs.table("samples"), tmp) if rs.has("samples") else ""
            page = _report_html(rs, made_figs, skipped, cfg.images, sections)
            if swap is not None:
                swap.write(tmp)
                page = page.replace("</body></html>", swap.html() + "\n</body></html>")
            (tmp / "report.html").write_text(page, "utf-8")
        if cfg.images and made_figs:
            with manifest.timed("images"):
                _write_images(made_figs, tmp, cfg.scale)
        inputs = {
            run.name: {
                "command": run.command,
                "path": str(run.path),
                "files": {t: [p.name for p in run.files(t)] for t in TABLES if run.files(t)},
            }
            for run in rs.runs
        }
        result = {
            "figures": list(made_figs),
            "skipped": skipped,
            "runs": len(rs.runs),
            "notes": rs.notes,
            "tables": ["multipl"] if sections else [],
        }
        if swap is not None:
            result["teacher_swap"] = swap.summary()
        manifest.finish(inputs=inputs, result=result)
    assert (out / MANIFEST).exists()
    print(
        f"report: {len(made_figs)} figures ({', '.join(made_figs) or 'none'}), "
        f"{len(skipped)} skipped -> {out / 'report.html'}"
    )
    for name, note in skipped.items():
        print(f"  skipped {name}: {note}")
    if swap is not None:
        print(swap.markdown, end="")
    return result


def _teacher_swap(specs: list[str]) -> Any:
    """The teacher-swap table of --teacher-swap (reports.teacher_swap), or None without it."""
    if not specs:
        return None
    from reports.teacher_swap import parse_groups, teacher_swap

    return teacher_swap(parse_groups(specs))
