"""Parquet reads that cannot run code (CVE-2023-47248).

pyarrow < 14.0.1 unpickles the ``arrow.py_extension_type`` a Parquet (or Feather/IPC) schema
may carry, so opening a hostile file runs whatever the pickle says. TFX 1.16 holds us at
pyarrow 10.0.1; the published remedy for a pinned pyarrow is ``pyarrow_hotfix``, which
re-registers that type as one whose deserialisation raises instead.

Importing this module installs the hotfix for the whole process. Every module that reads
Parquet imports it at module level (before its first read) and calls :func:`ensure` right
before reading, which re-installs it should anything have uninstalled it.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow_hotfix

# pyarrow_hotfix's refusal is a bare RuntimeError; this is the start of its message.
_REFUSAL = "Disallowed deserialization of 'arrow.py_extension_type'"


class UnsafeParquetError(ValueError):
    """A Parquet file carries a pickled Python extension type: refused, never unpickled."""


def ensure() -> None:
    """Make sure the hotfix is in force (idempotent; a flag check when it already is)."""
    if not getattr(pa, "_hotfix_installed", False):
        pyarrow_hotfix.install()
    if not getattr(pa, "_hotfix_installed", False):  # a pyarrow the hotfix does not know
        raise RuntimeError(
            f"pyarrow_hotfix could not protect pyarrow {pa.__version__} against CVE-2023-47248; "
            "refusing to read Parquet"
        )


def is_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is the hotfix refusing a pickled extension type."""
    return isinstance(exc, RuntimeError) and str(exc).startswith(_REFUSAL)


def refusal(source: str) -> UnsafeParquetError:
    """The project's error for a refused file (the pickle itself is not quoted)."""
    return UnsafeParquetError(
        f"{source}: refused: the Parquet schema carries a pickled Python extension type "
        "('arrow.py_extension_type'), which would run code when read (CVE-2023-47248); "
        "it was not unpickled. Re-export the file with plain column types"
    )


ensure()
