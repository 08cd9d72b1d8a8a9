"""``python -m bench.explain`` as a user runs it."""

import json
import subprocess
import sys

import pytest

import algorithms
from bench.compose import compose
from bench.explain import explain, main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "bench.explain", *args], capture_output=True, text=True, timeout=120)


def test_cli_prints_json_with_the_input_nesting():
    out = run_cli("algorithm=riskpo", "rewards=[[1,0,0,1,1],[0,0,0,0,1],[1,1,0,1,0]]", "algorithm.pairing=ordered")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [len(row) for row in result["advantages"]] == [5, 5, 5]
    bundle = result["details"]["bundles"][0]
    assert bundle["prompts"] == [0, 1, 2]
    assert [p["responses"] for p in bundle["papers"]][1] == [[0, 1], [1, 1], [2, 1]]
    assert [p["score"] for p in bundle["papers"]] == [2.0, 1.0, 0.0, 2.0, 2.0]
    assert set(result["state"]) == {"a", "b", "updates"}


@pytest.mark.parametrize("choice", ["grpo", "dr_grpo", "dapo", "gspo", "riskpo", "riskpo_seeking", "riskpo_reference",
                                    "riskpo_reference_hard"])
def test_every_algorithm_explains(choice):
    args = [f"algorithm={choice}", "rewards=[[1,0,0,1],[0,0,0,0],[1,1,1,0]]"]
    if choice == "dapo":
        args += ["lengths=[[10,20,30,40],[5,5,5,5],[40,40,40,40]]", "max_length=40", "algorithm.overlong_buffer_frac=0.5"]
    result = explain(compose("explain", args))
    assert [len(row) for row in result["advantages"]] == [4, 4, 4]
    assert result["algorithm"]["name"] in algorithms.ALGORITHMS
    assert all(isinstance(a, float) for row in result["advantages"] for a in row)


def test_ordered_pairing_is_deterministic(capsys):
    args = ["algorithm=riskpo", "rewards=[[1,0,0],[0,1,1]]", "algorithm.pairing=ordered"]
    main(args)
    first = capsys.readouterr().out
    main(args)
    assert capsys.readouterr().out == first


def test_dapo_shows_which_prompts_dynamic_sampling_keeps():
    result = explain(compose("explain", ["algorithm=dapo", "algorithm.overlong_shaping=false",
                                         "rewards=[[1,0,0,1],[0,0,0,0],[1,1,1,1]]"]))
    assert result["kept"] == [True, False, False]
    assert result["advantages"][1] == [0.0] * 4


def test_incoming_state_is_used():
    result = explain(compose("explain", ["algorithm=riskpo", "algorithm.bundle_size=2", "rewards=[[1,0],[0,0]]",
                                         "state={a: 0.25, b: 1.5, updates: 3}"]))
    bundle = result["details"]["bundles"][0]
    assert bundle["quantiles"] == {"a": 0.25, "b": 1.5}
    assert result["state"]["updates"] == 4


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["algorithm=riskpo", "rewards=[[1,0],[1]]"], "same number of responses"),
        (["algorithm=grpo", "rewards=[[1,nan]]"], "finite"),
        (["algorithm=grpo", "rewards=[]"], "non-empty"),
        (["algorithm=grpo", "rewards=[[]]"], "non-empty"),
        (["algorithm=grpo", "rewards=[[a,b]]"], "numbers"),
        (["algorithm=grpo"], "rewards is required"),
        (["algorithm=dapo", "rewards=[[1,0]]"], "needs response lengths"),
        (["algorithm=riskpo", "algorithm.alpha=0.9", "rewards=[[1,0]]"], "alpha < beta"),
        (["algorithm=nope", "rewards=[[1,0]]"], "Could not find 'algorithm/nope'"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line(args, fragment, capsys):
    assert main(args) == 2
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], out.err


def test_bad_input_from_the_command_line():
    out = run_cli("algorithm=riskpo", "rewards=[[1,0],[1]]")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("bench.explain: riskpo needs the same number of responses")


def test_ragged_groups_are_fine_for_group_relative_algorithms():
    result = explain(compose("explain", ["algorithm=grpo", "rewards=[[1,0,0],[1,0]]"]))
    assert [len(row) for row in result["advantages"]] == [3, 2]
