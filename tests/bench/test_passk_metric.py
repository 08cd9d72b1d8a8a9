"""bench/evaluation/pass_at_k: the local `evaluate` metric, loaded by path, gives bench.evaluation.passk's numbers."""

import sys
from pathlib import Path

import numpy as np
import pytest

evaluate = pytest.importorskip("evaluate", reason="the optional HF evaluate extra is not installed")

from bench.evaluation.passk import pass_at_k_array, summarize  # noqa: E402

METRIC = Path(__file__).resolve().parents[2] / "bench" / "evaluation" / "pass_at_k"


@pytest.fixture(scope="module")
def metric(tmp_path_factory):
    """Loaded from another working directory, with evaluate's module copy and data cache in tmp."""
    tmp = tmp_path_factory.mktemp("evaluate")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        # evaluate copies the script under HF_MODULES_CACHE and appends that folder to sys.path
        mp.setattr(evaluate.config, "HF_MODULES_CACHE", tmp / "modules")
        mp.setattr(sys, "path", list(sys.path))
        yield evaluate.load(str(METRIC), cache_dir=str(tmp / "data"), keep_in_memory=True)


def verdicts(n, c):
    return [[True] * ci + [False] * (ni - ci) for ni, ci in zip(n, c)]


def test_gives_the_library_numbers_for_uneven_n(metric):
    n, c = [4, 6, 5, 8], [1, 0, 5, 3]
    result = metric.compute(predictions=verdicts(n, c), k=[1, 2, 4])
    assert list(result) == ["pass@1", "pass@2", "pass@4"]
    for k in (1, 2, 4):
        assert result[f"pass@{k}"] == pytest.approx(np.mean(pass_at_k_array(n, c, k)), abs=1e-15)


def test_agrees_with_the_summary(metric):
    c = [0, 1, 3, 8, 2]
    result = metric.compute(predictions=verdicts([8] * 5, c), k=[1, 3, 8])
    assert result == pytest.approx({f"pass@{r['k']}": r["pass_at_k"] for r in summarize(8, c, ks=[1, 3, 8])},
                                   abs=1e-15)


def test_without_replacement_case(metric):
    assert metric.compute(predictions=[[True, False, False, False]], k=4) == {"pass@4": 1.0}
    assert metric.compute(predictions=[[True, False, False, False], [False] * 4], k=[1, 4]) == pytest.approx(
        {"pass@1": 0.125, "pass@4": 0.5})


def test_k_beyond_n_is_refused(metric):
    with pytest.raises(ValueError, match="k=5"):
        metric.compute(predictions=[[True, False, False, False]], k=[5])


def test_card(metric):
    assert "arXiv:2107.03374" in metric.citation
    assert "without replacement" in metric.description
    assert list(metric.features) == ["predictions"]
