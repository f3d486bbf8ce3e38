"""Built-in algorithm plugins (installed as ``offrl_bench.algorithms``), registered via entry points."""
