"""``python -m bench.score``: every row judged or reported, output written whole, checked first and
never left half-written or behind."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.score import main


def write_rows(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")


def test_scores_ids_and_inline_answers(tmp_path, capsys):
    source, out = tmp_path / "gen.jsonl", tmp_path / "verdicts.jsonl"
    write_rows(source, [
        {"uid": "aime24-60", "completion": "\\boxed{204}"},
        {"uid": "aime24-60", "completion": "\\boxed{205}", "sample": 2},
        {"answer": "7", "completion": "3+4 = \\boxed{7}"},
    ])
    assert main(["task=aime", f"input={source}", f"output={out}", "workers=0"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["correct"] for r in rows] == [True, False, True]
    assert rows[1]["sample"] == 2 and rows[1]["extracted"] == "205" and rows[1]["reward"] == 0.0
    assert "2/3 correct" in capsys.readouterr().out


def test_unusable_rows_are_reported_with_line_numbers(tmp_path, capsys):
    source, out = tmp_path / "gen.jsonl", tmp_path / "verdicts.jsonl"
    write_rows(source, [
        {"uid": "aime24-60", "completion": "\\boxed{204}"},
        "{not json",
        {"uid": "aime24-99999", "completion": "\\boxed{1}"},
        {"uid": "aime24-60"},
        {"completion": "\\boxed{1}"},
    ])
    assert main(["task=aime", f"input={source}", f"output={out}", "workers=0"]) == 1
    err = capsys.readouterr().err
    for fragment in ("line 2: not JSON", "line 3: uid 'aime24-99999' is not in", "line 4: no 'completion'",
                     "line 5: needs an id"):
        assert fragment in err
    assert len(out.read_text().splitlines()) == 1  # the usable row is still written
    assert main(["task=aime", f"input={source}", f"output={out}", "workers=0", "skip_bad=true"]) == 0


def test_missing_input_and_bad_task_are_one_line(tmp_path, capsys):
    assert main(["task=aime", f"input={tmp_path / 'none.jsonl'}", f"output={tmp_path / 'o.jsonl'}"]) == 2
    assert main(["task=nope", "input=x", "output=y"]) == 2
    assert main(["task=aime", f"input={tmp_path}", f"output={tmp_path / 'o.jsonl'}"]) == 2
    assert main(["task=aime", "input=x"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and "none.jsonl not found; give the JSON-lines file" in lines[0] and "task/nope" in lines[1]
    assert f"input={tmp_path} is a directory" in lines[2] and "bench.score needs output=<path>, e.g." in lines[3]


def test_command_line_with_worker_processes(tmp_path):
    source, out = tmp_path / "gen.jsonl", tmp_path / "verdicts.jsonl"
    write_rows(source, [{"answer": str(i), "completion": f"\\boxed{{{i % 3}}}"} for i in range(12)])
    done = subprocess.run([sys.executable, "-m", "bench.score", "task=arith", f"input={source}", f"output={out}",
                           "workers=2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["correct"] for line in out.read_text().splitlines()] == [i < 3 for i in range(12)]


@pytest.mark.parametrize("output, message", [
    pytest.param("missing/verdicts.jsonl", "the directory {tmp}/missing does not exist; create it", id="no-directory"),
    pytest.param(".", "output={tmp} is a directory; give a file name", id="a-directory"),
    pytest.param("/sys/verdicts.jsonl", "cannot create a file in /sys (Permission denied)", id="not-writable",
                 marks=pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's read-only /sys")),
])
def test_the_output_is_checked_before_anything_is_scored(tmp_path, capsys, output, message):
    """The input names a uid, so reading it would load the task's data, which is not there: the
    output's error comes first, and nothing is left behind."""
    source = tmp_path / "gen.jsonl"
    write_rows(source, [{"uid": "aime24-60", "completion": "\\boxed{204}"}])
    output = output if output.startswith("/") else str(tmp_path / output)
    args = ["task=aime", f"task.data_dir={tmp_path / 'no-data'}", f"input={source}", f"output={output}", "workers=0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message.format(tmp=tmp_path) in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["gen.jsonl"]


def test_an_error_while_scoring_leaves_nothing_behind(tmp_path, capsys):
    source, out = tmp_path / "gen.jsonl", tmp_path / "verdicts.jsonl"
    write_rows(source, [{"uid": "aime24-60", "completion": "\\boxed{204}"}])
    assert main(["task=aime", f"task.data_dir={tmp_path / 'no-data'}", f"input={source}", f"output={out}"]) == 2
    assert "aime24/test.jsonl not found" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["gen.jsonl"]


def test_ctrl_c_while_scoring_leaves_nothing_behind(tmp_path):
    source, out = tmp_path / "gen.jsonl", tmp_path / "verdicts.jsonl"
    write_rows(source, [{"answer": "1", "completion": f"\\boxed{{{i} + x^{i}}}"} for i in range(20000)])
    run = subprocess.Popen([sys.executable, "-m", "bench.score", "task=arith", f"input={source}", f"output={out}",
                            "workers=0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.glob(".verdicts.jsonl.*.tmp")):
        time.sleep(0.05)
    assert list(tmp_path.glob(".verdicts.jsonl.*.tmp")), "the output was not reserved before scoring"
    time.sleep(0.5)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130 and err.strip() == "bench.score: interrupted; no output written", err
    assert [p.name for p in tmp_path.iterdir()] == ["gen.jsonl"]


def test_a_line_that_is_not_utf8_costs_only_that_line(tmp_path, capsys):
    source, out = tmp_path / "gen.jsonl", tmp_path / "verdicts.jsonl"
    rows = [json.dumps({"answer": "7", "completion": "\\boxed{7}"}).encode(),
            b'{"answer": "7", "completion": "caf\xe9 \\\\boxed{7}"}',  # Latin-1, not UTF-8
            # a raw U+2028 (a line separator to str.splitlines) inside a string: still one line
            json.dumps({"answer": "7", "completion": "so\u2028\\boxed{7}"}, ensure_ascii=False).encode()]
    source.write_bytes(b"\n".join(rows) + b"\n")
    assert main(["task=arith", f"input={source}", f"output={out}", "workers=0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bench.score: {source}: line 2: not UTF-8 (byte 0xe9 at column 35); write the file as UTF-8"]
    assert [json.loads(line)["correct"] for line in out.read_text(encoding="utf-8").splitlines()] == [True, True]


def test_a_bad_data_file_is_named_with_its_row_not_blamed_on_an_input_line(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "math500").mkdir(parents=True)
    rows = [{"problem": "1+1?", "solution": "\\boxed{2}", "unique_id": "a"}, {"problem": "2+2?", "unique_id": "b"}]
    write_rows(data / "math500" / "test.jsonl", rows)
    source, out = tmp_path / "gen.jsonl", tmp_path / "verdicts.jsonl"
    write_rows(source, [{"uid": "a", "completion": "\\boxed{2}"}, {"uid": "b", "completion": "\\boxed{4}"}])
    assert main(["task=math", f"task.data_dir={data}", f"input={source}", f"output={out}", "workers=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{data / 'math500' / 'test.jsonl'} row 2: no 'solution' field" in err[0], err
    assert "line " not in err[0] and not out.exists()
