"""Serving notifier executor: skip (logged) or reload the API and confirm the pushed version."""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from anomalyops_tfx.components.serving_notifier import logic


def _admin_key() -> str | None:
    """Read at run time from the environment, so the secret never lands in the IR or MLMD."""
    from anomalyops.settings import get_settings

    key = get_settings().api_admin_key
    return key.get_secret_value() if key else None


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        pushed = artifact_utils.get_single_instance(input_dict["pushed_model"])
        result = artifact_utils.get_single_instance(output_dict["result"])
        api_url = exec_properties.get("api_url") or ""
        outcome: dict[str, Any] = {"api_url": api_url or None}
        if pushed.get_int_custom_property("pushed") != 1:
            outcome["status"] = "skipped: nothing was pushed in this run"
        elif not api_url:
            outcome["status"] = (
                "skipped: no scoring service configured (ANOMALYOPS_API_URL is unset); "
                f"version {pushed.get_int_custom_property('pushed_version')} is on disk and a "
                "service polling the serving directory will pick it up"
            )
        else:
            version = pushed.get_int_custom_property("pushed_version")
            served = logic.notify_and_confirm(
                api_url,
                version,
                admin_key=_admin_key(),
                timeout_s=float(exec_properties["timeout_s"]),
                poll_interval_s=float(exec_properties["poll_interval_s"]),
            )
            outcome["status"] = f"confirmed: {api_url} serves version {served}"
            result.set_int_custom_property("served_version", served)
        logging.info("Serving notifier %s", outcome["status"])
        result.set_int_custom_property("notified", int(outcome["status"].startswith("confirmed")))
        with fileio.open(os.path.join(result.uri, "serving_notifier.json"), "w") as f:
            f.write(json.dumps(outcome, indent=2))
