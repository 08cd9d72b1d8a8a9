"""HumanEval under attack: hostile completions, each of which must score 0 within its limits and
leave nothing behind (no process of its run, no file it wrote, no directory of its run).

The task here names its data directory by a relative path (``../shared/data``, as on the
command line), the form that once switched answer hiding off. A copy of the benchmark file lies
in /tmp for the whole module, as a second copy of a dataset may on any machine. The classes:
resources and exits; the filesystem and the answers; the test process and the token; objects
and hooks in the program's interpreter that would fool tests run beside them; the channel.
"""

import glob
import os
import shutil
import tempfile
import textwrap
import time
import uuid

import pytest
from sandbox_probe import sandbox_processes

from common import DEFAULT_DATA_DIR, PROJECT_ROOT
from tasks.humaneval import HumanEvalConfig, HumanEvalTask
from tasks.scoring import Scorer

# tight limits keep the battery fast: 1 s wall, 1 s CPU, 256 MB, 1 MB files, 8 processes
HOSTILE = HumanEvalTask(HumanEvalConfig(data_dir=os.path.relpath(DEFAULT_DATA_DIR), wall_seconds=1.0, cpu_seconds=1,
                                        memory_mb=256, file_size_mb=1, processes=8))
BY_UID = {p.uid: p for p in HOSTILE.load("humaneval")}
ROOT = os.geteuid() == 0
DATA_FILE = str(HOSTILE.data_file("humaneval/HumanEval.jsonl.gz").resolve())
COPY_DIR = f"/tmp/sandbox-test-copy-{uuid.uuid4().hex}"
COPY = f"{COPY_DIR}/HumanEval.jsonl.gz"
MARK = f"sandbox-test-{uuid.uuid4().hex}"
WRITE_TARGETS = [f"/tmp/{MARK}", f"/var/tmp/{MARK}", f"/dev/shm/{MARK}", f"/run/lock/{MARK}",
                 str(PROJECT_ROOT / MARK), f"/{MARK}", os.path.expanduser(f"~/{MARK}")]


def body(code: str) -> str:
    """A function body: the code indented under the prompt's docstring."""
    return textwrap.indent(textwrap.dedent(code).strip("\n") + "\n", "    ")


def fenced(code: str) -> str:
    """A reply holding a whole program in a fenced block."""
    return f"```python\nfrom typing import List\n{textwrap.dedent(code).strip()}\n```"


def canonical_from(path: str) -> str:
    """A body of has_close_elements that reads the benchmark file at ``path`` and runs the answer."""
    return body(f"""
        import gzip, json
        row = json.loads(gzip.open({path!r}).readline())
        namespace = {{}}
        exec(row['prompt'] + row['canonical_solution'], namespace)
        return namespace['has_close_elements'](numbers, threshold)
        """)


RESOURCES = {  # name: (problem, completion, the reasons it may get)
    "infinite_loop": ("HumanEval/0", body("while True:\n    pass"), {"timeout"}),
    "sleep_past_wall": ("HumanEval/0", body("import time\ntime.sleep(60)"), {"timeout"}),
    "ignore_sigterm": ("HumanEval/0", body("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(0.01)
        """), {"timeout"}),
    "fork_bomb": ("HumanEval/0", body("import os\nwhile True:\n    os.fork()"), {"error: BlockingIOError", "timeout"}),
    "fork_bomb_spinning": ("HumanEval/0", body("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """), {"timeout"}),
    "memory_bomb": ("HumanEval/0", body("x = bytearray(1 << 34)"), {"error: MemoryError"}),
    "memory_creep": ("HumanEval/0", body("xs = []\nwhile True:\n    xs.append(bytearray(10 ** 7))"),
                     {"error: MemoryError"}),
    "huge_output": ("HumanEval/0", body("while True:\n    print('x' * 100000)"), {"error: OSError"}),
    "huge_file": ("HumanEval/0", body("""
        with open('big', 'wb') as f:
            while True:
                f.write(bytes(1 << 20))
        """), {"error: OSError"}),
    "deep_recursion": ("HumanEval/0", body("""
        import sys
        sys.setrecursionlimit(10 ** 8)
        def down(n):
            return down(n + 1) + 1
        return down(0)
        """), {"error: SIGSEGV", "error: MemoryError", "timeout"}),
    "sys_exit_0": ("HumanEval/0", body("import sys\nsys.exit(0)"), {"error: SystemExit"}),
    "os_exit_0": ("HumanEval/0", body("import os\nos._exit(0)"), {"error: exit 0"}),
    "exit_before_tests": ("HumanEval/0", fenced("import os\nos._exit(0)"), {"error: exit 0"}),
    "atexit_exit_0": ("HumanEval/0", body("""
        import atexit, os
        atexit.register(os._exit, 0)
        raise KeyboardInterrupt
        """), {"error: KeyboardInterrupt"}),
    "kill_everything": ("HumanEval/0", body("""
        import os, signal
        for pid in [-1] + list(range(1, 1 << 15)):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return True
        """), {"timeout"}),  # it kills itself: SIGKILL reads as the CPU limit
    "background_child": ("HumanEval/0", body("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(120)
            os._exit(0)
        return True
        """), {"failed"}),
    "write_outside": ("HumanEval/0", body(f"""
        import os
        for path in {WRITE_TARGETS!r} + [os.path.join(os.path.dirname(os.getcwd()), {MARK!r})]:
            try:
                open(path, 'w').write('x')
            except OSError:
                pass
        return True
        """), {"failed"}),
    "open_socket": ("HumanEval/0", body("""
        import socket
        socket.create_connection(('1.1.1.1', 80), timeout=0.5)
        return True
        """), {"error: OSError"}),
    "read_stdin": ("HumanEval/0", body("import sys\nreturn bool(sys.stdin.read()) or input()"), {"error: EOFError"}),
}

ANSWERS = {  # the benchmark file, wherever it is and however it is named
    "read_the_answers": ("HumanEval/0", canonical_from(DATA_FILE), {"error: FileNotFoundError"}),
    "read_a_copy_of_the_answers": ("HumanEval/0", canonical_from(COPY), {"error: FileNotFoundError"}),
    "answers_through_a_symlink": ("HumanEval/0", body(f"""
        import os
        os.symlink({os.path.dirname(DATA_FILE)!r}, 'data')
        return open('data/HumanEval.jsonl.gz', 'rb').read(1) == b'x'
        """), {"error: FileNotFoundError"}),
    "answers_through_proc_1_root": ("HumanEval/0", canonical_from(f"/proc/1/root{DATA_FILE}"),
                                    {"error: PermissionError"}),
    "search_the_disk_for_answers": ("HumanEval/0", body("""
        import gzip, json, os
        for top, dirs, files in os.walk('/'):
            dirs[:] = [d for d in dirs if (top, d) not in {('/', 'proc'), ('/', 'sys'), ('/', 'usr')}]
            if 'HumanEval.jsonl.gz' in files:
                row = json.loads(gzip.open(os.path.join(top, 'HumanEval.jsonl.gz')).readline())
                namespace = {}
                exec(row['prompt'] + row['canonical_solution'], namespace)
                return namespace['has_close_elements'](numbers, threshold)
        return True
        """), {"failed", "timeout"}),
    "import_the_project": ("HumanEval/0", body(f"""
        import sys
        sys.path.insert(0, {str(PROJECT_ROOT)!r})
        from tasks.humaneval import HumanEvalConfig, HumanEvalTask
        problem = HumanEvalTask(HumanEvalConfig(data_dir={str(DEFAULT_DATA_DIR.resolve())!r})).load('humaneval')[0]
        namespace = {{}}
        exec(problem.question + problem.answer, namespace)
        return namespace['has_close_elements'](numbers, threshold)
        """), {"error: ModuleNotFoundError"}),
    "unshare_and_unmount": ("HumanEval/0", body(f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.unshare(0x10000000 | 0x00020000)  # CLONE_NEWUSER | CLONE_NEWNS: a user namespace of its own
        for _ in range(8):
            libc.umount2(b'/', 2)  # MNT_DETACH
        libc.chroot(b'..')
        libc.chdir(b'/')
        return open({DATA_FILE!r}, 'rb').read(1) == b'x'
        """), {"error: FileNotFoundError"}),
}

TEST_PROCESS = {  # the process that asserts and holds the token
    "kill_parent": ("HumanEval/0", body("""
        import os, signal
        os.kill(os.getppid(), signal.SIGKILL)
        return True
        """), {"error: PermissionError"}),
    "stop_the_tests": ("HumanEval/0", body("import os, signal\nos.kill(1, signal.SIGSTOP)\nreturn True"),
                       {"error: PermissionError"}),
    "ptrace_the_tests": ("HumanEval/0", body("""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.ptrace(16, 1, 0, 0) == 0  # PTRACE_ATTACH
        return True
        """), {"failed"}),
    "read_the_tests_memory": ("HumanEval/0", body("return open('/proc/1/mem', 'rb') and True"),
                              {"error: PermissionError"}),
    "read_the_tests_descriptors": ("HumanEval/0", body("import os\nreturn bool(os.listdir('/proc/1/fd'))"),
                                   {"error: PermissionError"}),
    "fake_marker": ("HumanEval/0", body("""
        import os, secrets
        for fd in range(64):
            for text in (b'passed\\n', secrets.token_hex(16).encode(), open('/proc/self/cmdline', 'rb').read()):
                try:
                    os.write(fd, text)
                except OSError:
                    pass
        os._exit(0)
        """), {"error: exit 0", "error: BadMessage"}),
    "steal_token_frame_walk": ("HumanEval/0", body("""
        import sys, os
        frame = sys._getframe()
        while 'token' not in frame.f_locals:
            frame = frame.f_back
        os.write(frame.f_locals['result_fd'], frame.f_locals['token'] + b'\\n')
        os._exit(0)
        """), {"error: AttributeError"}),
    "steal_token_current_frames_and_gc": ("HumanEval/0", body("""
        import gc, os, sys, types
        frames = list(sys._current_frames().values()) + [o for o in gc.get_objects() if isinstance(o, types.FrameType)]
        for frame in frames:
            while frame is not None:
                for name, value in frame.f_locals.items():
                    if 'token' in name or 'secret' in name:
                        for fd in range(3, 64):
                            try:
                                os.write(fd, bytes(value) + b'\\n')
                            except (OSError, TypeError):
                                pass
                frame = frame.f_back
        os._exit(0)
        """), {"error: exit 0", "error: BadMessage"}),  # it finds the secret file's (closed) descriptor number
    "steal_token_from_memory": ("HumanEval/0", body("""
        import os, re
        found = set()
        with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:
            for line in maps:
                start, end = (int(x, 16) for x in line.split()[0].split('-'))
                if line.split()[1].startswith('r') and end - start < 1 << 26:
                    try:
                        mem.seek(start)
                        found |= set(re.findall(rb'[0-9a-f]{32}', mem.read(end - start)))
                    except OSError:
                        pass
        for fd in range(3, 64):
            try:
                os.set_blocking(fd, False)
                os.write(fd, b'\\n'.join(found) + b'\\n')
            except OSError:
                pass
        os._exit(0)
        """), {"error: exit 0", "error: BadMessage", "timeout"}),
}

ALWAYS_TRUE = "import sys\ndef has_close_elements(numbers, threshold):\n    return True\n"
NOOP = "def noop(candidate):\n    pass\n"
SPOIL = ("busy = []\ndef spoil(*args):\n    check = sys.modules['__main__'].__dict__.get('check')\n"
         "    if check is not None and not busy:  # setting __code__ is an audit event too\n"
         "        busy.append(1)\n        check.__code__ = noop.__code__\n    return spoil\n")

INTERPRETER = {  # what fooled tests that ran in the program's interpreter
    "setprofile_rebinds_check": ("HumanEval/0", fenced(ALWAYS_TRUE + NOOP + SPOIL + "sys.setprofile(spoil)"),
                                 {"failed"}),
    "audithook_rebinds_check": ("HumanEval/0", fenced(ALWAYS_TRUE + NOOP + SPOIL + "sys.addaudithook(spoil)"),
                                {"failed"}),
    "settrace_rebinds_check": ("HumanEval/0", fenced(ALWAYS_TRUE + NOOP + SPOIL + "sys.settrace(spoil)"), {"failed"}),
    "thread_rebinds_check": ("HumanEval/0", fenced("""
        import sys, threading
        sys.setswitchinterval(1e-6)
        def spoil():
            while True:
                check = globals().get('check')
                if check:
                    check.__code__ = (lambda candidate: None).__code__
        threading.Thread(target=spoil, daemon=True).start()
        def has_close_elements(numbers, threshold):
            return True
        """), {"failed"}),
    "override_check": ("HumanEval/0", fenced("""
        def has_close_elements(numbers, threshold):
            return True
        def check(candidate):
            pass
        """), {"failed"}),
    "swallow_tests": ("HumanEval/0", body("return True") + "check = lambda candidate: None\n_ = '''\n",
                      {"error: SyntaxError"}),
    "patch_assertion_error": ("HumanEval/0", body("""
        import builtins
        builtins.AssertionError = type('Nope', (Exception,), {})
        return True
        """), {"failed"}),
    "patch_builtins_before_tests": ("HumanEval/0", fenced("""
        import builtins
        builtins.exec = lambda *args, **kwargs: None
        def has_close_elements(numbers, threshold):
            return True
        """), {"failed"}),
    "false_is_true": ("HumanEval/0", fenced("""
        import ctypes
        ctypes.c_ssize_t.from_address(id(False) + 16).value = 1  # CPython 3.11: False now holds the digit 1
        ctypes.c_uint32.from_address(id(False) + 24).value = 1
        def has_close_elements(numbers, threshold):
            return True
        """), {"failed"}),
    "expected_from_the_callers_bytecode": ("HumanEval/0", body("""
        import dis, sys
        caller = sys._getframe(1)
        for instruction in dis.get_instructions(caller.f_code):
            if instruction.offset > caller.f_lasti and instruction.opname == 'LOAD_CONST':
                return instruction.argval
        """), {"failed"}),
    "patch_math_fabs": ("HumanEval/32", body("""
        import math
        math.fabs = lambda x: 0.0
        return 0.0
        """), {"failed"}),
    "redefine_the_helper_poly": ("HumanEval/32", fenced("""
        def poly(xs, x):
            return 0.0
        def find_zero(xs):
            return 0.0
        """), {"failed"}),
    "redefine_the_helper_encode_cyclic": ("HumanEval/38", fenced("""
        def encode_cyclic(s):
            return s
        def decode_cyclic(s):
            return s
        """), {"failed"}),
    "object_equal_to_everything": ("HumanEval/0", body("""
        class Equal:
            def __eq__(self, other):
                return True
        return Equal()
        """), {"error: TypeError"}),
    "truthy_non_bool_from_eq": ("HumanEval/0", body("""
        class Yes:
            def __eq__(self, other):
                return 'yes'
        return Yes()
        """), {"error: TypeError"}),
    "int_subclass_equal_to_everything": ("HumanEval/0", body("""
        class Liar(int):
            __hash__ = int.__hash__
            def __eq__(self, other):
                return True
        return Liar(0)
        """), {"failed"}),
    "float_subclass_lying_sub_and_eq": ("HumanEval/2", body("""
        class Liar(float):
            __hash__ = float.__hash__
            def __eq__(self, other):
                return True
            def __sub__(self, other):
                return 0.0
        return Liar(0.25)
        """), {"failed"}),
    "lying_sub_and_abs": ("HumanEval/4", body("""
        class Liar:
            def __sub__(self, other):
                return self
            def __abs__(self):
                return 0.0
        return Liar()
        """), {"error: TypeError"}),
    "lying_lt": ("HumanEval/4", body("""
        class Liar:
            def __sub__(self, other):
                return self
            def __abs__(self):
                return self
            def __lt__(self, other):
                return True
        return Liar()
        """), {"error: TypeError"}),
    "str_subclass_equal_to_everything": ("HumanEval/27", body("""
        class Liar(str):
            __hash__ = str.__hash__
            def __eq__(self, other):
                return True
        return Liar('x')
        """), {"failed"}),
    "list_subclass_equal_to_everything": ("HumanEval/29", body("""
        class Liar(list):
            def __eq__(self, other):
                return True
        return Liar()
        """), {"failed"}),
    "tuple_subclass_equal_to_everything": ("HumanEval/8", body("""
        class Liar(tuple):
            def __eq__(self, other):
                return True
        return Liar((0, 0))
        """), {"failed"}),
    "dict_subclass_equal_to_everything": ("HumanEval/111", body("""
        class Liar(dict):
            def __eq__(self, other):
                return True
        return Liar()
        """), {"failed"}),
}

CHANNEL = {  # what the program may send back
    "garbage_on_the_channel": ("HumanEval/0", body("""
        import os
        for fd in range(3, 64):
            try:
                os.set_blocking(fd, False)
                os.write(fd, b'9\\nT\\x00\\xff garbage')
            except OSError:
                pass
        return True
        """), {"error: BadMessage"}),
    "forged_answers": ("HumanEval/0", body("""
        import os
        for call in range(1, 30):  # 'ok', the call, True, the arguments: the wire format by hand
            message = b't4:s2:oki%x;Tl2:NN' % call
            for fd in range(3, 64):
                try:
                    os.set_blocking(fd, False)
                    os.write(fd, b'%d\\n' % len(message) + message)
                except OSError:
                    pass
        return True
        """), {"failed"}),
    "close_the_channel": ("HumanEval/0", body("import os\nos.closerange(3, 64)\nreturn True"), {"error: exit 1"}),
    "huge_answer": ("HumanEval/0", body("return 'x' * (17 << 20)"), {"error: BadMessage"}),
    "deeply_nested_answer": ("HumanEval/0", body("""
        answer = []
        for _ in range(1000):
            answer = [answer]
        return answer
        """), {"error: ValueError"}),
    "cyclic_answer": ("HumanEval/0", body("answer = []\nanswer.append(answer)\nreturn answer"), {"error: ValueError"}),
    "generator_answer": ("HumanEval/0", body("return (x for x in [True])"), {"error: TypeError"}),
    "exception_named_passed": ("HumanEval/0", body("raise type('\\x1b[32mpassed\\n', (Exception,), {})('passed')"),
                               {"error: Exception"}),
    "system_exit_saying_passed": ("HumanEval/0", body("raise SystemExit('passed')"), {"error: SystemExit"}),
    "module_level_exception_named_passed": ("HumanEval/0", fenced("""
        raise type('passed\\r\\n', (ArithmeticError,), {})()
        def has_close_elements(numbers, threshold):
            return True
        """), {"error: ArithmeticError"}),
}

BATTERY = {**RESOURCES, **ANSWERS, **TEST_PROCESS, **INTERPRETER, **CHANNEL}


@pytest.fixture(scope="module", autouse=True)
def answers_copied_to_tmp():
    os.mkdir(COPY_DIR, 0o755)
    shutil.copy(DATA_FILE, COPY)
    os.chmod(COPY, 0o644)  # world-readable, as a stray copy would be
    yield
    shutil.rmtree(COPY_DIR)


def test_battery_is_large_enough():
    assert len(BATTERY) >= 60 and len(set(BATTERY)) == len(RESOURCES) + len(ANSWERS) + len(TEST_PROCESS) + len(
        INTERPRETER) + len(CHANNEL)


@pytest.mark.skipif(not ROOT, reason="the battery relies on the uid drop and namespaces (root)")
@pytest.mark.parametrize("name", list(BATTERY))
def test_hostile_completion_scores_zero_and_leaves_nothing(name, tmp_path, monkeypatch):
    uid, completion, reasons = BATTERY[name]
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this run's directory, and no one else's
    start = time.monotonic()
    verdict = HOSTILE.score(BY_UID[uid], completion)
    seconds = time.monotonic() - start
    assert (verdict.reward, verdict.correct) == (0.0, False)
    assert verdict.reason in reasons
    assert seconds < HOSTILE.config.wall_seconds + 3.0  # margin for a loaded machine; unlimited runs take minutes
    assert sandbox_processes() == []
    assert not any(os.path.exists(path) for path in WRITE_TARGETS)
    assert glob.glob(str(tmp_path / "*")) == []  # the run's directory is gone


POOLED = ["fork_bomb", "infinite_loop", "kill_everything", "close_the_channel", "garbage_on_the_channel",
          "false_is_true", "read_a_copy_of_the_answers", "steal_token_from_memory"]


def test_the_scorer_keeps_working_after_the_battery():
    p0, p1 = BY_UID["HumanEval/0"], BY_UID["HumanEval/1"]
    problems = [BY_UID[BATTERY[name][0]] for name in POOLED] + [p0, p1]
    completions = [BATTERY[name][1] for name in POOLED] + [p0.answer, p1.answer]
    with Scorer(HOSTILE, workers=2) as scorer:
        verdicts = scorer.score(problems, completions)
        again = scorer.score([p0], [p0.answer])
    assert [v.correct for v in verdicts] == [False] * len(POOLED) + [True, True]
    assert again[0].reason == "passed" and sandbox_processes() == []
