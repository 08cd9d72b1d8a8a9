"""pass@k as a local Hugging Face `evaluate` metric; every number comes from bench.evaluation.passk.

Load it by path (no hub): ``evaluate.load("<project>/bench/evaluation/pass_at_k")``. This is the only module
of the project that imports `evaluate`; bench.evaluation.passk itself needs only numpy and scipy.
"""

from typing import Sequence, Union

import datasets
import evaluate
import numpy as np

from bench.evaluation.passk import pass_at_k_array

_CITATION = """\
@article{chen2021codex,
  title={Evaluating Large Language Models Trained on Code},
  author={Mark Chen and Jerry Tworek and Heewoo Jun and Qiming Yuan and Henrique Ponde de Oliveira Pinto
          and others},
  journal={arXiv preprint arXiv:2107.03374},
  year={2021}
}
"""

_DESCRIPTION = """\
pass@k: the probability that at least one of k samples, drawn without replacement from the n
samples of a problem of which c are correct, is correct; the unbiased estimator of Chen et al.
(2021, eq. 1), 1 - C(n - c, k) / C(n, k), in its numerically stable product form, averaged over
problems. Unlike 1 - (1 - c/n)^k it is not biased low: n = 4, c = 1 gives pass@4 = 1 exactly.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `bool`): one list per problem, the verdict of each of its n
        samples (True: judged correct). Problems may have different n.
    k (`int` or `list` of `int`, defaults to `(1,)`): the k of pass@k; each at most the smallest n.
Returns:
    `dict`: "pass@k" for each k, the mean over problems (float in [0, 1]).
Examples:
    >>> pass_at_k = evaluate.load("bench/evaluation/pass_at_k")  # from the project root; any path to the folder works
    >>> pass_at_k.compute(predictions=[[True, False, False, False], [False, False, False, False]], k=[1, 4])
    {'pass@1': 0.125, 'pass@4': 0.5}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PassAtK(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("bool"))}),
            reference_urls=["https://arxiv.org/abs/2107.03374"],
        )

    def _compute(self, predictions: list[list[bool]], k: Union[int, Sequence[int]] = (1,)) -> dict[str, float]:
        n = np.array([len(verdicts) for verdicts in predictions], dtype=np.int64)
        c = np.array([sum(verdicts) for verdicts in predictions], dtype=np.int64)
        ks = [k] if isinstance(k, int) else k
        return {f"pass@{kk}": float(np.mean(pass_at_k_array(n, c, kk))) for kk in ks}
