"""Pass@k evaluation: the ``Evaluator`` the trainer and ``python -m bench.evaluate`` share
(evaluator.py), the estimators (passk.py), and the same estimator as a Hugging Face ``evaluate``
metric (pass_at_k/). A new metric over samples goes in passk.py and into ``passk.summarize``."""
