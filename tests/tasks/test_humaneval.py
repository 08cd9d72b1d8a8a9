"""HumanEval: loading, extraction, verdicts on the real benchmark, and a battery of hostile
completions, each of which must score 0 within its limits and leave nothing behind.

The canonical run (164 solutions and 164 ``pass`` bodies through the Scorer pool) takes ~6 s on
2 cores, so it is in the default run.
"""

import glob
import os
import tempfile
import textwrap
import time
import uuid

import pytest
from sandbox_probe import sandbox_processes

from common import PROJECT_ROOT
from tasks.humaneval import TEMPLATES, HumanEvalConfig, HumanEvalTask, extract
from tasks.scoring import Scorer

TASK = HumanEvalTask(HumanEvalConfig())
PROBLEMS = TASK.load("humaneval")
BY_UID = {p.uid: p for p in PROBLEMS}
# tight limits keep the battery fast: 1 s wall, 1 s CPU, 256 MB, 1 MB files, 8 processes
HOSTILE = HumanEvalTask(HumanEvalConfig(wall_seconds=1.0, cpu_seconds=1, memory_mb=256, file_size_mb=1, processes=8))
ROOT = os.geteuid() == 0


# ---- loading and prompting ----


def test_load():
    assert len(PROBLEMS) == 164 and len(BY_UID) == 164
    first = BY_UID["HumanEval/0"]
    assert first.benchmark == "humaneval" and first.metadata["entry_point"] == "has_close_elements"
    assert first.question.startswith("from typing import List") and "def check(candidate)" in first.metadata["test"]
    assert first.answer.lstrip().startswith("for idx, elem")


def test_config_and_splits():
    config = HumanEvalConfig()
    assert (config.name, config.template, config.train) == ("humaneval", "complete", "humaneval")
    assert config.eval == ("humaneval",)
    with pytest.raises(ValueError, match="no training split"):
        TASK.load("train")
    with pytest.raises(ValueError, match="unknown split"):
        HumanEvalTask(HumanEvalConfig(eval=("mbpp",)))
    with pytest.raises(FileNotFoundError, match="task.data_dir"):
        HumanEvalTask(HumanEvalConfig(data_dir="/nonexistent")).load("humaneval")


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_templates(template):
    problem = BY_UID["HumanEval/2"]
    [message] = HumanEvalTask(HumanEvalConfig(template=template)).prompt(problem)
    assert message["role"] == "user" and problem.question in message["content"]


# ---- extraction ----

P0 = BY_UID["HumanEval/0"]
BODY = P0.answer
FULL = P0.question.split("\n\n\ndef")[0] + "\n\n\ndef has_close_elements(numbers, threshold):\n" + BODY


@pytest.mark.parametrize("completion, expected", [
    (BODY, P0.question + BODY),
    (BODY + "\n\ndef main():\n    pass\n", P0.question + BODY + "\n"),  # Codex stop sequences
    (BODY + "\nif __name__ == '__main__':\n    main()", P0.question + BODY),
    (BODY + "\nprint(has_close_elements([], 1.0))", P0.question + BODY),
    (f"Here it is:\n```python\n{FULL}```\nDone.", P0.question + "\n" + FULL),
    (f"```py\n{FULL}```", P0.question + "\n" + FULL),
    (f"```\n{FULL}```", P0.question + "\n" + FULL),
    (f"```python\n{FULL}", P0.question + "\n" + FULL),  # cut by the length limit: runs to the end
    (f"```python\nimport math\n```\n```python\n{FULL}```", P0.question + "\n" + FULL),  # the one with the def
    ("", None),
    ("   \n\n", None),
    ("```python\n\n```", None),
    ("\ndef helper():\n    pass", None),  # a stop sequence at once: nothing left
])
def test_extract(completion, expected):
    assert extract(P0, completion) == expected


# ---- verdicts ----


def test_reasons():
    cases = {
        BODY: "passed",
        "    return True\n": "failed",
        "    return undefined_name\n": "error: NameError",
        "    return (\n": "error: SyntaxError",
        "    import sys\n    sys.exit(0)\n": "error: SystemExit",
        "    while True:\n        pass\n": "timeout",
        "": "no_code",
    }
    for completion, reason in cases.items():
        verdict = HOSTILE.score(P0, completion)
        assert verdict.reason == reason, completion
        assert verdict.correct == (reason == "passed") and verdict.reward == float(reason == "passed")
        assert verdict.extracted == (None if reason == "no_code" else P0.question + completion)


def test_canonical_solutions_pass_and_pass_bodies_fail():
    """All 164 and 164 through the Scorer pool: ~6 s on 2 cores."""
    problems = PROBLEMS
    with Scorer(TASK) as scorer:
        start = time.monotonic()
        verdicts = scorer.score(problems + problems, [p.answer for p in problems] + ["    pass\n"] * len(problems))
        seconds = time.monotonic() - start
    n = len(problems)
    assert [(p.uid, v.reason) for p, v in zip(problems, verdicts[:n]) if not v.correct] == []
    assert [p.uid for p, v in zip(problems, verdicts[n:]) if v.correct] == []
    print(f"{n} canonical + {n} pass bodies: {seconds:.1f} s")


# ---- hostile completions: bodies of has_close_elements, or fenced programs ----

MARK = f"sandbox-test-{uuid.uuid4().hex}"
WRITE_TARGETS = [f"/tmp/{MARK}", f"/var/tmp/{MARK}", f"/dev/shm/{MARK}", f"/run/lock/{MARK}",
                 str(PROJECT_ROOT / MARK), f"/{MARK}", os.path.expanduser(f"~/{MARK}")]


def body(code: str) -> str:
    """A function body: the code indented under has_close_elements's docstring."""
    return textwrap.indent(textwrap.dedent(code).strip("\n") + "\n", "    ")


def fenced(code: str) -> str:
    """A reply holding a whole program in a fenced block."""
    return f"```python\nfrom typing import List\n{textwrap.dedent(code).strip()}\n```"


BATTERY = {  # name: (completion, the reasons it may get)
    "infinite_loop": (body("while True:\n    pass"), {"timeout"}),
    "sleep_past_wall": (body("import time\ntime.sleep(60)"), {"timeout"}),
    "ignore_sigterm": (body("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(0.01)
        """), {"timeout"}),
    "fork_bomb": (body("import os\nwhile True:\n    os.fork()"), {"error: BlockingIOError", "timeout"}),
    "fork_bomb_spinning": (body("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """), {"timeout"}),
    "memory_bomb": (body("x = bytearray(1 << 34)"), {"error: MemoryError"}),
    "memory_creep": (body("xs = []\nwhile True:\n    xs.append(bytearray(10 ** 7))"), {"error: MemoryError"}),
    "huge_output": (body("while True:\n    print('x' * 100000)"), {"error: OSError"}),
    "huge_file": (body("""
        with open('big', 'wb') as f:
            while True:
                f.write(bytes(1 << 20))
        """), {"error: OSError"}),
    "deep_recursion": (body("""
        import sys
        sys.setrecursionlimit(10 ** 8)
        def down(n):
            return down(n + 1) + 1
        return down(0)
        """), {"error: SIGSEGV", "error: MemoryError", "timeout"}),
    "sys_exit_0": (body("import sys\nsys.exit(0)"), {"error: SystemExit"}),
    "os_exit_0": (body("import os\nos._exit(0)"), {"error: exit 0"}),
    "exit_before_tests": (fenced("import os\nos._exit(0)"), {"error: exit 0"}),
    "atexit_exit_0": (body("""
        import atexit, os
        atexit.register(os._exit, 0)
        raise KeyboardInterrupt
        """), {"error: KeyboardInterrupt"}),
    "kill_parent": (body("""
        import os, signal
        os.kill(os.getppid(), signal.SIGKILL)
        return True
        """), {"failed", "timeout", "error: PermissionError"}),
    "kill_everything": (body("""
        import os, signal
        for pid in [-1] + list(range(1, 1 << 15)):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return True
        """), {"failed", "timeout"}),
    "write_outside": (body(f"""
        import os
        for path in {WRITE_TARGETS!r} + [os.path.join(os.path.dirname(os.getcwd()), {MARK!r})]:
            try:
                open(path, 'w').write('x')
            except OSError:
                pass
        return True
        """), {"failed"}),
    "open_socket": (body("""
        import socket
        socket.create_connection(('1.1.1.1', 80), timeout=0.5)
        return True
        """), {"error: OSError"}),
    "read_stdin": (body("import sys\nreturn bool(sys.stdin.read()) or input()"), {"error: EOFError"}),
    "read_the_answers": (body(f"""
        import gzip, json
        row = json.loads(gzip.open({str(TASK.data_file("humaneval/HumanEval.jsonl.gz"))!r}).readline())
        namespace = {{}}
        exec(row['prompt'] + row['canonical_solution'], namespace)
        return namespace['has_close_elements'](numbers, threshold)
        """), {"error: PermissionError"}),  # would pass if task.data_dir were not hidden
    "patch_assertion_error": (body("""
        import builtins
        builtins.AssertionError = type('Nope', (Exception,), {})
        return True
        """), {"failed"}),
    "patch_builtins_before_tests": (fenced("""
        import builtins
        builtins.exec = lambda *args, **kwargs: None
        def has_close_elements(numbers, threshold):
            return True
        """), {"failed"}),
    "fake_marker": (body("""
        import os, secrets
        for fd in range(64):
            for text in (b'passed\\n', secrets.token_hex(16).encode(), open('/proc/self/cmdline', 'rb').read()):
                try:
                    os.write(fd, text)
                except OSError:
                    pass
        os._exit(0)
        """), {"error: exit 0"}),
    "override_check": (fenced("""
        def has_close_elements(numbers, threshold):
            return True
        def check(candidate):
            pass
        """), {"failed"}),
    "swallow_tests": (body("return True") + "check = lambda candidate: None\n_ = '''\n", {"error: SyntaxError"}),
    "thread_rebinds_check": (fenced("""
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
        """), {"error: RuntimeError"}),
    "background_child": (body("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(120)
            os._exit(0)
        return True
        """), {"failed"}),
}


@pytest.mark.skipif(not ROOT, reason="the battery relies on the uid drop and namespaces (root)")
@pytest.mark.parametrize("name", list(BATTERY))
def test_hostile_completion_scores_zero_and_leaves_nothing(name):
    completion, reasons = BATTERY[name]
    start = time.monotonic()
    verdict = HOSTILE.score(P0, completion)
    seconds = time.monotonic() - start
    assert (verdict.reward, verdict.correct) == (0.0, False)
    assert verdict.reason in reasons
    assert seconds < HOSTILE.config.wall_seconds + 3.0  # margin for a loaded machine; unlimited runs take minutes
    assert sandbox_processes() == []
    assert not any(os.path.exists(path) for path in WRITE_TARGETS)
    assert glob.glob(os.path.join(tempfile.gettempdir(), "sandbox-*")) == []  # the run's directory is gone


def test_battery_is_large_enough():
    assert len(BATTERY) >= 20


def test_the_scorer_keeps_working_after_the_battery():
    problems = [P0, P0, P0, BY_UID["HumanEval/1"]]
    completions = [BATTERY["fork_bomb"][0], BATTERY["infinite_loop"][0], BODY, BY_UID["HumanEval/1"].answer]
    with Scorer(HOSTILE, workers=2) as scorer:
        verdicts = scorer.score(problems, completions)
        again = scorer.score([P0], [BODY])
    assert [v.correct for v in verdicts] == [False, False, True, True]
    assert again[0].reason == "passed" and sandbox_processes() == []


@pytest.mark.xfail(strict=True, reason="known gap (tasks/sandbox.py): the tests compare with the program's ==")
def test_known_gap_an_object_equal_to_everything():
    completion = "    class Equal:\n        def __eq__(self, other):\n            return True\n    return Equal()\n"
    assert not HOSTILE.score(P0, completion).correct
