"""Layer 2, datasets: Minari datasets built from the shipped behaviour policies (``make``,
``behaviour``), D4RL-HDF5 import (``d4rl``), loading into tensors (``datasets``) and action-free
views (``action_free``).

May import: ``core`` and the environment package ``offrl_bench.envs``.
"""
