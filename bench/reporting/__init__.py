"""Reading runs back and comparing them: ``load_results`` and the statistics (results.py), the
figures (figures.py). ``python -m bench.report`` writes them into report.md; notebooks call them
directly (``from bench import reporting``)."""

from bench.reporting.figures import (
    diversity_figure,
    entropy_figure,
    improvement_figure,
    kl_figure,
    passk_figure,
    quantiles_figure,
    reward_figure,
)
from bench.reporting.results import (
    Results,
    conclusion,
    diversity_table,
    final_window,
    improvement,
    load_results,
    pass_table,
    problem_difference,
    runs_table,
    seed_difference,
    time_table,
)

__all__ = ["Results", "conclusion", "diversity_figure", "diversity_table", "entropy_figure", "final_window",
           "improvement", "improvement_figure", "kl_figure", "load_results", "pass_table", "passk_figure", "problem_difference", "quantiles_figure", "reward_figure",
           "runs_table", "seed_difference", "time_table"]
