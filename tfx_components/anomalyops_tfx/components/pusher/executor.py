"""Atomic pusher executor: refuses unblessed models, pushes blessed ones with the gate's threshold."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from anomalyops import model_contract as contract
from anomalyops_tfx.components.evaluation_gate.executor import (
    REPORT_HTML,
    REPORT_JSON,
    SERVING_SUBDIR,
)
from anomalyops_tfx.components.pusher import logic
from anomalyops_tfx.features import spec_from_config, spec_to_config


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        from anomalyops_tfx import model as model_lib

        model = artifact_utils.get_single_instance(input_dict["model"])
        blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
        pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
        serving_dir = Path(exec_properties["serving_model_dir"])

        blessed = blessing.get_int_custom_property("blessed") == 1
        for_this_model = blessing.get_int_custom_property("current_model_id") == model.id
        if not (blessed and for_this_model):
            why = "not blessed" if not blessed else "the blessing is for another model"
            logging.warning(
                "NOT PUSHING model %s: %s (see %s). The served model stays as it is.",
                model.uri,
                why,
                os.path.join(blessing.uri, REPORT_HTML),
            )
            pushed.set_int_custom_property("pushed", 0)
            return

        with fileio.open(os.path.join(blessing.uri, REPORT_JSON)) as f:
            report = json.loads(f.read())
        if report.get("candidate_is_baseline"):
            logging.info(
                "Not pushing model %s again: it is the blessed model of an earlier run (the "
                "Trainer was cached, no new data).",
                model.uri,
            )
            pushed.set_int_custom_property("pushed", 0)
            return
        spec = spec_from_config(exec_properties["custom_config"])
        files = {}
        report_path = os.path.join(blessing.uri, REPORT_HTML)
        if fileio.exists(report_path):
            with fileio.open(report_path, "rb") as f:
                files[contract.EVALUATION_REPORT_FILE] = f.read()
        else:
            logging.warning("No %s from the evaluation gate; pushing without it", report_path)
        version = logic.next_version(serving_dir, time.time())
        metadata = contract.build_metadata(
            model_name=serving_dir.name,
            version=version,
            created_at=dt.datetime.now(dt.timezone.utc),
            training_spans=report["training_spans"],
            threshold=report["threshold"],
            threshold_quantile=report["threshold_quantile"],
            metrics=report["candidate"]["metrics"],
            feature_spec=spec_to_config(spec),
            feature_spec_fingerprint=spec.fingerprint(),
            pipeline_run_id=self._context.pipeline_run_id if self._context else None,
            evaluation_report=contract.EVALUATION_REPORT_FILE if files else None,
        )
        source = os.path.join(model.uri, SERVING_SUBDIR)
        final = contract.publish(
            serving_dir,
            version,
            lambda tmp: model_lib.rewrite_threshold(source, str(tmp), report["threshold"]),
            metadata,
            files=files,
        )
        # The number may have moved past ``version`` if another push took it meanwhile.
        version = int(final.name)
        metadata = json.loads((final / contract.METADATA_FILE).read_text(encoding="utf-8"))
        pushed.set_int_custom_property("pushed", 1)
        pushed.set_int_custom_property("pushed_version", version)
        pushed.set_string_custom_property("pushed_destination", str(final))
        with fileio.open(os.path.join(pushed.uri, contract.METADATA_FILE), "w") as f:
            f.write(json.dumps(metadata, indent=2))
        logging.info(
            "Pushed version %d to %s (threshold %.4f)", version, final, report["threshold"]
        )
        if files:
            logging.info(
                "Evaluation report of the pushed version: %s",
                final / contract.EVALUATION_REPORT_FILE,
            )
        logic.apply_retention(serving_dir, version)
