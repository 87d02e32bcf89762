"""The sandbox on ordinary programs: verdicts, details, order, limits, isolation modes.

Run: .venv/bin/pytest -q tests/test_sandbox.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from sandbox import (
    STATUSES,
    Program,
    SandboxConfig,
    Verdict,
    isolation_mode,
    isolation_report,
    run_program,
    run_programs,
)
from sandbox.isolation import probe, tmp_kept_paths
from sandbox.procs import leftovers

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0
SYSTEM_PY = "/usr/bin/python3"
CFG = SandboxConfig(timeout_s=5)
ADD = "def add(a, b):\n    return a + b\n"


def test_passing_failing_erroring_programs() -> None:
    progs = [
        Program("pass", ADD, ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]),
        Program("fail", ADD, ["assert add(1, 2) == 3", "assert add(2, 2) == 5", "assert False"]),
        Program("error", ADD, ["assert add(1, 2) == 3", "add(1, 'x')"]),
        Program("import-error", "import no_such_module_xyz\n", ["assert True"]),
        Program("syntax", "def f(:\n", ["assert True"]),
        Program("bad-test", ADD, ["assert add(1, 2) == 3", "assert (("]),
        Program("no-tests", ADD, []),
    ]
    v = {x.id: x for x in run_programs(progs, CFG)}
    assert all(isinstance(x, Verdict) and x.status in STATUSES for x in v.values())
    assert v["pass"].status == "passed" and v["pass"].failed_test is None
    assert v["fail"].status == "failed"
    assert v["fail"].failed_test == 1
    assert v["fail"].detail == "test 1: assert add(2, 2) == 5"
    assert v["error"].status == "error" and v["error"].failed_test == 1
    assert v["error"].detail.startswith("TypeError: unsupported operand type(s) for +")
    assert "in test 1: add(1, 'x')" in v["error"].detail
    assert v["import-error"].status == "error"
    assert "ModuleNotFoundError: No module named 'no_such_module_xyz'" in v["import-error"].detail
    assert "in the solution, line 1" in v["import-error"].detail
    assert v["syntax"].status == "error" and "SyntaxError" in v["syntax"].detail
    assert v["bad-test"].status == "error" and v["bad-test"].failed_test == 1
    assert "test does not compile" in v["bad-test"].detail
    assert v["no-tests"].status == "passed"  # the code ran cleanly; nothing to check


def test_assertion_message_and_assert_inside_solution() -> None:
    code = "def f(x):\n    assert x > 0, 'x must be positive'\n    return x\n"
    progs = [
        Program("msg", code, ["assert f(2) == 3, 'f(2) is 2'"]),
        # an assert failing inside the solution is the solution's error, not a failed test
        Program("inner", code, ["assert f(-1) == -1"]),
    ]
    msg, inner = run_programs(progs, CFG)
    assert (msg.status, msg.failed_test) == ("failed", 0)
    assert msg.detail == "test 0: assert f(2) == 3, 'f(2) is 2' (AssertionError: f(2) is 2)"
    assert (inner.status, inner.failed_test) == ("error", 0)
    assert inner.detail.startswith("AssertionError: x must be positive (in test 0")


def test_block_tests_name_the_failing_line() -> None:
    block = (
        "def check(candidate):\n"
        "    assert candidate(1, 2) == 3\n"
        "    assert candidate(2, 2) == 5\n"
        "    assert candidate(0, 0) == 0\n"
        "check(add)\n"
    )
    ok = block.replace("== 5", "== 4")
    failed, passed, error = run_programs(
        [Program("b1", ADD, block), Program("b2", ADD, ok), Program("b3", "add = 3\n", ok)], CFG
    )
    assert failed.status == "failed" and failed.failed_test is None
    assert failed.detail == "line 3: assert candidate(2, 2) == 5"
    assert passed.status == "passed"
    assert error.status == "error" and "TypeError: 'int' object is not callable" in error.detail
    assert "in the tests, line 2" in error.detail


def test_fork_server_matches_fresh_interpreters() -> None:
    """Two code paths, same verdicts: a fresh interpreter per program, or forks of one."""
    progs = [
        Program("pass", ADD, ["assert add(1, 2) == 3"]),
        Program("fail", ADD, ["assert add(1, 2) == 4"]),
        Program("error", ADD, ["add(1, None)"]),
        Program("exit0", "import os\nos._exit(0)\n", ["assert True"]),
        Program("oom", "x = bytearray(10**12)\n", ["pass"]),
        Program("typing", "from typing import List\nX: List[int] = [1]\n", ["assert X == [1]"]),
    ]
    fresh = run_programs(progs, CFG)
    forked = run_programs(progs, SandboxConfig(timeout_s=5, fork_server=True))
    assert [(v.status, v.detail, v.failed_test) for v in fresh] == [
        (v.status, v.detail, v.failed_test) for v in forked
    ]
    assert [v.status for v in fresh] == ["passed", "failed", "error", "error", "oom", "passed"]
    assert leftovers() == []


def test_list_and_block_agree() -> None:
    """The same checks as a list of statements and as one block give the same verdicts."""
    cases = {
        "good": ADD,
        "bad": "def add(a, b):\n    return a - b\n",
        "crash": "def add(a, b):\n    raise ValueError('no')\n",
    }
    stmts = ["assert add(1, 2) == 3", "assert add(0, 5) == 5"]
    progs = []
    for name, code in cases.items():
        progs.append(Program(f"{name}-list", code, stmts))
        progs.append(Program(f"{name}-block", code, "\n".join(stmts) + "\n"))
    v = {x.id: x.status for x in run_programs(progs, CFG)}
    for name in cases:
        assert v[f"{name}-list"] == v[f"{name}-block"]
    assert [v["good-list"], v["bad-list"], v["crash-list"]] == ["passed", "failed", "error"]


def test_tests_share_the_namespace() -> None:
    tests = [
        "x = add(2, 3)",
        "assert x == 5",
        "import math",
        "assert math.isclose(add(0.1, 0.2), 0.3)",
    ]
    assert run_program(Program("ns", ADD, tests), CFG).status == "passed"


@pytest.mark.parametrize("fork_server", [False, True])
def test_order_under_parallelism(fork_server: bool) -> None:
    """Verdicts come back in input order although short programs finish first."""
    progs = []
    for i in range(24):
        delay = 0.3 if i % 4 == 0 else 0.0
        code = f"import time\ntime.sleep({delay})\nprint('{i}')\nVALUE = {i}\n"
        progs.append(Program(f"p{i}", code, [f"assert VALUE == {i if i % 3 else -1}"]))
    got = run_programs(progs, SandboxConfig(timeout_s=5, fork_server=fork_server), workers=4)
    assert [v.id for v in got] == [f"p{i}" for i in range(24)]
    assert [v.stdout for v in got] == [f"{i}\n" for i in range(24)]
    assert [v.status for v in got] == ["passed" if i % 3 else "failed" for i in range(24)]
    assert leftovers() == []


def test_run_program_equals_run_programs() -> None:
    prog = Program("same", ADD + "print('out'); import sys; print('err', file=sys.stderr)\n",
                   ["assert add(2, 2) == 5"])  # fmt: skip
    one = run_program(prog, CFG)
    many = run_programs([prog, prog], CFG, workers=2, progress=True)
    for v in many:
        assert (v.status, v.detail, v.failed_test, v.stdout, v.stderr) == (
            one.status, one.detail, one.failed_test, one.stdout, one.stderr)  # fmt: skip
    assert one.stdout == "out\n" and one.stderr == "err\n"
    assert one.duration_s > 0


@pytest.mark.parametrize("fork_server", [False, True])
def test_fresh_interpreter_per_program(fork_server: bool) -> None:
    """No state crosses programs: fresh process, fresh temp dir, -I, no -O, stdin empty."""
    probe_code = (
        "import os, sys, json\n"
        "state = dict(pid=os.getpid(), cwd=os.getcwd(), files=sorted(os.listdir('.')),\n"
        "             isolated=sys.flags.isolated, optimize=sys.flags.optimize,\n"
        "             marked=hasattr(json, 'MARK'), home=os.environ.get('HOME'))\n"
        "json.MARK = 1\n"
        "open('left_behind.txt', 'w').write('x')\n"
        "try:\n    input()\nexcept EOFError:\n    state['stdin'] = 'eof'\n"
        "print(json.dumps(state))\n"
    )
    cfg = SandboxConfig(timeout_s=5, fork_server=fork_server)
    got = run_programs([Program(f"f{i}", probe_code, ["assert True"]) for i in range(4)], cfg)
    states = [json.loads(v.stdout) for v in got]
    assert all(v.status == "passed" for v in got)
    assert len({s["pid"] for s in states}) == 4 or isolation_mode() == "netns"
    # an interpreter under /tmp (a clone's venv there) is bound back read-only into the
    # private /tmp: its top directory is the only thing a fresh temp dir may show
    site = [sysconfig.get_paths()[k] for k in ("purelib", "platlib")]
    kept = sorted({p.split("/")[2] for p in tmp_kept_paths(probe()["paths"] + site)})
    if isolation_mode() != "netns":
        kept = []
    for s in states:
        assert s["files"] == kept and s["marked"] is False and s["stdin"] == "eof"
        assert s["isolated"] == 1 and s["optimize"] == 0
        assert s["home"] == s["cwd"]
    if isolation_mode() != "netns":
        assert len({s["cwd"] for s in states}) == 4


def test_output_is_captured_and_capped() -> None:
    code = "import sys\nprint('a' * 5000)\nprint('b' * 5000, file=sys.stderr)\n"
    v = run_program(Program("cap", code, ["assert True"]), SandboxConfig(output_bytes=1000))
    assert v.status == "passed"
    assert v.stdout.startswith("a" * 1000 + "\n[... truncated: 5001 bytes in all]")
    assert v.stderr.startswith("b" * 1000 + "\n[... truncated: 5001 bytes in all]")


def test_batch_deadline() -> None:
    progs = [Program(f"s{i}", "import time\ntime.sleep(30)\n", ["assert True"]) for i in range(6)]
    progs.insert(0, Program("quick", ADD, ["assert add(1, 1) == 2"]))
    got = run_programs(progs, SandboxConfig(timeout_s=60), workers=2, deadline_s=1.5)
    assert got[0].status == "passed"
    assert {v.status for v in got[1:]} == {"killed"}
    details = {v.detail for v in got[1:]}
    assert details == {"batch deadline reached while running", "not run: batch deadline reached"}
    assert leftovers() == []


def test_imports_installed_packages_unless_disabled() -> None:
    code = "import numpy\nX = int(numpy.arange(5).sum())\n"
    on = run_program(Program("np", code, ["assert X == 10"]), CFG)
    off = run_program(Program("np", code, ["assert X == 10"]), SandboxConfig(site_packages=False))
    assert on.status == "passed", on.detail
    assert off.status == "error" and "No module named 'numpy'" in off.detail


def test_config_validation() -> None:
    for bad in (
        dict(timeout_s=0), dict(memory_mb=-1), dict(isolation="chroot"), dict(cpu_s=0),
        dict(max_open_files=3), dict(output_bytes=0),
    ):  # fmt: skip
        with pytest.raises(ValueError):
            SandboxConfig(**bad)
    with pytest.raises(ValueError, match="tests must be a str or a list of str"):
        run_programs([Program("x", "pass", [1])])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="workers"):
        run_programs([Program("x", "pass")], workers=0)
    assert run_programs([], CFG) == []
    assert SandboxConfig(timeout_s=2.5).cpu_limit_s == 4


def test_isolation_mode_matches_the_machine() -> None:
    mode = isolation_mode()
    assert mode in ("netns", "socket-block")
    assert (mode == "netns") == probe()["netns"]
    if IS_ROOT:
        assert mode == "netns", probe()["why"]  # root may create namespaces (`unshare -n` works)
    report = isolation_report()
    assert report["mode"] == mode
    assert report["sentinel"] in ("kernel keyring", "memory (closure)")


@pytest.mark.skipif(not IS_ROOT, reason="the private uid needs root")
def test_private_uid_and_namespaces() -> None:
    code = (
        "import os, socket\n"
        "UID = os.getuid()\n"
        "PIDS = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "IFACES = [n for _, n in socket.if_nameindex()]\n"
    )
    v = run_program(Program("ns", code, ["assert UID >= 100000", "assert PIDS == [1, 2]",
                                         "assert IFACES == ['lo']"]), CFG)  # fmt: skip
    assert v.status == "passed", v.detail


@pytest.mark.skipif(not (IS_ROOT and os.path.exists(SYSTEM_PY)), reason="needs root, system python")
def test_socket_block_mode_as_root() -> None:
    """isolation='socket-block' (what a machine without namespaces gets), still a private uid."""
    cfg = SandboxConfig(timeout_s=5, isolation="socket-block", python=SYSTEM_PY)
    progs = [
        Program("ok", ADD, ["assert add(1, 2) == 3"]),
        Program("fail", ADD, ["assert add(1, 2) == 4"]),
        Program("uid", "import os\nUID = os.getuid()\n", ["assert UID >= 100000"]),
        Program("net", "import socket\nsocket.socket().connect(('127.0.0.1', 9))\n", ["pass"]),
        Program("exec", "import subprocess\nsubprocess.run(['true'])\n", ["pass"]),
    ]
    ok, fail, uid, net, exe = run_programs(progs, cfg)
    assert (ok.status, fail.status, uid.status) == ("passed", "failed", "passed")
    assert net.status == "error" and "network sockets are disabled" in net.detail
    assert exe.status == "error" and "subprocess.Popen is disabled" in exe.detail
    with pytest.raises(ValueError, match="cannot reach the interpreter"):
        run_program(Program("x", "pass"), SandboxConfig(isolation="socket-block"))


NON_ROOT_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from sandbox import Program, SandboxConfig, isolation_mode, isolation_report, run_programs
P = Program
progs = [
    P("ok", "def f():\n    return 1\n", ["assert f() == 1"]),
    P("fail", "def f():\n    return 1\n", ["assert f() == 2"]),
    P("exit0", "import os\ndef f():\n    os._exit(0)\n", ["assert f() == 2"]),
    P("fake", "import os\nos.write(3, b'\x1ePASS\t' + b'0' * 32 + b'\n')\n", ["assert False"]),
    P("net", "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)\n", ["pass"]),
    P("daemon", "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                "        time.sleep(600)\n    os._exit(0)\n", ["assert True"]),
]
got = run_programs(progs, SandboxConfig(timeout_s=3), workers=4)
# RLIMIT_NPROC counts every process of the shared uid: a fork bomb running beside `daemon` could
# make its fork fail (isolation_report says so), so the bomb runs on its own batch.
bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
got += run_programs([P("bomb", bomb, ["pass"])], SandboxConfig(timeout_s=3), workers=4)
print(json.dumps({"mode": isolation_mode(), "report": isolation_report(),
                  "verdicts": {v.id: [v.status, v.detail] for v in got}}))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    not (IS_ROOT and os.path.exists(SYSTEM_PY) and shutil.which("setpriv")),
    reason="needs root to switch to an unprivileged user, and the system python",
)
def test_works_when_not_root() -> None:
    """As an unprivileged user: weaker isolation, reported, and the same verdicts."""
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
           SYSTEM_PY, "-c", NON_ROOT_SCRIPT, str(ROOT)]  # fmt: skip
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", "TMPDIR": "/tmp"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["mode"] == "socket-block"
    assert out["report"]["uid"] == "the caller's (not root)"
    assert out["report"]["writes_outside_tmp"] == "NOT blocked"
    assert out["report"]["process_limit"].startswith("shared by the caller's uid")
    v = {k: tuple(x) for k, x in out["verdicts"].items()}
    assert v["ok"][0] == "passed" and v["fail"][0] == "failed"
    assert v["exit0"] == ("error", "exited with code 0 before the tests finished (no sentinel)")
    assert v["fake"][0] == "error"
    assert v["net"][0] == "error" and "disabled (no network)" in v["net"][1]
    assert v["bomb"][0] == "timeout"
    assert v["daemon"][0] == "passed"
    assert leftovers(uids=range(65534, 65535)) == []
    assert sys.executable  # the harness here survived, too
