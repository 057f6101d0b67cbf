"""Version discovery and the serve/skip/pin policy, with a numpy stand-in for TensorFlow."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from anomalyops_api.demo_model import metadata
from anomalyops_api.metrics import ApiMetrics
from anomalyops_api.model import ModelLoadError
from anomalyops_api.registry import ModelRegistry, VersionNotFound
from anomalyops_api.serving_dir import scan_versions
from tests.helpers.api import SPEC, numpy_model


def make_version(
    root: Path, version: int | str, *, complete: bool = True, corrupt: bool = False
) -> Path:
    path = root / str(version)
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.index").write_bytes(b"idx")
    (path / "anomalyops_model.json").write_text(
        json.dumps(metadata(SPEC, int(version) if str(version).isdigit() else 0, threshold=3.0))
    )
    if complete:
        (path / "saved_model.pb").write_bytes(b"corrupt" if corrupt else b"ok")
    return path


class FakeLoader:
    """Loads numpy models; a saved_model.pb reading 'corrupt' fails like a bad proto."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, path: Path, version: int):
        self.calls.append(version)
        if (path / "saved_model.pb").read_bytes() == b"corrupt":
            raise ModelLoadError(f"{path}: tf.saved_model.load failed: bad proto")
        return numpy_model(version)


@pytest.fixture
def loader() -> FakeLoader:
    return FakeLoader()


def registry(root: Path, loader: FakeLoader, **kw) -> ModelRegistry:
    return ModelRegistry(root, loader=loader, metrics=ApiMetrics(), **kw)


def test_scan_counts_only_integer_named_complete_directories(tmp_path: Path) -> None:
    make_version(tmp_path, 3)
    make_version(tmp_path, 10)
    make_version(tmp_path, 11, complete=False)
    make_version(tmp_path, ".tmp-12")
    make_version(tmp_path, "latest")
    make_version(tmp_path, "٣")  # an Arabic-Indic digit: isdigit() says yes, the contract no
    (tmp_path / "99").write_text("a file, not a directory")
    found = {v.version: v.complete for v in scan_versions(tmp_path)}
    assert found == {3: True, 10: True, 11: False}
    assert scan_versions(tmp_path / "missing") == []


def test_newest_complete_version_is_served_and_partial_ignored(tmp_path: Path, loader) -> None:
    make_version(tmp_path, 1)
    reg = registry(tmp_path, loader)
    assert reg.refresh().version == 1
    make_version(tmp_path, 2, complete=False)
    assert reg.refresh().version == 1
    assert loader.calls == [1]  # the partial one was never even tried
    (tmp_path / "2" / "saved_model.pb").write_bytes(b"ok")
    result = reg.refresh()
    assert (result.previous_version, result.version, result.changed) == (1, 2, True)
    assert reg.metrics.model_version._value.get() == 2


def test_failed_version_is_skipped_and_old_one_keeps_serving(tmp_path: Path, loader) -> None:
    make_version(tmp_path, 1)
    reg = registry(tmp_path, loader, retry_backoff_s=60)
    reg.refresh()
    make_version(tmp_path, 2, corrupt=True)
    result = reg.refresh()
    assert result.version == 1 and 2 in result.failed
    assert reg.failures[2].attempts == 1
    assert reg.metrics.reload_failures._value.get() == 1
    # Backing off: the next scans do not retry it.
    reg.refresh()
    reg.refresh()
    assert loader.calls == [1, 2]
    # An operator's reload retries at once.
    assert 2 in reg.refresh(retry_failed=True).failed
    assert reg.failures[2].attempts == 2
    assert reg.active.version == 1


def test_failed_version_is_retried_when_its_files_change(tmp_path: Path, loader) -> None:
    make_version(tmp_path, 1)
    bad = make_version(tmp_path, 2, corrupt=True)
    reg = registry(tmp_path, loader, retry_backoff_s=3600)
    assert reg.refresh().version == 1  # 2 failed at start-up: fall back to 1
    (bad / "saved_model.pb").write_bytes(b"ok")
    stamp = time.time() + 5
    os.utime(bad / "saved_model.pb", (stamp, stamp))
    assert reg.refresh().version == 2
    assert 2 not in reg.failures


def test_failed_version_is_retried_after_backoff(tmp_path: Path, loader) -> None:
    make_version(tmp_path, 1)
    make_version(tmp_path, 2, corrupt=True)
    reg = registry(tmp_path, loader, retry_backoff_s=0.05)
    reg.refresh()
    time.sleep(0.1)
    reg.refresh()
    assert loader.calls.count(2) == 2
    assert reg.failures[2].attempts == 2


def test_deleting_the_served_version_falls_back_to_the_newest_left(tmp_path: Path, loader) -> None:
    make_version(tmp_path, 1)
    make_version(tmp_path, 2)
    reg = registry(tmp_path, loader)
    assert reg.refresh().version == 2
    import shutil

    shutil.rmtree(tmp_path / "2")
    assert reg.refresh().version == 1
    shutil.rmtree(tmp_path / "1")
    assert reg.refresh().version == 1  # nothing left on disk: keep serving from memory


def test_no_versions_means_not_ready(tmp_path: Path, loader) -> None:
    reg = registry(tmp_path, loader)
    assert reg.refresh().version is None and reg.active is None


def test_pin_rolls_back_until_unpinned_and_survives_a_restart(tmp_path: Path, loader) -> None:
    models = tmp_path / "serving"
    for v in (1, 2):
        make_version(models, v)
    pin_file = tmp_path / "state" / "pin.json"
    reg = registry(models, loader, pin_file=pin_file)
    assert reg.refresh().version == 2
    assert reg.pin(1).version == 1
    make_version(models, 3)
    assert reg.refresh().version == 1  # pinned: newer versions are not picked up
    restarted = registry(models, FakeLoader(), pin_file=pin_file)
    assert restarted.pinned == 1 and restarted.refresh().version == 1
    result = restarted.unpin()
    assert result.version == 3 and restarted.pinned is None
    assert not pin_file.exists()


def test_pin_refuses_missing_incomplete_and_broken_versions(tmp_path: Path, loader) -> None:
    make_version(tmp_path, 1)
    make_version(tmp_path, 2, complete=False)
    make_version(tmp_path, 3, corrupt=True)
    reg = registry(tmp_path, loader)
    reg.refresh()
    with pytest.raises(VersionNotFound, match="not on disk"):
        reg.pin(7)
    with pytest.raises(VersionNotFound, match="incomplete"):
        reg.pin(2)
    with pytest.raises(ModelLoadError):
        reg.pin(3)
    assert reg.active.version == 1 and reg.pinned is None


def test_unreadable_pin_file_is_ignored(tmp_path: Path, loader) -> None:
    pin_file = tmp_path / "pin.json"
    pin_file.write_text("{not json")
    assert registry(tmp_path, loader, pin_file=pin_file).pinned is None


def test_a_newline_suffixed_name_is_not_a_version(tmp_path: Path) -> None:
    make_version(tmp_path, 5)
    make_version(tmp_path, "5\n")  # '^[0-9]+$' matches it: it would alias version 5
    assert [v.version for v in scan_versions(tmp_path)] == [5]


def test_a_pin_gone_after_a_restart_falls_back_to_the_newest_loadable(
    tmp_path: Path, loader
) -> None:
    models = tmp_path / "serving"
    for v in (1, 2, 3):
        make_version(models, v)
    pin_file = tmp_path / "state" / "pin.json"
    reg = registry(models, loader, pin_file=pin_file)
    reg.refresh()
    reg.pin(2)
    import shutil

    shutil.rmtree(models / "2")
    assert reg.refresh().version == 2  # still in memory: kept, but the problem is reported
    assert "no longer on disk" in reg.pin_error
    restarted = registry(models, FakeLoader(), pin_file=pin_file)
    assert restarted.refresh().version == 3  # not 503 forever
    assert restarted.pinned == 2 and "pinned version 2 is not on disk" in restarted.pin_error
    assert restarted.metrics.model_pin_broken._value.get() == 1
    make_version(models, 2)  # the pinned version comes back: it is served again
    assert restarted.refresh().version == 2 and restarted.pin_error is None
    assert restarted.metrics.model_pin_broken._value.get() == 0


def test_a_pin_that_fails_to_load_serves_the_newest_loadable_and_says_why(
    tmp_path: Path, loader
) -> None:
    models = tmp_path / "serving"
    make_version(models, 1)
    make_version(models, 2)
    make_version(models, 3, corrupt=True)
    pin_file = tmp_path / "pin.json"
    pin_file.write_text(json.dumps({"version": 1}))
    (models / "1" / "saved_model.pb").write_bytes(b"corrupt")  # the pin broke while down
    reg = registry(models, loader, pin_file=pin_file)
    result = reg.refresh()
    assert result.version == 2 and 1 in result.failed and 3 in result.failed
    assert reg.pin_error.startswith("pinned version 1 failed to load") and "bad proto" in (
        reg.pin_error
    )
    assert reg.refresh().version == 2  # backing off: no reload storm, still reported
    assert reg.pin_error is not None
    reg.unpin()
    assert reg.pin_error is None and reg.metrics.model_pin_broken._value.get() == 0
