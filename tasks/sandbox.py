"""Run untrusted Python in a throw-away, locked-down process: ``run_python(source, limits)``.

Model-written code is hostile input. The idea is OpenAI human-eval's execution harness
(github.com/openai/human-eval, human_eval/execution.py: a separate process, a time limit, a
throw-away directory), with its in-process ``reliability_guard`` (monkeypatching os and shutil,
which the code itself can undo) replaced by limits the kernel enforces.

A run. The harness writes a spec (the program's parts, the limits, a random token) to an
unlinked file and starts the bootstrap, ``python -S -P -c <the last section of this file>``, in
a new session: stdin /dev/null, stdout and stderr on unlinked files, a clean environment whose
HOME, TMPDIR and working directory are the run's own directory. The bootstrap reads the spec,
enters new network, mount and PID namespaces (as root; otherwise inside a new user namespace,
if the kernel allows one) and forks. The child, PID 1 of the new namespace, mounts a fresh
/proc, a size-capped tmpfs on the working directory and an empty one on each ``hide`` path,
remounts everything else read-only, sets the rlimits, and, as root, drops to a uid of its own
(UID_BASE + a random number: no other process has it, so RLIMIT_NPROC counts this run alone and
the harness can find every process of the run by uid); then it compiles all parts and runs them
in one ``__main__``. Parts compile separately, so a completion cannot swallow the tests into a
string literal. After the last part returns, the bootstrap writes the token to a result file;
the harness counts a run as finished only if the token arrived, so ``sys.exit(0)`` or
``os._exit(0)`` before the checks, or printing a marker, finishes nothing. The token is in no
file, argument or environment variable the program can read. When PID 1 ends, the kernel kills
every other process of the namespace; on a timeout the bootstrap kills PID 1. The harness also
kills the run's uid (as root) and process group, and deletes the directory.

Isolation (``SandboxResult.isolation`` says what a run got: ``uid net mount pid`` as root,
``user net mount pid`` in a user namespace, nothing in the last column; tests/tasks/
test_sandbox.py checks the root column row by row, and the user-namespace one as ``nobody``):

| threat                        | mechanism                                  | root | userns | neither |
| ----------------------------- | ------------------------------------------ | ---- | ------ | ------- |
| endless loop, sleep           | RLIMIT_CPU (soft = hard: SIGKILL), wall    | yes  | yes    | yes     |
| memory bomb                   | RLIMIT_AS: MemoryError                     | yes  | yes    | yes     |
| huge file or output           | RLIMIT_FSIZE: EFBIG; output read capped    | yes  | yes    | yes     |
| faking a pass by exiting      | token written by the bootstrap after tests | yes  | yes    | yes     |
| reading stdin                 | /dev/null                                  | yes  | yes    | yes     |
| setuid binaries               | PR_SET_NO_NEW_PRIVS                        | yes  | yes    | yes     |
| fork bomb                     | RLIMIT_NPROC on the run's own uid          | yes  | no     | no      |
| children outliving the run    | PID namespace; kill by uid; killpg         | yes  | yes    | killpg  |
| network (also abstract unix)  | empty network namespace, lo down           | yes  | yes    | no      |
| writing outside its directory | every other mount remounted read-only      | yes  | yes    | no      |
| filling the disk              | working directory is a tmpfs of disk_mb    | yes  | yes    | no      |
| signalling or tracing others  | own uid; other processes invisible (PID ns)| yes  | yes    | no      |
| reading the answers           | ``hide`` paths covered by an empty tmpfs   | yes  | yes    | no      |
| reading the user's files      | own uid: only world-readable files         | yes  | no     | no      |

Not isolated:
- The tests run in the program's interpreter, so code aimed at this harness can read the token
  from the bootstrap's frame (``sys._getframe``, ``gc``, ``ctypes``, /proc/self/mem) and forge a
  pass, and any program can return an object whose ``__eq__`` is always true or monkeypatch what
  the tests call (``math.fabs``). Closing that needs the tests in a second process, with only
  plain data crossing over. Cheaper routes are closed: builtins patched to skip the tests (the
  bootstrap holds its own references and compiles everything first), a thread rebinding ``check``
  (a program that leaves threads running fails), a trace function jumping in the bootstrap.
- World-readable files stay readable (/etc, the repo, copies of a dataset that ``hide`` does not
  name); under a 0700 /root only the interpreter's prefix is made reachable.
- RLIMIT_CPU and RLIMIT_AS are per process: N processes may use N x the limit until the wall
  clock ends them. No cgroup bounds a run's total memory or CPU share.
- The program is PID 1 of its namespace: signals it sends itself without a handler (SIGTERM) are
  ignored, and its orphaned children are its to reap.
- Filesystem unix sockets are reachable if their permissions let "other" in (none exist here).
- A harness process killed mid-run (tasks.scoring replaces a stuck pool) leaves its empty
  ``sandbox-*`` directory in the temporary directory; the run's processes die with it
  (PR_SET_PDEATHSIG, then the PID namespace).

Deviations from human-eval: a program that leaves a thread running past its own part fails;
``__name__`` is ``"__main__"`` (human-eval execs in a bare dict);
PYTHONHASHSEED is 0, so set order, hence a verdict, reproduces; no site: ``.pth`` files do not run
and site-packages are appended to ``sys.path`` by hand (the editable install's finder alone cost
~20 ms a run); tracebacks come without source lines (see ``_execute``).
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
from typing import Optional, Sequence, Union

UID_BASE = 1_600_000_000  # a run's uid: UID_BASE + a random number below UID_SPAN; no passwd entry
UID_SPAN = 1 << 29
RUN_ENV = "SANDBOX_RUN"  # a non-secret run id in the program's environment, to find strays by


@dataclass(frozen=True)
class Limits:
    """What one run may use. The task's config holds the defaults of the first five."""

    wall_seconds: float  # harness clock, from start to kill
    cpu_seconds: int  # per process (RLIMIT_CPU)
    memory_mb: int  # address space per process (RLIMIT_AS)
    file_size_mb: int  # largest file, stdout and stderr included (RLIMIT_FSIZE)
    processes: int  # processes and threads of the run's uid (RLIMIT_NPROC)
    disk_mb: int = 64  # size of the working directory's tmpfs
    output_bytes: int = 64 * 1024  # how much of the end of stdout and of stderr comes back


@dataclass(frozen=True)
class SandboxResult:
    finished: bool  # every part ran to its end: the bootstrap's token reached the harness
    timed_out: bool  # the wall clock or the CPU limit ended the run
    error: Optional[str]  # what ended it early: an exception name, "SIGSEGV", "exit 0", ...
    stdout: str  # the last ``output_bytes`` of each
    stderr: str
    isolation: tuple[str, ...]  # what this run got: uid, net, mount, pid (empty: rlimits only)
    seconds: float


_SITE_PACKAGES = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})  # importable, no .pth run
_SOURCE = open(__file__, encoding="utf-8").read()
_BOOTSTRAP = _SOURCE[_SOURCE.index("\n# ---- bootstrap") :]  # the section below this module's harness code


class SandboxError(RuntimeError):
    """The sandbox could not be set up (not: the program failed)."""


def run_python(source: Union[str, Sequence[str]], limits: Limits, hide: Sequence[str] = ()) -> SandboxResult:
    """Run ``source`` (or its parts, compiled one by one into one namespace) in a fresh sandbox.

    ``hide``: directories the program must not read (covered by an empty tmpfs). Thread-safe;
    ``tasks.scoring.Scorer``'s worker processes give the parallelism.
    """
    root = os.geteuid() == 0
    uid = UID_BASE + secrets.randbelow(UID_SPAN) if root else os.getuid()
    gid = uid if root else os.getgid()
    token = secrets.token_hex(16)
    outer = os.path.realpath(tempfile.mkdtemp(prefix="sandbox-"))  # as /proc/self/mountinfo spells it
    work = os.path.join(outer, "work")
    spec = {"parts": [source] if isinstance(source, str) else list(source), "token": token, "root": root,
            "uid": uid, "gid": gid, "work": work, "hide": [str(h) for h in hide], "limits": limits.__dict__,
            "path": _SITE_PACKAGES,
            "host_mnt": os.stat("/proc/self/ns/mnt").st_ino}
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8",
           "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8",
           RUN_ENV: os.path.basename(outer),
           # one thread per BLAS: a thread per core would hit RLIMIT_NPROC and RLIMIT_AS on a big machine
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    files = [tempfile.TemporaryFile(dir=outer) for _ in range(5)]
    spec_f, status_f, result_f, out_f, err_f = files  # status: closed before the program runs
    try:
        os.chmod(outer, 0o711)  # the program may pass through to its directory, not list it
        os.mkdir(work, 0o700)
        os.chown(work, uid, gid)
        spec_f.write(marshal.dumps(spec))
        spec_f.seek(0)
        fds = [f.fileno() for f in (spec_f, status_f, result_f)]
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-S", "-P", "-c", _BOOTSTRAP, *map(str, fds)],
            stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f, pass_fds=fds,
            start_new_session=True, env=env, cwd=work,
        )
        timed_out = not _wait(proc, limits.wall_seconds)
        status = _read(status_f, 4096)
        _end(proc, " pid" in status, timed_out, uid if root else None)
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


def _end(proc: subprocess.Popen, namespace: bool, timed_out: bool, uid: Optional[int]) -> None:
    """Leave no process of the run alive, then reap the bootstrap.

    With a PID namespace, the kernel kills every process in it when its PID 1 ends; on a timeout
    the bootstrap (outside the namespace) SIGKILLs that PID 1 when it gets SIGTERM. As root, every
    process of the run's own uid is killed too (without a namespace, that is what finds children
    that left the process group). Last, the process group, while the bootstrap is unreaped.
    """
    if timed_out and namespace:
        os.kill(proc.pid, signal.SIGTERM)  # not Popen.send_signal: it would reap the bootstrap
        _wait(proc, 2.0)
    if uid is not None and (timed_out or not namespace):
        for _ in range(1000):
            if not _kill_uid(uid):
                break
            time.sleep(0.001)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _kill_uid(uid: int) -> int:
    """SIGKILL every live process whose real uid is ``uid``; how many there were."""
    found = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
            if int(status["Uid"].split()[0]) == uid and not status["State"].strip().startswith("Z"):
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
    """``status`` comes from the bootstrap alone (closed before the program runs); ``result``
    may hold anything the program wrote, so only the token in it counts."""
    if status.startswith("setup-failed"):
        raise SandboxError(f"the sandbox could not be set up: {status.strip()}")
    if not status and not timed_out:  # it died before it could run the program
        raise SandboxError(f"the sandbox's bootstrap ended early (exit {code}): {err.strip()[-1000:]}")
    isolation = tuple(status.split()[1:]) if status.startswith("isolation") else ()
    finished = token in result
    signum = code - 128 if code > 128 else -code if code < 0 else 0
    # the CPU limit: soft = hard, so the kernel sends SIGKILL (SIGXCPU would be ignored by a PID 1)
    timed_out = (timed_out or signum in (signal.SIGXCPU, signal.SIGKILL)) and not finished
    raised = [line[len("raised "):] for line in result.splitlines() if line.startswith("raised ")]
    if finished or timed_out:
        error = None
    elif signum:
        error = signal.Signals(signum).name if signum in signal.valid_signals() else f"signal {signum}"
    else:
        error = raised[-1] if raised else f"exit {code}"
    return SandboxResult(finished, timed_out, error, out, err, isolation, seconds)


# ---- bootstrap: this section alone runs in the sandbox, as ``python -S -P -c <section> FDS`` ----
# (no site, no dataclasses or typing: they would add ~35 ms to every run)

import ctypes  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000  # sched.h
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32  # linux/mount.h
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MOUNT_OPTIONS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024, "nodiratime": 2048,
                 "relatime": 1 << 21, "strictatime": 1 << 24}  # kept on remount (a user namespace locks them)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38  # linux/prctl.h
SIGKILL = 9


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _sys(ret: int, what: str) -> None:
    if ret != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _sys(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _boot(spec_fd: int, status_fd: int, result_fd: int) -> None:
    import marshal

    with os.fdopen(spec_fd, "rb") as f:
        spec = marshal.loads(f.read())
    _sys(_libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl")  # the harness dies: so do we
    got = []
    if spec["root"]:
        got += ["net"] if _libc.unshare(CLONE_NEWNET) == 0 else []
        got += ["mount", "pid"] if _libc.unshare(CLONE_NEWNS | CLONE_NEWPID) == 0 else []
    elif _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID) == 0:
        for name, text in [("setgroups", "deny"), ("uid_map", f"{os.getuid()} {os.getuid()} 1"),
                           ("gid_map", f"{os.getgid()} {os.getgid()} 1")]:  # the same ids inside
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        got += ["user", "net", "mount", "pid"]
    if "pid" in got:
        child = os.fork()  # PID 1 of the new namespace: when it ends, the kernel kills the rest
        if child:
            _wait_for(child, status_fd, result_fd)
        _sys(_libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl")  # fork cleared it
    try:
        _confine(spec, got)
    except Exception as err:  # report and stop: never run the program half-confined
        os.write(status_fd, f"setup-failed {type(err).__name__}: {err}\n".encode())
        os._exit(125)
    os.write(status_fd, ("isolation " + " ".join(got) + "\n").encode())
    os.close(status_fd)
    sys.path += spec["path"]  # site-packages, without running .pth files
    _execute(spec.pop("parts"), spec.pop("token").encode(), result_fd)


def _wait_for(child: int, status_fd: int, result_fd: int) -> None:
    """The bootstrap's part outside the namespace: SIGTERM (the harness's wall clock) kills the
    child, which is safe by pid as long as this process has not reaped it; exit as it did."""
    import _signal  # the C module: ``signal`` would import enum, ~3 ms

    os.close(status_fd)
    os.close(result_fd)
    _signal.signal(15, lambda *_: os.kill(child, SIGKILL))
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    os._exit(128 - code if code < 0 else code)


def _confine(spec: dict, got: list) -> None:
    limits, uid, work = spec["limits"], spec["uid"], spec["work"]
    prefixes = sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix})
    if "mount" in got:
        if os.stat("/proc/self/ns/mnt").st_ino == spec["host_mnt"]:
            raise RuntimeError("still in the harness's mount namespace")  # never remount the host's
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        for prefix in prefixes if spec["root"] else ():
            _reach(prefix)
        for path in spec["hide"]:
            if os.path.isdir(path):
                _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0")
        _mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV,
               f"size={limits['disk_mb']}m,nr_inodes=4096,mode=0700,uid={uid},gid={spec['gid']}")
        _read_only_except(work)
    elif spec["root"] and any(_closed(prefix) for prefix in prefixes):
        raise RuntimeError(f"no mount namespace, and the interpreter under {prefixes} is closed to other users")
    for name, value in [("CPU", limits["cpu_seconds"]), ("AS", limits["memory_mb"] << 20),
                        ("FSIZE", limits["file_size_mb"] << 20), ("CORE", 0)]:
        resource.setrlimit(getattr(resource, "RLIMIT_" + name), (value, value))
    if spec["root"]:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        if {os.getuid(), os.geteuid(), os.getgid(), os.getegid()} != {uid}:
            raise RuntimeError("could not drop root")
        got.insert(0, "uid")
        _sys(_libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl")  # a uid change cleared it
    elif "user" in got:  # give up the namespace's capabilities, or the program could remount rw
        header, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()  # _LINUX_CAPABILITY_VERSION_3
        _sys(_libc.capset(header, data), "capset")
    _sys(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")
    _sys(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "prctl")  # the uid change cleared it: /proc/self as usual
    os.chdir(work)


def _closed(path: str) -> "str | None":
    """The first directory on the way to ``path`` that other users may not pass, if any."""
    names = path.strip("/").split("/")
    for depth in range(len(names)):
        parent = "/" + "/".join(names[:depth])
        if not os.stat(parent).st_mode & 0o001:
            return parent
    return None


def _reach(path: str) -> None:
    """Let other users reach ``path`` (an interpreter under a 0700 /root): cover each closed
    directory on the way with a tmpfs holding only the way through, bind-mounted from the original."""
    while (parent := _closed(path)) is not None:
        inner = os.path.join(parent, path[len(parent):].strip("/").split("/")[0])
        keep = os.open(inner, os.O_PATH)
        _mount("tmpfs", parent, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=0755")
        os.mkdir(inner)
        _mount(f"/proc/self/fd/{keep}", inner, None, MS_BIND | MS_REC)
        os.close(keep)


def _read_only_except(work: str) -> None:
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split() for line in f]
    for fields in mounts:
        target = fields[4]
        for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
            target = target.replace(code, char)
        if target != work:
            options = sum(MOUNT_OPTIONS.get(option, 0) for option in set(fields[5].split(",")))
            _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | options)


def _execute(parts: list, token: bytes, result_fd: int) -> None:
    """Run the parts in one fresh ``__main__``; the token goes out only if the last one returns.

    Everything is compiled before any of it runs, and what runs after the program's code is held
    in locals, so the program cannot neuter the later parts by patching builtins or os. Tracebacks
    come from the interpreter's C printer (no source lines for the parts): the traceback module
    would cost ~15 ms of imports a run, and the program could break importing it.
    """
    import builtins

    run, settrace, count, listdir, write, report = exec, sys.settrace, len, os.listdir, os.write, sys.__excepthook__
    main = type(sys)("__main__")
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    try:
        codes = [compile(part, f"<part {index}>", "exec") for index, part in enumerate(parts)]
        for index, code in enumerate(codes):
            if index and count(listdir("/proc/self/task")) > 1:  # a thread could rebind the tests' names
                raise RuntimeError("the program left threads running")
            settrace(run(code, main.__dict__))  # = settrace(None) on the same line: no trace event between
    except BaseException as err:  # SystemExit too: leaving early is not finishing
        write(result_fd, f"raised {err.__class__.__name__}\n".encode())
        try:
            report(err.__class__, err, err.__traceback__)
        except BaseException:  # the program may have broken printing; the verdict is already out
            pass
        _flush_and_exit(1)
    write(result_fd, token + b"\n")
    _flush_and_exit(0)


def _flush_and_exit(code: int) -> None:
    """Exit at once (no atexit hooks of the program's), keeping what it printed."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # the program may have replaced or closed them; its output is all we lose
            pass
    _exit(code)


_exit = os._exit  # held before the program can replace it
if __name__ == "__main__":
    _boot(*map(int, sys.argv[1:4]))
