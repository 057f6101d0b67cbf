"""The data-quality gate between ``raw/`` and ``validated/``: GX expectations, TFDV schema and
drift checks, the pass/warn/fail decision, quarantine and re-admission (docs/validation.md).

Submodules import GX and TFDV inside functions, so importing this package stays cheap.
"""
