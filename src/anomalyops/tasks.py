"""Airflow task callables: thin adapters from an Airflow context to the logic modules.

DAG files reference these; each reads the logical date Airflow passes (never ``now()``),
builds settings from the environment at run time, and returns a small JSON-able summary for
XCom. Heavy imports happen inside the functions so that parsing a DAG stays cheap.
"""

from __future__ import annotations

from anomalyops.settings import get_settings


def land(ds: str) -> list[str]:
    from anomalyops.ingest import land as _land

    return _land(ds, get_settings())


def ingest(ds: str) -> dict:
    from anomalyops.ingest import ingest_as_dict

    return ingest_as_dict(ds, get_settings())
