"""Native programs (any language) in the sandbox: verdicts by exit status, the same isolation.

PYTHONPATH=. python -m pytest -q tests/test_sandbox_native.py
"""

from __future__ import annotations

import pytest

from sandbox import NativeProgram, SandboxConfig, isolation_mode, run_programs
from sandbox.procs import leftovers

pytestmark = pytest.mark.skipif(
    isolation_mode() != "netns", reason="native programs need the netns isolation (root)"
)

GXX = ("g++", "-std=c++17", "prog.cpp", "-o", "a.out")


def cpp(id_: str, source: str) -> NativeProgram:
    return NativeProgram(id_, (("prog.cpp", source),), ("./a.out",), GXX)


def test_native_build_and_run_verdicts_by_exit_status() -> None:
    ok = '#include <iostream>\nint main() { std::cout << 6 * 7 << "\\n"; return 0; }\n'
    bad = "#include <cassert>\nint main() { assert(1 + 1 == 3); return 0; }\n"
    broken = "int main() { return undeclared; }\n"
    script = 'echo "$HOME $PWD $(id -u)"; read line; echo "got $line" >&2; exit 3\n'
    programs = [
        cpp("ok", ok),
        cpp("bad", bad),
        cpp("broken", broken),
        NativeProgram("sh", (("p.sh", script),), ("bash", "p.sh"), stdin="hello\n"),
    ]
    v = {x.id: x for x in run_programs(programs, SandboxConfig(timeout_s=10), workers=2)}
    assert (v["ok"].status, v["ok"].exit_code, v["ok"].stdout) == ("passed", 0, "42\n")
    assert v["bad"].status == "failed" and "SIGABRT" in v["bad"].detail
    assert "1 + 1 == 3" in v["bad"].stderr
    assert v["broken"].status == "error"
    assert v["broken"].detail.startswith("build failed (exit 1)")
    assert "undeclared" in v["broken"].build_log and v["broken"].exit_code is None
    home, cwd, uid = v["sh"].stdout.split()
    assert (home, cwd) == ("/tmp", "/tmp") and int(uid) >= SandboxConfig().uid_base
    assert (v["sh"].status, v["sh"].exit_code) == ("failed", 3)
    assert v["sh"].detail == "exit 3: got hello"
    assert leftovers() == []
