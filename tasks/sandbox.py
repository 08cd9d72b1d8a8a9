"""Run untrusted Python against trusted tests, in two locked-down processes: ``run_python``.

Model-written code is hostile input. The idea is OpenAI human-eval's execution harness
(github.com/openai/human-eval, human_eval/execution.py: a separate process, a time limit, a
throw-away directory), with its in-process ``reliability_guard`` (monkeypatching os and shutil,
which the code itself can undo) replaced by limits the kernel enforces, and with the tests taken
out of the program's interpreter.

Two processes. The program's process runs the program and nothing else; the test process runs
the tests and never executes program code. The tests reach the program through ``program``:
``program.f(1, [2])`` sends the name and the arguments over a pipe, as plain data (None, bool,
int, float, complex, str, bytes and lists, tuples, dicts, sets of them), and the answer comes
back the same way, rebuilt from bytes on the test side (tasks/sandbox_channel.py). A subclass
whose ``__eq__`` lies arrives as the plain value it holds; an object of any other class is a
``TypeError``; a patched interpreter, a profile or audit hook, a frame walk, ``gc`` or ctypes reach
the program's own process only. The token that marks a pass exists only in the test process,
which writes it to the result file (a descriptor only it holds) after the last test part returns;
so ``sys.exit(0)`` or ``os._exit(0)`` before the checks, printing a marker, or killing the test
process finishes nothing. A run with no tests finishes when the program says it reached its end:
a claim the program could fake, which is why only tests judge.

A run. The harness writes a spec (the program, the limits, the uids) and a secret (the tests, a
random token) to unlinked files and starts the bootstrap (tasks/sandbox_boot.py, which says step
by step what it does) in a new session: stdin /dev/null, stdout and stderr on unlinked files
(both processes write there, neither can read them back), a clean environment whose HOME and
TMPDIR are the run's working directory. It enters new network, mount and PID namespaces (as
root; otherwise inside a new user namespace, if the kernel allows one); PID 1 of the new PID
namespace forks the program's process and becomes the test process. As root each gets a uid of
its own (UID_BASE + an even random number for the tests, the next one for the program: no other
process has them, so RLIMIT_NPROC counts this run alone and the harness can find every process
of the run by uid). When PID 1 ends, the kernel kills every other process of the namespace; on a
timeout the bootstrap kills PID 1. The harness also kills the run's uids (as root) and process
group, and deletes the directory.

What the program's process can read: its working directory (a tmpfs, writable), and read-only:
the interpreter's prefixes (``sys.prefix``, ``sys.base_prefix`` and the exec ones: the standard
library and site-packages, so all of /usr for a system Python), those of /lib, /lib32, /lib64,
/libx32, /usr/lib, /usr/lib32, /usr/lib64 and /usr/libx32 that exist, /etc/ld.so.cache,
/dev/null, zero, full, random and urandom, and its PID namespace's /proc. Nothing else exists
in its filesystem, so a copy of the answers outside those paths cannot be read wherever it is;
``hide`` paths (the benchmark's data directory) are covered by an empty tmpfs in both processes
in case one lies inside them. The test process sees the machine read-only, hidden paths excepted.

Isolation (``SandboxResult.isolation`` says what a run got: ``uid net mount pid`` as root,
``user net mount pid`` in a user namespace, nothing in the last column; tests/tasks/
test_sandbox.py checks the root column row by row, and the user-namespace one as ``nobody``):

| threat                              | mechanism                                  | root | userns | neither |
| ----------------------------------- | ------------------------------------------ | ---- | ------ | ------- |
| endless loop, sleep                 | RLIMIT_CPU (soft = hard: SIGKILL), wall    | yes  | yes    | yes     |
| memory bomb                         | RLIMIT_AS: MemoryError                     | yes  | yes    | yes     |
| huge file or output                 | RLIMIT_FSIZE: EFBIG; output read capped    | yes  | yes    | yes     |
| faking a pass by exiting            | token written by the test process          | yes  | yes    | yes     |
| lying objects, patched interpreter  | tests in their own process, plain data     | yes  | yes    | yes     |
| reading the tests or the token      | not in its process; harness out of reach   | yes  | yes    | no      |
| tracing or reading the test process | other uid; test process non-dumpable       | yes  | yes    | yes     |
| reading stdin                       | /dev/null                                  | yes  | yes    | yes     |
| setuid binaries                     | PR_SET_NO_NEW_PRIVS                        | yes  | yes    | yes     |
| killing the test process            | other uid                                  | yes  | fails  | fails   |
| fork bomb                           | RLIMIT_NPROC on the program's own uid      | yes  | no     | no      |
| children outliving the run          | PID namespace; kill by uid; killpg         | yes  | yes    | killpg  |
| network (also abstract unix)        | empty network namespace, lo down           | yes  | yes    | no      |
| writing outside its directory       | every other mount read-only                | yes  | yes    | no      |
| filling the disk                    | working directory is a tmpfs of disk_mb    | yes  | yes    | no      |
| signalling or tracing others        | own uid; other processes invisible (PID ns)| yes  | yes    | no      |
| reading the answers, any copy       | its root holds only the paths listed above | yes  | yes    | no      |
| reading the user's files            | the same                                   | yes  | yes    | no      |

("fails": the program can kill the test process, which fails the run: it cannot pass by it.
"harness out of reach": in another PID namespace or of another uid; with neither, the program
runs as the harness's user and can read the token from the harness's memory or descriptors.)

Not isolated:
- Files inside the program's view stay readable: anything installed in the interpreter's
  prefixes (a dataset inside the virtual environment would be, unless ``hide`` names it) and the
  system library directories.
- Only plain data crosses: identity is lost (``program.f(x) is x`` is never true), keyword
  arguments do not come back after a call (positional lists, dicts and sets do, as copies of
  their new contents), and the tests cannot pass functions or other objects to the program.
- RLIMIT_CPU and RLIMIT_AS are per process: N processes may use N x the limit until the wall
  clock ends them. No cgroup bounds a run's total memory or CPU share.
- The program's orphaned children go to the test process (PID 1), which does not reap them:
  they count toward the program's RLIMIT_NPROC until the run ends. A program that SIGKILLs
  itself reads as a timeout (the CPU limit's signal).
- SysV IPC is shared with other runs (no IPC namespace): programs may talk to each other, not
  to any test process.
- A harness process killed mid-run (tasks.scoring replaces a stuck pool) leaves its empty
  ``sandbox-*`` directory in the temporary directory; the run's processes die with it
  (PR_SET_PDEATHSIG, then the PID namespace).

Deviations from human-eval: the tests run in another process and call the program with copies
of plain data (above), so a program returning a generator, a numpy array or a Fraction errors
where human-eval would compare it (numpy scalars cross as Python numbers); ``__name__`` is
``"__main__"`` (human-eval execs in a bare dict); PYTHONHASHSEED is 0, so set order, hence a
verdict, reproduces; no site: ``.pth`` files do not run and site-packages are appended to
``sys.path`` by hand (the editable install's finder alone cost ~20 ms a run); tracebacks come
without source lines.
"""

from __future__ import annotations

import marshal
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

UID_BASE = 1_600_000_000  # the tests' uid: UID_BASE + an even random number below UID_SPAN; the program's: + 1
UID_SPAN = 1 << 29
RUN_ENV = "SANDBOX_RUN"  # a non-secret run id in both processes' environment, to find strays by


@dataclass(frozen=True)
class Limits:
    """What one run may use, per process. The task's config holds the defaults of the first five."""

    wall_seconds: float  # harness clock, from start to kill
    cpu_seconds: int  # per process (RLIMIT_CPU)
    memory_mb: int  # address space per process (RLIMIT_AS)
    file_size_mb: int  # largest file, stdout and stderr included (RLIMIT_FSIZE)
    processes: int  # processes and threads of the program's uid (RLIMIT_NPROC)
    disk_mb: int = 64  # size of the working directory's tmpfs
    output_bytes: int = 64 * 1024  # how much of the end of stdout and of stderr comes back


@dataclass(frozen=True)
class SandboxResult:
    finished: bool  # the program ran and every test part returned: the test process's token arrived
    timed_out: bool  # the wall clock or a CPU limit ended the run
    error: Optional[str]  # what ended it early: a builtin or test-defined exception name, "SIGSEGV", "exit 0", ...
    stdout: str  # the last ``output_bytes`` of each, both processes together
    stderr: str
    isolation: tuple[str, ...]  # what this run got: uid, net, mount, pid (empty: rlimits only)
    seconds: float


_SITE_PACKAGES = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})  # importable, no .pth run
_HERE = Path(__file__).resolve().parent  # read, not imported: this module stays loadable on its own
_BOOTSTRAP = (_HERE / "sandbox_channel.py").read_text(encoding="utf-8") + "\n" + (
    _HERE / "sandbox_boot.py").read_text(encoding="utf-8")
_CODE = marshal.dumps(compile(_BOOTSTRAP, "<sandbox>", "exec"))  # compiled once here: ~10 ms a run saved
_LOADER = "import marshal, sys; exec(marshal.load(open(int(sys.argv.pop(1)), 'rb')))"


class SandboxError(RuntimeError):
    """The sandbox could not be set up (not: the program failed)."""


def run_python(program: str, limits: Limits, tests: Sequence[str] = (),
               hide: Sequence[Union[str, os.PathLike]] = ()) -> SandboxResult:
    """Run ``program`` in a fresh sandbox, then ``tests`` (parts compiled one by one into one
    namespace, which holds ``program``) in a second process beside it.

    ``hide``: directories neither process may read (covered by an empty tmpfs), in any form: a
    relative path is resolved here, against this process's working directory. Thread-safe;
    ``tasks.scoring.Scorer``'s worker processes give the parallelism.
    """
    root = os.geteuid() == 0
    test_uid = UID_BASE + 2 * secrets.randbelow(UID_SPAN // 2) if root else os.getuid()
    uids = [test_uid, test_uid + 1] if root else [test_uid, test_uid]
    token = secrets.token_hex(16)
    outer = os.path.realpath(tempfile.mkdtemp(prefix="sandbox-"))  # as /proc/self/mountinfo spells it
    work = os.path.join(outer, "work")
    spec = {"program": program, "root": root, "uids": uids, "work": work, "limits": limits.__dict__,
            "hide": [os.path.realpath(os.fspath(path)) for path in hide], "path": _SITE_PACKAGES,
            "host_mnt": os.stat("/proc/self/ns/mnt").st_ino}
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8",
           "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8",
           RUN_ENV: os.path.basename(outer),
           # one thread per BLAS: a thread per core would hit RLIMIT_NPROC and RLIMIT_AS on a big machine
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    files = [tempfile.TemporaryFile(dir=outer) for _ in range(7)]
    code_f, spec_f, secret_f, status_f, result_f, out_f, err_f = files  # status: closed before any code runs
    try:
        os.chmod(outer, 0o711)  # without a mount namespace the program passes through to its directory
        os.mkdir(work, 0o700)
        os.chown(work, uids[1], uids[1] if root else os.getgid())
        for f, data in ((code_f, _CODE), (spec_f, marshal.dumps(spec)),
                        (secret_f, marshal.dumps({"tests": list(tests), "token": token}))):
            f.write(data)
            f.seek(0)
        fds = [f.fileno() for f in (code_f, spec_f, secret_f, status_f, result_f)]
        # write-only: the program cannot read back what the tests printed
        outputs = [os.open(f"/proc/self/fd/{f.fileno()}", os.O_WRONLY | os.O_APPEND) for f in (out_f, err_f)]
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-S", "-P", "-c", _LOADER, *map(str, fds)],
                stdin=subprocess.DEVNULL, stdout=outputs[0], stderr=outputs[1], pass_fds=fds,
                start_new_session=True, env=env, cwd=work,
            )
        finally:
            for fd in outputs:
                os.close(fd)
        timed_out = not _wait(proc, limits.wall_seconds)
        status = _read(status_f, 4096)
        _end(proc, " pid" in status, timed_out, uids if root else [])
        seconds = time.monotonic() - start
        return _result(proc.returncode, status, _read(result_f, 4096), token, timed_out, seconds,
                       _read(out_f, limits.output_bytes), _read(err_f, limits.output_bytes))
    finally:
        for f in files:
            f.close()
        shutil.rmtree(outer, ignore_errors=True)


def _wait(proc: subprocess.Popen, seconds: float) -> bool:
    """Whether the bootstrap ended within ``seconds``. It is not reaped, so its pid (and process
    group id) cannot be reused before ``_end`` signals them."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:  # Linux < 5.3: poll
        deadline = time.monotonic() + seconds
        while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True
    try:
        return bool(select.select([pidfd], [], [], seconds)[0])
    finally:
        os.close(pidfd)


def _end(proc: subprocess.Popen, namespace: bool, timed_out: bool, uids: Sequence[int]) -> None:
    """Leave no process of the run alive, then reap the bootstrap.

    With a PID namespace, the kernel kills every process in it when its PID 1 ends; on a timeout
    the bootstrap (outside the namespace) SIGKILLs that PID 1 when it gets SIGTERM. As root, every
    process of the run's uids is killed too (without a namespace, that is what finds children
    that left the process group). Last, the process group, while the bootstrap is unreaped.
    """
    if timed_out and namespace:
        os.kill(proc.pid, signal.SIGTERM)  # not Popen.send_signal: it would reap the bootstrap
        _wait(proc, 2.0)
    if timed_out or not namespace:
        for _ in range(1000 if uids else 0):
            if not _kill_uids(set(uids)):
                break
            time.sleep(0.001)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _kill_uids(uids: set[int]) -> int:
    """SIGKILL every live process whose real uid is in ``uids``; how many there were."""
    found = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
            if int(status["Uid"].split()[0]) in uids and not status["State"].strip().startswith("Z"):
                found += 1
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, KeyError, ValueError):
            pass  # gone meanwhile
    return found


def _read(f, limit: int) -> str:
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - limit))
    return f.read().decode("utf-8", "replace")


def _result(code: int, status: str, result: str, token: str, timed_out: bool, seconds: float,
            out: str, err: str) -> SandboxResult:
    """``status`` and ``result`` come from the bootstrap and the test process alone: no program
    code can write either. ``error`` is one word from a fixed vocabulary, never the program's text."""
    if status.startswith("setup-failed"):
        raise SandboxError(f"the sandbox could not be set up: {status.strip()}")
    if not status and not timed_out:  # it died before it could run anything
        last = (err.strip().splitlines() or [""])[-1][-300:]
        raise SandboxError(f"the sandbox's bootstrap ended early (exit {code}): {last}")
    isolation = tuple(status.split()[1:]) if status.startswith("isolation") else ()
    lines = result.splitlines()
    finished = token in lines
    raised = [_word(line[len("raised "):]) for line in lines if line.startswith("raised ")]
    died = [int(line[len("died "):]) for line in lines if line.startswith("died ") and line[5:].lstrip("-").isdigit()]
    signum = code - 128 if code > 128 else -code if code < 0 else 0  # the test process's (PID 1's)
    program_signum = -died[-1] if died and died[-1] < 0 else 0
    # the CPU limit: soft = hard, so the kernel sends SIGKILL (SIGXCPU would be ignored by a PID 1)
    cpu = {signal.SIGXCPU, signal.SIGKILL}
    timed_out = (timed_out or signum in cpu or program_signum in cpu) and not finished
    if finished or timed_out:
        error = None
    elif raised:
        error = raised[-1]
    elif died:
        error = _signal_name(program_signum) if program_signum else f"exit {died[-1]}"
    else:
        error = _signal_name(signum) if signum else f"exit {code}"
    return SandboxResult(finished, timed_out, error, out, err, isolation, seconds)


def _word(name: str) -> str:
    """An exception's class name as a verdict may show it: one identifier, else ``Exception``."""
    return name if name.isidentifier() and name.isascii() and len(name) <= 64 else "Exception"


def _signal_name(signum: int) -> str:
    return signal.Signals(signum).name if signum in signal.valid_signals() else f"signal {signum}"
