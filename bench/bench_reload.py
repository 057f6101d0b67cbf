"""Hot-reload latency and availability: push versions into a live service under load.

    .venv/bin/python bench/bench_reload.py                       # 10 polled + 10 admin reloads
    .venv/bin/python bench/bench_reload.py --reloads 20 --clients 8
    .venv/bin/python bench/bench_reload.py --model-dir var/serving/anomaly_detector/<version>

A push is what the pipeline's Pusher does: a complete version directory renamed into the
serving directory. Latency is measured from the rename to the first scoring reply that the
new version produced. Two modes: ``poll`` (the watcher finds it; default 1 s interval) and
``admin`` (the pipeline calls ``POST /admin/reload`` right after the push). Meanwhile
``--clients`` loopback clients score a small file non-stop; every reply must be 200 and come
whole from one version (with the demo model, version N scores N x the base score, so the
numbers prove which graph answered, not just the header).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scoring import Server  # the sibling script (bench/ is not a package)

REPO = Path(__file__).resolve().parents[1]
ADMIN_KEY = "bench-admin-key-0000000001"
KEY = "bench-scoring-key-000000001"


@dataclass
class Load:
    """Replies seen by the load clients."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    first_seen: dict[int, float] = field(default_factory=dict)
    requests: int = 0
    failed: list[str] = field(default_factory=list)
    mixed: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


def make_versions(staging: Path, versions: list[int], template: Path | None) -> None:
    from anomalyops.spec import load_spec, parse_spec
    from anomalyops_api.demo_model import write_version

    if template is None:
        spec = load_spec(REPO / "config" / "feature_spec.yaml")
        for v in versions:
            write_version(staging, v, spec, scale=float(v), threshold=3.0 * v)
        return
    meta = json.loads((template / "anomalyops_model.json").read_text())
    spec = parse_spec(meta["feature_spec"])
    for v in versions:
        write_version(staging, v, spec, template=template, threshold=meta["threshold"])


def payload(spec: dict, rows: int) -> tuple[bytes, np.ndarray | None]:
    """A small CSV and, for the demo model, its base scores (version N answers N x these)."""
    rng = np.random.default_rng(0)
    names = [f["name"] for f in spec["features"]]
    columns = {}
    for f in spec["features"]:
        low, high = f.get("min") or 0.0, f.get("max") or 6.0
        columns[f["name"]] = np.round(rng.uniform(low, high, rows), 3).astype(np.float32)
    lines = [",".join(names)] + [
        ",".join(f"{columns[n][i]:.3f}" for n in names) for i in range(rows)
    ]
    from anomalyops.spec import parse_spec
    from anomalyops_api.demo_model import expected_scores

    base = expected_scores(parse_spec(spec), columns)
    return ("\n".join(lines) + "\n").encode(), base


def client_loop(url: str, data: bytes, base: np.ndarray | None, load: Load) -> None:
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=60) as client:
        while not load.stop.is_set():
            try:
                r = client.post("/v1/score", files={"file": ("load.csv", data, "text/csv")})
            except httpx.HTTPError as exc:
                with load.lock:
                    load.requests += 1
                    load.failed.append(repr(exc))
                continue
            now = time.perf_counter()
            with load.lock:
                load.requests += 1
                if r.status_code != 200:
                    load.failed.append(f"HTTP {r.status_code}: {r.text[:200]}")
                    continue
                version = int(r.headers["x-model-version"])
                load.first_seen.setdefault(version, now)
            lines = r.content.decode().splitlines()[1:]
            versions = {line.split(",")[-2] for line in lines}
            whole = versions == {str(version)}
            if whole and base is not None:
                scores = np.array([float(line.split(",")[0]) for line in lines])
                whole = bool(np.allclose(scores, base * version, rtol=1e-4))
            if not whole:
                with load.lock:
                    load.mixed += 1


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=10, help="pushes per mode")
    parser.add_argument("--modes", default="poll,admin")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rows", type=int, default=200, help="rows per load request")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--model-dir", type=Path, help="a pushed version dir to copy per push")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]

    work = Path(tempfile.mkdtemp(prefix="bench-reload-"))
    try:
        serving, staging = work / "serving", work / "staging"
        serving.mkdir()
        template = args.model_dir.resolve() if args.model_dir else None
        versions = list(range(1, 2 + args.reloads * len(modes)))
        started = time.perf_counter()
        make_versions(staging, versions, template)
        print(
            f"built {len(versions)} versions in {time.perf_counter() - started:.1f} s "
            f"({'copies of ' + str(template) if template else 'demo model'})"
        )
        (staging / "1").rename(serving / "1")
        spec = json.loads((serving / "1" / "anomalyops_model.json").read_text())["feature_spec"]
        data, base = payload(spec, args.rows)
        if template is not None:
            base = None  # copies of one model: only the version column can be checked

        env = {
            "ANOMALYOPS_API_MODEL_DIR": str(serving),
            "ANOMALYOPS_API_STATE_DIR": str(work / "state"),
            "ANOMALYOPS_API_KEYS": KEY,
            "ANOMALYOPS_API_ADMIN_KEY": ADMIN_KEY,
            "ANOMALYOPS_API_POLL_INTERVAL_S": str(args.poll_interval),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        server = Server("anomalyops_api.main:create_app", env)
        load = Load()
        threads = []
        latencies: dict[str, list[float]] = {m: [] for m in modes}
        admin_calls: list[float] = []
        try:
            server.wait_ready("/readyz")
            threads = [
                threading.Thread(target=client_loop, args=(server.url, data, base, load))
                for _ in range(args.clients)
            ]
            for t in threads:
                t.start()
            admin = httpx.Client(base_url=server.url, headers={"X-API-Key": ADMIN_KEY}, timeout=60)
            rng = np.random.default_rng(1)
            version_iter = iter(versions[1:])
            time.sleep(1.0)
            for mode in modes:
                for _ in range(args.reloads):
                    version = next(version_iter)
                    (staging / str(version)).rename(serving / str(version))  # the push
                    pushed = time.perf_counter()
                    if mode == "admin":
                        body = admin.post("/admin/reload").json()
                        admin_calls.append(time.perf_counter() - pushed)
                        if body["model_version"] != version:
                            load.failed.append(f"admin reload answered {body}")
                    deadline = pushed + 30
                    while version not in load.first_seen and time.perf_counter() < deadline:
                        time.sleep(0.005)
                    if version not in load.first_seen:
                        load.failed.append(f"v{version} never answered")
                        continue
                    latencies[mode].append(load.first_seen[version] - pushed)
                    time.sleep(float(rng.uniform(0.3, 1.0)))  # pushes land at any poll phase
            admin.close()
        finally:
            load.stop.set()
            for t in threads:
                t.join(timeout=60)
            peak = server.rss_mib()
            server.stop()

        print(f"\nload: {args.clients} clients x {args.rows}-row files, {load.requests} requests")
        print(f"{'mode':8} {'pushes':>6} {'p50 s':>7} {'p95 s':>7} {'max s':>7}")
        for mode, values in latencies.items():
            print(
                f"{mode:8} {len(values):6d} {percentile(values, 50):7.3f} "
                f"{percentile(values, 95):7.3f} {max(values, default=float('nan')):7.3f}"
            )
        if admin_calls:
            print(
                f"POST /admin/reload round trip: p50 {statistics.median(admin_calls):.3f} s, "
                f"max {max(admin_calls):.3f} s"
            )
        print(
            f"failed requests: {len(load.failed)}; replies not whole from one version: "
            f"{load.mixed}; service peak RSS {peak:.0f} MiB"
        )
        for problem in load.failed[:10]:
            print("  ", problem)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
