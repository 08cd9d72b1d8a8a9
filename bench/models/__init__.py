"""Policies: loading a causal LM and its token log-probs and entropy (policy.py), the project's
tiny model (tiny.py) and its supervised warm start (warmstart.py, ``python -m bench.pretrain``)."""
