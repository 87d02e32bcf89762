"""diag app: every page driven with Streamlit's AppTest on real result files (values checked
against the parquet), the exact command shown when a file is missing, no torch import, and a
headless-Chromium screenshot of the served app.

The result set is made once per session by the real commands (tests/results_fixture.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DIAG, run_diag, skip_or_fail
from results_fixture import final_pass_at_1, need

from app.data import ENV_RUNS, runs_from_argv
from app.views import tokens_html

APP = Path(__file__).resolve().parent.parent / "app" / "explorer.py"


def app_test(roots: list[Path], monkeypatch: pytest.MonkeyPatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(ENV_RUNS, os.pathsep.join(str(r) for r in roots))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def goto(at, page: str):
    at.sidebar.radio(key="page").set_value(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart(at, key: str) -> dict:
    """The plotly JSON of the st.plotly_chart with this key."""
    import json

    found = [c for c in at.get("plotly_chart") if key in c.proto.id]
    assert len(found) == 1, [c.proto.id for c in at.get("plotly_chart")]
    return json.loads(found[0].proto.spec)


def array(value) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {dtype, bdata (base64), shape}."""
    import base64

    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = [int(x) for x in str(value.get("shape", len(flat))).split(",")]
        return flat.reshape(shape).astype(float)
    return np.asarray(value, dtype=float)


def frame_with(at, *columns: str) -> pd.DataFrame:
    """The one st.dataframe on the page that has these columns."""
    found = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]


# ---------------------------------------------------------------------------------------------
# fast


def test_runs_from_argv_and_env(monkeypatch):
    monkeypatch.delenv(ENV_RUNS, raising=False)
    assert runs_from_argv(["--runs", "a", "--other", "x", "--runs", "b"]) == ["a", "b"]
    assert runs_from_argv([]) == []
    monkeypatch.setenv(ENV_RUNS, os.pathsep.join(["c", "d"]))
    assert runs_from_argv([]) == ["c", "d"] and runs_from_argv(["--runs", "e"]) == ["e"]


def test_tokens_html_marks_spans_and_shades_by_value():
    tokens = pd.DataFrame(
        {
            "pos": [1, 2, 3, 4],
            "token": ["Write", "<b>", "def", "\n"],
            "span": ["prompt", "prompt", "code", "code"],
            "kl": [0.0, 0.5, 1.0, 2.0],
            "nll": [1.0, 2.0, 3.0, 4.0],
        }
    )
    out = tokens_html(tokens, "kl", vmax=1.0, rgb=(214, 39, 40))
    assert out.count('class="cc-span"') == 2  # prompt block, code block
    assert 'data-span="prompt"' in out and 'data-span="code"' in out
    assert "&lt;b&gt;" in out and "<b>" not in out  # token text escaped
    alphas = [float(x.split(")")[0]) for x in out.split("rgba(214,39,40,")[1:]]
    assert alphas == [0.0, 0.5, 1.0, 1.0]  # clipped at vmax
    assert "KL 0.5000 · NLL 2.000" in out and "↵" in out
    shifted = tokens_html(tokens, "nll", vmax=3.0, rgb=(31, 119, 180), vmin=1.0)
    alphas = [float(x.split(")")[0]) for x in shifted.split("rgba(31,119,180,")[1:]]
    assert alphas == [0.0, 0.5, 1.0, 1.0]  # (nll - 1) / (3 - 1), clipped


def test_missing_files_name_the_command(tiny_runs, monkeypatch):
    at = app_test([tiny_runs["follow"].parent], monkeypatch)
    infos = " ".join(i.value for i in at.info)
    assert "diag eval --model runs/FORMAT" in infos
    goto(at, "Examples")
    assert any("--save-tokens" in i.value for i in at.info)
    goto(at, "Attention")
    assert any("diag attn --model runs/follow" in i.value for i in at.info)
    goto(at, "Curves")
    assert len(at.get("plotly_chart")) == 1  # training loss: the one curve a train run has
    assert any("diag valloss --run runs/follow" in i.value for i in at.info)


def test_diag_app_bad_input_exits_2(tiny_runs, tmp_path):
    proc = run_diag("app", "--runs", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "no such folder" in proc.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_diag("app", "--runs", str(tiny_runs["follow"].parent), "--port", str(port))
    assert proc.returncode == 2 and f"--port {port}: cannot listen" in proc.stderr


def test_app_never_imports_torch(tiny_runs):
    """Every page rendered in a fresh interpreter: torch never gets imported."""
    script = f"""
import os, sys
os.environ[{ENV_RUNS!r}] = {str(tiny_runs["follow"].parent)!r}
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(APP)!r}, default_timeout=120).run()
for page in ("Examples", "Attention", "Curves", "Overview"):
    at.sidebar.radio(key="page").set_value(page).run()
    assert not at.exception, [e.value for e in at.exception]
print("torch" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"


# ---------------------------------------------------------------------------------------------
# every page on the real result set


@pytest.mark.slow
def test_overview_shows_the_pass_at_1_of_the_parquet(results, monkeypatch):
    need(results, "eval", "ppl")
    at = app_test(results.roots, monkeypatch)
    shown = frame_with(at, "label", "pass_at_1", "n_tasks", "pass@1 [95% CI]")
    for label, want in final_pass_at_1(results).items():
        row = shown[shown["label"] == label].iloc[0]
        assert row["pass_at_1"] == pytest.approx(want["pass_at_k"])
        assert row["ci_high"] == pytest.approx(want["ci_high"])
    oracle = shown.set_index("label").loc["oracle"]
    expected = sum(results.oracle_pass.values()) / len(results.oracle_pass)
    assert oracle["pass_at_1"] == pytest.approx(expected)
    assert oracle["pass@1 [95% CI]"].startswith(f"{expected:.3f} [")
    # by difficulty, and the headline comparisons of summary_*.parquet
    difficulty = frame_with(at, "difficulty", "pass_at_1")
    assert set(difficulty["difficulty"]) == {"easy", "medium", "hard"}
    comparisons = frame_with(at, "metric", "a", "b", "diff", "ci_low", "ci_high")
    summary = pd.read_parquet(results.results / "ppl" / "summary_ppl.parquet")
    gap = summary[
        (summary["metric"] == "log_ppl:gap")
        & (summary["a"] == "follow-s0[follow]")
        & (summary["b"] == "precede-s0[precede]")
    ].iloc[0]
    row = comparisons[
        (comparisons["metric"] == "log_ppl:gap") & (comparisons["a"] == "follow-s0[follow]")
    ]
    assert len(row) == 1 and row["diff"].iloc[0] == pytest.approx(gap["diff"])
    assert not comparisons["a"].str.contains(r"follow-s0\[precede\]").any()  # own-format only
    # pick two models: the paired pass@1 difference (oracle vs follow, known from the samples)
    at.selectbox(key="cmp-a").set_value("oracle").run()
    at.selectbox(key="cmp-b").set_value("follow-s0").run()
    assert at.metric[0].value == f"{expected - 0.0:+.3f}"
    # the model picker filters every table
    at.sidebar.multiselect(key="models").set_value(["oracle"]).run()
    assert frame_with(at, "label", "pass@1 [95% CI]")["label"].tolist() == ["oracle"]


@pytest.mark.slow
def test_example_browser_colors_tokens_from_kl_tokens(results, monkeypatch):
    need(results, "kl")
    at = goto(app_test(results.roots, monkeypatch), "Examples")
    tokens = pd.read_parquet(results.results / "kl" / "kl_tokens.parquet")
    example = at.selectbox(key="example-id").value
    assert example == sorted(tokens["example_id"].unique())[0]
    blocks = [h.proto.body for h in at.get("html")]
    assert len(blocks) == 2  # follow beside precede
    for label, body in zip(("follow-s0", "precede-s0"), blocks):
        sub = tokens[(tokens["label"] == label) & (tokens["example_id"] == example)]
        sub = sub.sort_values("pos")
        assert body.count('class="cc-tok"') == len(sub)
        first = sub.iloc[len(sub) // 2]
        assert f"KL {first['kl']:.4f} · NLL {first['nll']:.3f}" in body
        assert [s for s in ("prompt", "cot", "code") if f'data-span="{s}"' in body] == [
            "prompt",
            "cot",
            "code",
        ]
        # the span order of the format: follow writes the CoT first, precede the code
        order = [body.index(f'data-span="{s}"') for s in ("cot", "code")]
        assert (order[0] < order[1]) == (label == "follow-s0")
    # what each model generated for this task (samples.parquet of the eval runs)
    samples = pd.concat(
        pd.read_parquet(results.results / run / "samples.parquet")
        for run in ("eval-follow", "eval-precede")
    )
    generated = samples[samples["task_id"] == example]
    shown_code = [c.value for c in at.code]
    assert len(shown_code) == len(generated) > 0
    assert set(shown_code) == set(generated["completion"].astype(str))
    other = sorted(tokens["example_id"].unique())[1]
    at.selectbox(key="example-id").set_value(other).run()
    at.radio(key="shade").set_value("NLL").run()
    body = at.get("html")[0].proto.body
    assert "rgba(31,119,180," in body and "rgba(214,39,40," not in body
    sub = tokens[(tokens["label"] == "follow-s0") & (tokens["example_id"] == other)]
    assert body.count('class="cc-tok"') == len(sub)
    kl = pd.read_parquet(results.results / "kl" / "kl.parquet")
    numbers = [d.value for d in at.dataframe if "metric" in d.value.columns][0]
    want = kl[(kl["label"] == "follow-s0") & (kl["example_id"] == other) & (kl["span"] == "cot")]
    got = numbers[(numbers["metric"] == "mean KL") & (numbers["span"] == "cot")]["value"]
    assert got.iloc[0] == pytest.approx(want["kl_mean"].iloc[0], abs=1e-5)


@pytest.mark.slow
def test_attention_page_sliders_select_layer_and_head(results, monkeypatch):
    need(results, "attn")
    at = goto(app_test(results.roots, monkeypatch), "Attention")
    attn = pd.read_parquet(results.results / "attn" / "attn.parquet")
    attn = attn[attn["visible"]]

    def check(sub: pd.DataFrame) -> None:
        shown = frame_with(at, "label", "src", "dst", "mass")
        direct = sub.groupby(["label", "src", "dst"])["mass"].mean()
        assert len(shown) == len(direct)
        for r in shown.itertuples():
            assert r.mass == pytest.approx(direct[(r.label, r.src, r.dst)], rel=1e-5)

    check(attn)
    at.select_slider(key="attn-layer").set_value(1).run()
    check(attn[attn["layer"] == 1])
    at.select_slider(key="attn-head").set_value(2).run()
    check(attn[(attn["layer"] == 1) & (attn["head"] == 2)])
    # saved token-level pattern: the heatmap is the npz's layer (mean over heads)
    at.slider(key="pattern-layer").set_value(1).run()
    fig = chart(at, "pattern-heatmap")
    index = pd.read_parquet(results.results / "attn" / "patterns.parquet")
    first = index.sort_values(["label", "example_id"]).iloc[0]
    with np.load(results.results / "attn" / first["path"], allow_pickle=True) as npz:
        want = npz["mean_heads"][1].astype(float)
    got = array(fig["data"][0]["z"])  # [seq, seq]
    np.testing.assert_allclose(got, want, rtol=1e-3)


@pytest.mark.slow
def test_curves_page_draws_every_curve_it_has(results, monkeypatch):
    need(results, "eval", "kl", "valloss")
    at = goto(app_test(results.roots, monkeypatch), "Curves")
    charts = at.get("plotly_chart")
    ids = " ".join(c.proto.id for c in charts)
    for name in ("pass_at_1_checkpoints", "kl_valloss", "train_loss"):
        assert f"curve-{name}" in ids
    if "ablate" in results.missing:
        assert any("diag ablate" in i.value for i in at.info)
    else:
        assert "curve-ablation_curves" in ids
    fig = chart(at, "curve-pass_at_1_checkpoints")
    lines = {t["name"]: t for t in fig["data"] if t.get("mode") == "lines+markers"}
    assert set(lines) == {"follow-s0", "precede-s0"}  # the oracle has no checkpoints
    pak = pd.read_parquet(results.results / "eval-follow" / "pass_at_k.parquet")
    pak = pak[(pak["k"] == 1) & (pak["group"] == "all")].sort_values("step")
    np.testing.assert_array_equal(array(lines["follow-s0"]["x"]), pak["step"].to_numpy(float))
    np.testing.assert_allclose(array(lines["follow-s0"]["y"]), pak["pass_at_k"].to_numpy())


# ---------------------------------------------------------------------------------------------
# the served app in a real browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip

# Rendered: the page's heading is on screen and Streamlit's running indicator (the status
# widget with "Stop") is gone, i.e. the script finished.
READY_JS = """(() => {
  const text = document.body ? document.body.innerText : "";
  return text.includes(%s) && !document.querySelector('[data-testid="stStatusWidget"]');
})()"""


def screenshot_when_rendered(
    url: str, heading: str, out: Path, profile: Path, timeout_s: float = 240.0
) -> float:
    """Headless Chromium driven over the DevTools protocol: open `url`, wait until the app has
    rendered `heading` and finished running, then save a PNG. Returns seconds until rendered."""
    import base64
    import json

    from websockets.sync.client import connect  # a streamlit dependency

    port = _free_port()
    browser = subprocess.Popen(
        [shutil.which("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
         f"--remote-debugging-port={port}", "--window-size=1400,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + timeout_s
        pages = []
        while not pages and time.time() < deadline:
            try:
                listing = f"http://127.0.0.1:{port}/json/list"
                pages = [t for t in json.load(urllib.request.urlopen(listing, timeout=2))]
                pages = [t for t in pages if t["type"] == "page"]
            except OSError:
                time.sleep(0.2)
        assert pages, "chromium did not open its DevTools port"
        with connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as ws:
            ids = iter(range(1, 1_000_000))

            def call(method: str, **params) -> dict:
                msg_id = next(ids)
                ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
                while True:
                    reply = json.loads(ws.recv(timeout=60))
                    if reply.get("id") == msg_id:
                        return reply.get("result", {})

            t0 = time.time()
            call("Page.navigate", url=url)
            ready_js = READY_JS % json.dumps(heading)
            rendered = None
            while time.time() < deadline:
                value = call("Runtime.evaluate", expression=ready_js, returnByValue=True)
                if value.get("result", {}).get("value") is True:
                    rendered = time.time() - t0
                    break
                time.sleep(0.5)
            assert rendered is not None, f"{url}: not rendered within {timeout_s:.0f} s"
            time.sleep(1.0)  # plotly draws its SVG after the elements arrive
            shot = call("Page.captureScreenshot", format="png")
            out.write_bytes(base64.b64decode(shot["data"]))
            return rendered
    finally:
        os.killpg(browser.pid, 15)
        browser.wait(timeout=30)


@pytest.mark.slow
def test_served_app_renders_in_headless_chromium(results, tmp_path):
    if shutil.which("chromium") is None:
        skip_or_fail("Debian chromium is not installed (make chromium); cannot take a screenshot")
    from PIL import Image

    port = _free_port()
    args = [DIAG, "app", "--host", "127.0.0.1", "--port", str(port)]
    for root in results.roots:
        args += ["--runs", str(root)]
    server = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        first = server.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first, first
        deadline, health = time.time() + 60, ""
        while time.time() < deadline and health != "ok":
            try:
                url = f"http://127.0.0.1:{port}/_stcore/health"
                health = urllib.request.urlopen(url, timeout=2).read().decode()
            except OSError:
                time.sleep(0.3)
        assert health == "ok"
        shots = {}
        for page, heading in (("Overview", "Results: pass@1"), ("Curves", "Training loss")):
            out = tmp_path / f"{page.lower()}.png"
            screenshot_when_rendered(
                f"http://127.0.0.1:{port}/?page={page}", heading, out, tmp_path / f"p-{page}"
            )
            grey = np.asarray(Image.open(out).convert("L"), dtype=np.float64)
            shots[page] = (out, float(grey.var()), float((grey < 200).mean()))
        # a blank page (only the toolbar) has variance ~2 and no dark pixels
        for page, (out, variance, dark) in shots.items():
            assert variance > 200 and dark > 0.01, (page, out, variance, dark)
        keep = os.environ.get("CODECOT_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for page, (out, _, _) in shots.items():
                shutil.copy(out, Path(keep) / f"app-{page.lower()}.png")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    # diag app and the streamlit server it started are both gone
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.killpg(server.pid, 0)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
