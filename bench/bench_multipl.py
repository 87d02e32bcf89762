"""Native programs through the sandbox vs a bare subprocess.run of the same build + run (the floor).

    .venv/bin/python bench/bench_multipl.py                   # 2 workers, 3 rounds
    .venv/bin/python bench/bench_multipl.py --workers 4 --cpp 16 --js 64 --rounds 5
    make bench-multipl

Programs shaped like MultiPL-E's HumanEval translations (prompt + completion + tests): C++ with
`#include<assert.h>` and `#include<bits/stdc++.h>`, built with `g++ -std=c++17` and run, and
JavaScript run by `node` with `node:assert` tests; each program differs (its own constants) and
all must pass in both harnesses. The floor: per program a fresh temp dir, the source written,
`subprocess.run` of the same build argv then the same run argv (sandbox/languages.py's
toolchains) with the same environment variables, from a ThreadPoolExecutor(max_workers=workers):
no isolation at all. Ours:
`sandbox.run_programs(workers=workers)` with SandboxConfig's limits (namespaces, private uid,
private /tmp, rlimits, nothing left running), twice: with the fork server (what `diag eval` uses,
evaluation.judge.eval_sandbox_config: each program's supervisor forked from one interpreter) and
with a fresh interpreter per program (`--fresh-interpreter`, SandboxConfig's default). All run in
this process, alternating within each round so that background load hits them alike; each rate
is the median over rounds, in programs/s. Overhead = floor rate / sandbox rate, per language
(target <= 1.5x for evaluation's default, the last lines printed); beside it the ratio of CPU
per program (every process of each harness counted), steadier than rates on a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox import NativeProgram, SandboxConfig, isolation_mode, run_programs  # noqa: E402
from sandbox.languages import native_program, require_toolchain  # noqa: E402
from sandbox.pool import ENV  # noqa: E402

CPP = """#include<assert.h>
#include<bits/stdc++.h>
// Return list of all prefixes from shortest to longest of the input string
std::vector<std::string> all_prefixes(std::string string) {
    std::vector<std::string> out;
    for (size_t i = 1; i <= string.size(); i++) out.push_back(string.substr(0, i));
    return out;
}
long sum_to(long n) { long s = 0; for (long i = 1; i <= n; i++) s += i; return s; }
int main() {
    auto candidate = all_prefixes;
    assert(candidate(("")) == (std::vector<std::string>()));
    assert(candidate(("asdfgh")) == (std::vector<std::string>({(std::string)"a", (std::string)"as",
        (std::string)"asd", (std::string)"asdf", (std::string)"asdfg", (std::string)"asdfgh"})));
    assert(sum_to(SEED) == SEED * (SEED + 1) / 2);
}
"""

JS = """//Return list of all prefixes from shortest to longest of the input string
function all_prefixes(string){
  const out = [];
  for (let i = 1; i <= string.length; i++) out.push(string.slice(0, i));
  return out;
}
function sum_to(n) { let s = 0; for (let i = 1; i <= n; i++) s += i; return s; }

const assert = require('node:assert');

function test() {
  let candidate = all_prefixes;
  assert.deepEqual(candidate(""),[]);
  assert.deepEqual(candidate("asdfgh"),["a", "as", "asd", "asdf", "asdfg", "asdfgh"]);
  assert.deepEqual(sum_to(SEED), SEED * (SEED + 1) / 2);
}

test();
"""


def programs(lang: str, n: int) -> list[NativeProgram]:
    template = CPP if lang == "cpp" else JS
    return [native_program(lang, f"{lang}_{i}", template.replace("SEED", str(100 + i)))
            for i in range(n)]  # fmt: skip


FLOOR_DIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def cpu_seconds() -> float:
    """CPU time of this process and its reaped descendants (user + system): every process of
    either harness (the sandbox's steps are reaped by their supervisor, it by this process or by
    the fork server, which this process reaps at the end of the batch)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bare(program: NativeProgram) -> bool:
    """The floor: the same build and run argv in a fresh temp dir, no isolation, the sandbox's
    environment (this process's may slow a tool down: NODE_EXTRA_CA_CERTS makes every node start
    load a certificate bundle, 2.5x its start-up here) and, like the sandbox's steps, a session
    of its own (with the kernel's autogroup scheduling a new session is a new CPU share: on a
    loaded machine a floor left in this session ran C++ at 0.6x the sandbox's rate). Its temp
    dir is on a tmpfs (/dev/shm) where there is one, as the sandbox's /tmp is."""
    with tempfile.TemporaryDirectory(prefix="codecot-floor-", dir=FLOOR_DIR) as cwd:
        env = dict(ENV, HOME=cwd, TMPDIR=cwd, **dict(program.env))
        for name, text in program.files:
            Path(cwd, name).write_text(text)
        if program.build is not None:
            built = subprocess.run(program.build, cwd=cwd, env=env, capture_output=True,
                                   check=False, start_new_session=True)  # fmt: skip
            if built.returncode != 0:
                return False
        ran = subprocess.run(program.run, cwd=cwd, env=env, capture_output=True, check=False,
                             stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        return ran.returncode == 0


def run_floor(progs: list[NativeProgram], workers: int) -> tuple[float, float, int]:
    start, cpu = time.perf_counter(), cpu_seconds()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ok = sum(pool.map(bare, progs))
    return time.perf_counter() - start, cpu_seconds() - cpu, ok


def run_ours(
    progs: list[NativeProgram], workers: int, fork_server: bool
) -> tuple[float, float, int]:
    start, cpu = time.perf_counter(), cpu_seconds()
    verdicts = run_programs(progs, SandboxConfig(fork_server=fork_server), workers=workers)
    return time.perf_counter() - start, cpu_seconds() - cpu, sum(v.passed for v in verdicts)


HARNESSES = {
    "floor": run_floor,
    "sandbox": lambda progs, workers: run_ours(progs, workers, fork_server=True),
    "sandbox --fresh-interpreter": lambda progs, workers: run_ours(progs, workers, False),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpp", type=int, default=8, help="C++ programs per round")
    parser.add_argument("--js", type=int, default=32, help="JavaScript programs per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if isolation_mode() != "netns":
        print("error: native programs need the netns isolation (run as root)")
        return 1
    for lang in ("cpp", "js"):
        chain = require_toolchain(lang)
        print(f"{lang}: build {chain.build} run {chain.run}")
    print(f"workers: {args.workers} (all); CPUs: {os.cpu_count()}; rounds: {args.rounds}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ratios: dict[str, dict[str, float]] = {}
    for lang, n in (("cpp", args.cpp), ("js", args.js)):
        progs = programs(lang, n)
        times: dict[str, list[float]] = {name: [] for name in HARNESSES}
        cpus: dict[str, list[float]] = {name: [] for name in HARNESSES}
        for r in range(args.rounds):
            line = []
            for name, fn in HARNESSES.items():
                seconds, cpu, ok = fn(progs, args.workers)
                if ok != n:
                    print(f"error: {lang} {name}: {ok}/{n} programs passed")
                    return 1
                times[name].append(seconds)
                cpus[name].append(cpu)
                line.append(f"{name} {n / seconds:6.2f}")
            print(f"{lang} round {r + 1} (programs/s): " + "   ".join(line))
        rates = {name: n / statistics.median(t) for name, t in times.items()}
        for name, rate in rates.items():
            cpu_ms = 1000 * statistics.median(cpus[name]) / n
            print(f"{lang} {name:28s} {rate:7.2f} programs/s  {cpu_ms:7.1f} ms CPU/program")
        floor_cpu = statistics.median(cpus["floor"])
        ratios[lang] = {
            name: (rates["floor"] / rate, statistics.median(cpus[name]) / floor_cpu)
            for name, rate in rates.items()
        }
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for lang, by_name in ratios.items():
        fresh, fresh_cpu = by_name["sandbox --fresh-interpreter"]
        print(f"overhead {lang}, fresh interpreter per program (floor rate / rate): {fresh:.2f}x "
              f"(CPU per program: {fresh_cpu:.2f}x)")  # fmt: skip
    for lang, by_name in ratios.items():
        ratio, cpu_ratio = by_name["sandbox"]
        verdict = "met" if ratio <= 1.5 else "NOT met"
        print(f"overhead {lang}, evaluation's default (floor rate / sandbox rate): {ratio:.2f}x "
              f"(CPU per program: {cpu_ratio:.2f}x; target <= 1.5x: {verdict})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
