"""The harness: a pool of pre-started fresh interpreters, driven by one selector loop.

    from sandbox.pool import run_batch      # (use sandbox.run_programs)

Each slot is one `python -I -S -B` started for one program (sandbox/_child.py), warmed up
before its program exists (interpreter start, namespaces, mounts), then given the program and
used once. At most `workers` programs run at once and `workers + 1` warm interpreters wait.
One thread multiplexes every pipe; nothing here blocks on a child. Timers: per-program wall
clock, a startup watchdog per warm interpreter, a drain watchdog once a program is over (its pipes
must close), and the batch deadline.

This module only multiplexes: what a run's isolation is (namespaces, uid, mounts, rlimits) comes
from sandbox/isolation.py, and what a finished run's verdict is, from sandbox/verdict.py
(`_Batch.verdict` hands it what the pipes carried).
"""

from __future__ import annotations

import dataclasses
import itertools
import marshal
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.api import MiB, NativeProgram, Program, SandboxConfig, Verdict
from sandbox.isolation import (
    give_uid,
    mount_plan,
    native_limits,
    native_readable,
    new_pid_namespace,
    resolve_isolation,
    rlimit_settings,
    shared_netns,
    take_uid,
)
from sandbox.verdict import NOT_RUN, NativeOutcome, RunOutcome, decide, decide_native, exit_code

CHILD = Path(__file__).with_name("_child.py")
RES_CAP = 64 * 1024
STUB = (
    "import os,marshal\n"
    "def _r(n):\n"
    " b=b''\n"
    " while len(b)<n:\n"
    "  c=os.read(0,n-len(b))\n"
    "  if not c:os._exit(71)\n"
    "  b+=c\n"
    " return b\n"
    "c=_r(int.from_bytes(_r(8),'little'))\n"
    "exec(marshal.loads(c[1:]) if c[:1]==b'M' else compile(c[1:],'_child.py','exec'))\n"
)
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "USER": "sandbox",
    "LOGNAME": "sandbox",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

_batches = itertools.count()
_payload_cache: dict[tuple[str, float], bytes] = {}


def _payload(python: str) -> bytes:
    """The child's code, length-prefixed: marshal for this interpreter, source for another."""
    key = (python, CHILD.stat().st_mtime)
    if key not in _payload_cache:
        source = CHILD.read_text()
        if os.path.realpath(python) == os.path.realpath(sys.executable):
            code = compile(source, str(CHILD), "exec", dont_inherit=True, optimize=0)
            body = b"M" + marshal.dumps(code)
        else:
            body = b"S" + source.encode()
        _payload_cache[key] = len(body).to_bytes(8, "little") + body
    return _payload_cache[key]


@dataclass
class _Slot:
    pid: int  # the supervisor
    popen: subprocess.Popen | None  # when it is our child (not forked by the fork server)
    born: float
    streams: dict[int, str]  # open fds -> "out" | "err" | "res" | "ctl" | "exit" (a pidfd)
    to_send: bytearray
    prog_w: int | None
    pidfd: int | None = None  # signals go through it: safe from pid reuse
    state: str = "starting"  # starting -> ready -> running -> draining -> (finalized)
    index: int | None = None
    nonce: str = ""
    started: float = 0.0
    deadline: float = float("inf")
    drain_until: float = float("inf")
    kill_reason: str | None = None  # "timeout" | "output" | "deadline" | "startup" | "drain"
    exit: str | None = None  # the supervisor's "exit ..." line
    failure: str = ""  # a "fail ..." line (the sandbox could not set up)
    uid: int | None = None
    workdir: str | None = None
    phase: str = "run"  # a NativeProgram's step: "build" until the "built" report, then "run"
    build_report: str | None = None  # the supervisor's "built ..." line (NativeProgram)
    data: dict[str, bytearray] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    ctl_buf: bytearray = field(default_factory=bytearray)


class _Batch:
    def __init__(
        self, programs: list[Program | NativeProgram], config: SandboxConfig, workers: int
    ) -> None:
        self.programs = programs
        self.config = config
        self.workers = workers
        self.spares = workers + 1  # warm interpreters kept ready (one more hides start-up)
        self.mode = resolve_isolation(config)
        self.root = os.geteuid() == 0
        self.python = config.python or sys.executable
        self.payload = _payload(self.python)
        site: list[str] = []
        if config.site_packages and self.python == sys.executable:
            for key in ("purelib", "platlib"):
                path = sysconfig.get_paths()[key]
                if path not in site:
                    site.append(path)
        self.site = site
        setup = {"mode": self.mode, "preimport": list(config.preimport)}
        readable = [d for p in programs if isinstance(p, NativeProgram)
                    for d in native_readable(p, ENV["PATH"])]  # fmt: skip
        setup.update(mount_plan(self.mode, config.python, site, sorted(set(readable))))
        body = marshal.dumps(setup)
        self.setup = len(body).to_bytes(8, "little") + body
        self.netns_fd = shared_netns(self.python) if self.mode == "netns" else None
        # every process of this batch carries this in its initial environment (/proc/PID/environ)
        self.tag = f"{os.getpid()}.{next(_batches)}"
        self.env = dict(ENV, CODECOT_SANDBOX=self.tag)
        self.sel = selectors.DefaultSelector()
        self.slots: list[_Slot] = []
        self.results: list[Verdict | None] = [None] * len(programs)
        self.pending: deque[int] = deque(range(len(programs)))
        self.kill_bytes = config.output_kill_mb * MiB
        self.startup_failures: list[str] = []
        self.finished = 0  # programs with a verdict
        self.limits = rlimit_settings(config)
        self.server = _ForkServer(self) if config.fork_server else None

    # -- slots ------------------------------------------------------------------------------

    def spawn(self) -> None:
        res_r, res_w = os.pipe()
        ctl_r, ctl_w = os.pipe()
        prog_r, prog_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        popen = None
        try:
            if self.config.fork_server:
                pid = self.server.fork([prog_r, out_w, err_w, res_w, ctl_w])
            else:
                netns = self.netns_fd if self.netns_fd is not None else -1
                argv = [self.python, "-I", "-S", "-B", "-c", STUB, str(res_w), str(ctl_w),
                        str(netns)]  # fmt: skip
                with new_pid_namespace(self.mode):
                    popen = subprocess.Popen(
                        argv,
                        stdin=prog_r,
                        stdout=out_w,
                        stderr=err_w,
                        pass_fds=(res_w, ctl_w) + ((netns,) if netns >= 0 else ()),
                        env=self.env,
                        cwd="/",
                        close_fds=True,
                    )
                pid = popen.pid
        finally:
            for fd in (res_w, ctl_w, prog_r, out_w, err_w):
                os.close(fd)
        slot = _Slot(pid=pid, popen=popen, born=time.monotonic(), streams={},
                     to_send=bytearray(), prog_w=prog_w)  # fmt: skip
        for fd, name in ((out_r, "out"), (err_r, "err"), (res_r, "res"), (ctl_r, "ctl")):
            os.set_blocking(fd, False)
            slot.streams[fd] = name
            slot.data[name] = bytearray()
            slot.totals[name] = 0
            self.sel.register(fd, selectors.EVENT_READ, (slot, name))
        try:  # readable when the supervisor exits: reap it without blocking the loop
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        if pidfd is not None:
            slot.pidfd = pidfd
            slot.streams[pidfd] = "exit"
            self.sel.register(pidfd, selectors.EVENT_READ, (slot, "exit"))
        os.set_blocking(prog_w, False)
        self.slots.append(slot)
        if not self.config.fork_server:  # a forked supervisor has its code and setup already
            self.send(slot, self.payload + self.setup)

    def send(self, slot: _Slot, data: bytes) -> None:
        if slot.prog_w is None:
            return
        was_empty = not slot.to_send
        slot.to_send += data
        if was_empty:
            self.flush(slot)

    def flush(self, slot: _Slot) -> None:
        fd = slot.prog_w
        if fd is None:
            return
        try:
            while slot.to_send:
                n = os.write(fd, slot.to_send)
                del slot.to_send[:n]
        except BlockingIOError:
            pass
        except OSError:  # the child is gone; it will be finalized from its pipes
            slot.to_send.clear()
        registered = fd in self.sel.get_map()
        if slot.to_send and not registered:
            self.sel.register(fd, selectors.EVENT_WRITE, (slot, "prog"))
        elif not slot.to_send and registered:
            self.sel.unregister(fd)

    def assign(self, slot: _Slot, index: int) -> None:
        program = self.programs[index]
        cfg = self.config
        slot.index, slot.state = index, "running"
        slot.nonce = secrets.token_hex(16)
        uid = take_uid(cfg.uid_base) if self.root else None
        slot.uid = uid
        if self.mode == "netns":
            cwd = "/tmp"
        else:
            slot.workdir = cwd = tempfile.mkdtemp(prefix="codecot-sbx-")
            if uid is not None:
                os.chown(cwd, uid, uid)
        env = dict(self.env, HOME=cwd, TMPDIR=cwd)
        own = self.program_config(program)
        msg: dict[str, object] = {
            "uid": uid,
            "gid": uid,
            "cwd": cwd,
            "stdin": program.stdin,
            "tmpfs_kb": cfg.tmpfs_mb * 1024,
            "tmpfs_inodes": 4096,
        }
        step_s = own.timeout_s
        if isinstance(program, NativeProgram):
            build_limits, run_limits = native_limits(cfg, program)
            msg.update(
                native=True,
                files=[list(f) for f in program.files],
                build=list(program.build) if program.build is not None else None,
                run=list(program.run),
                build_limits=build_limits,
                run_limits=run_limits,
                env=dict(env, **dict(program.env)),
            )
            if program.build is not None:  # the run step's clock starts at the "built" report
                slot.phase, step_s = "build", own.build_timeout_s
        else:
            msg.update(
                nonce=slot.nonce,
                code=program.code,
                tests=program.tests if isinstance(program.tests, str) else list(program.tests),
                env=env,
                site=self.site,
                limits=self.limits if own is cfg else dict(self.limits, cpu=own.cpu_limit_s),
                count_own_tasks=uid is None,
            )
        body = marshal.dumps(msg)
        slot.started = time.monotonic()
        slot.deadline = slot.started + step_s
        self.send(slot, len(body).to_bytes(8, "little") + body)

    def kill(self, slot: _Slot, reason: str) -> None:
        if slot.kill_reason is None:
            slot.kill_reason = reason
        if slot.state in ("running", "starting", "ready"):
            slot.state = "draining"
            slot.drain_until = time.monotonic() + self.config.drain_timeout_s
        # in "socket-block" mode the supervisor kills the program's group and sweeps its
        # descendants, then exits; in "netns" mode killing it (pid 1) kills them all
        sig = signal.SIGKILL if self.mode == "netns" or reason == "drain" else signal.SIGUSR1
        if slot.pidfd is not None:
            try:
                signal.pidfd_send_signal(slot.pidfd, sig)
            except OSError:
                pass
        elif slot.popen is not None and slot.popen.returncode is None:
            _signal(slot.pid, sig)

    def on_data(self, slot: _Slot, name: str, chunk: bytes) -> None:
        if name == "ctl":
            slot.ctl_buf += chunk
            while b"\n" in slot.ctl_buf:
                line, _, rest = bytes(slot.ctl_buf).partition(b"\n")
                slot.ctl_buf = bytearray(rest)
                self.on_ctl(slot, line.decode("ascii", "replace"))
            return
        slot.totals[name] += len(chunk)
        if name == "res":  # the runner's record comes last: keep the tail
            slot.data[name] += chunk
            del slot.data[name][:-RES_CAP]
        else:
            keep = self.config.output_bytes - len(slot.data[name])
            if keep > 0:
                slot.data[name] += chunk[:keep]
        if slot.state == "running" and sum(slot.totals.values()) > self.kill_bytes:
            self.kill(slot, "output")

    def on_ctl(self, slot: _Slot, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "ready" and slot.state == "starting":
            slot.state = "ready"
        elif word == "exit":
            slot.exit = rest
            if slot.state == "running":
                slot.state = "draining"
                slot.drain_until = time.monotonic() + self.config.drain_timeout_s
        elif word == "fail":
            slot.failure = rest
        elif word == "built" and slot.state == "running":
            # a NativeProgram's build step is over: the run step's wall clock starts now
            slot.build_report = rest
            slot.phase = "run"
            program = self.programs[slot.index]
            slot.deadline = time.monotonic() + self.program_config(program).timeout_s

    def close_stream(self, slot: _Slot, fd: int) -> None:
        self.sel.unregister(fd)
        os.close(fd)
        del slot.streams[fd]
        if fd == slot.pidfd:
            slot.pidfd = None

    def finalize(self, slot: _Slot) -> None:
        for fd in list(slot.streams):
            self.close_stream(slot, fd)
        if slot.prog_w is not None:
            if slot.prog_w in self.sel.get_map():
                self.sel.unregister(slot.prog_w)
            os.close(slot.prog_w)
            slot.prog_w = None
        if slot.popen is not None:
            try:
                slot.popen.wait(timeout=self.config.drain_timeout_s)
            except subprocess.TimeoutExpired:
                slot.popen.kill()
                slot.popen.wait()
        self.slots.remove(slot)
        give_uid(slot.uid)
        if slot.workdir is not None:
            shutil.rmtree(slot.workdir, ignore_errors=True)
        if slot.index is None:  # died before it got a program
            if slot.kill_reason == "retire":
                return
            code = slot.popen.returncode if slot.popen is not None else "?"
            reason = slot.failure or slot.kill_reason or f"exit code {code}"
            err = bytes(slot.data["err"]).decode("utf-8", "replace").strip()[-2000:]
            self.startup_failures.append(reason + (f"\n{err}" if err else ""))
            return
        self.startup_failures.clear()
        self.results[slot.index] = self.verdict(slot)
        self.finished += 1

    # -- verdicts (decided in sandbox/verdict.py) ------------------------------------------

    def program_config(self, program: Program | NativeProgram) -> SandboxConfig:
        """The batch's config, with the program's own wall-clock limits when it has them."""
        own = {}
        if program.timeout_s is not None and program.timeout_s != self.config.timeout_s:
            own["timeout_s"] = program.timeout_s
        build_s = getattr(program, "build_timeout_s", None)
        if build_s is not None and build_s != self.config.build_timeout_s:
            own["build_timeout_s"] = build_s
        return dataclasses.replace(self.config, **own) if own else self.config

    def verdict(self, slot: _Slot) -> Verdict:
        program = self.programs[slot.index]
        duration = round(time.monotonic() - slot.started, 4)
        config = self.program_config(program)
        stderr = bytes(slot.data["err"])
        total = sum(slot.totals[k] for k in ("out", "err", "res"))
        out = _text(slot.data["out"], slot.totals["out"])
        err = _text(slot.data["err"], slot.totals["err"])
        if isinstance(program, NativeProgram):
            native = NativeOutcome(
                has_build=program.build is not None,
                build_report=slot.build_report,
                exit_report=slot.exit,
                kill_reason=slot.kill_reason,
                phase=slot.phase,
                stderr=stderr,
                output_total=total,
            )
            status, detail, failed_test = decide_native(native, config)
            log = bytes(slot.data["res"]).decode("utf-8", "replace")  # the build log's tail
            if slot.totals["res"] > len(slot.data["res"]):
                log = f"[... {slot.totals['res'] - len(slot.data['res'])} bytes before]\n" + log
            return Verdict(program.id, status, detail, failed_test, duration, out, err,
                           exit_code=exit_code(slot.exit), build_log=log,
                           build_exit_code=exit_code(slot.build_report))  # fmt: skip
        run = RunOutcome(
            nonce=slot.nonce,
            res=bytes(slot.data["res"]),
            exit_report=slot.exit,
            kill_reason=slot.kill_reason,
            stderr=stderr,
            output_total=total,
        )
        status, detail, failed_test = decide(run, config)
        return Verdict(program.id, status, detail, failed_test, duration, out, err)

    # -- the loop ---------------------------------------------------------------------------

    def run(self, deadline_s: float | None, progress: bool) -> list[Verdict]:
        n = len(self.programs)
        batch_end = time.monotonic() + deadline_s if deadline_s is not None else float("inf")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="sandbox", unit="prog", leave=False)
        done = 0
        try:
            while True:
                now = time.monotonic()
                if now >= batch_end:
                    self.end_batch()
                running = [s for s in self.slots if s.state in ("running", "draining")]
                idle = [s for s in self.slots if s.state in ("starting", "ready")]
                if not self.pending and not running:
                    break
                while len(idle) < min(len(self.pending), self.spares):
                    self.spawn()
                    idle.append(self.slots[-1])
                for slot in idle:
                    if slot.state == "ready" and self.pending and len(running) < self.workers:
                        self.assign(slot, self.pending.popleft())
                        running.append(slot)
                self.watchdogs(now, batch_end)
                timeout = min([s.deadline for s in running] + [batch_end, now + 0.5]) - now
                for key, _ in self.sel.select(max(timeout, 0.0)):
                    slot, name = key.data
                    if name == "prog":
                        self.flush(slot)
                        continue
                    if name == "exit":
                        if slot.popen is not None:
                            slot.popen.poll()
                        self.close_stream(slot, key.fd)
                        continue
                    try:
                        chunk = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if chunk:
                        self.on_data(slot, name, chunk)
                    else:
                        self.close_stream(slot, key.fd)
                for slot in list(self.slots):
                    if not slot.streams:
                        self.finalize(slot)
                if len(self.startup_failures) >= 3:
                    raise RuntimeError(
                        "sandbox: interpreters fail to start: " + self.startup_failures[-1]
                    )
                if bar is not None and self.finished > done:
                    bar.update(self.finished - done)
                done = self.finished
        finally:
            for slot in list(self.slots):
                self.kill(slot, "retire" if slot.index is None else "deadline")
            for slot in list(self.slots):
                try:
                    self.finalize(slot)
                except Exception:
                    pass
            self.sel.close()
            if self.server is not None:
                self.server.close()
            if bar is not None:
                bar.close()
        return [r for r in self.results if r is not None]

    def watchdogs(self, now: float, batch_end: float) -> None:
        for slot in list(self.slots):
            if slot.state == "running" and now >= slot.deadline:
                self.kill(slot, "timeout")
            elif slot.state == "starting" and now - slot.born > self.config.startup_timeout_s:
                self.kill(slot, "startup")
            elif slot.state == "draining" and now >= slot.drain_until:
                self.kill(slot, "drain")
                for fd in list(slot.streams):  # something still holds the pipes: let go
                    self.close_stream(slot, fd)

    def end_batch(self) -> None:
        for slot in list(self.slots):
            if slot.state == "running":
                self.kill(slot, "deadline")
            elif slot.state in ("starting", "ready"):
                self.kill(slot, "retire")
        for index in self.pending:
            program = self.programs[index]
            status, detail, failed_test = NOT_RUN
            self.results[index] = Verdict(program.id, status, detail, failed_test, 0.0, "", "")
            self.finished += 1
        self.pending.clear()


class _ForkServer:
    """SandboxConfig.fork_server: one pristine interpreter per batch forks every supervisor."""

    def __init__(self, batch: _Batch) -> None:
        import socket

        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        netns = batch.netns_fd if batch.netns_fd is not None else -1
        argv = [batch.python, "-I", "-S", "-B", "-c", STUB, "server", str(theirs.fileno()),
                str(netns)]  # fmt: skip
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(theirs.fileno(),) + ((netns,) if netns >= 0 else ()),
            env=batch.env,
            cwd="/",
            close_fds=True,
        )
        theirs.close()
        assert self.popen.stdin is not None
        self.popen.stdin.write(batch.payload + batch.setup)
        self.popen.stdin.close()
        self.replies = self.sock.makefile("rb")

    def fork(self, fds: list[int]) -> int:
        import socket

        try:
            socket.send_fds(self.sock, [b"f"], fds)
            line = self.replies.readline()
        except OSError:
            line = b""
        if not line.strip().lstrip(b"-").isdigit():
            err = self.popen.stderr.read().decode(errors="replace") if self.popen.stderr else ""
            raise RuntimeError(f"sandbox: the fork server died: {err.strip()[-2000:]}")
        pid = int(line)
        if pid < 0:
            raise RuntimeError(f"sandbox: fork server: unshare(CLONE_NEWPID): errno {-pid}")
        return pid

    def close(self) -> None:
        self.replies.close()
        self.sock.close()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        if self.popen.stderr is not None:
            self.popen.stderr.close()


def run_batch(
    programs: list[Program | NativeProgram],
    config: SandboxConfig,
    workers: int,
    deadline_s: float | None,
    progress: bool,
) -> list[Verdict]:
    """Run `programs` (see `sandbox.run_programs`)."""
    batch = _Batch(programs, config, workers)
    results = batch.run(deadline_s, progress)
    if len(results) != len(programs):  # only if interrupted; every program gets a verdict
        raise RuntimeError("sandbox: batch ended without a verdict for every program")
    return results


# ---------------------------------------------------------------------------------------------


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _text(data: bytearray, total: int) -> str:
    text = bytes(data).decode("utf-8", "replace")
    if total > len(data):
        text += f"\n[... truncated: {total} bytes in all]"
    return text
