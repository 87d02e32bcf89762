"""Data parallel over ranks: every per-model command under `accelerate launch` / torchrun.

What is checked:
- the sharding rule (strided, uneven counts fine), how ranks' metas merge, RANK parsing;
- the runner on a model-free command (tests/rank_toy.py) as two real processes over gloo: a
  rank killed mid-run leaves its finished parts, a relaunch with other options is refused by
  the check every rank runs first, a relaunch with --resume computes only what was missing, and the merged table
  equals the one-process table;
- `diag eval | ppl | kl | valloss | attn | gradnorm` launched with `accelerate launch
  --multi_gpu --num_processes 2` (CPU, gloo) write the tables of the one-process result set
  (tests/results_fixture.py, the same calls): same rows in the same order, floats to 1e-6.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plumbing import InputError
from plumbing.ranks import Ranks, merge_meta

TESTS = Path(__file__).resolve().parent
TOY = TESTS / "rank_toy.py"
DRIVER = TESTS / "rank_driver.py"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def test_a_rank_takes_every_world_th_item_and_the_shares_cover_each_item_once():
    items = list(range(7))
    assert [Ranks(r, 2).take(items) for r in range(2)] == [[0, 2, 4, 6], [1, 3, 5]]
    shares = [Ranks(r, 3).take(items) for r in range(3)]
    assert sorted(sum(shares, [])) == items
    assert Ranks(2, 9).take(items) == [2] and Ranks(8, 9).take(items) == []
    assert Ranks().take(items) == items and Ranks().part_suffix() == ""
    assert Ranks(1, 2).part_suffix() == "@rank1of2"


def test_ranks_metas_merge_agreed_values_kept_counts_summed():
    merged = merge_meta(
        [
            {"kind": "toy", "n": 4, "seconds": 1.5, "vocab": {"size": 9, "n": 1}, "tag": "a"},
            {"kind": "toy", "n": 3, "seconds": 2.25, "vocab": {"size": 9, "n": 2}, "tag": "b"},
        ]
    )
    assert merged == {
        "kind": "toy",
        "n": 7,
        "seconds": 3.75,
        "vocab": {"size": 9, "n": 3},
        "tag": ["a", "b"],
    }


def test_ranks_come_from_the_launchers_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert Ranks.from_env() == Ranks(0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert Ranks.from_env() == Ranks(1, 2, 1)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(InputError, match=r"RANK=2: must be in \[0, WORLD_SIZE=2\)"):
        Ranks.from_env()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(InputError, match="RANK='one': not an integer"):
        Ranks.from_env()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch_toy(out: Path, *args: str) -> list[subprocess.Popen]:
    """Two ranks of the toy command, started as torchrun starts them (env rendezvous)."""
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = {
            **os.environ,
            **ONE_THREAD,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(TOY), str(out), *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def _finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str]]:
    return [(p.wait(timeout=timeout), p.stderr.read()) for p in procs]  # type: ignore[union-attr]


def _calls(out: Path) -> list[str]:
    path = Path(f"{out}.calls")
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_a_killed_rank_keeps_its_parts_and_the_relaunch_computes_only_the_rest(tmp_path):
    from rank_toy import COMMAND, ToyConfig

    from plumbing.runner import run_command

    single = tmp_path / "single"
    run_command(COMMAND, ToyConfig(out=str(single)), progress=False)
    expected = pd.read_parquet(single / "toy.parquet")
    # in the planned item order, whatever order run_unit wrote its rows in
    assert expected["example_id"].tolist() == [f"i{v}" for v in range(7)] * 3
    assert expected["value"].tolist() == [v * n for n in (1, 2, 3) for v in range(7)]

    out = tmp_path / "two"
    rank0, rank1 = _launch_toy(out, "--die-at", "u2")
    assert rank1.wait(timeout=120) == 3, rank1.stderr.read()  # type: ignore[union-attr]
    # rank 0 finishes its shares, then waits for rank 1 at the last barrier (or sees it gone):
    # the launcher would stop it; here the test does
    parts = out / "parts"
    deadline = time.monotonic() + 60
    while not (parts / "u3@rank0of2.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    rank0.kill()
    rank0.wait(timeout=30)
    done = sorted(p.name for p in parts.glob("*.json") if p.name != "config.json")
    assert done == ["u1@rank0of2.json", "u1@rank1of2.json", "u2@rank0of2.json", "u3@rank0of2.json"]
    assert not (out / "manifest.json").exists()
    assert sorted(_calls(out)) == ["0 u1", "0 u2", "0 u3", "1 u1"]

    # other options than the parts were made with: refused before any rank logic (every rank
    # runs this same check first), nothing is run
    with pytest.raises(InputError, match=r"holds a run with other settings \(scale\)"):
        run_command(COMMAND, ToyConfig(out=str(out), scale=2, resume=True), progress=False)
    assert len(_calls(out)) == 4

    # --resume: only rank 1's missing shares are computed, then rank 0 merges and summarises
    for code, err in _finish(_launch_toy(out, "--resume")):
        assert code == 0, err
    assert sorted(_calls(out)[4:]) == ["1 u2", "1 u3"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "toy.parquet"), expected)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "finished" and manifest["world_size"] == 2
    assert manifest["result"]["n_items"] == {"u1": 7, "u2": 7, "u3": 7}
    assert not list(parts.glob("*@rank*")), "merged rank parts are removed"
    single_manifest = json.loads((single / "manifest.json").read_text(encoding="utf-8"))
    assert single_manifest["world_size"] == 1


TIMING_COLUMNS = {"duration_s"}  # wall time of a sample's run: differs between any two runs


def assert_same_table(one: pd.DataFrame, two: pd.DataFrame, where: str) -> None:
    """Same columns, same rows in the same order; floats equal to 1e-6 (timings aside)."""
    assert list(one.columns) == list(two.columns), where
    assert len(one) == len(two), f"{where}: {len(one)} vs {len(two)} rows"
    for column in one.columns:
        a, b = one[column], two[column]
        if column in TIMING_COLUMNS:
            continue
        if pd.api.types.is_float_dtype(a) and pd.api.types.is_float_dtype(b):
            np.testing.assert_allclose(
                a.to_numpy(), b.to_numpy(), rtol=1e-6, atol=1e-6, err_msg=f"{where}: {column}"
            )
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), f"{where}: {column}"


# what the one-process result set wrote and the two-rank launch must write alike
TWO_RANK_CALLS = (("eval", 0), ("ppl", 0), ("kl", 0), ("valloss", 0), ("attn", 0), ("gradnorm", 0))


@pytest.mark.slow
def test_every_command_launched_on_two_ranks_writes_the_one_process_tables(
    results, tiny_runs, tiny_base, triples_file, tmp_path
):
    from results_fixture import producer_calls

    accelerate = Path(sys.executable).with_name("accelerate")
    if not accelerate.exists():
        pytest.fail("accelerate's launcher is not installed in this environment")
    calls = producer_calls(tiny_runs, tiny_base, triples_file, results.bench, tmp_path)
    chosen = [calls[command][i] for command, i in TWO_RANK_CALLS]
    calls_file = tmp_path / "calls.json"
    calls_file.write_text(json.dumps(chosen), encoding="utf-8")
    cmd = [
        str(accelerate),
        "launch",
        "--multi_gpu",  # on a CPU-only machine the only way to get several processes (see README)
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        str(DRIVER),
        str(calls_file),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=900, env={**os.environ, **ONE_THREAD}
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    for argv in chosen:
        two = Path(argv[argv.index("--out") + 1])
        one = results.results / two.name
        tables = sorted(p.name for p in one.glob("*.parquet"))
        assert tables and tables == sorted(p.name for p in two.glob("*.parquet")), two.name
        for name in tables:
            assert_same_table(
                pd.read_parquet(one / name), pd.read_parquet(two / name), f"{two.name}/{name}"
            )
        one_patterns = sorted(p.relative_to(one) for p in one.glob("patterns/**/*.npz"))
        assert one_patterns == sorted(p.relative_to(two) for p in two.glob("patterns/**/*.npz"))
        manifest = json.loads((two / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["status"] == "finished" and manifest["world_size"] == 2, two.name
        assert not list((two / "parts").glob("*@rank*")), two.name


def test_eval_on_vllm_refuses_several_ranks(monkeypatch, tmp_path):
    from evaluation.run import EvalConfig, _validate

    cfg = EvalConfig(model=str(tmp_path), backend="vllm", out=str(tmp_path / "out"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(InputError, match="--backend vllm under several ranks"):
        _validate(cfg)
