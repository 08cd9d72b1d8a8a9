"""Golden advantages computed by hand (tests/golden/<algorithm>.json, derivation in each `note`),
checked through the production path: bench.compose.compose("explain", ...) then bench.explain.explain.
"""

import json
from pathlib import Path

import pytest

from bench.compose import compose
from bench.explain import explain

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = [(path.name, case) for path in sorted(GOLDEN.glob("*.json")) for case in json.loads(path.read_text())]


def overrides(case: dict) -> list[str]:
    out = [*case["overrides"], f"rewards={json.dumps(case['rewards'])}"]
    if "lengths" in case:
        out += [f"lengths={json.dumps(case['lengths'])}", f"max_length={case['max_length']}"]
    if "state" in case:
        out.append("state={" + ", ".join(f"{k}: {v}" for k, v in case["state"].items()) + "}")
    return out


@pytest.mark.parametrize("case", [c for _, c in CASES], ids=[f"{f}:{c['name']}" for f, c in CASES])
def test_golden(case: dict) -> None:
    result = explain(compose("explain", overrides(case)))
    expected = case["expected"]
    bundles = result["details"].get("bundles", [])
    assert result["advantages"] == [pytest.approx(row, abs=1e-5) for row in expected["advantages"]]
    if "kept" in expected:
        assert result["kept"] == expected["kept"]
    if "quantiles" in expected:
        got = [[b["quantiles"]["a"], b["quantiles"]["b"]] for b in bundles]
        assert got == [pytest.approx(ab, abs=1e-5) for ab in expected["quantiles"]]
    if "paper_scores" in expected:
        got = [[p["score"] for p in b["papers"]] for b in bundles]
        assert got == [pytest.approx(scores, abs=1e-5) for scores in expected["paper_scores"]]
    if "state" in expected:
        assert result["state"] == pytest.approx(expected["state"], abs=1e-5)
