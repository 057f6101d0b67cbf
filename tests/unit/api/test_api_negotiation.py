"""Reply-format negotiation (format parameter, Accept header)."""

from __future__ import annotations

import pytest

from anomalyops_api.errors import ApiError
from anomalyops_api.routes.common import negotiate
from anomalyops_api.scoring import OutputFormat

CSV, JSON, PARQUET = OutputFormat.CSV, OutputFormat.JSON, OutputFormat.PARQUET


@pytest.mark.parametrize(
    ("accept", "want"),
    [
        (None, CSV),
        ("*/*", CSV),
        ("text/csv", CSV),
        ("application/json", JSON),
        ("application/json, text/csv;q=0.5", JSON),
        ("text/csv;q=0.2, application/json;q=0.9", JSON),
        ("application/*, text/csv", CSV),  # exact type beats a wildcard at equal quality
        ("text/html, application/json;q=0.8, */*;q=0.1", JSON),
        ("application/json;q=0, text/csv", CSV),
        ("application/vnd.apache.parquet", PARQUET),
        ("application/x-parquet, text/csv;q=0.5", PARQUET),
        ("application/*, application/vnd.apache.parquet", PARQUET),
    ],
)
def test_accept(accept: str | None, want: OutputFormat) -> None:
    assert negotiate(None, accept) is want


def test_format_parameter_wins_over_accept() -> None:
    assert negotiate(JSON, "text/csv") is JSON
    assert negotiate(CSV, "application/json") is CSV


@pytest.mark.parametrize("accept", ["application/xml", "image/png, text/html", "text/csv;q=0"])
def test_unservable_accept_is_406(accept: str) -> None:
    with pytest.raises(ApiError) as err:
        negotiate(None, accept)
    assert err.value.status_code == 406
