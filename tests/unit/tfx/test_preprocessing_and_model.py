"""preprocessing_fn (run by tft_beam on a tiny in-memory dataset) and the model builder/export."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from anomalyops.settings import Settings
from anomalyops.spec import load_spec
from anomalyops_tfx import detector
from anomalyops_tfx import model as model_lib
from anomalyops_tfx.features import SPEC_KEY, spec_from_config, spec_to_config

SPEC = load_spec(Settings().feature_spec_path)
ROWS = 200


def _rows(rng: np.random.Generator) -> list[dict]:
    rows = []
    for i in range(ROWS):
        row = {n: [float(rng.normal(10 * j, 1 + j))] for j, n in enumerate(SPEC.feature_names)}
        if i % 10 == 0:
            row[SPEC.feature_names[0]] = []  # missing value
        row[SPEC.label_column] = [i % 2]
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    """(raw rows, transformed rows, transform output dir) from the real preprocessing_fn."""
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from anomalyops_tfx.preprocessing import preprocessing_fn

    raw = _rows(np.random.default_rng(0))
    feature_spec = {n: tf.io.VarLenFeature(tf.float32) for n in SPEC.feature_names}
    feature_spec[SPEC.label_column] = tf.io.VarLenFeature(tf.int64)
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(feature_spec))
    out = tmp_path_factory.mktemp("tft")
    config = {SPEC_KEY: spec_to_config(SPEC)}
    with tft_beam.Context(temp_dir=str(out / "tmp"), force_tf_compat_v1=False):
        (rows, _), transform_fn = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, config), output_record_batches=False
        )
        _ = transform_fn | tft_beam.WriteTransformFn(str(out / "tf"))
    metadata_io.write_metadata(metadata, str(out / "tf" / tft.TFTransformOutput.RAW_METADATA_DIR))
    return raw, rows, str(out / "tf")


def test_transform_outputs_only_features(transformed):
    _, rows, _ = transformed
    assert set(rows[0]) == set(SPEC.feature_names)  # no label, timestamp or entity


def test_features_are_z_scored_and_missing_values_imputed_with_mean(transformed):
    raw, rows, _ = transformed
    for name in SPEC.feature_names:
        z = np.array([r[name] for r in rows])
        present = np.array([len(r[name]) == 1 for r in raw])
        assert np.all(np.isfinite(z))
        assert abs(z[present].mean()) < 1e-4
        assert z[present].std() == pytest.approx(1.0, rel=1e-3)
        assert np.all(z[~present] == 0.0)  # the mean, in z-space
    assert (~np.array([len(r[SPEC.feature_names[0]]) == 1 for r in raw])).sum() == ROWS // 10


def test_preprocessing_needs_the_spec_in_custom_config():
    from anomalyops_tfx.preprocessing import preprocessing_fn

    with pytest.raises(ValueError, match="feature_spec"):
        preprocessing_fn({}, {})
    with pytest.raises(ValueError, match="lack spec features"):
        preprocessing_fn({}, {SPEC_KEY: spec_to_config(SPEC)})


def test_spec_round_trips_through_custom_config():
    assert spec_from_config(json.dumps({SPEC_KEY: spec_to_config(SPEC)})) == SPEC


@pytest.mark.parametrize(
    ("n", "sizes"), [(1, [2, 1]), (2, [2, 1]), (4, [3, 2]), (8, [6, 3]), (16, [12, 4])]
)
def test_layer_sizes_follow_the_feature_count(n, sizes):
    assert model_lib.layer_sizes(n) == sizes
    assert sizes[-1] < n or n == 1


def test_layer_sizes_validate_inputs():
    assert model_lib.layer_sizes(8, [5, 2]) == [5, 2]
    with pytest.raises(ValueError):
        model_lib.layer_sizes(0)
    with pytest.raises(ValueError):
        model_lib.layer_sizes(8, [4, 0])


def test_autoencoder_shape_and_bottleneck():
    model = model_lib.build_autoencoder(8)
    assert model.input_shape == (None, 8) and model.output_shape == (None, 8)
    assert model.get_layer("bottleneck").units == 3
    assert [layer.name for layer in model.layers if "coder" in layer.name] == [
        "encoder_0",
        "decoder_0",
    ]


def test_export_serves_contract_and_threshold_can_be_rewritten(transformed, tmp_path):
    import tensorflow_transform as tft

    _, rows, tft_dir = transformed
    z = np.array([[r[n] for n in SPEC.feature_names] for r in rows], dtype=np.float32)
    model = model_lib.build_autoencoder(len(SPEC.feature_names))
    model.fit(z, z, epochs=2, batch_size=64, verbose=0)
    output = tft.TFTransformOutput(tft_dir)
    tables = detector.fit_tables(z[:150])
    tables.residuals = detector.QuantileTable.fit(np.abs(z[:150] - model(z[:150]).numpy()))
    raw, _ = detector.raw_parts(
        z[150:], model(z[150:]), detector.table_tensors(tables), tables.neighbours
    )
    detector.fit_part_scores(tables, {k: v.numpy() for k, v in raw.items()})
    module = model_lib.make_serving_module(
        model,
        output.transform_features_layer(),
        output.raw_feature_spec(),
        SPEC.feature_names,
        threshold=1.5,
        tables=tables,
    )
    model_lib.export(module, str(tmp_path / "trained"))
    model_lib.rewrite_threshold(str(tmp_path / "trained"), str(tmp_path / "pushed"), 7.25)

    code = textwrap.dedent(
        f"""
        import json, sys
        import tensorflow as tf
        out = {{}}
        for name in ("trained", "pushed"):
            fn = tf.saved_model.load({str(tmp_path)!r} + "/" + name).signatures["serving_default"]
            res = fn(**{{n: tf.constant([1.0, 2.0, float("nan")]) for n in {SPEC.feature_names!r}}})
            out[name] = {{k: v.numpy().tolist() for k, v in res.items()}}
        out["tft"] = "tensorflow_transform" in sys.modules
        print(json.dumps(out))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["tft"] is False
    assert out["trained"]["threshold"] == [1.5] * 3
    assert out["pushed"]["threshold"] == [7.25] * 3
    assert out["pushed"]["anomaly_score"] == pytest.approx(out["trained"]["anomaly_score"])
    # NaN (missing) is imputed inside the model, so the score stays finite.
    assert all(np.isfinite(out["pushed"]["anomaly_score"]))
    assert out["pushed"]["is_anomaly"] == [s > 7.25 for s in out["pushed"]["anomaly_score"]]
    # The explanation output: one share per feature and row, never above the score.
    contributions = np.array(out["pushed"]["feature_contributions"])
    assert contributions.shape == (3, len(SPEC.feature_names))
    assert np.all(contributions >= 0)
    assert np.all(contributions.sum(axis=1) <= np.array(out["pushed"]["anomaly_score"]) + 1e-4)
