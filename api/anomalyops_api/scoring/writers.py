"""Result files, appended chunk by chunk: CSV and Parquet share one Arrow-based writer,
JSON has its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from anomalyops.model_contract import FLAG_OUTPUT, SCORE_OUTPUT
from anomalyops_api import explain as explain_lib
from anomalyops_api.model import LoadedModel
from anomalyops_api.scoring.formats import OutputFormat

_FORMULA_START = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def escape_formulas(array: pa.Array) -> pa.Array:
    """Prefix text a spreadsheet would run as a formula (=, +, -, @, tab, CR first) with an
    apostrophe; plain numbers such as ``-3.5`` stay as they are (OWASP CSV injection)."""
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return array
    risky = pc.and_(
        pc.match_substring_regex(array, _FORMULA_START),
        pc.invert(pc.match_substring_regex(array, _PLAIN_NUMBER)),
    )
    if not pc.any(risky).as_py():
        return array
    return pc.if_else(risky, pc.binary_join_element_wise("'", array, ""), array)


def _result_batch(
    keys: dict[str, pa.Array],
    scores: np.ndarray,
    flags: np.ndarray,
    model: LoadedModel,
    extra: tuple[str, pa.Array] | None = None,
) -> pa.RecordBatch:
    """The columns CSV and Parquet results share: the keys, the signature's outputs by their
    contract names (a NaN score, a warm-up row left unscored, becomes null), and the version
    and threshold per row: a CSV has nowhere else to carry them, and they keep results of
    different versions apart once files are concatenated."""
    n = len(scores)
    columns = [
        *keys.values(),
        pa.array(scores.astype(np.float32, copy=False), from_pandas=True),
        pa.array(flags, pa.bool_()),
        pa.array(np.full(n, model.version, dtype=np.int64)),
        pa.array(np.full(n, model.threshold, dtype=np.float32)),
    ]
    names = [*keys, SCORE_OUTPUT, FLAG_OUTPUT, "model_version", "threshold"]
    if extra is not None:
        names.append(extra[0])
        columns.append(extra[1])
    return pa.RecordBatch.from_arrays(columns, names=names)


class ArrowWriter:
    """Appends each chunk's result batch to a file opened on the first chunk; the subclasses
    say how to open it and how to carry the explanations."""

    def __init__(self, path: Path, model: LoadedModel, explain: bool = False) -> None:
        self.path = path
        self.model = model
        self.explain = explain
        self._writer = None

    def _keys(self, keys: dict[str, pa.Array]) -> dict[str, pa.Array]:
        return keys

    def _explanations(self, explained: list) -> pa.Array:
        raise NotImplementedError

    def _open(self, schema: pa.Schema):
        raise NotImplementedError

    def write(
        self,
        keys: dict[str, pa.Array],
        scores: np.ndarray,
        flags: np.ndarray,
        explained: list | None = None,
    ) -> None:
        extra = None
        if self.explain:
            extra = ("top_features", self._explanations(explained or [None] * len(scores)))
        batch = _result_batch(self._keys(keys), scores, flags, self.model, extra)
        if self._writer is None:
            self._writer = self._open(batch.schema)
        self._writer.write_batch(batch)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class CsvWriter(ArrowWriter):
    def __init__(
        self, path: Path, model: LoadedModel, escape: bool = False, explain: bool = False
    ) -> None:
        super().__init__(path, model, explain)
        self.escape = escape

    def _keys(self, keys: dict[str, pa.Array]) -> dict[str, pa.Array]:
        if not self.escape:
            return keys
        return {name: escape_formulas(column) for name, column in keys.items()}

    def _explanations(self, explained: list) -> pa.Array:
        return pa.array(explain_lib.as_csv_cells(explained), pa.string())

    def _open(self, schema: pa.Schema) -> pacsv.CSVWriter:
        return pacsv.CSVWriter(str(self.path), schema)


class ParquetWriter(ArrowWriter):
    """Typed columns (keys as uploaded, float32 score, bool flag), one row group per chunk;
    the model version and threshold are columns as in CSV and also the file's key-value
    metadata. Explanations are a list of ``{feature, contribution}`` structs per row."""

    _EXPLANATION = pa.list_(pa.struct([("feature", pa.string()), ("contribution", pa.float32())]))

    def _explanations(self, explained: list) -> pa.Array:
        return pa.array(explain_lib.as_records(explained), self._EXPLANATION)

    def _open(self, schema: pa.Schema) -> pq.ParquetWriter:
        metadata = {
            b"anomalyops.model_version": str(self.model.version).encode(),
            b"anomalyops.threshold": repr(self.model.threshold).encode(),
        }
        return pq.ParquetWriter(str(self.path), schema.with_metadata(metadata), compression="zstd")


class JsonWriter:
    """``{"model_version", "threshold", "results": [{...}, ...], "rows"}``, written per chunk."""

    def __init__(self, path: Path, model: LoadedModel) -> None:
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._rows = 0
        self._file.write(
            f'{{"model_version": {model.version}, "threshold": {model.threshold!r}, "results": ['
        )

    def write(
        self,
        keys: dict[str, pa.Array],
        scores: np.ndarray,
        flags: np.ndarray,
        explained: list | None = None,
    ) -> None:
        import pandas as pd  # lazy: only JSON replies need it

        frame = pd.DataFrame({name: col.to_pandas() for name, col in keys.items()})
        frame[SCORE_OUTPUT] = scores.astype(np.float64)
        frame[FLAG_OUTPUT] = flags
        if explained is not None:
            frame["top_features"] = pd.Series(explain_lib.as_records(explained), dtype=object)
        records = frame.to_json(orient="records", double_precision=7)
        if self._rows:
            self._file.write(",")
        self._file.write(records[1:-1])  # strip the chunk's own [ ]
        self._rows += len(frame)

    def close(self) -> None:
        self._file.write(f'], "rows": {self._rows}}}')
        self._file.close()


ResultWriter = ArrowWriter | JsonWriter


def open_writer(
    out_format: OutputFormat,
    dest: Path,
    model: LoadedModel,
    *,
    escape: bool = False,
    explain: bool = False,
) -> ResultWriter:
    if out_format is OutputFormat.CSV:
        return CsvWriter(dest, model, escape, explain=explain)
    if out_format is OutputFormat.PARQUET:
        return ParquetWriter(dest, model, explain=explain)
    return JsonWriter(dest, model)
