"""Native programs (any language) in the sandbox: verdicts by exit status, the same isolation.

PYTHONPATH=. python -m pytest -q tests/test_sandbox_native.py

One batch (workers=2, every program compiled once) holds a canonical and a failing program per
language, compile errors, and the hostile twins of tests/test_sandbox_hostile.py: a C++ fork
bomb, a Java program writing to $HOME and outside /tmp, Bash / Node / Python programs connecting
to 1.1.1.1 and to a listener this test opens on the host's 127.0.0.1, a Rust busy loop that
starts a child, a Node script starting detached daemons. Each hostile program exits 0 only if
its attack worked: none passes, nothing escapes (no file, no connection), nothing survives.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from sandbox import NativeProgram, SandboxConfig, Verdict, isolation_mode, run_programs
from sandbox.languages import (
    TOOLCHAINS,
    MissingToolchain,
    native_program,
    require_toolchain,
    resolve_toolchain,
)
from sandbox.verdict import NativeOutcome, decide_native
from tests.conftest import contained_batch, skip_or_fail

needs_netns = pytest.mark.skipif(
    isolation_mode() != "netns", reason="native programs need the netns isolation (root)"
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = f"codecot_native_pwned_{os.getpid()}"
UID_BASE = 190_000  # this file's private uids, to tell its processes apart
WRITE_DIRS = [str(Path.home()), str(ROOT), "/tmp", "/var/tmp", "/dev/shm", "/run/lock"]
CONFIG = SandboxConfig(timeout_s=10, uid_base=UID_BASE)

# (source, expected status, expected exit code) per language: a passing and a failing test
CANONICAL = {
    "cpp": "#include <cassert>\n#include <vector>\n"
    "int add(int a, int b) { return a + b; }\n"
    "int main() { std::vector<int> v = {add(1, 2)}; assert(v[0] == 3); return 0; }\n",
    "java": "import java.util.*;\nimport org.javatuples.*;\n"
    "class Problem {\n"
    "    public static long add(long a, long b) { return a + b; }\n"
    "    public static void main(String[] args) {\n"
    "        Pair<Long, Long> p = Pair.with(1l, 2l);\n"
    "        assert(add(p.getValue0(), p.getValue1()) == CHECK);\n"
    "    }\n"
    "}\n",
    "js": "const assert = require('node:assert');\n"
    "function add(a, b) { return a + b; }\nassert.deepEqual(add(1, 2), CHECK);\n",
    "sh": "add() { echo $(( $1 + $2 )); }\n[[ $(add 1 2) = CHECK ]] || exit 1\n",
    "rs": "fn add(a: isize, b: isize) -> isize { a + b }\n"
    "fn main() { assert_eq!(add(1, 2), CHECK); }\n",
    "php": "<?php\nfunction add($a, $b) { return $a + $b; }\n"
    'if (add(1, 2) !== CHECK) { throw new Exception("Test failed!"); }\n',
    "py": "def add(a, b):\n    return a + b\n\nassert add(1, 2) == CHECK\n",
}
# a failing assertion's exit code per language (C++'s assert() aborts: SIGABRT, no exit code)
FAIL_EXIT = {"cpp": None, "java": 1, "js": 1, "sh": 1, "rs": 101, "php": 255, "py": 1}
NEEDS = {"php": "php-cli", "java": "default-jdk-headless", "rs": "rustc", "js": "nodejs"}


def _source(lang: str, check: int) -> str:
    text = CANONICAL[lang].replace("CHECK", str(check))
    return text.replace("assert(v[0] == 3)", f"assert(v[0] == {check})")


FORK_BOMB = r"""
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unistd.h>
int main() {
    int made = 0;
    bool told = false;
    for (;;) {  // every child forks too
        pid_t pid = fork();
        if (pid > 0) made++;
        if (pid < 0 && !told) {
            printf("fork failed after %d: %s\n", made, strerror(errno));
            fflush(stdout);
            told = true;
        }
        usleep(1000);
    }
}
"""

JAVA_WRITER = """
import java.nio.file.*;
class Problem {
    public static void main(String[] args) {
        String[] dirs = {System.getenv("HOME"), DIRS};
        boolean escaped = false;
        for (String d : dirs) {
            try {
                Files.writeString(Paths.get(d, "TOKEN"), "pwned");
                System.out.println(d + " ok");
                escaped |= !d.equals("/tmp");
            } catch (Exception e) {
                System.out.println(d + " " + e.getClass().getSimpleName());
            }
        }
        System.exit(escaped ? 0 : 3);
    }
}
"""

BASH_CONNECT = """
exec 3<>/dev/tcp/127.0.0.1/PORT && exit 0
exec 4<>/dev/tcp/1.1.1.1/53 && exit 0
exit 4
"""

NODE_CONNECT = """
const net = require("net");
let left = 2;
for (const [host, port] of [["127.0.0.1", PORT], ["1.1.1.1", 53]]) {
  const s = net.connect(port, host, () => process.exit(0));
  s.on("error", (e) => { console.error(host + " " + e.code); if (--left === 0) process.exit(5); });
}
setTimeout(() => process.exit(6), 5000);
"""

PY_CONNECT = """
import socket, sys
for addr in (("127.0.0.1", PORT), ("1.1.1.1", 53)):
    try:
        socket.create_connection(addr, timeout=3)
        sys.exit(0)
    except OSError as e:
        print(addr[0], e, file=sys.stderr)
sys.exit(5)
"""

RUST_BUSY = """
use std::process::Command;
fn main() {
    let child = Command::new("sleep").arg("1000").spawn().expect("spawn");
    println!("child {}", child.id());
    let mut x: u64 = 0;
    loop { x = std::hint::black_box(x.wrapping_add(1)); }
}
"""

NODE_DAEMON = """
const { spawn } = require("child_process");
const d = spawn("sleep", ["1000"], { detached: true, stdio: "ignore" });
d.unref();
const e = spawn("bash", ["-c", "setsid nohup sleep 1000 >/dev/null 2>&1 &"], { stdio: "ignore" });
e.on("exit", () => { console.log("daemon " + d.pid); process.exit(7); });
"""

# the build step leaves a daemon; the run step (same namespace, same uid) must not see it
BUILD_LEAVES = ("bash", "-c", "(setsid sleep 1000 >/dev/null 2>&1 &); echo built")
COUNT_SLEEPS = "n=0; for c in /proc/[0-9]*/comm; do [[ $(cat $c) = sleep ]] && n=$((n+1)); done\n"


def _programs(port: int) -> tuple[list[NativeProgram], dict[str, str]]:
    """The batch, and why a program is missing from it (its toolchain is not installed)."""
    dirs = ", ".join(f'"{d}"' for d in WRITE_DIRS)
    sources: list[tuple[str, str, str, float | None]] = []
    for lang in CANONICAL:
        sources.append((lang, f"{lang}_ok", _source(lang, 3), None))
        sources.append((lang, f"{lang}_fail", _source(lang, 4), None))
    sources += [
        ("cpp", "cpp_compile_error", "int main() { return undeclared; }\n", None),
        ("rs", "rs_compile_error", 'fn main() { let x: u8 = "no"; }\n', None),
        ("cpp", "cpp_fork_bomb", FORK_BOMB, 2),
        ("java", "java_writer", JAVA_WRITER.replace("DIRS", dirs).replace("TOKEN", TOKEN), None),
        ("sh", "sh_connect", BASH_CONNECT.replace("PORT", str(port)), None),
        ("js", "js_connect", NODE_CONNECT.replace("PORT", str(port)), None),
        ("py", "py_connect", PY_CONNECT.replace("PORT", str(port)), None),
        ("rs", "rs_busy_loop", RUST_BUSY, 1.5),
        ("js", "js_daemon", NODE_DAEMON, None),
    ]
    programs, missing = [], {}
    for lang, name, source, timeout_s in sources:
        try:
            programs.append(native_program(lang, name, source, timeout_s=timeout_s))
        except MissingToolchain as exc:
            missing[name] = f"{exc}: run `make toolchains`"
    programs += [
        NativeProgram("build_hangs", (), ("true",), ("sleep", "100"), build_timeout_s=1),
        NativeProgram(
            "build_leaves",
            (("count.sh", COUNT_SLEEPS + "exit $n\n"),),
            ("bash", "count.sh"),
            BUILD_LEAVES,
        ),
        NativeProgram("flood", (), ("yes",)),
        NativeProgram("py_memory", (), ("python3", "-c", "bytearray(512 << 20)"), memory_mb=256),
        NativeProgram(
            "stdin_env",
            (("p.sh", 'read x; echo "$x $GREETING $HOME $(id -u)"\n'),),
            ("bash", "p.sh"),
            stdin="hello\n",
            env=(("GREETING", "hi"),),
        ),
    ]
    return programs, missing


@pytest.fixture(scope="module")
def batch() -> dict[str, object]:
    if isolation_mode() != "netns":
        pytest.skip("native programs need the netns isolation (root)")

    def run(port: int) -> tuple[list[NativeProgram], dict[str, str], list[Verdict]]:
        programs, missing = _programs(port)
        return programs, missing, run_programs(programs, CONFIG, workers=2)

    (programs, missing, verdicts), escaped = contained_batch(run, WRITE_DIRS, TOKEN, UID_BASE)
    return {
        "order": [v.id for v in verdicts],
        "ids": [p.id for p in programs],
        "v": {v.id: v for v in verdicts},
        "missing": missing,
        **escaped,
    }


def _v(batch: dict[str, object], name: str) -> Verdict:
    if name in batch["missing"]:  # type: ignore[operator]
        skip_or_fail(batch["missing"][name])  # type: ignore[index]
    return batch["v"][name]  # type: ignore[index]


@pytest.mark.parametrize("lang", list(CANONICAL))
def test_canonical_passes_and_failing_assertion_fails(batch, lang: str) -> None:
    ok, bad = _v(batch, f"{lang}_ok"), _v(batch, f"{lang}_fail")
    assert (ok.status, ok.exit_code, ok.detail) == ("passed", 0, "exit 0"), ok
    assert bad.status == "failed", bad
    assert bad.exit_code == FAIL_EXIT[lang], bad
    if bad.exit_code is None:
        assert bad.detail.startswith("abort (SIGABRT): ") and "v[0] == 4" in bad.detail
    else:
        assert bad.detail.startswith(f"exit {bad.exit_code}")


def test_verdicts_in_input_order(batch) -> None:
    assert batch["order"] == batch["ids"]


def test_compile_error_is_error_with_the_build_log(batch) -> None:
    cpp, rs = _v(batch, "cpp_compile_error"), _v(batch, "rs_compile_error")
    assert (cpp.status, cpp.detail, cpp.exit_code) == ("error", "build failed (exit 1)", None)
    assert "'undeclared' was not declared" in cpp.build_log.replace("‘", "'").replace("’", "'")
    assert (rs.status, rs.detail) == ("error", "build failed (exit 1)")
    assert "mismatched types" in rs.build_log
    assert cpp.build_exit_code == rs.build_exit_code == 1
    ok = _v(batch, "cpp_ok")
    assert ok.build_exit_code == 0


def test_fork_bomb_is_contained(batch) -> None:
    v = _v(batch, "cpp_fork_bomb")
    assert (v.status, v.detail) == ("timeout", "run step: wall-clock limit of 2 s reached")
    made = [int(line.split()[3].rstrip(":")) for line in v.stdout.splitlines()]
    # RLIMIT_NPROC = 8 tasks for the private uid: no process of the tree made more than 7
    assert made and max(made) < CONFIG.max_processes, v.stdout
    assert "Resource temporarily unavailable" in v.stdout


def test_java_writes_nowhere_outside_its_tmp(batch) -> None:
    v = _v(batch, "java_writer")
    assert (v.status, v.exit_code) == ("failed", 3), v
    report = dict(line.rsplit(" ", 1) for line in v.stdout.splitlines())
    assert report.pop("/tmp") == "ok"  # $HOME and /tmp: the program's own tmpfs
    assert set(report.values()) <= {"AccessDeniedException", "FileSystemException"}, report
    assert set(report) == set(WRITE_DIRS) - {"/tmp"}
    assert batch["written"] == []  # not even the host's /tmp


@pytest.mark.parametrize("name", ["sh_connect", "js_connect", "py_connect"])
def test_no_network(batch, name: str) -> None:
    v = _v(batch, name)
    assert v.status == "failed" and v.exit_code in (4, 5), v
    unreachable = {"sh_connect": "Network is unreachable", "js_connect": "ENETUNREACH",
                   "py_connect": "Network is unreachable"}[name]  # fmt: skip
    for host in ("127.0.0.1", "1.1.1.1"):
        assert any(host in line and unreachable in line for line in v.stderr.splitlines()), v
    assert not batch["connected"]


def test_busy_loop_times_out(batch) -> None:
    v = _v(batch, "rs_busy_loop")
    assert (v.status, v.detail) == ("timeout", "run step: wall-clock limit of 1.5 s reached")
    assert v.stdout.startswith("child ")


def test_daemons_do_not_survive(batch) -> None:
    v = _v(batch, "js_daemon")
    assert (v.status, v.exit_code) == ("failed", 7) and v.stdout.startswith("daemon ")
    assert batch["leftovers"] == []


def test_build_step_limits_and_cleanup(batch) -> None:
    hangs = _v(batch, "build_hangs")
    assert (hangs.status, hangs.detail) == (
        "timeout",
        "build step: wall-clock limit of 1 s reached",
    )
    leaves = _v(batch, "build_leaves")
    # the build left a daemon; it was killed before the run step (which counts 0 sleeps)
    assert (leaves.status, leaves.exit_code, leaves.build_log) == ("passed", 0, "built\n")


def test_run_step_limits(batch) -> None:
    flood = _v(batch, "flood")
    assert flood.status == "killed" and flood.detail.startswith("output flood in the run step")
    memory = _v(batch, "py_memory")
    assert memory.status == "failed" and "MemoryError" in memory.detail
    env = _v(batch, "stdin_env")
    word, greeting, home, uid = env.stdout.split()
    assert (env.status, word, greeting, home) == ("passed", "hello", "hi", "/tmp")
    assert UID_BASE <= int(uid) < UID_BASE + 17_000


@needs_netns
def test_fork_server_runs_native_programs_too() -> None:
    programs = [native_program("sh", "sh", _source("sh", 3)), native_program("js", "js", "1\n")]
    verdicts = run_programs(programs, dataclasses.replace(CONFIG, fork_server=True), workers=2)
    assert [(v.status, v.exit_code) for v in verdicts] == [("passed", 0), ("passed", 0)]


def test_missing_toolchain_names_the_package(monkeypatch) -> None:
    absent = dataclasses.replace(TOOLCHAINS["php"], run=("php-codecot-absent", "prog.php"))
    with pytest.raises(MissingToolchain, match=r"php: 'php-codecot-absent' not found.*php-cli"):
        resolve_toolchain(absent)
    monkeypatch.setitem(TOOLCHAINS, "rs", dataclasses.replace(
        TOOLCHAINS["rs"], build=("/nonexistent/rustc", "prog.rs")))  # fmt: skip
    with pytest.raises(MissingToolchain, match="install the Debian package rustc"):
        native_program("rs", "x", "fn main() {}")
    with pytest.raises(ValueError, match="unknown language 'cobol': one of cpp, java, js"):
        require_toolchain("cobol")


def test_toolchains_resolve_to_absolute_paths() -> None:
    for lang, package in NEEDS.items():
        try:
            chain = require_toolchain(lang)
        except MissingToolchain as exc:
            skip_or_fail(f"{exc}: run `make toolchains`")
        assert chain.package == package
        for argv in (chain.build, chain.run):
            if argv is not None and not argv[0].startswith("./"):
                assert os.path.isabs(argv[0]) and os.access(argv[0], os.X_OK), argv


def test_native_programs_refused_without_namespaces() -> None:
    program = NativeProgram("x", (), ("true",))
    # as root, "socket-block" needs an interpreter every uid can read
    config = SandboxConfig(isolation="socket-block", python="/usr/bin/python3")
    if os.geteuid() != 0:
        config = SandboxConfig(isolation="socket-block")
    with pytest.raises(RuntimeError, match="native programs need isolation 'netns'"):
        run_programs([program], config)


def test_bad_native_program_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"programs\[0\] \('x'\): file name '../x'"):
        run_programs([NativeProgram("x", (("../x", ""),), ("true",))], CONFIG)
    with pytest.raises(ValueError, match="run must be a non-empty tuple"):
        run_programs([NativeProgram("x", (), ())], CONFIG)


def _outcome(**fields: object) -> NativeOutcome:
    base = dict(has_build=True, build_report="0 0.5 0.1", exit_report="0 0.01 0.0 900",
                kill_reason=None, phase="run", stderr=b"", output_total=0)  # fmt: skip
    return NativeOutcome(**{**base, **fields})  # type: ignore[arg-type]


def test_decide_native_maps_every_case() -> None:
    """Pure: the verdict rules of sandbox.verdict.decide_native on constructed outcomes."""
    cfg = SandboxConfig(timeout_s=3, build_timeout_s=20)
    cases = {
        "passed": (_outcome(), ("passed", "exit 0")),
        "failed": (_outcome(exit_report=f"{2 << 8} 0 0 0", stderr=b"boom\n"),
                   ("failed", "exit 2: boom")),
        "abort": (_outcome(exit_report="6 0 0 0", stderr=b"a.out: Assertion failed"),
                  ("failed", "abort (SIGABRT): a.out: Assertion failed")),
        "segv": (_outcome(exit_report="11 0 0 0"), ("killed", "run step killed by SIGSEGV")),
        "xcpu": (_outcome(exit_report="24 0 0 0"),
                 ("timeout", "run step: CPU limit of 4 s reached")),
        "build": (_outcome(build_report=f"{1 << 8} 0 0", exit_report=None),
                  ("error", "build failed (exit 1)")),
        "build_sig": (_outcome(build_report="9 0 0", exit_report=None),
                      ("error", "build failed (killed by SIGKILL)")),
        "build_xcpu": (_outcome(build_report="24 0 0", exit_report=None),
                       ("timeout", "build step: CPU limit of 21 s reached (SIGXCPU)")),
        "build_wall": (_outcome(build_report=None, exit_report=None, kill_reason="timeout",
                                phase="build"),
                       ("timeout", "build step: wall-clock limit of 20 s reached")),
        "run_wall": (_outcome(exit_report=None, kill_reason="timeout"),
                     ("timeout", "run step: wall-clock limit of 3 s reached")),
        "deadline": (_outcome(exit_report=None, kill_reason="deadline"),
                     ("killed", "batch deadline reached while in the run step")),
        "lost": (_outcome(exit_report="lost"),
                 ("killed", "sandbox supervisor lost its program in the run step")),
        "no_build_step": (_outcome(has_build=False, build_report=None), ("passed", "exit 0")),
    }  # fmt: skip
    for name, (outcome, expected) in cases.items():
        assert tuple(decide_native(outcome, cfg)) == (*expected, None), name
