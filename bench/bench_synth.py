"""Benchmark `diag synth`: teacher concurrency, and toy-world triples/s through the whole pipeline.

    .venv/bin/python bench/bench_synth.py                 # or: make bench-synth
    .venv/bin/python bench/bench_synth.py --latency 0.2 --requests 32 --toy-n 1000

1. Teacher requests/s against a loopback OpenAI-compatible server (tests/fake_teacher.py, a real
   HTTP server in a thread) that answers every request after a fixed latency (default 200 ms):
   `--workers 16` versus the `--workers 1` baseline, measured in the same run. Target: >= 12x.
2. Toy world through the full pipeline (sources, filter, dedup/decontam, toy teacher, parser,
   sandbox): kept triples per second of wall time, and the keep rate.

Prints one line per measurement and the ratio; exits 1 when the concurrency target is missed.
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="server latency (s)")
    parser.add_argument("--requests", type=int, default=32, help="requests of the 1-worker run")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--toy-n", type=int, default=1000, help="toy seeds (0: skip)")
    args = parser.parse_args()

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
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
