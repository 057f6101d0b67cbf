"""The service in-process (TestClient runs the real lifespan: TensorFlow, watcher, jobs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from anomalyops_api.main import create_app
from tests.helpers.api import api_settings


@pytest.fixture
def start_app(tmp_path: Path) -> Callable[..., AbstractContextManager[TestClient]]:
    """``with start_app(**settings) as client:`` — an app on tmp_path; leaving the block
    runs its shutdown, so a second block on the same tmp_path is a restart."""

    @contextmanager
    def start(**overrides) -> Iterator[TestClient]:
        with TestClient(create_app(api_settings(tmp_path, **overrides))) as client:
            yield client

    return start
