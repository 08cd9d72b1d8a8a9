"""tasks.sandbox: each row of the module's isolation table, checked by running hostile programs.

Leftover processes are looked for with a plain /proc scan (any process of a sandbox uid, or with
the sandbox's run variable in its environment); leftover files by the exact paths the programs
tried to write. Rows that need root skip elsewhere.
"""

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest
from sandbox_probe import sandbox_processes

from common import DEFAULT_DATA_DIR, PROJECT_ROOT
from tasks.sandbox import _BOOTSTRAP, RUN_ENV, UID_BASE, UID_SPAN, Limits, SandboxResult, run_python

LIMITS = Limits(wall_seconds=1.0, cpu_seconds=1, memory_mb=512, file_size_mb=4, processes=8)
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="namespaces and the uid drop need root")


def test_the_leftover_scan_sees_a_stray():
    stray = subprocess.Popen(["sleep", "30"], env={RUN_ENV: "stray"})
    try:
        # Popen returns once exec has begun (close-on-exec fired); the new environment is in
        # /proc a moment later, so a loaded machine needs a few looks
        deadline = time.monotonic() + 5
        while not any(line.startswith(f"{stray.pid} ") for line in sandbox_processes()):
            assert time.monotonic() < deadline, f"the scan never saw the stray process {stray.pid}"
            time.sleep(0.05)
    finally:
        stray.kill()
        stray.wait()
    assert sandbox_processes() == []


def run(source, limits: Limits = LIMITS, **kwargs) -> SandboxResult:
    result = run_python(source, limits, **kwargs)
    assert sandbox_processes() == []
    assert result.seconds < limits.wall_seconds + 1.5
    return result


@needs_root
def test_isolation_as_measured_here():
    result = run("import os; print(os.getuid(), os.getgid(), os.getgroups())")
    assert result.finished and result.isolation == ("uid", "net", "mount", "pid")
    uid, gid, groups = result.stdout.split(maxsplit=2)
    assert UID_BASE <= int(uid) < UID_BASE + UID_SPAN and gid == uid and groups.strip() == "[]"


def test_a_plain_program_finishes_and_its_directory_goes():
    result = run("import os, sys\nprint(os.getcwd(), os.environ['HOME'], os.environ['TMPDIR'])\n"
                 "open('scratch.txt', 'w').write('x' * 1000)\nprint('done', file=sys.stderr)")
    cwd, home, tmpdir = result.stdout.split()
    assert result.finished and not result.timed_out and result.error is None
    assert cwd == home == tmpdir and "done" in result.stderr
    assert not os.path.exists(cwd) and not os.path.exists(os.path.dirname(cwd))


def test_the_interpreter_works_as_usual():
    result = run("import collections, hashlib, json, math, numpy\nprint(math.sqrt(16), hash('abc'))")
    again = run("print(hash('abc'))")
    assert result.finished, result.stderr
    assert result.stdout.split()[0] == "4.0"
    assert result.stdout.split()[1] == again.stdout.strip()  # PYTHONHASHSEED fixed: verdicts reproduce
    shadow = run("import math\nprint(hasattr(math, 'sqrt'), 'tasks' not in math.__dict__.get('__file__', ''))")
    assert shadow.stdout.split() == ["True", "True"]  # tasks/math.py does not shadow the stdlib


def test_parts_compile_separately_so_a_string_cannot_swallow_the_tests():
    result = run(["def check(c):\n    pass\nx = '''", "'''\nassert False", "check(1)"])
    assert not result.finished and result.error == "SyntaxError"
    assert run(["x = 1", "assert x == 1", "y = x + 1"]).finished
    failed = run(["x = 1", "assert x == 2, 'no'"])
    assert not failed.finished and failed.error == "AssertionError"
    assert '"<part 1>", line 1' in failed.stderr and "AssertionError: no" in failed.stderr


@pytest.mark.parametrize("exit_code", [
    "import sys; sys.exit(0)", "raise SystemExit", "import os; os._exit(0)", "exit()",
    "import ctypes; ctypes.string_at(0)",  # SIGSEGV
    "import atexit, os; atexit.register(os._exit, 0); raise ValueError",
])
def test_leaving_before_the_end_is_not_finishing(exit_code):
    result = run([exit_code, "print('tests ran')"])
    assert not result.finished and "tests ran" not in result.stdout


def test_the_token_cannot_be_printed_or_written_by_the_program():
    forge = """
import os, secrets
texts = [b'passed\\n', secrets.token_hex(16).encode() + b'\\n', open('/proc/self/cmdline', 'rb').read(),
         open('/proc/self/environ', 'rb').read()]
for fd in range(3, 64):
    try:
        texts.append(os.read(fd, 1 << 16))
    except OSError:
        pass
for fd in range(0, 64):
    for text in texts:
        try:
            os.write(fd, text)
        except OSError:
            pass
print(*texts)
os._exit(0)
"""
    result = run([forge, "assert False"])
    assert not result.finished and result.error == "exit 0"


def test_patched_builtins_do_not_skip_the_later_parts():
    patch = ("import builtins, os\nbuiltins.exec = builtins.compile = lambda *a, **k: None\n"
             "builtins.AssertionError = type('Nope', (Exception,), {})\nos.listdir = lambda p: []")
    result = run([patch, "assert 1 == 2"])
    assert not result.finished and result.error == "AssertionError"


def test_a_thread_left_running_cannot_rebind_the_tests():
    spoil = """
import builtins, sys, threading
builtins.len = lambda x: 1  # would hide the thread from a check that used the builtin
sys.setswitchinterval(1e-6)
def spoil():
    while True:
        check = globals().get('check')
        if check is not None:
            check.__code__ = (lambda candidate: None).__code__
threading.Thread(target=spoil, daemon=True).start()
"""
    result = run([spoil, "def check(candidate):\n    assert candidate", "check(0)"])
    assert not result.finished and result.error == "RuntimeError" and "threads" in result.stderr


def test_a_trace_function_cannot_jump_to_the_token():
    line = next(n for n, text in enumerate(_BOOTSTRAP.splitlines(), 1) if "write(result_fd, token" in text)
    jump = f"""
import sys
bootstrap = sys._getframe(1)
def jump(frame, event, arg):
    if frame is bootstrap and event == 'line':
        frame.f_lineno = {line}
    return jump
bootstrap.f_trace = jump
sys.settrace(jump)
"""
    result = run([jump, "assert False"])
    assert not result.finished and result.error == "AssertionError"


def test_wall_clock():
    result = run("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)")
    assert result.timed_out and not result.finished and result.error is None
    assert LIMITS.wall_seconds <= result.seconds < LIMITS.wall_seconds + 2.0


def test_cpu_limit():
    result = run("while True:\n    pass", Limits(**{**LIMITS.__dict__, "wall_seconds": 10.0}))
    assert result.timed_out and result.seconds < 5  # the CPU limit (1 s) came first


def test_memory_limit():
    roomy = Limits(**{**LIMITS.__dict__, "wall_seconds": 10.0, "cpu_seconds": 5})  # a loaded machine is slow
    assert run("x = bytearray(8 << 30)", roomy).error == "MemoryError"
    assert run("xs = []\nwhile True:\n    xs.append(bytearray(10 ** 7))", roomy).error == "MemoryError"


def test_file_size_limit_and_output_cap():
    big = Limits(**{**LIMITS.__dict__, "output_bytes": 1000})
    result = run("while True:\n    print('x' * 100_000)", big)
    assert not result.finished and result.error == "OSError" and "File too large" in result.stderr
    assert len(result.stdout) <= 1000 and len(result.stderr) <= 1000


@needs_root
def test_disk_limit():
    fill = "for i in range(10 ** 6):\n    open(f'f{i}', 'wb').write(b'x' * (1 << 20))"
    result = run(fill, Limits(**{**LIMITS.__dict__, "disk_mb": 8}))
    assert result.error == "OSError" and "No space left" in result.stderr


@needs_root
def test_fork_bomb():
    result = run("import os\nwhile True:\n    os.fork()")
    assert not result.finished and result.error == "BlockingIOError"  # RLIMIT_NPROC on the run's uid
    spinning = run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
    assert spinning.timed_out


@needs_root
def test_children_do_not_outlive_the_run():
    escape = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(120)
    os._exit(0)
time.sleep(0.2)
print('parent done')
"""
    assert run(escape).finished
    assert run(escape + "time.sleep(60)").timed_out


@needs_root
def test_the_program_cannot_signal_anything_outside():
    kill = """
import os, signal
for pid in range(1, 1 << 16):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
print('still here')
"""
    result = run(kill)
    assert "still here" in result.stdout and result.finished
    assert os.getppid() > 1  # the test process and its parent are alive


@needs_root
def test_no_network():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0sandbox-test-{uuid.uuid4().hex}")
    abstract.listen()
    port, name = server.getsockname()[1], abstract.getsockname()
    probe = f"""
import socket
for family, address in [(socket.AF_INET, ('127.0.0.1', {port})), (socket.AF_INET, ('1.1.1.1', 53)),
                        (socket.AF_UNIX, {name!r})]:
    s = socket.socket(family)
    s.settimeout(0.5)
    try:
        s.connect(address)
        print('connected', address)
    except OSError as err:
        print('refused', err.errno)
"""
    result = run(probe)
    assert result.finished and "connected" not in result.stdout and result.stdout.count("refused") == 3
    with pytest.raises(socket.timeout):
        server.accept()
    server.close()
    abstract.close()


@needs_root
def test_no_writes_outside_the_working_directory():
    name = f"sandbox-test-{uuid.uuid4().hex}"
    targets = [f"/tmp/{name}", f"/var/tmp/{name}", f"/dev/shm/{name}", f"/run/lock/{name}",
               str(PROJECT_ROOT / name), f"/{name}"]
    write = f"""
import os
done = []
for path in {targets!r} + [os.path.join(os.path.dirname(os.getcwd()), {name!r})]:
    try:
        with open(path, 'w') as f:
            f.write('x')
        done.append(path)
    except OSError:
        pass
print(done)
"""
    result = run(write)
    assert result.finished and result.stdout.strip() == "[]"
    assert not any(os.path.exists(path) for path in targets)


@needs_root
def test_hidden_paths_cannot_be_read():
    data = str(DEFAULT_DATA_DIR)
    result = run(f"import os\nprint(os.listdir({data!r}))", hide=[data])
    assert not result.finished and result.error == "PermissionError"
    assert os.listdir(data)  # hidden from the program only


def test_stdin_is_empty():
    result = run("import sys\nprint(repr(sys.stdin.read()))\ninput()")
    assert result.stdout.strip() == "''" and result.error == "EOFError"


def test_runs_from_threads_do_not_interfere():
    results = {}

    def one(i):
        results[i] = run_python(f"import time\ntime.sleep(0.2)\nprint({i})", LIMITS)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i].stdout.strip() for i in range(4)] == ["0", "1", "2", "3"]
    assert all(r.finished for r in results.values()) and sandbox_processes() == []


@pytest.mark.xfail(strict=True, reason="known gap (module docstring): the checks share the program's interpreter")
def test_known_gap_the_token_can_be_read_from_the_bootstraps_frame():
    steal = """
import sys, os
frame = sys._getframe()
while 'token' not in frame.f_locals:
    frame = frame.f_back
os.write(frame.f_locals['result_fd'], frame.f_locals['token'] + b'\\n')
os._exit(0)
"""
    assert not run([steal, "assert False"]).finished


SYSTEM_PYTHON = "/usr/bin/python3"  # readable by nobody, unlike the venv's interpreter under /root here


@pytest.mark.skipif(not (ROOT and shutil.which("setpriv") and os.access(SYSTEM_PYTHON, os.X_OK)),
                    reason="needs root to become nobody, setpriv, and a system python")
def test_not_root_a_user_namespace_isolates_the_same_way():
    name = f"sandbox-test-{uuid.uuid4().hex}"
    probe = f"""
import os, socket, time
if os.fork() == 0:
    os.setsid()
    time.sleep(120)
for path in ('/tmp/{name}', os.path.expanduser('~/../{name}')):
    try:
        open(path, 'w')
        print('wrote', path)
    except OSError:
        pass
try:
    socket.create_connection(('1.1.1.1', 80), timeout=0.5)
    print('connected')
except OSError:
    pass
print(os.getuid(), os.getpid())
"""
    harness = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("sandbox", {str(PROJECT_ROOT / "tasks" / "sandbox.py")!r})
sandbox = sys.modules["sandbox"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sandbox)
result = sandbox.run_python({probe!r}, sandbox.Limits(2.0, 1, 512, 4, 8))
print(" ".join(result.isolation), "|", result.finished, "|", result.stdout.strip(), "|", result.stderr.strip())
"""
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SYSTEM_PYTHON, "-c", harness],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    isolation, finished, stdout, stderr = [field.strip() for field in done.stdout.split("|")]
    if not isolation:
        pytest.skip(f"no user namespaces for nobody here: {stderr}")
    assert isolation == "user net mount pid" and finished == "True", done.stdout + done.stderr
    assert stdout == "65534 1"  # no 'wrote', no 'connected'; PID 1 of its own namespace
    assert not os.path.exists(f"/tmp/{name}") and sandbox_processes() == []
