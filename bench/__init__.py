"""The pipeline around the algorithms (algorithms/) and tasks (tasks/).

Commands, one module each (``python -m bench.<name>``):
    run       train one algorithm on one task (Hydra; ``-m`` sweeps)
    evaluate  pass@k of any weights on any benchmarks
    report    figures and a markdown comparison of a results directory
    score     judge completions from a file with a task's verifier
    explain   one advantage step on rewards you give, every intermediate value
    perf      speed and memory figures of the stages
    pretrain  (re)build the tiny model's warm start

Where things live:
    config.py     every config dataclass and the typed root, ``RunConfig`` (no other bench import)
    compose.py    Hydra: conf/ composed against those dataclasses, built once at the command line
    training/     the loop (``Trainer.fit``), seeds, the run directory and its tables (sinks)
    engines/      rollout engines (hf, vllm) behind one contract; add an engine here
    models/       loading a policy, token log-probs, the tiny model and its warm start
    evaluation/   the Evaluator and pass@k estimators; add a metric here
    reporting/    reading runs back, statistics, tables and figures
A launcher (one machine, Slurm) is a Hydra launcher config: conf/hydra/launcher/.
"""
