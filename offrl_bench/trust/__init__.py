"""Layer 6, trust: what makes a published number checkable. Behavioural provenance of reference
rows (``code_identity``, ``replay``, ``revisions``, ``provenance``, and ``maintenance`` for attest
and regenerate), the published references and the comparison with them (``reference``), the
sanity-floor budgets (``budget``), and the claims engine with the papers' claims (``claims``,
``paper_claims``).

May import: ``core``, ``data``, ``records``, ``execution`` and ``suites``.
"""
