"""Layer 4, execution: one run (``runner``: train, evaluate, checkpoint, record), many runs
(``scheduler`` with ``attempts``, ``local_workers`` and ``ray_backend``), evaluation episodes
(``evaluation``), experiment trackers (``loggers``), busy-machine handling (``contention``,
``allocator``) and fitted-Q evaluation of finished runs (``ope``).

May import: ``core``, ``data``, ``records``, and the plugin packages ``offrl_bench.envs`` and
``offrl_bench.algorithms`` (FQE's network).
"""
