"""Where a sandbox run is isolated (the harness's side): namespaces, private uids, mounts, rlimits.

    from sandbox import SandboxConfig
    from sandbox.isolation import resolve_isolation, mount_plan, rlimit_settings
    mode = resolve_isolation(SandboxConfig())        # "netns" (root here) or "socket-block"
    mount_plan(mode, None, [])  # {"unhide": [["/root", [...]]], "hide": ["/dev/shm", ...], ...}
    rlimit_settings(SandboxConfig())  # {"nofile": 256, "fsize": 16777216, "cpu": 11, ...}

What this machine allows (`probe`, run once per interpreter in a throwaway child) and what a run
gets (`resolve_isolation`); the shared empty network namespace (`shared_netns`); starting a
supervisor as pid 1 of a new pid namespace (`new_pid_namespace`); a private uid per running
program (`take_uid` / `give_uid`); the mount plan and rlimits each supervisor is sent.

The child side (joining the namespaces, making the mounts, setting the rlimits, dropping to the
uid) is sandbox/_child.py: it runs inside `python -I -S -B` from code the harness sends it and
cannot import this package, so it stays self-contained. sandbox/pool.py multiplexes the
processes; sandbox/verdict.py decides the verdicts.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator

from sandbox.api import MiB, NativeProgram, SandboxConfig

_PROBE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
out = {}
keys = {"x86_64": 248, "aarch64": 217}.get(os.uname().machine)
if keys is not None:
    libc.syscall.restype = ctypes.c_long
    k = libc.syscall(keys, b"user", b"codecot-probe", b"x", 1, -1)
    out["keyring"] = bool(k > 0)
else:
    out["keyring"] = False
if os.geteuid() == 0 and libc.unshare(0x40000000 | 0x20000000 | 0x00020000) == 0:
    pid = os.fork()
    if pid == 0:
        ok = libc.mount(None, b"/", None, 0x4000 | (1 << 18), None) == 0
        ok = ok and libc.mount(b"proc", b"/proc", b"proc", 14, None) == 0
        ok = ok and libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 6, b"size=64k") == 0
        os._exit(0 if ok else 1)
    out["netns"] = os.waitpid(pid, 0)[1] == 0
    out["why"] = "" if out["netns"] else "mounts in a new namespace failed"
else:
    out["netns"] = False
    out["why"] = "not root" if os.geteuid() else "unshare failed: errno %d" % ctypes.get_errno()
real = os.path.realpath
out["paths"] = sorted({real(p) for p in sys.path + [sys.prefix, sys.base_prefix]} |
                      {os.path.dirname(real(sys.executable))})
print(repr(out))
"""


@functools.lru_cache(maxsize=8)
def probe(python: str | None = None) -> dict[str, object]:
    """What isolation this machine gives (run once per interpreter path, in a throwaway child)."""
    exe = python or sys.executable
    proc = subprocess.run(
        [exe, "-I", "-S", "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"sandbox probe with {exe} failed: {proc.stderr.strip()[-500:]}")
    import ast

    found = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    return {
        "netns": bool(found["netns"]),
        "keyring": bool(found["keyring"]),
        "why": found["why"],
        "paths": [p for p in found["paths"] if os.path.isdir(p)],
    }


def unhide_plan(paths: list[str]) -> dict[str, list[str]]:
    """Directories a uid that owns nothing cannot traverse (e.g. /root, 0700) that lie above
    `paths` (the interpreter's), each with the paths under it to bind back into an empty tmpfs
    over it (in the sandbox's own mount namespace)."""
    plan: dict[str, list[str]] = {}
    for path in sorted({os.path.realpath(p) for p in paths}):
        parts = path.strip("/").split("/")
        for i in range(len(parts) - 1):
            ancestor = "/" + "/".join(parts[: i + 1])
            if not os.stat(ancestor).st_mode & 0o001:
                kept = plan.setdefault(ancestor, [])
                if not any(path == k or path.startswith(k + "/") for k in kept):
                    kept.append(path)
                break
    return plan


def tmp_kept_paths(paths: list[str]) -> list[str]:
    """The interpreter's directories under /tmp (e.g. the venv of a clone in /tmp), outermost
    only: each program's private /tmp would hide them, so they are bound back read-only."""
    under = sorted({os.path.realpath(p) for p in paths if os.path.realpath(p).startswith("/tmp/")})
    kept: list[str] = []
    for path in under:
        if not any(path == k or path.startswith(k + "/") for k in kept):
            kept.append(path)
    return kept


_HIDE = ("/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue", "/run/shm")


def world_writable_dirs() -> list[str]:
    """World-writable directories besides /tmp: the usual ones and any one or two levels below /
    (a full scan of the disk is too slow here; tests/test_sandbox_hostile.py scans it from inside
    the sandbox)."""
    found: set[str] = set()
    candidates = list(_HIDE)
    for top in os.scandir("/"):
        if top.is_dir(follow_symlinks=False) and top.name not in ("proc", "sys", "tmp"):
            candidates.append(top.path)
            try:
                candidates += [
                    e.path for e in os.scandir(top.path) if e.is_dir(follow_symlinks=False)
                ]
            except OSError:
                pass
    for path in candidates:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o002 and path != "/tmp":
            found.add(path)
    return sorted(found)


def resolve_isolation(config: SandboxConfig) -> str:
    """The isolation a run with `config` gets: "netns" or "socket-block"."""
    available = probe(config.python)["netns"]
    if config.isolation == "netns" and not available:
        why = probe(config.python)["why"]
        raise ValueError(f"SandboxConfig.isolation='netns' is not available here ({why})")
    mode = config.isolation
    if mode == "auto":
        mode = "netns" if available else "socket-block"
    if mode == "socket-block" and os.geteuid() == 0:
        blocked = unhide_plan(probe(config.python)["paths"])
        if blocked:
            raise ValueError(
                f"SandboxConfig.isolation='socket-block' as root runs programs under a private uid, "
                f"which cannot reach the interpreter's files under {', '.join(blocked)}; use "
                f"isolation='netns' or an interpreter readable by all users (SandboxConfig.python)"
            )
    return mode


def mount_plan(
    mode: str, python: str | None, site: list[str], readable: list[str] | None = None
) -> dict[str, list]:
    """What each supervisor mounts in its private mount namespace ("netns" mode; else nothing).

    unhide: [blocked dir, [interpreter paths bound back into an empty tmpfs over it]]; hide:
    world-writable dirs covered read-only; tmp_keep: interpreter dirs under /tmp (`site`
    included) bound back read-only over the private /tmp. readable: more directories treated
    like the interpreter's (native programs' toolchains, `native_readable`).
    """
    plan: dict[str, list] = {"unhide": [], "hide": []}
    if mode == "netns":
        paths = probe(python)["paths"] + [p for p in readable or [] if os.path.isdir(p)]
        plan["unhide"] = [[b, list(ps)] for b, ps in unhide_plan(paths).items()]
        plan["hide"] = world_writable_dirs()
        plan["tmp_keep"] = tmp_kept_paths(paths + site)
    return plan


def rlimit_settings(config: SandboxConfig) -> dict[str, int]:
    """The limits the runner sets on itself (sandbox/_child.py `_rlimits`); "as" is added to a
    fresh interpreter's address space there."""
    return {
        "nofile": config.max_open_files,
        "fsize": config.max_file_mb * MiB,
        "cpu": config.cpu_limit_s,
        "nproc": config.max_processes,
        "as": config.memory_mb * MiB,
    }


def native_limits(config: SandboxConfig, program: NativeProgram) -> tuple[dict, dict]:
    """The rlimits of a NativeProgram's build step and run step (sandbox/_child.py
    `_fork_step`). "as" is absolute here: after exec nothing of the interpreter is left, and a
    compiler, a JVM or V8 each reserve their own virtual memory. The build step may write files
    as large as the private /tmp (a linked binary), the run step max_file_mb."""
    build_s = program.build_timeout_s or config.build_timeout_s
    run_s = program.timeout_s or config.timeout_s
    build = {
        "nofile": config.max_open_files,
        "fsize": config.tmpfs_mb * MiB,
        "cpu": int(build_s + 0.999) + 1,
        "nproc": config.build_max_processes,
        "as": config.build_memory_mb * MiB,
    }
    run = {
        "nofile": config.max_open_files,
        "fsize": config.max_file_mb * MiB,
        "cpu": config.cpu_s if config.cpu_s is not None else int(run_s + 0.999) + 1,
        "nproc": program.max_processes or config.max_processes,
        "as": (program.memory_mb or config.memory_mb) * MiB,
    }
    return build, run


def native_readable(program: NativeProgram, path: str) -> list[str]:
    """Directories a NativeProgram's steps read: its `readable` ones and those of the build and
    run executables (resolved on `path` and through symlinks), for `mount_plan`."""
    found = list(program.readable)
    for argv in (program.build, program.run):
        if argv is None or argv[0].startswith("./"):
            continue
        exe = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=path)
        if exe is not None:
            found.append(os.path.dirname(os.path.realpath(exe)))
    return found


_uid_lock = threading.Lock()
_uids_in_use: set[int] = set()


def take_uid(base: int) -> int:
    """A uid no running program of this process has; other processes likely start elsewhere."""
    with _uid_lock:
        k = (os.getpid() % 1000) * 16
        while base + k in _uids_in_use:
            k += 1
        _uids_in_use.add(base + k)
        return base + k


def give_uid(uid: int | None) -> None:
    """Free a uid from `take_uid` once its program is over (None: none was taken)."""
    if uid is not None:
        with _uid_lock:
            _uids_in_use.discard(uid)


NETNS_HOLDER = (
    "import ctypes, sys\n"
    "if ctypes.CDLL(None, use_errno=True).unshare(0x40000000) != 0:\n"
    "    sys.exit('unshare(CLONE_NEWNET): errno %d' % ctypes.get_errno())\n"
    "print('ready', flush=True)\n"
    "sys.stdin.read()\n"
)
_netns: dict[str, int] = {}
_netns_lock = threading.Lock()


def shared_netns(python: str) -> int:
    """An fd of an empty network namespace (no interface up) that every program joins.

    Made once per harness process by a throwaway child; the fd keeps it alive. One namespace for
    all programs, instead of one each, saves a namespace creation and teardown per program; the
    programs share nothing in it but the (down) loopback and abstract unix socket names.
    """
    with _netns_lock:
        if python not in _netns:
            proc = subprocess.Popen([python, "-I", "-S", "-c", NETNS_HOLDER], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
            assert proc.stdout is not None and proc.stdin is not None
            if proc.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"sandbox: no network namespace: {proc.communicate()[1]!r}")
            _netns[python] = os.open(f"/proc/{proc.pid}/ns/net", os.O_RDONLY)
            proc.stdin.close()
            proc.wait()
        return _netns[python]


CLONE_NEWPID = 0x20000000
_pidns: list = []


def _pidns_handles():
    """(libc via ctypes, an fd of this process's pid namespace), made once."""
    with _netns_lock:
        if not _pidns:
            import ctypes

            _pidns.append(ctypes.CDLL(None, use_errno=True))
            _pidns.append(os.open("/proc/self/ns/pid", os.O_RDONLY))
        return _pidns[0], _pidns[1]


def _ctypes_errno() -> int:
    import ctypes

    return ctypes.get_errno()


@contextlib.contextmanager
def new_pid_namespace(mode: str) -> Iterator[None]:
    """In "netns" mode, the child started inside is pid 1 of a new pid namespace.

    unshare(CLONE_NEWPID) changes only where this thread's next children go; the namespace
    this thread's children get is restored right after (setns to our own), so nothing else
    the calling program starts is affected.
    """
    if mode != "netns":
        yield
        return
    libc, own = _pidns_handles()
    if libc.unshare(CLONE_NEWPID) != 0:
        raise RuntimeError(f"sandbox: unshare(CLONE_NEWPID): errno {_ctypes_errno()}")
    try:
        yield
    finally:
        if libc.setns(own, CLONE_NEWPID) != 0:
            raise RuntimeError(f"sandbox: cannot restore the pid namespace: {_ctypes_errno()}")
