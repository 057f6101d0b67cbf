"""Scoring an uploaded file in bounded chunks; the names routes and jobs use."""

from anomalyops_api.scoring.columns import check_columns, plan_columns, read_header
from anomalyops_api.scoring.estimate import count_rows_estimate
from anomalyops_api.scoring.formats import (
    ACCEPTED_TYPES,
    ACCEPTED_TYPES_HINT,
    InputFormat,
    OutputFormat,
    check_content_type,
    detect_format,
)
from anomalyops_api.scoring.pipeline import (
    ProgressCallback,
    ScoreResult,
    ScoresCallback,
    score_file,
)
from anomalyops_api.scoring.writers import escape_formulas

__all__ = [
    "ACCEPTED_TYPES",
    "ACCEPTED_TYPES_HINT",
    "InputFormat",
    "OutputFormat",
    "ProgressCallback",
    "ScoreResult",
    "ScoresCallback",
    "check_columns",
    "check_content_type",
    "count_rows_estimate",
    "detect_format",
    "escape_formulas",
    "plan_columns",
    "read_header",
    "score_file",
]
