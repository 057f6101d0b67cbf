"""The scoring API through HTTP, in-process, with a real SavedModel of the contract."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from anomalyops_api.main import create_app
from tests.helpers.api import (
    ADMIN_KEY,
    FEATURES,
    KEY,
    OTHER_KEY,
    api_settings,
    csv_bytes,
    expected,
    make_frame,
    parquet_bytes,
    publish,
    read_csv_reply,
    upload,
)

MAX_UPLOAD = 2_000_000


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("http")
    publish(root / "serving", 1700000000, scale=1.0, threshold=3.0)
    settings = api_settings(
        root,
        keys=[KEY, OTHER_KEY],
        admin_key=ADMIN_KEY,
        max_upload_bytes=MAX_UPLOAD,
        csv_block_bytes=64 * 1024,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def assert_error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str)
    for word in words:
        assert word in body["detail"], body
    return body


# -- happy paths -------------------------------------------------------------------------


def test_csv_upload_is_scored_with_version_and_threshold(client: TestClient) -> None:
    frame = make_frame(3000)
    r = upload(client, csv_bytes(frame))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["x-model-version"] == "1700000000"
    assert float(r.headers["x-model-threshold"]) == 3.0
    assert r.headers["x-rows-scored"] == "3000"
    reply = read_csv_reply(r.content)
    assert reply["timestamp"].tolist() == frame["timestamp"].tolist()
    np.testing.assert_allclose(reply["anomaly_score"], expected(frame), rtol=1e-5)
    assert (reply["is_anomaly"] == (reply["anomaly_score"] > 3.0)).all()
    assert reply["is_anomaly"].any() and not reply["is_anomaly"].all()
    assert set(reply["model_version"]) == {1700000000}


def test_explain_names_each_flagged_rows_top_features(client: TestClient) -> None:
    frame = make_frame(500, seed=5)
    frame.loc[3, FEATURES[1]] = frame[FEATURES[1]].max() * 40
    r = upload(client, csv_bytes(frame), params={"format": "json", "explain": 2})
    assert r.status_code == 200, r.text
    rows = r.json()["results"]
    assert rows[3]["is_anomaly"] and rows[3]["top_features"][0]["feature"] == FEATURES[1]
    assert all(len(x["top_features"]) == 2 for x in rows if x["is_anomaly"])
    assert all(x["top_features"] is None for x in rows if not x["is_anomaly"])
    too_many = upload(client, csv_bytes(frame), params={"explain": 1000})
    assert too_many.status_code == 422 and "explain" in too_many.text


@pytest.mark.parametrize(
    ("data", "name", "ctype"),
    [
        (lambda f: gzip.compress(csv_bytes(f)), "d.csv.gz", "application/gzip"),
        (lambda f: gzip.compress(csv_bytes(f)), "d.csv.gz", "text/csv"),  # httpx's guess
        (parquet_bytes, "d.parquet", "application/vnd.apache.parquet"),
        (parquet_bytes, "d.parquet", "application/octet-stream"),
    ],
)
def test_gzip_and_parquet_uploads(client: TestClient, data, name: str, ctype: str) -> None:
    frame = make_frame(500, seed=5)
    r = upload(client, data(frame), name=name, content_type=ctype)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(
        read_csv_reply(r.content)["anomaly_score"], expected(frame), rtol=1e-5
    )


@pytest.mark.parametrize(
    ("params", "accept", "want"),
    [
        ({}, "application/json", "json"),
        ({"format": "json"}, "text/csv", "json"),
        ({"format": "csv"}, "application/json", "csv"),
        ({}, None, "csv"),
    ],
)
def test_reply_format_by_accept_or_parameter(client: TestClient, params, accept, want) -> None:
    headers = {"Accept": accept} if accept else {}
    r = upload(client, csv_bytes(make_frame(20)), params=params, headers=headers)
    assert r.status_code == 200
    if want == "json":
        body = r.json()
        assert body["model_version"] == 1700000000 and body["threshold"] == 3.0
        assert body["rows"] == 20 and set(body["results"][0]) == {
            "station_id",
            "timestamp",
            "anomaly_score",
            "is_anomaly",
        }
    else:
        assert r.headers["content-type"].startswith("text/csv")


def test_raw_body_upload(client: TestClient) -> None:
    frame = make_frame(50)
    r = client.post(
        "/v1/score",
        content=csv_bytes(frame),
        headers={"Content-Type": "text/csv", "X-API-Key": KEY},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-rows-scored"] == "50"


def test_spooled_files_are_cleaned_up(client: TestClient) -> None:
    spool = client.app.state.settings.spool_dir
    upload(client, csv_bytes(make_frame(10)))
    upload(client, csv_bytes(make_frame(10).drop(columns=["vibration"])))
    assert [p.name for p in spool.glob("anomalyops-score-*")] == []


# -- bad input ---------------------------------------------------------------------------


def test_missing_columns_422_names_them(client: TestClient) -> None:
    r = upload(client, csv_bytes(make_frame(5).drop(columns=["vibration", "flow_rate"])))
    body = assert_error(r, 422, "vibration", "flow_rate")
    assert body["columns"] == ["vibration", "flow_rate"]


def test_unparsable_value_422_names_row_and_column(client: TestClient) -> None:
    frame = make_frame(4000).astype({"motor_current": object})
    frame.loc[3210, "motor_current"] = "twelve"
    body = assert_error(upload(client, csv_bytes(frame)), 422, "row 3211", "motor_current")
    assert (body["row"], body["column"]) == (3211, "motor_current")


def test_missing_value_422(client: TestClient) -> None:
    frame = make_frame(10)
    frame.loc[4, "vibration"] = np.nan
    body = assert_error(upload(client, csv_bytes(frame)), 422, "missing value")
    assert (body["row"], body["column"]) == (5, "vibration")


@pytest.mark.parametrize(
    ("data", "ctype", "status", "words"),
    [
        (b"", "text/csv", 400, ["empty"]),
        (csv_bytes(make_frame(0)), "text/csv", 422, ["no data rows"]),
        (b"a,b\n1,2\n", "image/png", 415, ["image/png"]),
        (csv_bytes(make_frame(3)) + b"x,y\n", "text/csv", 400, ["malformed CSV"]),
        ("station_id,inlet_pressure\n".encode("utf-16"), "text/csv", 400, ["UTF-8"]),
        (b"not parquet at all", "application/vnd.apache.parquet", 400, ["Parquet"]),
        (b"not gzip", "application/gzip", 400, ["gzip"]),
    ],
    ids=["empty", "header-only", "content-type", "malformed", "utf16", "fake-parquet", "fake-gzip"],
)
def test_bad_files(client: TestClient, data: bytes, ctype: str, status: int, words) -> None:
    assert_error(upload(client, data, content_type=ctype), status, *words)


def test_over_the_size_limit_is_413(client: TestClient) -> None:
    big = csv_bytes(make_frame(40_000))
    assert len(big) > MAX_UPLOAD
    assert_error(upload(client, big), 413, "limit")
    r = client.post(
        "/v1/score", content=big, headers={"Content-Type": "text/csv", "X-API-Key": KEY}
    )
    assert_error(r, 413, "limit")


def test_multipart_without_a_file_field_is_422(client: TestClient) -> None:
    r = client.post(
        "/v1/score",
        data={"other": "x"},
        files={"attachment": ("a.csv", b"a\n1\n")},
        headers={"X-API-Key": KEY},
    )
    assert_error(r, 422, "'file'")


def test_wrong_request_content_type_is_415(client: TestClient) -> None:
    r = client.post("/v1/score", json={"rows": []}, headers={"X-API-Key": KEY})
    assert_error(r, 415, "application/json")


def test_bad_format_parameter_and_accept(client: TestClient) -> None:
    body = assert_error(upload(client, b"x", params={"format": "xml"}), 422, "format")
    assert body["errors"][0]["loc"] == "query.format"
    assert_error(upload(client, b"x", headers={"Accept": "application/xml"}), 406, "text/csv")


# -- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/v1/score"),
        ("post", "/v1/jobs"),
        ("get", "/v1/models"),
        ("get", "/v1/models/active"),
        ("get", "/v1/jobs/" + "0" * 32),
    ],
)
def test_endpoints_need_a_key(client: TestClient, method: str, path: str) -> None:
    r = getattr(client, method)(path)
    assert_error(r, 401, "X-API-Key")
    assert r.headers["www-authenticate"] == "ApiKey"
    assert_error(getattr(client, method)(path, headers={"X-API-Key": "nope"}), 401, "invalid")


def test_admin_endpoints_need_the_admin_key(client: TestClient) -> None:
    assert_error(client.post("/admin/reload"), 401)
    assert_error(client.post("/admin/reload", headers={"X-API-Key": KEY}), 403, "admin key")
    r = client.post("/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert r.status_code == 200 and r.json()["model_version"] == 1700000000
    # The admin key may also score.
    assert upload(client, csv_bytes(make_frame(3)), key=ADMIN_KEY).status_code == 200


def test_probes_and_metrics_need_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {
        "status": "ready",
        "model_version": 1700000000,
        "detail": None,
    }
    upload(client, csv_bytes(make_frame(7)))
    text = client.get("/metrics").text
    assert 'anomalyops_api_requests_total{method="POST",route="/v1/score",status="200"}' in text
    assert "anomalyops_api_model_version 1.7e+09" in text
    assert 'anomalyops_api_request_duration_seconds_bucket{le="0.005",method="GET"' in text
    rows = [
        line
        for line in text.splitlines()
        if line.startswith('anomalyops_api_rows_scored_total{source="sync"}')
    ]
    assert rows and float(rows[0].split()[-1]) >= 7
    assert "anomalyops_api_model_reloads_total 1.0" in text
    assert "anomalyops_api_model_reload_failures_total 0.0" in text


def test_models_listing(client: TestClient) -> None:
    r = client.get("/v1/models", headers={"X-API-Key": KEY})
    assert r.status_code == 200
    body = r.json()
    assert body["active_version"] == 1700000000 and body["policy"] == "latest"
    (only,) = body["versions"]
    assert only["state"] == "serving"
    assert only["metadata"]["threshold"] == 3.0
    assert only["metadata"]["training_spans"] == ["2026-11-13", "2026-11-26"]
    active = client.get("/v1/models/active", headers={"X-API-Key": KEY}).json()
    assert active["feature_columns"] == FEATURES
    assert active["key_columns"] == ["station_id", "timestamp"]


def test_openapi_documents_every_route_with_reply_models_and_examples(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    for path in [
        "/v1/score",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/result",
        "/v1/models",
        "/v1/models/active",
        "/admin/reload",
        "/admin/pin",
        "/admin/unpin",
        "/healthz",
        "/readyz",
        "/metrics",
    ]:
        assert path in paths, path
    score = paths["/v1/score"]["post"]
    assert "multipart/form-data" in score["requestBody"]["content"]
    assert set(score["responses"]) >= {"200", "400", "401", "413", "415", "422", "503"}
    assert "text/csv" in score["responses"]["200"]["content"]
    schemas = doc["components"]["schemas"]
    for name in [
        "ScoreResponse",
        "ErrorResponse",
        "JobResponse",
        "ModelsResponse",
        "ReloadResponse",
        "ReadyResponse",
    ]:
        assert schemas[name].get("examples"), name
    assert {"ApiKey", "AdminKey"} <= set(doc["components"]["securitySchemes"])
    json.dumps(doc)
