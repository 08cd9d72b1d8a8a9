"""tasks.sandbox: each row of the module's isolation table, checked by running hostile programs.

Leftover processes are looked for among this test process's descendants only (sandbox_probe.py:
other scorers may be running on the machine); leftover files by the exact paths the programs
tried to write. Rows that need root skip elsewhere. The program's process and the test process
are checked apart: the program reaches the tests only through ``program.<name>(...)``.
"""

import gzip
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
from sandbox_probe import sandbox_processes

from common import DEFAULT_DATA_DIR, PROJECT_ROOT
from tasks.sandbox import RUN_ENV, UID_BASE, UID_SPAN, Limits, SandboxResult, run_python

LIMITS = Limits(wall_seconds=1.0, cpu_seconds=1, memory_mb=512, file_size_mb=4, processes=8)
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="namespaces and the uid drop need root")
HUMANEVAL = DEFAULT_DATA_DIR / "humaneval" / "HumanEval.jsonl.gz"


def test_the_leftover_scan_sees_a_stray_of_ours_and_no_one_elses():
    stray = subprocess.Popen(["sleep", "30"], env={RUN_ENV: "stray"})
    try:
        # Popen returns once exec has begun (close-on-exec fired); the new environment is in
        # /proc a moment later, so a loaded machine needs a few looks
        deadline = time.monotonic() + 5
        while not any(line.startswith(f"{stray.pid} ") for line in sandbox_processes()):
            assert time.monotonic() < deadline, f"the scan never saw the stray process {stray.pid}"
            time.sleep(0.05)
        # a second test process (another checkout's tests, a sweep's scorer) sees the stray as not its own
        other = subprocess.run([sys.executable, "-c", "from sandbox_probe import sandbox_processes; "
                                "print(sandbox_processes())"], capture_output=True, text=True, timeout=60,
                               cwd=PROJECT_ROOT,
                               env={**os.environ, "PYTHONPATH": f"{PROJECT_ROOT}/tests/tasks:{PROJECT_ROOT}"})
        assert other.stdout.strip() == "[]", other.stderr
    finally:
        stray.kill()
        stray.wait()
    assert sandbox_processes() == []


@pytest.fixture(autouse=True)
def own_temporary_directory(tmp_path, monkeypatch):
    """Each test's runs make their directories in a directory of its own: leftovers are ours."""
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(runs))
    yield
    assert os.listdir(runs) == []


def run(program: str, limits: Limits = LIMITS, **kwargs) -> SandboxResult:
    result = run_python(program, limits, **kwargs)
    assert sandbox_processes() == []
    assert result.seconds < limits.wall_seconds + 1.5
    return result


@needs_root
def test_isolation_as_measured_here():
    ids = "import os\ndef ids():\n    return os.getuid(), os.getgid(), os.getgroups(), os.getpid()\n"
    result = run(ids, tests=[ids + "print(*program.ids())\nprint(*ids())"])
    assert result.finished and result.isolation == ("uid", "net", "mount", "pid")
    program, tests = [line.split(maxsplit=2) for line in result.stdout.splitlines()]
    assert UID_BASE <= int(tests[0]) < UID_BASE + UID_SPAN and int(tests[0]) % 2 == 0
    assert int(program[0]) == int(tests[0]) + 1  # a uid each: the program cannot signal or trace the tests
    assert program[1] == program[0] and tests[1] == tests[0] and program[2].startswith("[]")
    assert tests[2].split()[-1] == "1" and program[2].split()[-1] != "1"  # the test process is PID 1


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


def test_the_tests_call_the_program():
    program = "def add(a, b):\n    return a + b\ndef grow(items):\n    items.append(0)\n"
    tests = ["assert program.add(2, 3) == 5 and program.add('a', 'b') == 'ab'",
             "items = [1]\nprogram.grow(items)\nassert items == [1, 0]",
             "try:\n    program.add(1, 'x')\nexcept TypeError:\n    pass\nelse:\n    raise AssertionError"]
    assert run(program, tests=tests).finished
    failed = run(program, tests=["assert program.add(1, 1) == 3, 'no'"])
    assert not failed.finished and failed.error == "AssertionError"
    assert '"<test 0>", line 1' in failed.stderr and "AssertionError: no" in failed.stderr
    assert run(program + "undefined_name", tests=["pass"]).error == "NameError"  # the program must run to its end
    swallow = "try:\n    program.{}\nexcept BaseException:\n    pass"  # a test that catches everything
    assert run(program + "undefined_name", tests=[swallow.format("add(1, 2)")]).error == "NameError"
    assert run("import os\ndef leave():\n    os._exit(3)", tests=[swallow.format("leave()")]).error == "exit 3"
    assert run("x = '''", tests=["pass"]).error == "SyntaxError"


@pytest.mark.parametrize("exit_code", [
    "import sys; sys.exit(0)", "raise SystemExit", "import os; os._exit(0)", "exit()",
    "import ctypes; ctypes.string_at(0)",  # SIGSEGV
    "import atexit, os; atexit.register(os._exit, 0); raise ValueError",
])
def test_leaving_before_the_end_is_not_finishing(exit_code):
    result = run(exit_code + "\ndef f():\n    return 1", tests=["assert program.f() == 1\nprint('tests ran')"])
    assert not result.finished and "tests ran" not in result.stdout


def test_the_program_can_only_answer_not_write_the_verdict():
    forge = """
import os, secrets
texts = [b'passed\\n', secrets.token_hex(16).encode() + b'\\n', b'2\\nN\\n', open('/proc/self/cmdline', 'rb').read(),
         open('/proc/self/environ', 'rb').read()]
for fd in range(3, 64):
    try:
        os.set_blocking(fd, False)
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
    result = run(forge, tests=["pass"])
    assert not result.finished and result.error == "BadMessage"


def test_the_programs_exceptions_and_exits_are_reported_by_name():
    program = """
import os, signal
class Odd(ValueError):
    pass
Evil = type('\\x1b[31mpassed\\nX', (Exception,), {})
def raise_odd():
    raise Odd('\\x1b[32mpassed\\n')
def raise_evil():
    raise Evil('passed')
def leave(code):
    os._exit(code)
def segfault():
    os.kill(os.getpid(), signal.SIGSEGV)
"""
    reasons = {name: run(program, tests=[f"program.{name}({args})"]).error for name, args in
               [("raise_odd", ""), ("raise_evil", ""), ("leave", "3"), ("segfault", "")]}
    assert reasons == {"raise_odd": "ValueError", "raise_evil": "Exception", "leave": "exit 3", "segfault": "SIGSEGV"}
    at_the_top = run("raise type('passed\\x1b[0m', (KeyError,), {})()", tests=["pass"])
    assert at_the_top.error == "KeyError"


def test_patched_builtins_do_not_reach_the_tests():
    patch = ("import builtins, math\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n"
             "math.fabs = lambda x: 0.0\nbuiltins.abs = lambda x: 0\ndef f():\n    return 5.0\n")
    result = run(patch, tests=["import math\nassert math.fabs(program.f() - 4.0) < 0.5"])
    assert not result.finished and result.error == "AssertionError"


HOOKS = {
    "thread": "import threading\nthreading.Thread(target=lambda: [rebind() for _ in iter(int, 1)], daemon=True)"
              ".start()",
    "settrace": "sys.settrace(lambda *a: rebind())",
    "setprofile": "sys.setprofile(lambda *a: rebind())",
    "audithook": "sys.addaudithook(lambda *a: rebind())",
}


@pytest.mark.parametrize("hook", list(HOOKS))
def test_hooks_and_threads_in_the_program_do_not_reach_the_tests(hook):
    spoil = f"""
import gc, sys
def rebind():
    for frame in sys._current_frames().values():
        while frame is not None:
            if 'check' in frame.f_globals:
                frame.f_globals['check'].__code__ = (lambda candidate: None).__code__
            frame = frame.f_back
    for obj in gc.get_objects():
        if getattr(obj, '__name__', None) == 'check':
            obj.__code__ = (lambda candidate: None).__code__
{HOOKS[hook]}
def f():
    return 1
"""
    result = run(spoil, tests=["def check(candidate):\n    assert candidate() == 2", "check(program.f)"])
    assert not result.finished and result.error == "AssertionError"


def test_the_token_is_nowhere_in_the_programs_process():
    steal = """
import os, re, sys
frame, found = sys._getframe(), set()
while frame is not None:  # the bootstrap's frames, then the memory of the whole process
    found |= {value for value in frame.f_locals.values() if isinstance(value, (str, bytes))}
    frame = frame.f_back
with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:
    for line in maps:
        start, end = (int(x, 16) for x in line.split()[0].split('-'))
        if line.split()[1].startswith('r') and end - start < 1 << 28:
            try:
                mem.seek(start)
                found |= set(re.findall(rb'[0-9a-f]{32}', mem.read(end - start)))
            except OSError:
                pass
for fd in range(3, 64):
    for text in found:
        try:
            os.write(fd, (text if isinstance(text, bytes) else text.encode('utf-8', 'replace')) + b'\\n')
        except OSError:
            pass
os._exit(0)
"""
    result = run(steal, Limits(**{**LIMITS.__dict__, "wall_seconds": 5.0, "cpu_seconds": 4}), tests=["assert False"])
    assert not result.finished and not result.timed_out


@needs_root
def test_the_program_cannot_reach_the_test_process():
    probe = """
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
def ptrace():
    if libc.ptrace(16, 1, 0, 0) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), 'ptrace')
attempts = {
    'kill': lambda: os.kill(1, signal.SIGKILL), 'stop': lambda: os.kill(1, signal.SIGSTOP),
    'environ': lambda: open('/proc/1/environ', 'rb').read(), 'mem': lambda: open('/proc/1/mem', 'rb').read(1),
    'fds': lambda: os.listdir('/proc/1/fd'), 'root': lambda: os.listdir('/proc/1/root'),
    'ptrace': ptrace, 'output': lambda: os.pread(1, 100, 0) + os.pread(2, 100, 0),
}
def reached():
    done = []
    for name, attempt in attempts.items():
        try:
            attempt()
            done.append(name)
        except OSError:
            pass
    return done
"""
    result = run(probe, tests=["print('what the tests print')\nassert program.reached() == []"])
    assert result.finished, result.stderr


def test_wall_clock():
    result = run("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)")
    assert result.timed_out and not result.finished and result.error is None
    assert LIMITS.wall_seconds <= result.seconds < LIMITS.wall_seconds + 2.0
    in_a_call = run("import time\ndef f():\n    time.sleep(60)", tests=["program.f()"])
    assert in_a_call.timed_out and not in_a_call.finished


def test_cpu_limit():
    roomy = Limits(**{**LIMITS.__dict__, "wall_seconds": 10.0})
    result = run("while True:\n    pass", roomy)
    assert result.timed_out and result.seconds < 5  # the CPU limit (1 s) came first
    in_a_call = run("def f():\n    while True:\n        pass", roomy, tests=["program.f()"])
    assert in_a_call.timed_out and in_a_call.seconds < 5


def test_memory_limit():
    roomy = Limits(**{**LIMITS.__dict__, "wall_seconds": 10.0, "cpu_seconds": 5})  # a loaded machine is slow
    assert run("x = bytearray(8 << 30)", roomy, tests=["pass"]).error == "MemoryError"
    creep = "def f():\n    xs = []\n    while True:\n        xs.append(bytearray(10 ** 7))"
    assert run(creep, roomy, tests=["program.f()"]).error == "MemoryError"


def test_file_size_limit_and_output_cap():
    big = Limits(**{**LIMITS.__dict__, "output_bytes": 1000})
    result = run("while True:\n    print('x' * 100_000)", big, tests=["pass"])
    assert not result.finished and result.error == "OSError" and "File too large" in result.stderr
    assert len(result.stdout) <= 1000 and len(result.stderr) <= 1000


@needs_root
def test_disk_limit():
    fill = "for i in range(10 ** 6):\n    open(f'f{i}', 'wb').write(b'x' * (1 << 20))"
    result = run(fill, Limits(**{**LIMITS.__dict__, "disk_mb": 8}), tests=["pass"])
    assert result.error == "OSError" and "No space left" in result.stderr


@needs_root
def test_fork_bomb():
    result = run("import os\nwhile True:\n    os.fork()", tests=["pass"])
    assert not result.finished and result.error == "BlockingIOError"  # RLIMIT_NPROC on the program's uid
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
    assert run(escape, tests=["pass"]).finished
    assert run(escape + "time.sleep(60)").timed_out


@needs_root
def test_the_program_cannot_signal_anything_outside():
    kill = """
import os, signal
for pid in set(range(1, 1 << 16)) - {os.getpid()}:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
try:
    os.kill(-1, signal.SIGKILL)  # every process it may signal but itself
except OSError:
    pass
print('still here')
"""
    result = run(kill, tests=["print('tests here')"])
    assert "still here" in result.stdout and "tests here" in result.stdout and result.finished
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
               str(PROJECT_ROOT / name), f"/{name}", f"{sys.prefix}/{name}"]
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


@pytest.fixture
def answer_copies():
    """World-readable copies of the benchmark file where a machine might have one: /tmp, /dev/shm."""
    dirs = [tempfile.mkdtemp(prefix="sandbox-test-copy-", dir=d) for d in ("/tmp", "/dev/shm")]
    copies = []
    for d in dirs:
        os.chmod(d, 0o755)
        copies.append(shutil.copy(HUMANEVAL, d))
        os.chmod(copies[-1], 0o644)
    yield copies
    for d in dirs:
        shutil.rmtree(d)


@needs_root
def test_the_program_sees_only_its_view(answer_copies):
    look = f"""
import os, sys, numpy
unreadable = {[*answer_copies, str(HUMANEVAL), str(PROJECT_ROOT / "README.md"), "/etc/passwd", "/etc/hostname"]!r}
seen = [path for path in unreadable if os.path.exists(path)]
print(seen, os.path.isdir(sys.prefix), os.path.isdir(os.path.dirname(os.__file__)), os.path.exists('/proc/self/status'))
with open('/dev/null', 'w') as sink:
    sink.write('x')
"""
    result = run(look, hide=[DEFAULT_DATA_DIR])
    assert result.finished, result.stderr
    assert result.stdout.split() == ["[]", "True", "True", "True"]
    with gzip.open(answer_copies[0]) as f:
        assert f.readline()  # readable by anyone but the program


@needs_root
def test_hidden_paths_are_hidden_in_any_form(tmp_path):
    link = tmp_path / "data-link"
    link.symlink_to(DEFAULT_DATA_DIR)
    data = str(DEFAULT_DATA_DIR.resolve())
    forms = [os.path.relpath(data), str(link), data + "/", f"{data}/../{os.path.basename(data)}", DEFAULT_DATA_DIR]
    for form in forms:
        result = run("", hide=[form], tests=[f"import os\nos.listdir({data!r})"])  # the test process reads all else
        assert not result.finished and result.error == "PermissionError", form
    assert os.listdir(data)  # hidden from the sandbox only


def test_stdin_is_empty():
    result = run("import sys\nprint(repr(sys.stdin.read()))\ninput()", tests=["pass"])
    assert result.stdout.strip() == "''" and result.error == "EOFError"


def test_runs_from_threads_do_not_interfere():
    results = {}

    def one(i):
        results[i] = run_python(f"import time\ntime.sleep(0.2)\ndef f():\n    return {i}", LIMITS,
                                tests=[f"assert program.f() == {i}\nprint({i})"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i].stdout.strip() for i in range(4)] == ["0", "1", "2", "3"]
    assert all(r.finished for r in results.values()) and sandbox_processes() == []


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
for path in ('/tmp/{name}', os.path.expanduser('~/../{name}'), {str(HUMANEVAL)!r}, '/etc/passwd'):
    try:
        open(path, 'a' if 'sandbox' in path else 'r')
        print('reached', path)
    except OSError:
        pass
try:
    socket.create_connection(('1.1.1.1', 80), timeout=0.5)
    print('connected')
except OSError:
    pass
def ids():
    return os.getuid(), os.getpid()
"""
    tests = ["import os\nuid, pid = program.ids()\nassert uid == os.getuid() == 65534 and pid != 1 == os.getpid()"]
    harness = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("sandbox", {str(PROJECT_ROOT / "tasks" / "sandbox.py")!r})
sandbox = sys.modules["sandbox"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sandbox)
result = sandbox.run_python({probe!r}, sandbox.Limits(2.0, 1, 512, 4, 8), tests={tests!r})
print(" ".join(result.isolation), "|", result.finished, "|", result.stdout.strip(), "|", result.stderr.strip())
"""
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SYSTEM_PYTHON, "-c", harness],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    isolation, finished, stdout, stderr = [field.strip() for field in done.stdout.split("|")]
    if not isolation:
        pytest.skip(f"no user namespaces for nobody here: {stderr}")
    assert isolation == "user net mount pid" and finished == "True", done.stdout + done.stderr
    assert stdout == ""  # nothing reached, not connected
    assert not os.path.exists(f"/tmp/{name}") and sandbox_processes() == []
