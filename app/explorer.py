"""codecot explorer: a Streamlit dashboard over the result files of `diag` runs.

    diag app --runs demo_out                   # starts this script and prints the URL
    streamlit run app/explorer.py -- --runs demo_out

Pages (sidebar): Overview (results table, headline differences with CIs), Examples (tokens
colored by KL to base or NLL, follow beside precede), Attention (span x span mass per layer and
head, saved token-level patterns), Curves (pass@1 over checkpoints, validation loss and KL,
ablations, training loss). Reads only parquet + manifest.json through `reports.results` (the
reader `diag report` uses); never loads a model and never imports torch.
"""

from __future__ import annotations

import sys

import streamlit as st

from app import data, views
from plumbing import InputError

st.set_page_config(page_title="codecot explorer", page_icon="🧭", layout="wide")

default_roots = data.runs_from_argv(sys.argv[1:])
with st.sidebar:
    st.title("codecot explorer")
    runs_text = st.text_input(
        "runs (folders, separated by ;)",
        value=";".join(default_roots),
        help="Run folders or folders holding runs; searched recursively for manifest.json.",
        key="runs-text",
    )
    # ?page=Curves in the URL opens that page (links, screenshots)
    asked = st.query_params.get("page", views.PAGES[0])
    start = views.PAGES.index(asked) if asked in views.PAGES else 0
    page = st.radio("page", views.PAGES, index=start, key="page")

roots = tuple(r.strip() for r in runs_text.split(";") if r.strip())
if not roots:
    st.info("Give a runs folder in the sidebar (or start with `diag app --runs DIR`).")
    st.stop()
try:
    fp = data.fingerprint(roots)
    rs_all = data.load_results(roots, fp)
except InputError as err:
    st.error(str(err))
    st.stop()

labels = rs_all.labels()
with st.sidebar:
    picked = st.multiselect("models", labels, default=labels, key="models")
    with st.expander(f"{len(rs_all.runs)} runs"):
        for run in rs_all.runs:
            note = f" (summarised by its {run.inside} run)" if run.summarised else ""
            models = ", ".join(rs_all.run_labels(run)) or "–"
            st.markdown(f"- `{run.name}` · {run.command} · {models}{note}")
    for note in rs_all.notes:
        st.warning(note)
rs = rs_all.subset(picked) if set(picked) != set(labels) else rs_all

if page == "Overview":
    views.render_overview(rs, roots, fp)
elif page == "Examples":
    views.render_examples(rs, roots, fp)
elif page == "Attention":
    views.render_attention(rs)
else:
    views.render_curves(rs)
