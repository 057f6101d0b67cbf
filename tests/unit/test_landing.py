import gzip
import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from anomalyops.sources.landing import IngestError, Limits, SourceFile, copy_file
from anomalyops.sources.landing_read import load_files
from anomalyops.spec import parse_spec

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


# -- limits and hostile bytes (the corpus with real files is tests/security/) ---------------------


def parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def refused(name, data, **limits) -> str:
    with pytest.raises(IngestError) as err:
        load_files([SourceFile(name, data)], SPEC, Limits(**limits))
    return str(err.value)


def test_nul_bytes_and_utf16_are_refused_with_where():
    assert refused("d.csv", (CSV + "2026-11-05,\x001,2,0\n").encode()).startswith(
        "d.csv: NUL byte at line 4 (byte 80)"
    )
    many = CSV + "2026-11-05,1,2,0\n" * 200_000  # 3.4 MB: lines are counted across reads
    assert "NUL byte at line 200004 (byte 3,400,069)" in refused(
        "d.csv", (many + "\x00\n").encode()
    )
    assert "UTF-16 byte-order mark" in refused("d.csv", CSV.encode("utf-16"))
    # pandas would silently cut the field at the NUL; a gzipped file is checked decompressed.
    assert "NUL byte at line 2" in refused("d.csv.gz", gzip.compress(b"ts,a,b\n\x00,1,2\n"))
    assert len(load("d.csv", b"\xef\xbb\xbf" + CSV.encode())) == 2  # a UTF-8 BOM is fine


def test_size_row_and_decompressed_limits_name_the_setting():
    assert refused("d.csv", CSV.encode(), max_file_bytes=10) == (
        f"d.csv: refused: {len(CSV):,} bytes exceeds the landing file size limit "
        "(ANOMALYOPS_INGEST__MAX_FILE_BYTES = 10); split the export"
    )
    assert "more than 1 rows exceeds the per-file row limit (ANOMALYOPS_INGEST__MAX_ROWS = 1)" in (
        refused("d.csv", CSV.encode(), max_rows=1)
    )
    bomb = gzip.compress(b"ts,a,b\n" + b"2026-11-05,1,2\n" * 100_000)
    message = refused("d.csv.gz", bomb, max_decompressed_bytes=50_000)
    assert message == (
        "d.csv.gz: refused: more than 50,000 bytes "
        "(ANOMALYOPS_INGEST__MAX_DECOMPRESSED_BYTES = 50,000)"
    )
    assert len(load("d.csv", CSV)) == 2  # the defaults take the normal file


def test_parquet_limits_nested_columns_and_column_selection():
    flat = {"ts": pa.array(["2026-11-05"] * 3), "a": pa.array([1.0] * 3), "b": pa.array([2.0] * 3)}
    assert "3 rows exceeds the per-file row limit" in refused(
        "d.parquet", parquet(pa.table(flat)), max_rows=2
    )
    assert "exceeds the decompressed size limit" in refused(
        "d.parquet", parquet(pa.table(flat)), max_decompressed_bytes=10
    )
    nested = pa.table({**flat, "a": pa.array([{"x": 1.0}] * 3)})
    assert refused("d.parquet", parquet(nested)) == (
        "d.parquet: column(s) 'a' (struct<x: double>) are nested (struct/list/map); "
        "landing files need flat columns of numbers, text or timestamps"
    )
    # A nested column the spec does not use is never decoded; the optional label is kept.
    extra = pa.table({**flat, "y": pa.array([0, 1, 0]), "blob": pa.array([[1, 2]] * 3)})
    df = load("d.parquet", parquet(extra))
    assert list(df.columns) == ["ts", "a", "b", "y"] and df["y"].tolist() == [0, 1, 0]
    missing = refused("d.parquet", parquet(pa.table({"ts": flat["ts"], "other": flat["a"]})))
    assert missing == "d.parquet: missing column(s) 'a', 'b' (found: ts, other)"


def test_a_huge_bad_value_is_quoted_clipped():
    message = refused("d.csv", ("ts,a,b\n2026-11-05," + "x" * 1_000_000 + ",2\n").encode())
    assert message.startswith("d.csv: column 'a': not a number at row 1 (line 2): 'xxxx")
    assert message.endswith("... (1,000,002 characters)") and len(message) < 200


def test_copy_file_streams_within_the_limit():
    out = io.BytesIO()
    copy_file(SourceFile("d.csv", CSV.encode()), out, Limits())
    assert out.getvalue() == CSV.encode()
    with pytest.raises(IngestError, match="MAX_FILE_BYTES = 5"):
        copy_file(SourceFile("d.csv", CSV.encode()), io.BytesIO(), Limits(max_file_bytes=5))
