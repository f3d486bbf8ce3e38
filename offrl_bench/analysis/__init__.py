"""Layer 7, analysis: what a reader looks at. AdaStop comparisons (``comparison``), figures
(``plots``) and the self-contained HTML report (``report``).

May import: every layer below it: ``core``, ``data``, ``records``, ``execution``, ``suites``, ``trust``.
"""
