"""Test-wide settings: everything runs offline and on the CPU.

Without the offline flags a hub look-up retries for 20+ seconds before failing; wandb without a
mode asks for an API key.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ["CUDA_VISIBLE_DEVICES"] = os.environ.get("BENCH_TEST_CUDA", "")
