"""Per-language toolchains for native programs (MultiPL-E's language keys), with limits that work.

    from sandbox import SandboxConfig, run_programs
    from sandbox.languages import TOOLCHAINS, native_program, require_toolchain
    require_toolchain("php")          # MissingToolchain: "... install the Debian package php-cli"
    prog = native_program("cpp", "HumanEval_0", prompt + completion + tests)
    run_programs([prog], SandboxConfig())[0].status   # "passed" when the program exits 0

Each Toolchain says how MultiPL-E builds and runs one source file of its language (the file
name: MultiPL-E's Java class is `Problem`), which Debian package provides it, and the run step's
limits where the defaults (SandboxConfig.memory_mb = 1 GiB of address space, 8 tasks) do not
fit. Measured here (OpenJDK 17, Node 20) under RLIMIT_AS / RLIMIT_NPROC:

* java: a default JVM reserves a quarter of the RAM as heap and 1 GiB of compressed class space
  up front, and fails to start under any sane RLIMIT_AS (even 2 GiB). With a 256 MiB heap, 64 MiB
  class space, a 32 MiB code cache, the serial GC and one compiler thread it starts in ~700 MiB
  of address space and runs 13 threads; -XX:ActiveProcessorCount=1 keeps that count the same on
  a many-core machine (GC and compiler threads scale with the CPUs). Limits: 1536 MiB, 32 tasks.
  javac is a JVM too: the same flags (-J..., 512 MiB heap) keep it inside the build limits.
  -ea: MultiPL-E's Java tests are `assert` statements, off without it. javatuples (MultiPL-E's
  prompts `import org.javatuples.*`; Debian libjavatuples-java) is on the classpath when present.
  -XX:-UsePerfData: no /tmp/hsperfdata file.
* js: V8 reserves its heap cage and code range at start: node 20 needs ~800 MiB of address space
  to print a line (fails at 700) and runs 7 threads (4 V8 workers, more libuv ones on first
  async I/O). Limits: 1536 MiB, 32 tasks.
* rs: rustup's `rustc` is a proxy that looks for its toolchains under $HOME (the sandbox's is
  /tmp): `require_toolchain("rs")` resolves the real compiler in the sysroot and makes that
  directory readable inside the sandbox (it usually lies under /root, which the private uid
  cannot enter).
* rs: built as MultiPL-E builds it, `rustc prog.rs -o prog` (no --edition: rustc's default).
* cpp, sh, php, py: the defaults fit.

require_toolchain() resolves each executable to an absolute path: on the sandbox's PATH (the
system directories) first, then on this process's (so a toolchain in ~/.cargo/bin is found).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass, replace

from sandbox.api import NativeProgram
from sandbox.pool import ENV

SANDBOX_PATH = ENV["PATH"]


class MissingToolchain(ValueError):
    """A language's compiler or interpreter is not installed (the message names the package)."""


@dataclass(frozen=True)
class Toolchain:
    """How to build and run one source file of a language (see the module docstring)."""

    lang: str  # MultiPL-E's key: "cpp", "java", "js", "sh", "rs", "php", "py"
    source_name: str  # the file the source is written to, e.g. "Problem.java"
    build: tuple[str, ...] | None
    run: tuple[str, ...]
    package: str  # the Debian package that provides it
    memory_mb: int | None = None  # run step address space (None: SandboxConfig.memory_mb)
    max_processes: int | None = None  # run step tasks (None: SandboxConfig.max_processes)
    env: tuple[tuple[str, str], ...] = ()
    readable: tuple[str, ...] = ()  # directories the steps read (NativeProgram.readable)


JAVATUPLES = "/usr/share/java/javatuples.jar"
# The JVM's reservations cut down to fit RLIMIT_AS, thread counts fixed (module docstring).
JVM_FLAGS = (
    "-XX:+UseSerialGC", "-XX:ActiveProcessorCount=1", "-XX:CICompilerCount=1",
    "-XX:TieredStopAtLevel=1", "-XX:CompressedClassSpaceSize=64m",
    "-XX:ReservedCodeCacheSize=32m", "-XX:MaxMetaspaceSize=128m", "-XX:-UsePerfData",
)  # fmt: skip


def _java_classpath() -> str:
    return ".:" + JAVATUPLES if os.path.exists(JAVATUPLES) else "."


def _toolchains() -> dict[str, Toolchain]:
    classpath = _java_classpath()
    javac_flags = tuple("-J" + f for f in JVM_FLAGS + ("-Xmx512m",))
    return {
        "cpp": Toolchain(
            "cpp", "prog.cpp", ("g++", "-std=c++17", "-o", "prog", "prog.cpp"), ("./prog",), "g++"
        ),
        "java": Toolchain(
            "java",
            "Problem.java",
            ("javac", *javac_flags, "-encoding", "UTF-8", "-cp", classpath, "Problem.java"),
            ("java", *JVM_FLAGS, "-Xmx256m", "-ea", "-cp", classpath, "Problem"),
            "default-jdk-headless",
            memory_mb=1536,
            max_processes=32,
        ),
        "js": Toolchain("js", "prog.js", None, ("node", "prog.js"), "nodejs", 1536, 32),
        "sh": Toolchain("sh", "prog.sh", None, ("bash", "prog.sh"), "bash"),
        "rs": Toolchain(
            "rs",
            "prog.rs",
            ("rustc", "prog.rs", "-o", "prog"),
            ("./prog",),
            "rustc",
        ),  # fmt: skip
        "php": Toolchain("php", "prog.php", None, ("php", "prog.php"), "php-cli"),
        "py": Toolchain("py", "prog.py", None, ("python3", "prog.py"), "python3"),
    }


TOOLCHAINS: dict[str, Toolchain] = _toolchains()


def require_toolchain(lang: str) -> Toolchain:
    """TOOLCHAINS[lang] with its executables resolved to absolute paths.

    Raises MissingToolchain (a ValueError) naming the language, the missing executable and the
    Debian package to install; ValueError for an unknown language (listing the known ones).
    """
    if lang not in TOOLCHAINS:
        raise ValueError(f"unknown language {lang!r}: one of {', '.join(sorted(TOOLCHAINS))}")
    return resolve_toolchain(TOOLCHAINS[lang])


@functools.lru_cache(maxsize=64)
def resolve_toolchain(chain: Toolchain) -> Toolchain:
    """`chain` with its executables resolved to absolute paths (MissingToolchain if one is not
    installed); a rustup proxy is replaced by the compiler it would run."""
    fields: dict[str, object] = {}
    readable = list(chain.readable)
    for step in ("build", "run"):
        argv = getattr(chain, step)
        if argv is None or argv[0].startswith("./"):
            continue
        # the sandbox's PATH first (the system's python3, not a pyenv shim that needs $HOME)
        exe = shutil.which(argv[0], path=SANDBOX_PATH) or shutil.which(argv[0])
        if exe is None:
            raise MissingToolchain(
                f"{chain.lang}: {argv[0]!r} not found on PATH: install the Debian package "
                f"{chain.package} (apt-get install {chain.package})"
            )
        exe = os.path.abspath(exe)
        if os.path.basename(os.path.realpath(exe)) == "rustup":
            exe, sysroot = _rustup_compiler(exe, argv[0], chain)
            readable.append(sysroot)
        fields[step] = (exe, *argv[1:])
    return replace(chain, readable=tuple(readable), **fields)


def _rustup_compiler(proxy: str, name: str, chain: Toolchain) -> tuple[str, str]:
    """The compiler a rustup proxy would run, and its sysroot."""
    try:
        out = subprocess.run([proxy, "--print", "sysroot"], capture_output=True, text=True,
                             timeout=60, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise MissingToolchain(
            f"{chain.lang}: rustup has no usable toolchain ({exc}): run `rustup default stable` "
            f"or install the Debian package {chain.package}"
        ) from exc
    sysroot = out.stdout.strip()
    return os.path.join(sysroot, "bin", name), sysroot


def native_program(
    lang: str,
    id: str,  # noqa: A002 (the contract's name)
    source: str,
    stdin: str | None = None,
    timeout_s: float | None = None,
) -> NativeProgram:
    """One source file of `lang`, built and run as its toolchain says (require_toolchain)."""
    chain = require_toolchain(lang)
    return NativeProgram(
        id=id,
        files=((chain.source_name, source),),
        run=chain.run,
        build=chain.build,
        stdin=stdin,
        timeout_s=timeout_s,
        memory_mb=chain.memory_mb,
        max_processes=chain.max_processes,
        env=chain.env,
        readable=chain.readable,
    )
