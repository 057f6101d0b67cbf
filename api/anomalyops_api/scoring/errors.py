"""What can be wrong with an upload, named (row, column, columns) but not answered:
:mod:`anomalyops_api.errors` maps each ``kind`` to an HTTP status."""

from __future__ import annotations

from anomalyops_api.errors import ApiError


class UploadError(ApiError):
    """The uploaded file (or its envelope) is not something we can score."""

    kind = "malformed_upload"


class MalformedFile(UploadError):
    """Empty, mislabelled, or not well-formed CSV / Parquet / multipart."""

    kind = "malformed_upload"


class NotUtf8(MalformedFile):
    kind = "not_utf8"


class CorruptGzip(MalformedFile):
    kind = "corrupt_gzip"


class IncompleteUpload(UploadError):
    """The client went away before the body was complete."""

    kind = "incomplete_upload"


class UploadTooLarge(UploadError):
    """Over the upload's own size bound (the request body, not a scoring limit)."""

    kind = "upload_too_large"


class UnsupportedFormat(UploadError):
    kind = "unsupported_format"


class MissingFile(UploadError):
    kind = "missing_file"


class MissingColumns(UploadError):
    kind = "missing_columns"


class DuplicateColumns(UploadError):
    kind = "duplicate_columns"


class WrongColumnType(UploadError):
    kind = "wrong_column_type"


class BadValue(UploadError):
    """A cell that is missing, unparsable or not a finite float32."""

    kind = "bad_value"


class UnsafeFile(UploadError):
    """Reading it would run code (a pickled Parquet extension type)."""

    kind = "unsafe_file"


class NoDataRows(UploadError):
    kind = "no_data_rows"


class HistoryError(UploadError):
    """A temporal spec's rows lack the history (order, warm-up) derived columns need."""

    kind = "history"


class ExplainUnsupported(ApiError):
    """Explanations asked of a model whose signature cannot give them."""

    kind = "explain_unsupported"
