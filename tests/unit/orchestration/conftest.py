"""Fixtures for the orchestration unit tests: IR JSON documents shaped like TFX's compiler output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def toy_ir_json() -> dict:
    """A real TFX 1.16 compiler output: MakeData -> Train -> Push."""
    return json.loads((FIXTURES / "toy_ir.json").read_text())


def _node(node_id: str, upstream: list[str]) -> dict:
    node = {"nodeInfo": {"id": node_id, "type": {"name": f"tfx.components.{node_id}"}}}
    if upstream:
        node["upstreamNodes"] = upstream
    return {"pipelineNode": node}


@pytest.fixture
def diamond_ir_json() -> dict:
    """Two roots joining, like ExampleGen + ImportSchemaGen feeding the validator."""
    return {
        "pipelineInfo": {"id": "diamond"},
        "nodes": [
            _node("ExampleGen", []),
            _node("ImportSchemaGen", []),
            _node("StatisticsGen", ["ExampleGen"]),
            _node("ExampleValidator", ["StatisticsGen", "ImportSchemaGen"]),
            _node("Trainer", ["ExampleGen", "ImportSchemaGen", "ExampleValidator"]),
            _node("Pusher", ["Trainer"]),
        ],
    }
