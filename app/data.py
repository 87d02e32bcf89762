"""Cached reads for the dashboard: the same `reports.results` path `diag report` uses.

    roots = runs_from_argv(sys.argv[1:])        # --runs DIR (repeatable), else $CODECOT_RUNS
    rs = load_results(tuple(roots), fingerprint(tuple(roots)))
    tokens = example_tokens(tuple(roots), fp, "t3")   # kl_tokens rows of one example
    arrays = load_pattern("/abs/run/patterns/key/t3.npz")

Every loader is wrapped in `st.cache_data`: the key includes a fingerprint of the result files
(paths and mtimes, re-read at most every few seconds), so a rerun of a `diag` command shows up
without restarting the app, and widgets do not re-read parquet. No torch, no model: the app only
reads files the CLI wrote.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import streamlit as st

from reports.results import ResultSet

ENV_RUNS = "CODECOT_RUNS"  # os.pathsep-separated run roots (used when --runs is not given)
# Large per-token / per-sample tables are read on demand, not with the rest.
LAZY_TABLES = ("kl_tokens", "samples", "attn_examples")


def runs_from_argv(argv: list[str]) -> list[str]:
    """Run roots from `-- --runs DIR [--runs DIR]` (streamlit passes what follows `--`)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", action="append", default=[])
    known, _ = parser.parse_known_args(argv)
    roots = [r for r in known.runs if r]
    if not roots and os.environ.get(ENV_RUNS):
        roots = [r for r in os.environ[ENV_RUNS].split(os.pathsep) if r]
    return roots


@st.cache_data(ttl=3, show_spinner=False)
def fingerprint(roots: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    """(file, mtime) of every manifest and result file under the roots."""
    return ResultSet.load(list(roots)).fingerprint()


@st.cache_data(show_spinner="Reading result files…", max_entries=4)
def load_results(roots: tuple[str, ...], fp: Any) -> ResultSet:
    """All small tables of the runs under `roots` (`fp`, the fingerprint, is the cache key)."""
    return ResultSet.load(list(roots)).load_all(skip=LAZY_TABLES)


@st.cache_data(show_spinner="Reading a large table…", max_entries=8)
def load_table(roots: tuple[str, ...], fp: Any, name: str) -> Any:
    return ResultSet.load(list(roots)).table(name)


@st.cache_data(show_spinner=False, max_entries=64)
def example_tokens(roots: tuple[str, ...], fp: Any, example_id: str) -> Any:
    """kl_tokens.parquet rows of one example (every model), ordered by label and position."""
    frame = load_table(roots, fp, "kl_tokens")
    if frame.empty:
        return frame
    sub = frame[frame["example_id"].astype(str) == str(example_id)]
    return sub.sort_values(["label", "pos"], kind="stable").reset_index(drop=True)


@st.cache_data(show_spinner="Loading the attention pattern…", max_entries=16)
def load_pattern(path: str) -> dict[str, Any]:
    """The arrays of one saved pattern (diag attn --save-patterns): mean_heads [layers, seq,
    seq], per_head [layers, heads, seq, seq] when saved, tokens, span_ids, span_names."""
    import numpy as np

    # token strings are stored as an object array: the file is the user's own diag attn output
    with np.load(Path(path), allow_pickle=True) as npz:
        return {k: npz[k] for k in npz.files}
