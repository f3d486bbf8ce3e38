"""Layer 1, the core: what every other layer shares.

``api`` (the plugin contract: :class:`~offrl_bench.core.api.Algorithm` and its batches and specs),
``registry`` (entry-point groups: it loads plugins by name and knows no higher layer's types),
``config`` (typed algorithm configs and ``--set`` parsing), ``errors`` (the one-line error types)
and ``rollout`` (running a policy for episodes).

May import: nothing else of ``offrl_bench`` (a type-only import of ``data`` aside).
"""
