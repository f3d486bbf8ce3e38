"""Layer 3, records: the run store of an output directory (``run_store``: ``runs.jsonl``,
failures, commands), the leaderboard computed from it (``leaderboard``), the statistics behind
its intervals (``statistics``) and aligned text tables (``tables``).

Named ``records`` so as not to be confused with the repository's top-level ``results/`` folder.

May import: ``core`` and ``offrl_bench.envs`` (level-split names).
"""
