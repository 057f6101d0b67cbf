"""Great Expectations (GX Core 1.x): the checkpoint that validates one raw partition against
the suite (``gx_suite``) and updates Data Docs.

The file data context lives in ``gx/`` (committed: ``great_expectations.yml`` with the pandas
datasource, and ``curated/<spec name>.yml``). Everything a run creates (the suite, validation
definition, checkpoint, results, Data Docs) goes under ``gx/uncommitted/`` or the Data Docs
directory, so running the gate never changes committed files. The suite is rebuilt from the
spec on every run, so an edited spec is always honoured.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from anomalyops.spec import FeatureSpec
from anomalyops.validation.gx_suite import build_suite, generated_expectations, load_curated

log = logging.getLogger(__name__)

DATASOURCE, ASSET, BATCH = "anomalyops_lake", "raw_partition", "whole_partition"
SITE = "local_site"


@dataclass
class GxResult:
    success: bool
    evaluated: int
    failures: list[dict] = field(default_factory=list)
    data_docs: str | None = None
    result_json: dict | None = None


# -- the context -----------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(gx_root: Path) -> Iterator[None]:
    """Serialize runs sharing one context: GX's file stores are not safe for parallel writers."""
    lock_dir = Path(gx_root) / "uncommitted"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / ".anomalyops.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def get_context(gx_root: Path, data_docs_dir: Path):
    """The committed file context, with Data Docs pointed at ``data_docs_dir`` (in memory only)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    gx_root = Path(gx_root)
    if not (gx_root / "great_expectations.yml").exists():
        raise FileNotFoundError(f"no GX data context at {gx_root} (great_expectations.yml missing)")
    context = gx.get_context(mode="file", project_root_dir=str(gx_root.parent))
    if Path(context.root_directory).resolve() != gx_root.resolve():
        raise ValueError(f"GX context root must be a directory named 'gx', got {gx_root}")
    # Not saved: the committed great_expectations.yml stays as it is.
    context.variables.data_docs_sites = {
        SITE: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(Path(data_docs_dir).resolve()) + "/",
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    }
    return context


def _batch_definition(context):
    ds = context.data_sources.get(DATASOURCE)
    return ds.get_asset(ASSET).get_batch_definition(BATCH)


def run_checkpoint(
    df: pd.DataFrame,
    day: dt.date,
    spec: FeatureSpec,
    *,
    gx_root: Path,
    data_docs_dir: Path,
    examples: int = 5,
) -> GxResult:
    """Validate one partition with the spec's suite; update Data Docs; summarize failures."""
    import great_expectations as gx

    start = pd.Timestamp(day, tz="UTC")
    params = {"day_start": start, "day_end": start + pd.Timedelta(days=1)}
    with _locked(gx_root):
        context, checkpoint = _prepared(spec, gx_root, data_docs_dir, examples)
        result = checkpoint.run(
            batch_parameters={"dataframe": df},
            expectation_parameters=params,
            run_id=gx.RunIdentifier(run_name=f"ds={day.isoformat()}"),
        )
        docs = _docs_url(context, result)
    (validation,) = result.run_results.values()
    failures = [summarize(r, examples) for r in validation.results if not r.success]
    return GxResult(
        success=bool(validation.success),
        evaluated=len(validation.results),
        failures=failures,
        data_docs=docs,
        result_json=validation.to_json_dict(),
    )


_PREPARED: dict[tuple, tuple] = {}
"""(gx_root, Data Docs dir, suite, examples) -> (context, checkpoint), for this process."""


def _prepared(spec: FeatureSpec, gx_root: Path, data_docs_dir: Path, examples: int):
    """The context and the saved checkpoint that runs the spec's suite.

    Saving the suite, validation definition and checkpoint costs ~2 s a day (GX serialises
    every expectation several times); a process that gates several days (``anomalyops
    ingest-days``, ``make run``) saves them once per suite and reuses them. A changed spec or
    curated file is a new key, so it is saved afresh.
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    curated = load_curated(gx_root, spec)
    key = (
        str(Path(gx_root).resolve()),
        str(Path(data_docs_dir).resolve()),
        json.dumps([generated_expectations(spec), curated], sort_keys=True, default=str),
        examples,
    )
    if key in _PREPARED:
        return _PREPARED[key]
    context = get_context(gx_root, data_docs_dir)
    suite = context.suites.add_or_update(build_suite(spec, curated))
    vd = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(
            name=f"{spec.name}__raw", data=_batch_definition(context), suite=suite
        )
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{spec.name}__gate",
            validation_definitions=[vd],
            actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[SITE])],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": examples},
        )
    )
    _PREPARED.clear()  # one suite at a time: a process rarely gates two specs
    _PREPARED[key] = (context, checkpoint)
    return context, checkpoint


def _docs_url(context, result) -> str | None:
    """The Data Docs page of this validation (falling back to the site index)."""
    try:
        (identifier,) = result.run_results.keys()
        urls = context.get_docs_sites_urls(resource_identifier=identifier, site_name=SITE)
        if urls and urls[0].get("site_url"):
            return urls[0]["site_url"]
    except Exception:  # the index is still useful when the page lookup fails
        log.debug("no per-validation Data Docs URL", exc_info=True)
    urls = context.get_docs_sites_urls(site_name=SITE)
    return urls[0]["site_url"] if urls else None


def summarize(r, examples: int = 5) -> dict:
    """One failed expectation as ``{"expectation", "column", "kwargs", "observed", ...}``."""
    cfg = r.expectation_config
    kwargs = {k: _jsonable(v) for k, v in cfg.kwargs.items() if k not in ("batch_id",)}
    res = r.result or {}
    out = {
        "expectation": cfg.type,
        "column": kwargs.get("column") or kwargs.get("column_list"),
        "kwargs": kwargs,
        "source": (cfg.meta or {}).get("source"),
        "observed": describe_observed(cfg.type, kwargs, res, r.exception_info),
    }
    for key in ("observed_value", "element_count", "unexpected_count", "unexpected_percent"):
        if key in res:
            out[key] = _jsonable(res[key])
    if res.get("partial_unexpected_list"):
        out["unexpected_examples"] = [
            _jsonable(v) for v in res["partial_unexpected_list"][:examples]
        ]
    error = _exception_message(r.exception_info)
    if error:
        out["error"] = error
    return out


def describe_observed(type_: str, kwargs: dict, res: dict, exception_info=None) -> str:
    """A short human sentence of what was observed (used in emails and gate.json)."""
    error = _exception_message(exception_info)
    if error:
        return f"could not be evaluated: {error}"
    if "unexpected_count" in res and res.get("unexpected_count") is not None:
        n, pct = res["unexpected_count"], res.get("unexpected_percent") or 0.0
        total = res.get("element_count")
        head = f"{n} of {total} values ({pct:.2f}%)" if total is not None else f"{n} values"
        examples = res.get("partial_unexpected_list") or []
        shown = ", ".join(_short(v) for v in examples[:3])
        return f"{head} unexpected" + (f", e.g. {shown}" if shown else "")
    if "observed_value" in res:
        return f"observed {_short(res['observed_value'])}"
    return "failed"


def _exception_message(exception_info) -> str | None:
    if not exception_info:
        return None
    infos = (
        exception_info.values() if "raised_exception" not in exception_info else [exception_info]
    )
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            msg = str(info.get("exception_message") or "error").strip().splitlines()
            return msg[0][:300] if msg else "error"
    return None


def _short(value) -> str:
    value = _jsonable(value)
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:g}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _jsonable(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return _jsonable(value.item())
        except (ValueError, AttributeError):
            pass
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
