"""Read ExampleValidator's anomalies and decide whether the run may go on. No TFX needed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tensorflow_metadata.proto.v0 import anomalies_pb2


class DataAnomaliesError(RuntimeError):
    """ExampleValidator found anomalies that are not allowed; the message lists them."""


@dataclass(frozen=True)
class Finding:
    split: str
    feature: str
    types: tuple[str, ...]
    description: str

    def __str__(self) -> str:
        return f"[{self.split}] {self.feature}: {self.description} ({', '.join(self.types)})"


def _type_names(info: anomalies_pb2.AnomalyInfo) -> tuple[str, ...]:
    names = [anomalies_pb2.AnomalyInfo.Type.Name(reason.type) for reason in info.reason]
    return tuple(names) or (anomalies_pb2.AnomalyInfo.Type.Name(info.severity),)


def _description(info: anomalies_pb2.AnomalyInfo) -> str:
    return (
        info.description
        or info.short_description
        or "; ".join(r.description or r.short_description for r in info.reason)
    )


def findings(anomalies_by_split: Mapping[str, anomalies_pb2.Anomalies]) -> list[Finding]:
    """Every anomaly of every split, feature-level and dataset-level."""
    out: list[Finding] = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            out.append(Finding(split, feature, _type_names(info), _description(info)))
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            out.append(Finding(split, "(dataset)", _type_names(info), _description(info)))
    return out


def blocking(found: Iterable[Finding], allowed_types: Iterable[str] = ()) -> list[Finding]:
    """Findings with at least one anomaly type outside ``allowed_types``."""
    allowed = set(allowed_types)
    return [f for f in found if not set(f.types) <= allowed]


def check(
    anomalies_by_split: Mapping[str, anomalies_pb2.Anomalies], allowed_types: Iterable[str] = ()
) -> list[Finding]:
    """Return the allowed findings; raise :class:`DataAnomaliesError` naming the others."""
    found = findings(anomalies_by_split)
    bad = blocking(found, allowed_types)
    if bad:
        lines = "\n  ".join(str(f) for f in bad)
        raise DataAnomaliesError(
            f"ExampleValidator reported {len(bad)} anomal{'y' if len(bad) == 1 else 'ies'} "
            f"against the schema:\n  {lines}"
        )
    return [f for f in found if f not in bad]
