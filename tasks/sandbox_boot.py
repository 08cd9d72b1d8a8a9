"""The sandbox's bootstrap: sandbox_channel.py's source, then this file's, compiled by the harness and
run in ``python -S -P`` with the descriptors SPEC SECRET STATUS RESULT as arguments.

tasks/sandbox.py (the harness, and the table of what is isolated) starts it; the four numbers are
descriptors of unlinked files: the spec (the program, limits, uids, directories), the secret (the
tests and the token), a status file (one line, written before any code of the program or the
tests runs) and the result file (the test process's alone).

1. Enter new network, mount and PID namespaces (as root; otherwise in a new user namespace) and
   fork: the child is PID 1 of the new PID namespace. This process waits for it, and kills it
   when the harness's wall clock sends SIGTERM.
2. PID 1 mounts a fresh /proc, a size-capped tmpfs on the working directory and an empty one on
   each hidden path, remounts everything else read-only, and forks the program's process. Both
   are non-dumpable from here on (the program's process until it is confined).
3. The program's process keeps only its two pipe ends and stdio, moves to a mount namespace of
   its own whose root is a read-only tmpfs holding only ``_visible`` and the working directory,
   sets the rlimits, drops to the program's uid, says ``confined`` (before any program code runs,
   so that message can be trusted), and serves (tasks/sandbox_channel.py).
4. PID 1 becomes the test process: rlimits, the tests' uid, non-dumpable; it reads the secret,
   waits for ``confined``, writes the isolation line to the status file, runs the test parts in a
   fresh ``__main__`` holding ``program``, and writes the token to the result file if all return.
   When it exits, the kernel kills everything left in the namespace.

Imports: what the interpreter has built in or loads in a millisecond (no site, dataclasses,
typing, signal or traceback: each would add milliseconds to every run).
"""

import builtins
import ctypes
import marshal
import os
import resource
import sys
import time

if __name__ != "__main__":  # imported (tests, linters); in the sandbox the channel's source runs just before this
    from tasks.sandbox_channel import Channel, ChannelClosed, Program, serve

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000  # sched.h
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32  # linux/mount.h
MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 4096, 8192, 16384, 1 << 18
MOUNT_OPTIONS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024, "nodiratime": 2048,
                 "relatime": 1 << 21, "strictatime": 1 << 24}  # kept on remount (a user namespace locks them)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38  # linux/prctl.h
SIGKILL = 9
LIBRARY_DIRS = ("/lib", "/lib32", "/lib64", "/libx32", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_exit = os._exit


def _sys(ret: int, what: str) -> None:
    if ret != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _sys(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _boot(spec_fd: int, secret_fd: int, status_fd: int, result_fd: int) -> None:
    with os.fdopen(spec_fd, "rb") as f:
        spec = marshal.loads(f.read())
    _sys(_libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl")  # the harness dies: so do we
    got = _namespaces()
    if "pid" in got:
        child = os.fork()  # PID 1 of the new namespace: when it ends, the kernel kills the rest
        if child:
            _wait_for(child, (secret_fd, status_fd, result_fd))
        _sys(_libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl")  # fork cleared it
    try:
        _confine(spec, got)
        requests, replies = os.pipe(), os.pipe()
        _sys(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl")  # neither process may read the other
        program = os.fork()
    except Exception as err:  # report and stop: never run anything half-confined
        _setup_failed(status_fd, err)
    if program == 0:
        _program_process(spec, got, Channel(requests[0], replies[1]))
    os.close(requests[0])
    os.close(replies[1])
    _test_process(spec, got, Channel(replies[0], requests[1], _pidfd(program)), (secret_fd, status_fd, result_fd),
                  program)


def _namespaces() -> list:
    if os.geteuid() == 0:
        got = ["net"] if _libc.unshare(CLONE_NEWNET) == 0 else []
        return got + (["mount", "pid"] if _libc.unshare(CLONE_NEWNS | CLONE_NEWPID) == 0 else [])
    if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID) != 0:
        return []
    for name, text in [("setgroups", "deny"), ("uid_map", f"{os.getuid()} {os.getuid()} 1"),
                       ("gid_map", f"{os.getgid()} {os.getgid()} 1")]:  # the same ids inside
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    return ["user", "net", "mount", "pid"]


def _wait_for(child: int, fds: tuple) -> None:
    """The bootstrap's part outside the namespace: SIGTERM (the harness's wall clock) kills the
    child, which is safe by pid as long as this process has not reaped it; exit as it did."""
    import _signal  # the C module: ``signal`` would import enum, ~3 ms

    for fd in fds:
        os.close(fd)
    _signal.signal(15, lambda *_: os.kill(child, SIGKILL))
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    _exit(128 - code if code < 0 else code)


def _setup_failed(status_fd: int, err: Exception) -> None:
    os.write(status_fd, f"setup-failed {type(err).__name__}: {err}".replace("\n", " ").encode() + b"\n")
    _exit(125)


def _program_process(spec: dict, got: list, channel: Channel) -> None:
    _close_except(channel.read_fd, channel.write_fd)  # the secret, status and result files above all
    try:
        if "mount" in got:
            _program_view(spec)
        _drop(spec, got, spec["uids"][1], dumpable=True)
        os.chdir(spec["work"])
    except Exception as err:
        channel.send(("setup-failed", f"{type(err).__name__}: {err}"))
        _exit(125)
    channel.send(("confined",))
    sys.path += spec["path"]  # site-packages, without running .pth files
    serve(channel, spec.pop("program"), _fresh_main().__dict__)
    _flush_and_exit(0)


def _test_process(spec: dict, got: list, channel: Channel, fds: tuple, program: int) -> None:
    secret_fd, status_fd, result_fd = fds
    try:
        _drop(spec, got, spec["uids"][0], dumpable=False)
        os.chdir("/")
        with os.fdopen(secret_fd, "rb") as f:
            secret = marshal.loads(f.read())
        first = channel.receive()  # sent before any program code ran: trusted
        if first != ("confined",):
            raise RuntimeError(f"the program's process: {first[-1] if type(first) is tuple else first}")
    except Exception as err:
        _setup_failed(status_fd, err)
    os.write(status_fd, ("isolation " + " ".join(got) + "\n").encode())
    os.close(status_fd)
    sys.path += spec["path"]
    _run_tests(Program(channel), secret["tests"], secret["token"].encode(), result_fd, program)


def _run_tests(program: Program, parts: list, token: bytes, result_fd: int, program_pid: int) -> None:
    """Run the parts, compiled one by one, in a fresh ``__main__`` that holds ``program`` (beside
    the program's own code, until the first call waits for it); the token goes out only if the
    program ran to its end, every part returned and no call failed on the channel (a test that
    catches everything cannot hide a dead program). Tracebacks come from the interpreter's C
    printer (no source lines: the traceback module costs ~15 ms of imports)."""
    main = _fresh_main()
    main.program = program
    try:
        codes = [compile(part, f"<test {index}>", "exec") for index, part in enumerate(parts)]
        for code in codes:
            exec(code, main.__dict__)
        program.loaded()  # a program that never ran to its end fails, called or not
        if program.failure is not None:
            raise program.failure
    except BaseException as err:  # SystemExit too: leaving early is not finishing
        failure = program.failure or err
        code = _exit_code(program_pid) if isinstance(failure, ChannelClosed) else None
        line = f"raised {type(failure).__name__}" if code is None else f"died {code}"
        os.write(result_fd, line.encode() + b"\n")
        sys.__excepthook__(type(err), err, err.__traceback__)
        _flush_and_exit(1)
    os.write(result_fd, token + b"\n")
    _flush_and_exit(0)


def _exit_code(pid: int, seconds: float = 1.0) -> "int | None":
    """The program's process's exit code (negative: its signal) once it ends; None if it still
    runs after ``seconds`` (it closed the channel without ending)."""
    deadline = time.monotonic() + seconds
    while not (done := os.waitpid(pid, os.WNOHANG))[0]:
        if time.monotonic() > deadline:
            return None
        time.sleep(0.005)
    return os.waitstatus_to_exitcode(done[1])


def _pidfd(pid: int) -> "int | None":
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # Linux < 5.3: a child of the program may keep the test waiting
        return None


def _fresh_main():
    main = type(sys)("__main__")
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    return main


def _close_except(*keep: int) -> None:
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _confine(spec: dict, got: list) -> None:
    """The mounts both processes share: everything read-only but the working directory, hidden paths covered."""
    work, prefixes = spec["work"], _prefixes()
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
        uid = spec["uids"][1]
        _mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV,
               f"size={spec['limits']['disk_mb']}m,nr_inodes=4096,mode=0700,uid={uid},gid={uid}")
        _read_only_except(work)
    elif spec["root"] and any(_closed(prefix) for prefix in prefixes):
        raise RuntimeError(f"no mount namespace, and the interpreter under {prefixes} is closed to other users")


def _prefixes() -> list:
    return sorted({os.path.abspath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)})


def _drop(spec: dict, got: list, uid: int, dumpable: bool) -> None:
    limits = spec["limits"]
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
    elif "user" in got:  # give up the namespace's capabilities, or the program could remount rw
        header, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()  # _LINUX_CAPABILITY_VERSION_3
        _sys(_libc.capset(header, data), "capset")
    _sys(_libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl")  # a fork or a uid change cleared it
    _sys(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")
    _sys(_libc.prctl(PR_SET_DUMPABLE, int(dumpable), 0, 0, 0), "prctl")  # the program: /proc/self as usual


def _program_view(spec: dict) -> None:
    """Root the program's process in a read-only tmpfs holding ``_visible`` (bound, read-only) and
    the working directory (writable), in a mount namespace of its own: the tests' view stays whole.
    The old root is covered (MS_MOVE, then chroot, as switch_root does); without capabilities
    nothing can uncover it."""
    work = spec["work"]
    top = os.path.dirname(work)  # the run's own directory becomes the new root's mount point
    _sys(_libc.unshare(CLONE_NEWNS), "unshare")
    keep = os.open(work, os.O_PATH)  # after unshare: a bind from another namespace's mount fails
    _mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=1024,mode=0755")
    os.umask(0o022)
    for path in _visible(spec):
        if os.path.islink(path):  # /lib -> usr/lib: the same link
            if not os.path.lexists(top + path):
                os.symlink(os.readlink(path), top + path)
            continue
        if os.path.isdir(path):
            os.makedirs(top + path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(top + path), exist_ok=True)
            os.close(os.open(top + path, os.O_CREAT | os.O_WRONLY, 0o644))
        _mount(path, top + path, None, MS_BIND | MS_REC)  # read-only already: a bind keeps the flags
    os.makedirs(top + work)
    _mount(f"/proc/self/fd/{keep}", top + work, None, MS_BIND | MS_REC)
    os.close(keep)
    _mount(None, top, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(top)
    _mount(top, "/", None, MS_MOVE)
    os.chroot(".")


def _visible(spec: dict) -> list:
    """What the program's process sees besides its working directory (tasks/sandbox.py lists it):
    the interpreter's prefixes and site-packages, the system's library directories, the loader's
    cache, five device files and /proc; each path once, none under another."""
    paths: list = []
    wanted = _prefixes() + sorted(spec["path"]) + list(LIBRARY_DIRS + SYSTEM_FILES) + ["/proc"]
    for path in wanted:
        if os.path.lexists(path) and not any(path == p or path.startswith(p.rstrip("/") + "/") for p in paths):
            paths.append(path)
    return paths


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


def _flush_and_exit(code: int) -> None:
    """Exit at once (no atexit hooks), keeping what was printed."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # the program may have replaced or closed them; its output is all we lose
            pass
    _exit(code)


if __name__ == "__main__":
    _boot(*map(int, sys.argv[1:5]))
