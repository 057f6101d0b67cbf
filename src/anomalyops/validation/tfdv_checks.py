"""TFDV: statistics, validation against the curated schema, and divergence from a baseline day.

The divergences (Jensen-Shannon for numeric features, L-infinity distance for categorical
(string) columns, vs the previous validated day) are information only: histogram distances on
a few hundred rows are mostly sampling noise, so whether a day drifted is decided by
:mod:`anomalyops.validation.drift`, whose tests account for the sample sizes. The label is
evaluation-only and is never compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from anomalyops.spec import FeatureSpec
from anomalyops.validation.schema import TRAINING

if TYPE_CHECKING:
    from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

JS, LINF = "jensen_shannon_divergence", "infinity_norm"
_DRIFT_REASONS = {"COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH", "COMPARATOR_L_INFTY_HIGH"}
_INFORMATION_ONLY = 1.0  # both distances are <= 1: TFDV measures them and never flags them


@dataclass
class TfdvResult:
    anomalies: list[dict] = field(default_factory=list)
    """Schema anomalies: ``{"feature", "short_description", "description", "reasons"}``."""
    drift: list[dict] = field(default_factory=list)
    """Every divergence measured (information): ``{"feature", "comparator", "value"}``."""
    proto: anomalies_pb2.Anomalies | None = None


def drift_comparators(spec: FeatureSpec, schema: schema_pb2.Schema) -> dict[str, tuple[str, float]]:
    """``{column: (comparator, threshold)}`` for every column a divergence is measured on."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    out: dict[str, tuple[str, float]] = {}
    for name in spec.feature_names:
        out[name] = (JS, _INFORMATION_ONLY)
    for feat in schema.feature:
        # Categorical columns other than features: the entity (a new mix of entities).
        if feat.name not in out and feat.type == schema_pb2.BYTES:
            out[feat.name] = (LINF, _INFORMATION_ONLY)
    return out


def with_drift_comparators(schema: schema_pb2.Schema, spec: FeatureSpec) -> schema_pb2.Schema:
    import tensorflow_data_validation as tfdv

    schema = type(schema).FromString(schema.SerializeToString())
    for name, (comparator, threshold) in drift_comparators(spec, schema).items():
        getattr(tfdv.get_feature(schema, name).drift_comparator, comparator).threshold = threshold
    return schema


def validate(
    stats: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    spec: FeatureSpec,
    previous: statistics_pb2.DatasetFeatureStatisticsList | None = None,
) -> TfdvResult:
    """Schema anomalies of ``stats``, plus divergences from ``previous`` when given."""
    import tensorflow_data_validation as tfdv

    comparators = drift_comparators(spec, schema) if previous is not None else {}
    checked = with_drift_comparators(schema, spec) if previous is not None else schema
    proto = tfdv.validate_statistics(
        stats, checked, environment=TRAINING, previous_statistics=previous
    )
    result = TfdvResult(proto=proto)
    for name, info in sorted(proto.anomaly_info.items()):
        reasons = [r for r in info.reason if tfdv_reason_name(r.type) not in _DRIFT_REASONS]
        if not reasons:
            continue
        result.anomalies.append(
            {
                "feature": name,
                "short_description": "; ".join(r.short_description for r in reasons),
                "description": " ".join(r.description for r in reasons),
                "reasons": [tfdv_reason_name(r.type) for r in reasons],
            }
        )
    if proto.HasField("dataset_anomaly_info"):
        info = proto.dataset_anomaly_info
        result.anomalies.append(
            {
                "feature": "(dataset)",
                "short_description": info.short_description,
                "description": info.description,
                "reasons": [tfdv_reason_name(r.type) for r in info.reason],
            }
        )
    measured = {}
    for info in proto.drift_skew_info:
        name = info.path.step[0] if info.path.step else ""
        for m in info.drift_measurements:
            measured[name] = m.value
    for name, (comparator, _) in sorted(comparators.items()):
        value = measured.get(name)
        result.drift.append(
            {
                "feature": name,
                "comparator": comparator,
                "value": None if value is None else round(float(value), 6),
            }
        )
    return result


def tfdv_reason_name(code: int) -> str:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    return anomalies_pb2.AnomalyInfo.Type.Name(code)


def statistics_html(
    stats: statistics_pb2.DatasetFeatureStatisticsList,
    previous: statistics_pb2.DatasetFeatureStatisticsList | None = None,
    *,
    ds: str,
    baseline: str | None = None,
) -> str:
    """A standalone HTML page (Facets Overview) of the day's statistics vs the baseline's."""
    from tensorflow_data_validation.utils.display_util import get_statistics_html

    kwargs = {"lhs_statistics": stats, "lhs_name": ds}
    if previous is not None:
        kwargs.update(rhs_statistics=previous, rhs_name=f"{baseline} (baseline)")
    body = get_statistics_html(**kwargs)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>TFDV statistics {ds}</title></head><body style='font-family:sans-serif'>"
        f"<h2>TFDV statistics for ds={ds}"
        + (f" compared with {baseline}" if baseline else " (no baseline)")
        + "</h2>"
        + summary_table(stats, previous)
        # Facets Overview loads its viewer from the web; the table above works offline.
        + f"<h3>Facets Overview</h3>{body}</body></html>"
    )


def _numeric_summary(stats) -> dict[str, dict]:
    out = {}
    for feat in stats.datasets[0].features if stats.datasets else []:
        name = feat.path.step[0] if feat.path.step else feat.name
        if feat.HasField("num_stats"):
            n = feat.num_stats
            common = n.common_stats
            out[name] = {
                "present": common.num_non_missing,
                "missing": common.num_missing,
                "mean": n.mean,
                "std": n.std_dev,
                "min": n.min,
                "max": n.max,
            }
        elif feat.HasField("string_stats"):
            common = feat.string_stats.common_stats
            out[name] = {
                "present": common.num_non_missing,
                "missing": common.num_missing,
                "unique": feat.string_stats.unique,
            }
    return out


def summary_table(stats, previous=None) -> str:
    """A plain HTML table of per-column statistics (with the baseline's mean when given)."""
    import html

    cur, prev = _numeric_summary(stats), _numeric_summary(previous) if previous else {}
    head = ["column", "present", "missing", "mean", "std", "min", "max", "unique"]
    if prev:
        head.append("baseline mean")
    rows = []
    for name, s in cur.items():
        cells = [name] + [
            f"{s[k]:.4g}" if isinstance(s.get(k), float) else str(s.get(k, "")) for k in head[1:8]
        ]
        if prev:
            base = prev.get(name, {}).get("mean")
            cells.append("" if base is None else f"{base:.4g}")
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    return (
        "<table border='1' cellpadding='4' cellspacing='0'>"
        f"<tr>{header}</tr>{''.join(rows)}</table>"
    )


def serialize(proto) -> bytes:
    return proto.SerializeToString()


def to_json(proto) -> bytes:
    from google.protobuf import json_format

    return json_format.MessageToJson(proto, indent=2).encode()


def to_pbtxt(proto) -> bytes:
    from google.protobuf import text_format

    return text_format.MessageToString(proto).encode()


def parse_statistics(data: bytes) -> statistics_pb2.DatasetFeatureStatisticsList:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    return statistics_pb2.DatasetFeatureStatisticsList.FromString(data)
