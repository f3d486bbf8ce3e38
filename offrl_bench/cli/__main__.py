"""``python -m offrl_bench.cli``: the ``offrl-bench`` command."""

from offrl_bench.cli.main import main

main()
