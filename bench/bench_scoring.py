"""Scoring throughput: the service over HTTP vs the in-process ceiling vs the naive endpoint.

    .venv/bin/python bench/bench_scoring.py                 # 1M rows, the newest pushed model
    .venv/bin/python bench/bench_scoring.py --big-rows 10000000   # + peak RSS on 10M rows
    .venv/bin/python bench/bench_scoring.py --model-dir var/serving/anomaly_detector/<version>
    .venv/bin/python bench/bench_scoring.py --stand-in      # a quickly built autoencoder only

By default the model is the newest version the pipeline pushed to the project's serving
directory (``make run`` leaves one): what users are served, detector ensemble included. Without
one, the benchmark says so and builds its stand-in (autoencoder only, much faster to score).

* ceiling: one process, pyarrow read_csv -> the SavedModel's signature -> pyarrow write_csv.
* service: ``uvicorn anomalyops_api.main:create_app`` on loopback; the client uploads the
  file (multipart) and saves the CSV reply (curl when installed, so the client costs little
  CPU; httpx otherwise).
* naive: what most tutorials write: ``UploadFile`` -> pandas.read_csv -> predict ->
  DataFrame.to_csv, inside the endpoint.

Peak RSS is the server process's VmHWM (from /proc) after its runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow_hotfix  # noqa: F401  (CVE-2023-47248) before this process reads any Parquet
from fastapi import UploadFile  # module level: the naive endpoint's annotation resolves here

REPO = Path(__file__).resolve().parents[1]
METADATA_FILE = "anomalyops_model.json"


# -- data and model --------------------------------------------------------------------------


def make_csv(path: Path, rows: int, spec: dict, seed: int = 0) -> None:
    """A CSV with the spec's key columns and features, written in 1M-row slices."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-11-01T00:00:00")
    writer = None
    for offset in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - offset)
        minutes = (np.arange(offset, offset + n) % (60 * 24 * 365)).astype("timedelta64[m]")
        columns = {}
        if spec.get("entity"):
            columns[spec["entity"]["column"]] = pa.array(np.full(n, "st-001"))
        columns[spec["timestamp"]["column"]] = pa.array((start + minutes).astype(str))
        for f in spec["features"]:
            low, high = f.get("min") or 0.0, f.get("max") or 6.0
            mid, spread = (low + high) / 2, (high - low) / 6
            columns[f["name"]] = pa.array(np.round(rng.normal(mid, spread, n), 3))
        table = pa.table(columns)
        if writer is None:
            writer = pacsv.CSVWriter(str(path), table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def demo_version(root: Path) -> Path:
    """A fixture-style model (contract signature) for the demo spec, as version 1."""
    from anomalyops.spec import load_spec
    from anomalyops_api.demo_model import write_version

    spec = load_spec(REPO / "config" / "feature_spec.yaml")
    return write_version(root / "serving", 1, spec, threshold=3.0)


# -- ceiling ---------------------------------------------------------------------------------


class Ceiling:
    """read CSV -> SavedModel -> write CSV, all pyarrow, in this process (model pre-loaded)."""

    def __init__(self, version_dir: Path) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        spec = json.loads((version_dir / METADATA_FILE).read_text())["feature_spec"]
        self.names = [f["name"] for f in spec["features"]]
        self.keys = [c["column"] for c in (spec.get("entity"), spec["timestamp"]) if c]
        self.loaded = tf.saved_model.load(str(version_dir))
        self.signature = self.loaded.signatures["serving_default"]

    def run(self, csv_path: Path, out: Path) -> float:
        started = time.perf_counter()
        types = {n: pa.float32() for n in self.names} | {k: pa.string() for k in self.keys}
        table = pacsv.read_csv(
            str(csv_path),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=self.keys + self.names
            ),
        )
        result = self.signature(**{n: table.column(n).to_numpy() for n in self.names})
        reply = pa.table(
            [
                *(table.column(k) for k in self.keys),
                pa.array(result["anomaly_score"].numpy()),
                pa.array(result["is_anomaly"].numpy()),
            ],
            names=[*self.keys, "anomaly_score", "is_anomaly"],
        )
        pacsv.write_csv(reply, str(out))
        return time.perf_counter() - started


# -- servers ---------------------------------------------------------------------------------


def newest_pushed_version(serving_dir: Path) -> Path | None:
    """The newest complete version directory the Pusher wrote (numeric name, metadata file)."""
    if not serving_dir.is_dir():
        return None
    versions = [
        p
        for p in serving_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and (p / METADATA_FILE).is_file()
    ]
    return max(versions, key=lambda p: int(p.name), default=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A uvicorn subprocess on loopback, stopped on exit."""

    def __init__(self, app: str, env: dict[str, str], app_dir: Path | None = None) -> None:
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        if app_dir:
            cmd += ["--app-dir", str(app_dir)]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            cmd, env=os.environ | env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server died:\n{self.log.read().decode()[-3000:]}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.url}{path} not ready after {timeout} s")

    def rss_mib(self, field: str = "VmHWM") -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def upload(url: str, csv_path: Path, out: Path) -> tuple[float, int, dict[str, str]]:
    """POST the file as multipart and save the reply; (seconds, status, headers)."""
    started = time.perf_counter()
    if shutil.which("curl"):
        headers_file = out.with_suffix(".headers")
        proc = subprocess.run(
            [
                "curl",
                "-sS",
                "-o",
                str(out),
                "-D",
                str(headers_file),
                "-w",
                "%{http_code}",
                "-F",
                f"file=@{csv_path};type=text/csv",
                url,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - started
        headers = {}
        for line in headers_file.read_text().splitlines()[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return elapsed, int(proc.stdout or 0), headers
    import httpx

    with (
        open(csv_path, "rb") as f,
        httpx.stream(
            "POST", url, files={"file": (csv_path.name, f, "text/csv")}, timeout=600
        ) as response,
        open(out, "wb") as sink,
    ):
        for chunk in response.iter_bytes(1 << 20):
            sink.write(chunk)
    return time.perf_counter() - started, response.status_code, dict(response.headers)


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 22), b""))


def timed_upload(server: Server, path: str, csv_path: Path, rows: int, out: Path) -> float:
    """One upload; checks the status and that every row came back."""
    elapsed, status, headers = upload(server.url + path, csv_path, out)
    if status != 200:
        raise RuntimeError(f"{server.url}{path}: HTTP {status}: {out.read_text()[:500]}")
    got = count_lines(out) - 1
    if got != rows:
        raise RuntimeError(f"{server.url}{path}: {got} rows in the reply, expected {rows}")
    if path == "/v1/score" and "x-model-version" not in headers:
        raise RuntimeError("no X-Model-Version header in the reply")
    out.unlink()
    return elapsed


# -- the naive endpoint (served by uvicorn --app-dir bench bench_scoring:create_naive_app) ---


def create_naive_app():  # pragma: no cover - runs in the benchmark's server process
    """The tutorial endpoint: the whole upload in pandas, predict, to_csv."""
    import pandas as pd
    import tensorflow as tf
    from fastapi import FastAPI
    from fastapi.responses import Response

    version_dir = Path(os.environ["BENCH_VERSION_DIR"])
    spec = json.loads((version_dir / METADATA_FILE).read_text())["feature_spec"]
    names = [f["name"] for f in spec["features"]]
    keys = [c["column"] for c in (spec.get("entity"), spec["timestamp"]) if c]
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(file: UploadFile) -> Response:
        df = pd.read_csv(file.file)
        out = signature(**{n: tf.constant(df[n].values, tf.float32) for n in names})
        df["anomaly_score"] = out["anomaly_score"].numpy()
        df["is_anomaly"] = out["is_anomaly"].numpy()
        body = df[[*keys, "anomaly_score", "is_anomaly"]].to_csv(index=False)
        return Response(body, media_type="text/csv")

    return app


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--big-rows",
        type=int,
        default=0,
        help="also score a file this big through the service (e.g. 10000000)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--model-dir", type=Path, help="a pushed version directory (default: build the demo model)"
    )
    parser.add_argument(
        "--stand-in",
        action="store_true",
        help="score with a quickly built autoencoder-only model, not the newest pushed one",
    )
    parser.add_argument("--no-naive", action="store_true")
    parser.add_argument("--work-dir", type=Path, help="default: a temp dir, removed after")
    args = parser.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.model_dir:
            version_dir = args.model_dir.resolve()
            serving = work / "serving"
            serving.mkdir(exist_ok=True)
            link = serving / version_dir.name
            if not link.exists():
                link.symlink_to(version_dir)
        else:
            from anomalyops.settings import Settings

            serving_dir = Settings().serving_model_dir
            pushed = None if args.stand_in else newest_pushed_version(serving_dir)
            if pushed is not None:
                version_dir = pushed.resolve()
                serving = work / "serving"
                serving.mkdir(exist_ok=True)
                (serving / version_dir.name).symlink_to(version_dir)
                print(f"model: the pipeline's newest pushed version {version_dir}")
            else:
                if not args.stand_in:
                    print(
                        f"model: no pushed version in {serving_dir} (run "
                        "`make run` first, or pass --model-dir); using the stand-in autoencoder"
                    )
                version_dir = demo_version(work)
                serving = version_dir.parent
        spec = json.loads((version_dir / METADATA_FILE).read_text())["feature_spec"]
        csv_path = work / "input.csv"
        started = time.perf_counter()
        make_csv(csv_path, args.rows, spec)
        size_mb = csv_path.stat().st_size / 1e6
        print(
            f"input: {args.rows:,} rows x {len(spec['features'])} features, {size_mb:.0f} MB "
            f"CSV (made in {time.perf_counter() - started:.1f} s)"
        )
        print(f"client: {'curl' if shutil.which('curl') else 'httpx'}; cores: {os.cpu_count()}")

        env = {
            "ANOMALYOPS_API_MODEL_DIR": str(serving),
            "ANOMALYOPS_API_STATE_DIR": str(work / "state"),
            "ANOMALYOPS_API_SPOOL_DIR": str(work),
            "ANOMALYOPS_API_MAX_UPLOAD_BYTES": str(64 * 1024**3),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        servers = {"service": Server("anomalyops_api.main:create_app", env)}
        if not args.no_naive:
            naive_env = {"BENCH_VERSION_DIR": str(version_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
            servers["naive"] = Server("bench_scoring:create_naive_app", naive_env, REPO / "bench")
        try:
            servers["service"].wait_ready("/readyz")
            if "naive" in servers:
                servers["naive"].wait_ready("/healthz")
            idle = servers["service"].rss_mib("VmRSS")
            ceiling = Ceiling(version_dir)
            times: dict[str, list[float]] = {"ceiling": [], **{name: [] for name in servers}}
            reply = work / "reply.csv"
            # Interleaved, so load from other processes on the machine hits all alike.
            for _ in range(args.repeat):
                times["ceiling"].append(ceiling.run(csv_path, reply))
                times["service"].append(
                    timed_upload(servers["service"], "/v1/score", csv_path, args.rows, reply)
                )
                if "naive" in servers:
                    times["naive"].append(
                        timed_upload(servers["naive"], "/predict", csv_path, args.rows, reply)
                    )
            peaks = {name: server.rss_mib() for name, server in servers.items()}
            big = None
            if args.big_rows:
                big_csv = work / "big.csv"
                make_csv(big_csv, args.big_rows, spec, seed=1)
                big_s = timed_upload(servers["service"], "/v1/score", big_csv, args.big_rows, reply)
                big = (big_s, servers["service"].rss_mib())
                big_csv.unlink()
        finally:
            for server in servers.values():
                server.stop()

        labels = {
            "ceiling": "ceiling (in-process pyarrow)",
            "service": "service POST /v1/score",
            "naive": "naive pandas endpoint",
        }
        top = args.rows / min(times["ceiling"])
        print(
            f"\n{'':30} {'best s':>7} {'median s':>9} {'rows/s (best)':>14} {'x ceiling':>10} "
            f"{'peak RSS':>9}"
        )
        for name, values in times.items():
            rate = args.rows / min(values)
            peak = f"{peaks[name]:5.0f} MiB" if name in peaks else "        -"
            print(
                f"{labels[name]:30} {min(values):7.3f} {statistics.median(values):9.3f} "
                f"{rate:14,.0f} {rate / top:10.2f} {peak}"
            )
        print(f"\nservice RSS idle with the model loaded: {idle:.0f} MiB")
        if big:
            print(
                f"service on {args.big_rows:,} rows: {big[0]:.1f} s "
                f"({args.big_rows / big[0]:,.0f} rows/s), peak RSS {big[1]:.0f} MiB"
            )
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
