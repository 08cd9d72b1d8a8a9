"""A run's tables: appended in parts at a bounded cost per step, compacted into one file on close,
read whole in any state (live, crashed, crashed while compacting, resumed)."""

import io
import json
import shutil

import pandas as pd

from bench.reporting.results import load_results
from bench.training.sinks import PART_ROWS, Table, parts_of, read_table


def step_row(step):
    """A metrics row; ``late`` first appears at step 100, as a metric a later stage adds."""
    row = {"step": step, "train/loss": step / 7, "train/reward_mean": 1.0 - step / 1000, "algorithm": "grpo"}
    return row | ({"late": step * 2} if step >= 100 else {})


def grown(path, steps):
    table = Table(path)
    for step in steps:
        table.add([step_row(step)])
    return table


def as_written(rows):
    """What the table was before parts: pd.DataFrame(rows).to_parquet, read back (a column of bools
    that some rows lack reads back None there, where the frame held NaN)."""
    buffer = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buffer, index=False)
    return pd.read_parquet(buffer)


def files(folder):
    """(inode, mtime) of every file below ``folder``: a rewrite through os.replace changes both."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_a_closed_table_is_one_file_with_the_rows_a_dataframe_of_them_writes(tmp_path):
    path = tmp_path / "metrics.parquet"
    table = grown(path, range(150))
    table.add([step_row(150), {"step": 151, "train/loss": None, "algorithm": "grpo"}])  # two rows in one add
    table.close()
    rows = [*map(step_row, range(151)), {"step": 151, "train/loss": None, "algorithm": "grpo"}]
    pd.testing.assert_frame_equal(pd.read_parquet(path), pd.DataFrame(rows))
    assert not parts_of(path).exists() and [p.name for p in tmp_path.iterdir()] == ["metrics.parquet"]


def test_a_live_table_reads_whole_with_a_column_only_later_parts_have(tmp_path):
    path = tmp_path / "metrics.parquet"
    grown(path, range(150))  # never closed: parts only, the first ones without ``late``
    assert not path.exists() and len(list(parts_of(path).iterdir())) == 3
    pd.testing.assert_frame_equal(read_table(path), pd.DataFrame(map(step_row, range(150))))
    assert read_table(tmp_path / "eval.parquet") is None


def test_a_crash_between_compaction_and_removing_the_parts_counts_no_row_twice(tmp_path):
    path, kept = tmp_path / "metrics.parquet", tmp_path / "kept"
    grown(path, range(150)).close()  # compacted: parts 0..3 are in the file
    table = grown(path, range(150, 230))
    shutil.copytree(parts_of(path), kept)
    table.close()
    shutil.copytree(kept, parts_of(path))  # the parts back, as a crash before their removal leaves them
    expected = pd.DataFrame(map(step_row, range(230)))
    pd.testing.assert_frame_equal(read_table(path), expected)
    resumed = grown(path, range(230, 240))  # a resumed writer numbers its parts after those
    pd.testing.assert_frame_equal(read_table(path), pd.DataFrame(map(step_row, range(240))))
    resumed.close()
    pd.testing.assert_frame_equal(pd.read_parquet(path), pd.DataFrame(map(step_row, range(240))))


def test_a_resumed_table_drops_the_steps_it_redoes(tmp_path):
    path = tmp_path / "metrics.parquet"
    grown(path, range(100)).close()
    grown(path, range(100, 170))  # a crash at step 170: compacted rows and parts
    table = Table(path)
    assert [r["step"] for r in table.rows] == list(range(170))
    table.truncate(120)  # the last checkpoint was after step 119
    assert not parts_of(path).exists()
    for step in range(120, 130):
        table.add([step_row(step) | {"redone": True}])
    table.close()
    expected = [*map(step_row, range(120)), *(step_row(s) | {"redone": True} for s in range(120, 130))]
    pd.testing.assert_frame_equal(pd.read_parquet(path), as_written(expected))


def test_an_add_rewrites_one_part_of_at_most_part_rows_rows_however_long_the_table(tmp_path):
    path = tmp_path / "metrics.parquet"
    table = Table(path)
    table.rewrite([step_row(step) for step in range(1000)])  # a long run's rows, compacted
    for step in range(1000, 1000 + 3 * PART_ROWS):
        before = files(tmp_path)
        table.add([step_row(step)])
        after = files(tmp_path)
        changed = [p for p in after if before.get(p) != after[p]]
        assert len(changed) == 1 and changed[0].parent == parts_of(path)
        assert 1 <= len(pd.read_parquet(changed[0])) <= PART_ROWS
        assert after.keys() >= before.keys()  # nothing else rewritten or removed
    assert len(read_table(path)) == 1000 + 3 * PART_ROWS


def test_load_results_finds_a_run_that_crashed_before_compacting(tmp_path):
    run_dir = tmp_path / "exp" / "grpo-arith-s0"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"algorithm": "grpo", "task": "arith", "seed": 0}))
    grown(run_dir / "metrics.parquet", range(70))
    assert not (run_dir / "metrics.parquet").exists()
    results = load_results(tmp_path)
    assert results.runs["run_id"].tolist() == ["exp/grpo-arith-s0"]
    assert results.runs["steps"].tolist() == [70] and not results.runs["evaluation_only"].any()
    assert results.metrics["step"].tolist() == list(range(70))
