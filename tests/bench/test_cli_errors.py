"""Expected failures at every command line: one line naming what is wrong and how to fix it, exit
status 2, before any work, and nothing left behind (no empty run directory, no created path)."""

import gzip
import json
import subprocess
import sys

import pytest

from common import DEFAULT_DATA_DIR


def command(tmp_path, module, *args):
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("Loading weights")]
    return done.returncode, lines


@pytest.mark.parametrize("module, args, expected", [
    ("bench.run", ["seed=abc"], "bench.run: Error merging override seed=abc: Value 'abc' of type 'str' could not be "
                                "converted to Integer"),
    ("bench.run", ["trainer.lr=-1"], "bench.run: trainer.lr=-1.0 must be > 0"),
    ("bench.run", ["trainer.checkpoint_every=-2"], "bench.run: trainer.checkpoint_every=-2 must be >= 0"),
    ("bench.run", ["output_dir=/proc/no/such"], "bench.run: cannot create /proc/no/such (No such file or directory); "
                                                "set output_dir=<a writable directory>"),
    ("bench.run", ["trainer.resume=missing-run"], "bench.run: trainer.resume=missing-run does not exist; name the "
                                                  "directory of the run to continue"),
    ("bench.run", ["model.path=./no-model"], "bench.run: model.path=./no-model does not exist; set "
                                             "model.path=<a model directory> or a hub name"),
    ("bench.run", ["algorithm=nope"], "bench.run: In 'config': Could not find 'algorithm/nope' Available options in "
                                      "'algorithm': dapo dr_grpo grpo gspo riskpo riskpo_reference "
                                      "riskpo_reference_hard riskpo_seeking"),
    ("bench.evaluate", ["seed=abc"], "bench.evaluate: Error merging override seed=abc: Value 'abc' of type 'str' could "
                                     "not be converted to Integer"),
    ("bench.evaluate", ["output_dir=/proc/no/such"], "bench.evaluate: cannot create /proc/no/such (No such file or "
                                                     "directory); set output_dir=<a writable directory>"),
    ("bench.pretrain", ["--out", "/proc/no/such/model"], "bench.pretrain: cannot create /proc/no/such (No such file or "
                                                         "directory); set --out=<a writable directory>"),
])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, module, args, expected):
    own_output = module == "bench.pretrain" or any(a.startswith("output_dir=") for a in args)
    status, lines = command(tmp_path, module, *args, *([] if own_output else [f"output_dir={tmp_path / 'results'}"]))
    assert (status, lines) == (2, [expected])
    written = [p for p in (tmp_path / "results").rglob("*") if p.is_file()] if (tmp_path / "results").exists() else []
    assert written == [] and not (tmp_path / "missing-run").exists()  # no run directory, no resumed path created


@pytest.mark.parametrize("damage, expected", [
    (b'{"problem": "x", bad\n', "test.jsonl:4: not JSON (Expecting property name enclosed in double quotes, column 18)"),
    (b'{"problem": "caf\xe9"}\n', "test.jsonl:4: not UTF-8 (byte 17 of the line)"),
])
def test_a_damaged_data_file_is_named_with_its_line(tmp_path, damage, expected):
    data = tmp_path / "data" / "math500"
    data.mkdir(parents=True)
    rows = (DEFAULT_DATA_DIR / "math500" / "test.jsonl").read_bytes().splitlines(keepends=True)[:3]
    (data / "test.jsonl").write_bytes(b"".join(rows) + damage)
    status, lines = command(tmp_path, "bench.evaluate", "task=math", f"task.data_dir={tmp_path / 'data'}",
                            "eval.benchmarks=[math500]", f"output_dir={tmp_path / 'results'}")
    assert status == 2 and len(lines) == 1
    assert lines[0] == f"bench.evaluate: {data / 'test.jsonl'}:{expected.split(':', 1)[1]}"


def test_gzipped_data_is_read_line_by_line_too(tmp_path):
    from tasks.base import read_jsonl

    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress(json.dumps({"a": 1}).encode() + b"\n\xff\n"))
    rows = read_jsonl(path)
    assert next(rows) == {"a": 1}
    with pytest.raises(ValueError, match=r"rows.jsonl.gz:2: not UTF-8 \(byte 1 of the line\)$"):
        next(rows)
