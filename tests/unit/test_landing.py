import gzip
import io

import pandas as pd
import pytest

from anomalyops.sources.landing import IngestError, SourceFile, load_files
from anomalyops.spec import parse_spec

pytestmark = pytest.mark.unit

SPEC = parse_spec(
    {
        "name": "p",
        "timestamp": {"column": "ts"},
        "label": {"column": "y"},
        "features": [{"name": "a"}, {"name": "b"}],
    }
)
CSV = "ts,a,b,y\n2026-11-05T00:00:00Z,1.5,2,0\n2026-11-05T00:01:00Z,1.6,2.1,1\n"


def load(name, data):
    return load_files([SourceFile(name, data if isinstance(data, bytes) else data.encode())], SPEC)


def test_csv_parquet_and_gzip_are_read_and_cast():
    df = load("day.csv", CSV)
    assert list(df.columns) == ["ts", "a", "b", "y"]
    assert str(df["ts"].dtype) == "datetime64[ns, UTC]"
    assert df["a"].dtype == "float64" and df["y"].tolist() == [0, 1]
    assert load("day.csv.gz", gzip.compress(CSV.encode())).equals(df)
    buf = io.BytesIO()
    df.to_parquet(buf)
    assert load("day.parquet", buf.getvalue()).equals(df)


def test_label_is_optional_and_extra_columns_dropped():
    df = load("day.csv", "ts,a,b,other\n2026-11-05,1,2,x\n")
    assert list(df.columns) == ["ts", "a", "b"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("", "day.csv: the file is empty"),
        ("ts,a,b\n", "day.csv: the file has a header but no rows"),
        ("ts,a\n2026-11-05,1\n", "day.csv: missing column(s) 'b'"),
        (
            "ts,a,b\n2026-11-05,1,2\n2026-11-05,x,2\n",
            "day.csv: column 'a': not a number at row 2 (line 3): 'x'",
        ),
        (
            "ts,a,b\nyesterday,1,2\n",
            "day.csv: column 'ts': not a timestamp at row 1 (line 2): 'yesterday'",
        ),
        ("ts,a,b,y\n2026-11-05,1,2,7\n", "column 'y': not a 0 or 1 at row 1"),
        (b"ts,a,b\n\xff\xfe,1,2\n", "day.csv: not UTF-8"),
        ('ts,a,b\n"2026-11-05,1,2\n', "day.csv: malformed CSV"),
    ],
)
def test_bad_files_name_file_column_and_row(data, expected):
    with pytest.raises(IngestError) as err:
        load("day.csv", data)
    assert expected in str(err.value)


def test_every_file_and_every_bad_row_reported():
    rows = "".join(f"2026-11-05,bad{i},2\n" for i in range(5))
    with pytest.raises(IngestError) as err:
        load_files(
            [
                SourceFile("one.csv", ("ts,a,b\n" + rows).encode()),
                SourceFile("two.csv", b"ts,a\n2026-11-05,1\n"),
            ],
            SPEC,
        )
    assert len(err.value.problems) == 2
    assert "and 2 more" in err.value.problems[0]
    assert err.value.problems[1].startswith("two.csv: missing column")


def test_bad_parquet_is_reported():
    with pytest.raises(IngestError, match=r"day\.parquet: cannot read"):
        load("day.parquet", b"PAR1 not really")
    frame = pd.DataFrame({"ts": ["2026-11-05"], "a": ["1.0 units"], "b": [2.0]})
    buf = io.BytesIO()
    frame.to_parquet(buf)
    with pytest.raises(IngestError, match=r"column .a.: not a number at row 1: .1\.0 units."):
        load("day.parquet", buf.getvalue())
