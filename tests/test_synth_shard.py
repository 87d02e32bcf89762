"""`diag synth --shard I/N` and `--merge`: shards 0/2 and 1/2 joined equal the unsharded run
(toy source and teacher), and the refusals: a bad --shard, a shard resumed as another, the same
shard twice, a shard missing, shards of another N or run, an id in two shards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_diag_here

from plumbing import InputError
from synthesis.pipeline import SynthConfig, main, parse_shard, shard_of

N_SEEDS = 60
# toy seeds are rarely alike at the default 0.85; at 0.3 a few are near duplicates of seeds in
# the other shard, so the merge has cross-shard dedup to redo
NEAR = 0.3


def _synth(out: Path, **kw) -> dict:
    cfg = SynthConfig(
        sources=["toy"], n=N_SEEDS, out=str(out), progress=False, near_dup_threshold=NEAR, **kw
    )
    return main(cfg)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _by_id(path: Path) -> list[dict]:
    return sorted(_lines(path), key=lambda r: r["id"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The unsharded run, its two shards and their merge (through the console script's entry)."""
    root = tmp_path_factory.mktemp("shard")
    folders = {name: root / name for name in ("whole", "s0", "s1", "merged")}
    _synth(folders["whole"])
    _synth(folders["s0"], shard="0/2")
    _synth(folders["s1"], shard="1/2")
    proc = run_diag_here(
        "synth", "--merge", str(folders["s1"]), "--merge", str(folders["s0"]),
        "--out", str(folders["merged"]),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "kept" in proc.stdout
    return folders


def test_merged_shards_equal_the_unsharded_run(runs):
    whole, s0, s1, merged = runs["whole"], runs["s0"], runs["s1"], runs["merged"]
    # the shards are disjoint, cover every candidate, and each is a real share
    ids = [{r["id"] for r in _lines(d / "candidates.jsonl")} for d in (s0, s1)]
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    every = {r["id"] for r in _lines(whole / "triples.jsonl") + _lines(whole / "rejected.jsonl")}
    assert ids[0] | ids[1] == every and len(every) == N_SEEDS
    assert all(shard_of(i, 2) == k for k in (0, 1) for i in ids[k])
    # same triples (every field, split included) and same rejections (dedup details included)
    assert _by_id(merged / "triples.jsonl") == _by_id(whole / "triples.jsonl")
    assert _by_id(merged / "rejected.jsonl") == _by_id(whole / "rejected.jsonl")
    # ... in the same (source) order
    assert (merged / "triples.jsonl").read_text() == (whole / "triples.jsonl").read_text()
    # the merge redid the dedup: seeds the shards kept are near duplicates of others
    shard_kept = {r["id"] for d in (s0, s1) for r in _lines(d / "triples.jsonl")}
    cross = {r["id"] for r in _lines(merged / "rejected.jsonl") if r["stage"] == "dedup"}
    assert shard_kept & cross
    stats = {name: json.loads((runs[name] / "stats.json").read_text()) for name in runs}
    for key in ("candidates", "seeds", "kept", "rejected", "unfinished", "keep_rate", "stages",
                "splits", "sources", "stray_ids"):  # fmt: skip
        assert stats["merged"][key] == stats["whole"][key], key
    assert stats["merged"]["kept"] < stats["s0"]["kept"] + stats["s1"]["kept"]
    assert stats["s0"]["candidates"] + stats["s1"]["candidates"] == stats["whole"]["candidates"]
    # shards drop exact duplicates only: near ones (not transitive) are the merge's
    assert all(
        not stats[s]["stages"]["dedup"]["reasons"].get("near_duplicate") for s in ("s0", "s1")
    )
    # the merged folder is the unsharded run's: same identity, and the manifest names the shards
    assert (merged / "run_config.json").read_text() == (whole / "run_config.json").read_text()
    manifest = json.loads((merged / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert [s["shard"] for s in manifest["merged"]["shards"]] == ["0/2", "1/2"]
    assert [s["dir"] for s in manifest["merged"]["shards"]] == [str(s0), str(s1)]
    # the merge's scratch database (synthesis.index) never lands in the merged folder
    assert sorted(p.name for p in merged.iterdir()) == [
        "manifest.json", "rejected.jsonl", "responses.jsonl", "run_config.json", "stats.json",
        "triples.jsonl",
    ]  # fmt: skip


def test_bad_shard_is_refused_before_writing(tmp_path):
    for text in ("2/2", "1", "a/b", "0/0", "-1/2", "1/2/3", ""):
        out = tmp_path / "bad"
        with pytest.raises(InputError, match="--shard"):
            _synth(out, shard=text)
        assert not out.exists()
    assert parse_shard(" 1 / 3 ") == (1, 3)
    proc = run_diag_here("synth", "--shard", "3/2", "--out", str(tmp_path / "cli"))
    assert proc.returncode == 2 and "--shard '3/2'" in proc.stderr
    assert not (tmp_path / "cli").exists()


def test_a_shard_resumed_as_another_is_refused(runs):
    s0 = runs["s0"]
    before = (s0 / "triples.jsonl").read_bytes()
    for other in ("1/2", "0/3", None):
        with pytest.raises(InputError, match="other shard"):
            _synth(s0, shard=other, resume=True)
    assert (s0 / "triples.jsonl").read_bytes() == before


def _merge_error(out: Path, *dirs: Path) -> str:
    proc = run_diag_here(
        "synth", *[a for d in dirs for a in ("--merge", str(d))], "--out", str(out)
    )
    assert proc.returncode == 2, proc.stdout
    assert not out.exists()
    return proc.stderr


def _edit_config(folder: Path, **shard) -> None:
    path = folder / "run_config.json"
    config = json.loads(path.read_text())
    config["shard"].update(shard)
    path.write_text(json.dumps(config))


def test_merge_refuses_overlapping_missing_or_foreign_shards(runs, tmp_path):
    s0, s1, whole = runs["s0"], runs["s1"], runs["whole"]
    out = tmp_path / "out"
    twin = tmp_path / "twin"
    shutil.copytree(s0, twin)
    err = _merge_error(out, s0, twin)
    assert f"{s0}, {twin}: both are shard 0/2" in err
    assert "shard 1/2 missing" in _merge_error(out, s0)
    assert f"{whole}: not a --shard run" in _merge_error(out, s0, s1, whole)
    # a shard of another N, and a copy of shard 0 that claims to be shard 1 (every id twice)
    _edit_config(twin, count=3)
    assert "different N" in _merge_error(out, s0, twin)
    _edit_config(twin, count=2, index=1)
    assert f"{s0}, {twin}: id " in _merge_error(out, s0, twin)
    # shards of another run (other --n)
    _edit_config(twin, index=0)
    config = json.loads((twin / "run_config.json").read_text())
    (twin / "run_config.json").write_text(json.dumps({**config, "n": N_SEEDS + 1}))
    assert "not shards of one run (other n)" in _merge_error(out, twin, s1)
    (twin / "run_config.json").write_text(json.dumps(config))  # n back; another threshold
    _edit_config(twin, near_dup_threshold=0.5)
    assert "not shards of one run (other dedup settings)" in _merge_error(out, twin, s1)
    # an --out that holds something is left alone
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = run_diag_here("synth", "--merge", str(s0), "--merge", str(s1), "--out", str(out))
    assert proc.returncode == 2 and "not empty" in proc.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_merge_reads_records_past_blank_lines_and_refuses_a_candidate_without_an_outcome(
    runs, tmp_path
):
    # the merge finds records again by byte offset: blank lines before them change nothing
    s1, blank, lost = runs["s1"], tmp_path / "blank", tmp_path / "lost"
    shutil.copytree(runs["s0"], blank)
    triples = (blank / "triples.jsonl").read_text().splitlines(keepends=True)
    (blank / "triples.jsonl").write_text("\n" + triples[0] + "\n\n" + "".join(triples[1:]))
    proc = run_diag_here("synth", "--merge", str(blank), "--merge", str(s1), "--out",
                         str(tmp_path / "merged"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in ("triples.jsonl", "rejected.jsonl"):
        assert (tmp_path / "merged" / name).read_bytes() == (runs["merged"] / name).read_bytes()
    # a shard whose triples.jsonl lost a record (blank lines in it are skipped, not counted)
    shutil.copytree(runs["s0"], lost)
    gone = json.loads(triples[1])["id"]
    (lost / "triples.jsonl").write_text("\n" + triples[0] + "".join(triples[2:]))
    line = next(i for i, r in enumerate(_lines(lost / "candidates.jsonl"), 1) if r["id"] == gone)
    err = _merge_error(tmp_path / "out", lost, s1)
    assert f"{lost / 'candidates.jsonl'}:{line}: id {gone!r} has no outcome in {lost}" in err


def test_a_shard_run_refuses_a_bad_near_dup_threshold_before_writing(tmp_path: Path) -> None:
    # a shard dedups exact copies only, but --merge redoes near dedup at the shards' threshold
    out = tmp_path / "s0"
    with pytest.raises(InputError, match="--near-dup-threshold 1.5: must be in"):
        main(SynthConfig(sources=["toy"], n=4, shard="0/2", near_dup_threshold=1.5,
                         out=str(out), progress=False))  # fmt: skip
    assert not out.exists()
