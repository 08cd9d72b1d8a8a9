"""``python -m bench.score``: every row judged or reported, output written whole."""

import json
import subprocess
import sys

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
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "none.jsonl not found" in lines[0] and "task/nope" in lines[1]


def test_command_line_with_worker_processes(tmp_path):
    source, out = tmp_path / "gen.jsonl", tmp_path / "verdicts.jsonl"
    write_rows(source, [{"answer": str(i), "completion": f"\\boxed{{{i % 3}}}"} for i in range(12)])
    done = subprocess.run([sys.executable, "-m", "bench.score", "task=arith", f"input={source}", f"output={out}",
                           "workers=2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["correct"] for line in out.read_text().splitlines()] == [i < 3 for i in range(12)]
