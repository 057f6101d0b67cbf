"""The served-model contract: the atomic publish, the metadata on disk, and the doc agreeing
with the module (docs/model-contract.md)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from anomalyops import model_contract as contract

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "model-contract.md"
# anomalyops_model.json as the Pusher wrote it before the contract module existed.
METADATA_FIXTURE = REPO / "tests" / "data" / "model_contract" / "anomalyops_model.json"


def _fake_model(path):
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"pb")
    (path / "variables" / "variables.index").write_bytes(b"idx")


def test_publish_writes_temp_then_renames(tmp_path):
    seen = []

    def write(path):
        seen.append(path)
        _fake_model(path)

    final = contract.publish(tmp_path, 42, write, {"version": 42})
    assert seen[0].parent.parent == tmp_path and seen[0].parent.name.startswith(".tmp-42-")
    assert final == tmp_path / "42"
    assert json.loads((final / contract.METADATA_FILE).read_text()) == {"version": 42}
    assert (final / "saved_model.pb").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["42"]  # the temp dir is gone


def test_failed_write_leaves_nothing_behind(tmp_path):
    def write(path):
        path.mkdir()
        (path / "half").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        contract.publish(tmp_path, 7, write, {})
    assert list(tmp_path.iterdir()) == []


def test_writer_without_saved_model_is_refused(tmp_path):
    with pytest.raises(contract.PushError, match=r"saved_model\.pb"):
        contract.publish(tmp_path, 7, lambda p: p.mkdir(), {})
    assert list(tmp_path.iterdir()) == []


def test_existing_version_is_never_overwritten_the_next_free_number_is_taken(tmp_path):
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "saved_model.pb").write_bytes(b"old")
    (tmp_path / ".tmp-6").mkdir()  # an old-style leftover with the next number
    (tmp_path / ".tmp-6" / "junk").write_text("x")
    final = contract.publish(tmp_path, 5, _fake_model, {"version": 5, "model_name": "m"})
    assert final == tmp_path / "6"
    assert json.loads((final / contract.METADATA_FILE).read_text()) == {
        "version": 6,
        "model_name": "m",
    }
    assert (tmp_path / "5" / "saved_model.pb").read_bytes() == b"old"
    assert not (final / "junk").exists()


def test_two_pushes_in_the_same_second_get_two_versions(tmp_path):
    import threading

    barrier = threading.Barrier(2)
    finals, errors = [], []

    def slow_model(path):
        _fake_model(path)
        barrier.wait(timeout=10)  # both are mid-write at once, with the same version number

    def push(tag):
        try:
            finals.append(contract.publish(tmp_path, 1_764_000_000, slow_model, {"tag": tag}))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(f.name for f in finals) == ["1764000000", "1764000001"]
    for final in finals:
        meta = json.loads((final / contract.METADATA_FILE).read_text())
        assert meta["version"] == int(final.name)
        assert (final / "variables" / "variables.index").exists()
    assert {
        meta["tag"]
        for meta in (json.loads((f / contract.METADATA_FILE).read_text()) for f in finals)
    } == {"a", "b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1764000000", "1764000001"]


def test_a_rename_race_lost_to_another_push_takes_the_next_number(tmp_path, monkeypatch):
    real_rename = contract.os.rename

    def rename(src, dst):
        if Path(dst).name == "9" and not Path(dst).exists():
            # Another process wins version 9 between our check and our rename.
            (Path(dst) / "variables").mkdir(parents=True)
            (Path(dst) / "saved_model.pb").write_bytes(b"theirs")
        return real_rename(src, dst)

    monkeypatch.setattr(contract.os, "rename", rename)
    final = contract.publish(tmp_path, 9, _fake_model, {"version": 9})
    assert final.name == "10" and (tmp_path / "9" / "saved_model.pb").read_bytes() == b"theirs"


def test_the_serving_dir_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_rename, real_fsync_dir = contract.os.rename, contract.fsync_dir
    monkeypatch.setattr(
        contract.os, "rename", lambda a, b: (events.append(("rename", Path(b))), real_rename(a, b))
    )
    monkeypatch.setattr(
        contract, "fsync_dir", lambda p: (events.append(("fsync", Path(p))), real_fsync_dir(p))
    )
    final = contract.publish(tmp_path, 3, _fake_model, {})
    assert events.index(("rename", final)) < events.index(("fsync", tmp_path))
    # The model's own files were flushed before the rename made them visible.
    assert any(
        kind == "fsync" and p.name == "variables"
        for kind, p in events[: events.index(("rename", final))]
    )


def test_metadata_follows_the_contract():
    meta = contract.build_metadata(
        model_name="anomaly_detector",
        version=1764230400,
        created_at=dt.datetime(2026, 11, 27, 9, tzinfo=dt.timezone.utc),
        training_spans=["2026-11-13", "2026-11-26"],
        threshold=3.71,
        threshold_quantile=0.99,
        metrics={"auc_pr": 0.8, "f1": 0.7, "false_alarm_rate": 0.01, "missed_alarm_rate": 0.3,
                 "mean_score": 1.2},
        feature_spec={"name": "x"},
        feature_spec_fingerprint="abc",
        pipeline_run_id="run-1",
    )  # fmt: skip
    assert meta["created_at"] == "2026-11-27T09:00:00+00:00"
    assert meta["metrics"] == {
        "auc_pr": 0.8, "f1": 0.7, "false_alarm_rate": 0.01, "missed_alarm_rate": 0.3
    }  # fmt: skip
    assert list(meta) == [
        "model_name", "version", "created_at", "training_spans", "threshold",
        "threshold_quantile", "metrics", "feature_spec", "feature_spec_fingerprint",
        "pipeline_run_id",
    ]  # fmt: skip


def test_metrics_are_empty_without_labels():
    assert contract.contract_metrics({"mean_score": 1.0, "alarm_rate": 0.01}) == {}
    assert contract.contract_metrics({"auc_pr": float("nan"), "f1": 0.0}) == {}


def test_the_evaluation_report_is_pushed_with_the_model_and_named_in_the_metadata(tmp_path):
    report = b"<!DOCTYPE html><html><body>BLESSED</body></html>"
    meta = contract.build_metadata(
        model_name="anomaly_detector",
        version=9,
        created_at=dt.datetime(2026, 11, 27, 9, tzinfo=dt.timezone.utc),
        training_spans=["2026-11-13", "2026-11-26"],
        threshold=3.71,
        threshold_quantile=0.99,
        metrics={},
        feature_spec={"name": "x"},
        feature_spec_fingerprint="abc",
        pipeline_run_id=None,
        evaluation_report="evaluation_report.html",
    )
    seen_in_temp = []

    def write(path):
        _fake_model(path)
        seen_in_temp.append(path)

    final = contract.publish(tmp_path, 9, write, meta, files={"evaluation_report.html": report})
    written = json.loads((final / contract.METADATA_FILE).read_text())
    assert written["evaluation_report"] == "evaluation_report.html"
    # Relative to the version directory, and there with the model from the first moment.
    assert (final / written["evaluation_report"]).read_bytes() == report
    assert not seen_in_temp[0].exists()  # it travelled with the rename


@pytest.mark.parametrize(
    "name",
    ["../escape.html", "sub/report.html", "", "..", "saved_model.pb", contract.METADATA_FILE],
)
def test_extra_files_cannot_leave_the_version_dir_or_replace_model_files(tmp_path, name):
    with pytest.raises(contract.PushError, match="refusing extra file name"):
        contract.publish(tmp_path / "serving", 3, _fake_model, {}, files={name: b"x"})
    assert list((tmp_path / "serving").iterdir()) == []
    assert not (tmp_path / "escape.html").exists()


# -- the metadata on disk ------------------------------------------------------------------


def test_metadata_in_the_pushers_shape_reads_and_round_trips():
    text = METADATA_FIXTURE.read_text(encoding="utf-8")
    meta = contract.ModelMetadata.model_validate_json(text)
    assert meta.version == 1764230400 and meta.threshold == 3.71
    assert meta.model_extra == {"evaluation_report": "evaluation_report.html"}
    on_disk = json.loads(text)
    assert meta.model_dump(mode="json") == on_disk  # nothing lost, nothing added


def test_build_metadata_and_publish_write_the_same_bytes_as_before(tmp_path):
    before = json.loads(METADATA_FIXTURE.read_text(encoding="utf-8"))
    meta = contract.build_metadata(
        model_name=before["model_name"],
        version=before["version"],
        created_at=dt.datetime.fromisoformat(before["created_at"]),
        training_spans=before["training_spans"],
        threshold=before["threshold"],
        threshold_quantile=before["threshold_quantile"],
        metrics=before["metrics"] | {"mean_score": 1.2},
        feature_spec=before["feature_spec"],
        feature_spec_fingerprint=before["feature_spec_fingerprint"],
        pipeline_run_id=before["pipeline_run_id"],
        evaluation_report=contract.EVALUATION_REPORT_FILE,
    )
    report = {contract.EVALUATION_REPORT_FILE: b"<html></html>"}
    final = contract.publish(tmp_path, before["version"], _fake_model, meta, files=report)
    written = (final / contract.METADATA_FILE).read_text(encoding="utf-8")
    assert written == METADATA_FIXTURE.read_text(encoding="utf-8")


def test_metadata_without_the_optional_fields_still_reads():
    minimal = {"model_name": "m", "version": 1, "threshold": 3.0, "feature_spec": {}}
    meta = contract.ModelMetadata.model_validate(minimal)
    assert meta.metrics == {} and meta.pipeline_run_id is None and not meta.model_extra


# -- the doc and the module agree ----------------------------------------------------------


def _section(doc: str, heading: str) -> str:
    """The text under the first ``## <heading>...`` up to the next ``## ``."""
    match = re.search(rf"^## {re.escape(heading)}.*?$(.*?)(?=^## |\Z)", doc, re.M | re.S)
    assert match, f"docs/model-contract.md has no section {heading!r}"
    return match.group(1)


def test_the_doc_names_the_signature_and_every_output_with_its_dtype():
    doc = DOC.read_text(encoding="utf-8")
    assert f"## Signature `{contract.SIGNATURE}`" in doc
    listed = dict(re.findall(r"^  - `(\w+)` \(`tf\.(\w+)`", _section(doc, "Signature"), re.M))
    expected = contract.OUTPUT_DTYPES | {contract.EXPLANATION_OUTPUT: contract.EXPLANATION_DTYPE}
    assert listed == expected


def test_the_doc_names_every_file_of_a_version():
    doc = DOC.read_text(encoding="utf-8")
    layout = _section(doc, "Layout")
    complete = re.search(r"\*\*complete\*\* when (.*?) all exist", layout, re.S)
    assert complete and tuple(re.findall(r"`([^`]+)`", complete.group(1))) == (
        contract.REQUIRED_FILES
    )
    tree = re.search(r"```\n(.*?)```", layout, re.S).group(1)
    named = {line.split("#")[0].strip() for line in tree.splitlines()[1:]}
    for name in (*contract.REQUIRED_FILES, contract.EVALUATION_REPORT_FILE):
        assert name in named, name
    assert f"/{contract.TMP_PREFIX}<version>-<random>/" in layout


def test_the_doc_shows_every_metadata_field_and_metric():
    doc = DOC.read_text(encoding="utf-8")
    section = _section(doc, f"`{contract.METADATA_FILE}`")
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    fields = set(contract.ModelMetadata.model_fields) | {contract.EVALUATION_REPORT_FIELD}
    assert set(example) == fields
    assert tuple(example["metrics"]) == contract.CONTRACT_METRICS
    assert contract.ModelMetadata.model_validate(example).model_dump(mode="json") == example
