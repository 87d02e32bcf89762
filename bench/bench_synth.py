"""Benchmark `diag synth`: teacher concurrency, and toy-world triples/s through the whole pipeline.

    .venv/bin/python bench/bench_synth.py                 # or: make bench-synth
    .venv/bin/python bench/bench_synth.py --latency 0.2 --requests 32 --toy-n 1000

1. Teacher requests/s against a loopback OpenAI-compatible server (tests/fake_teacher.py, a real
   HTTP server in a thread) that answers every request after a fixed latency (default 200 ms):
   `--workers 16` versus the `--workers 1` baseline, measured in the same run. Target: >= 12x.
2. Toy world through the full pipeline (sources, filter, dedup/decontam, toy teacher, parser,
   sandbox): kept triples per second of wall time, and the keep rate.
3. Raw code at scale (`--stream-mb 50,200`; 0 skips): a synthetic parquet in The Stack's layout
   (`content`, `lang`, `max_stars_repo_path`; every row a distinct small module of three
   functions, row groups of 1,000 rows) of each size through stages 1-3 (source, filter,
   dedup; `synthesis.pipeline._front_stages`, no teacher), each in a fresh process: candidates/s,
   peak RSS (VmHWM) and the size of the on-disk index the stages keep (synthesis.index). Target:
   peak RSS at the largest size <= 1.2x the smallest's (memory flat with input size). Then
   `--shard 0/2` and `1/2` of the smallest file in two processes at once vs the whole file in
   one: target >= 1.6x. Cost (measured 2026-12-04 on a shared 2-core machine): about 1,500-1,600
   candidates/s on one core (ast cutting, filter, normalisation, MinHash), 9,200 candidates per
   MB of this code: 50 MB took 285 s (peak RSS 152 MB, index 429 MB on disk), 200 MB 1,207 s
   (peak RSS 156 MB, 1.03x; index 1.75 GB on disk). `--stream-mb 12.5,50` checks in ~7 minutes.

Prints one line per measurement and the ratio; exits 1 when the concurrency target is missed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake_teacher import FakeTeacher  # noqa: E402

from synthesis.seeds import Seed  # noqa: E402
from synthesis.teacher import OpenAITeacher, TeacherConfig, TeacherRequest  # noqa: E402

TARGET = 12.0


def requests_per_s(url: str, workers: int, n: int) -> float:
    teacher = OpenAITeacher(url, "bench", TeacherConfig(workers=workers, timeout_s=30))
    requests = [
        TeacherRequest(f"k{workers}-{i}", f"prompt {workers}-{i}", Seed(id=str(i), code=""))
        for i in range(n)
    ]
    t0 = time.perf_counter()
    replies = list(teacher.run(requests))
    seconds = time.perf_counter() - t0
    assert len(replies) == n and all(reply.error is None for _, reply in replies)
    return n / seconds


def toy_pipeline(n: int) -> dict:
    from synthesis.pipeline import SynthConfig, main

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stats = main(SynthConfig(sources=["toy"], n=n, out=str(Path(tmp) / "toy"), progress=False))
        wall = time.perf_counter() - t0
    return {"kept": stats["kept"], "seeds": stats["seeds"], "keep_rate": stats["keep_rate"],
            "wall_s": wall, "triples_per_s": stats["kept"] / wall}  # fmt: skip


STREAM_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from synthesis.index import open_index
from synthesis.pipeline import SynthConfig, _front_stages
cfg = SynthConfig(sources=["parquet:" + sys.argv[1]], fields=["code=content"], decontam=[],
                  shard=sys.argv[2] or None, out="unused", progress=False)
index = Path(sys.argv[1] + (sys.argv[2].replace("/", "of") or "all") + ".sqlite")
t0 = time.perf_counter()
order, passed, _ = _front_stages(cfg, None, open_index(index))
wall = time.perf_counter() - t0
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({{"rows": len(order), "seeds": len(passed), "wall_s": wall, "hwm_mb": hwm / 1024,
                  "index_mb": index.stat().st_size / 1e6}}))
index.unlink()
"""


def stack_parquet(path: Path, megabytes: float) -> int:
    """A parquet of distinct raw-code rows totalling about `megabytes` of code; returns rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, rows, size, batch = None, 0, 0, []
    while size < megabytes * 1e6:
        i = rows
        code = (
            f"import math\n\n\ndef scale_{i}(xs, k={i % 7 + 2}):\n"
            f"    return [x * k + {i} for x in xs if x % {i % 5 + 2} != 0]\n\n\n"
            f"def norm_{i}(xs):\n    total = math.fsum(x * x for x in xs) + {i}\n"
            f"    return [x / math.sqrt(total) for x in xs]\n\n\n"
            f"def count_{i}(text):\n    seen = {{}}\n    for ch in text:\n"
            f"        seen[ch] = seen.get(ch, 0) + {i % 3 + 1}\n    return seen\n"
        )
        batch.append({"content": code, "lang": "Python", "max_stars_repo_path": f"r{i}/m.py"})
        rows, size = rows + 1, size + len(code)
        if len(batch) == 1000:
            table = pa.Table.from_pylist(batch)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            batch = []
    if batch:
        table = pa.Table.from_pylist(batch)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()
    return rows


def stream_child(path: Path, shard: str = "") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", STREAM_CHILD.format(root=str(ROOT)), str(path), shard],
        stdout=subprocess.PIPE,
        text=True,
    )


def raw_code_at_scale(sizes: list[float]) -> bool:
    """Part 3 (see the module docstring); True when both targets are met."""
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for mb in sizes:
            path = Path(tmp) / f"stack-{mb:g}mb.parquet"
            n_rows = stack_parquet(path, mb)
            child = stream_child(path)
            out = json.loads(child.communicate()[0])
            results[mb] = out
            print(
                f"raw code {mb:g} MB ({n_rows} rows, {out['rows']} candidates, {out['seeds']} "
                f"past dedup): {out['rows'] / out['wall_s']:.0f} candidates/s, "
                f"peak RSS {out['hwm_mb']:.0f} MB, on-disk index {out['index_mb']:.0f} MB",
                flush=True,
            )
        small, large = min(sizes), max(sizes)
        growth = results[large]["hwm_mb"] / results[small]["hwm_mb"]
        print(f"peak RSS {large:g} MB / {small:g} MB: {growth:.2f}x (target <= 1.2x)", flush=True)
        path = Path(tmp) / f"stack-{small:g}mb.parquet"
        t0 = time.perf_counter()
        shards = [stream_child(path, f"{i}/2") for i in range(2)]
        outs = [json.loads(p.communicate()[0]) for p in shards]
        both = time.perf_counter() - t0
        one = results[small]["wall_s"]
        print(
            f"2 shards in 2 processes: {both:.1f} s wall ({outs[0]['rows']} + {outs[1]['rows']} "
            f"candidates) vs 1 process {one:.1f} s (stages only): {one / both:.2f}x (target >= 1.6x)"
        )
        return growth <= 1.2 and one / both >= 1.6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="server latency (s)")
    parser.add_argument("--requests", type=int, default=32, help="requests of the 1-worker run")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--toy-n", type=int, default=1000, help="toy seeds (0: skip)")
    parser.add_argument("--stream-mb", default="50,200", help="raw-code sizes in MB (0: skip)")
    args = parser.parse_args()
    sizes = [float(x) for x in args.stream_mb.split(",") if float(x) > 0]

    with FakeTeacher(lambda prompt: f"answer to {prompt}", latency_s=args.latency) as server:
        base = requests_per_s(server.url, 1, args.requests)
        fast = requests_per_s(server.url, args.workers, args.requests * args.workers)
    ratio = fast / base
    print(f"teacher, {args.latency * 1000:.0f} ms latency, workers=1: {base:.2f} requests/s")
    print(
        f"teacher, {args.latency * 1000:.0f} ms latency, workers={args.workers}: {fast:.2f} requests/s"
    )
    print(f"ratio workers={args.workers} / workers=1: {ratio:.2f}x (target >= {TARGET:g}x)")
    if args.toy_n:
        toy = toy_pipeline(args.toy_n)
        print(
            f"toy pipeline, n={args.toy_n}: kept {toy['kept']}/{toy['seeds']} "
            f"({toy['keep_rate']:.1%}) in {toy['wall_s']:.1f} s = {toy['triples_per_s']:.1f} triples/s"
        )
    stream_ok = raw_code_at_scale(sizes) if sizes else True
    return 0 if ratio >= TARGET and stream_ok else 1


if __name__ == "__main__":
    sys.exit(main())
