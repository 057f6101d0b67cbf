"""Landing -> raw: the first transaction of every day.

``land`` puts a day's source data into ``landing/<date>/`` (the simulator writes a file there,
exactly as a user's export would arrive); ``ingest`` reads whatever is in that folder, checks it
against the feature spec and writes the ``raw/ds=<date>`` partition. A day whose files cannot be
read is copied to ``quarantine/`` with a reason file and the task fails with every problem listed.
Landing files are untrusted input: see :mod:`anomalyops.sources.landing` for what is refused.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass

from anomalyops import temporal
from anomalyops.lake import Lake, Zone, as_date
from anomalyops.settings import Settings
from anomalyops.sources.arrival import is_readable
from anomalyops.sources.landing import IngestError, LandingFile, Limits, copy_file, is_local
from anomalyops.sources.landing_read import READABLE_SUFFIXES, load_files
from anomalyops.sources.simulator import SimulatorConfig, corrupt, simulate_day
from anomalyops.spec import FeatureSpec, load_spec
from anomalyops.validation.report import REASON_FILE, read_reason

log = logging.getLogger(__name__)

SIMULATED_FILE = "simulated.parquet"


@dataclass(frozen=True)
class IngestResult:
    ds: str
    rows: int
    files: list[str]
    path: str


def simulator_config(settings: Settings) -> SimulatorConfig:
    sim = settings.simulator
    return SimulatorConfig(
        seed=sim.seed,
        rows_per_day=sim.rows_per_day,
        scenario=sim.scenario,
        drift_start=sim.drift_start or settings.start_date + dt.timedelta(days=14),
        anomaly_rate=sim.anomaly_rate,
        max_event_share=sim.max_event_share,
        anomaly_kinds=tuple(sim.anomaly_kinds),
    )


def land(ds: str | dt.date, settings: Settings) -> list[str]:
    """Make sure ``landing/<ds>/`` holds the day's files; return their names.

    With the simulator as source, (re)write its file for the day; with ``landing`` as source,
    fail clearly when the user has not dropped anything yet. (The ingest DAG's ``land`` task
    calls this for the simulator only; with ``landing`` it waits for the day to be complete,
    ``anomalyops_airflow.landing``.)
    """
    day, lake = as_date(ds), Lake(settings.lake_root)
    if settings.source == "simulator":
        spec = load_spec(settings.feature_spec_path)
        df = simulate_day(spec, day, simulator_config(settings))
        kind = settings.simulator.corrupt_days.get(day)
        if kind:
            log.warning("simulator: corrupting %s with %r (configured demo failure)", day, kind)
            df = corrupt(df, spec, kind, seed=settings.simulator.seed)
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        _put_atomic(lake, f"{lake.landing_path(day)}/{SIMULATED_FILE}", buf.getvalue())
    names = landing_files(lake, day)
    if not names:
        raise FileNotFoundError(
            f"no {'/'.join(READABLE_SUFFIXES)} files in {lake.uri(lake.landing_path(day))}/ "
            f"for {day}: drop the day's export there, then clear this task"
        )
    return names


def landing_files(lake: Lake, day: dt.date) -> list[str]:
    folder = lake.landing_path(day)
    if not lake.fs.exists(folder):
        return []
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in lake.fs.ls(folder, detail=False)]
    return sorted(n for n in names if is_readable(n))


def ingest(ds: str | dt.date, settings: Settings, spec: FeatureSpec | None = None) -> IngestResult:
    """Read ``landing/<ds>/`` and atomically (re)write ``raw/ds=<ds>``."""
    day, lake = as_date(ds), Lake(settings.lake_root)
    spec = spec or load_spec(settings.feature_spec_path)
    names = landing_files(lake, day)
    if not names:
        raise FileNotFoundError(f"nothing to ingest in {lake.uri(lake.landing_path(day))}/")
    limits = Limits.from_settings(settings.ingest)
    files = [
        LandingFile(f"landing/{day}/{n}", lake.fs, f"{lake.landing_path(day)}/{n}") for n in names
    ]
    refused_day = _refused_day(lake, day, len(names), settings)
    try:
        if refused_day:
            raise IngestError([refused_day])
        df = load_files(files, spec, limits)
    except IngestError as exc:
        _quarantine(lake, day, files, exc.problems, limits, copy=refused_day is None)
        log.error("quarantined %s: %s", day, exc)
        raise
    if _quarantined_at_ingest(lake, day):
        # Only the copy of landing files that could not be read: the originals are still in
        # landing/. A day the gate quarantined keeps its record until readmitted.
        lake.remove(Zone.QUARANTINE, day, reason="its landing files were re-ingested successfully")
    df = _add_temporal(lake, day, spec, df)
    path = lake.write_table(
        Zone.RAW, day, df, meta={"source_files": names, "spec": spec.fingerprint()}
    )
    log.info("ingested %d rows from %s into %s", len(df), names, lake.uri(path))
    return IngestResult(ds=day.isoformat(), rows=len(df), files=names, path=lake.uri(path))


def _add_temporal(lake: Lake, day: dt.date, spec: FeatureSpec, df):
    """The day with the spec's derived columns, the previous raw day's last rows per entity as
    history so the day's first rows get values as if the days were one series. Without that
    day (the first day, a gap) the first rows of each entity stay missing (warm-up)."""
    if not spec.derived_columns:
        return df
    before = day - dt.timedelta(days=1)
    history = None
    if lake.exists(Zone.RAW, before):
        previous = lake.read_table(Zone.RAW, before)
        if set(spec.key_columns + spec.feature_names) <= set(previous.columns):
            history = temporal.tail(spec, previous)
    out = temporal.add_derived(spec, df, history)
    log.info(
        "temporal derivations for %s: %s; history from %s (%d rows)",
        day,
        [d.name for d in spec.derived_columns],
        before if history is not None else "nothing (warm-up)",
        0 if history is None else len(history),
    )
    return out


def _refused_day(lake: Lake, day: dt.date, count: int, settings: Settings) -> str | None:
    """A reason to refuse the whole folder (then nothing in it is read or copied), or None."""
    if is_local(lake.fs) and os.path.islink(lake.landing_path(day)):
        # Its files would pass as regular files, but they live wherever the link points.
        return (
            f"landing/{day}/: refused: the day's folder is a symbolic link; landing accepts "
            "files in a real folder only (nothing was read)"
        )
    if count > settings.ingest.max_files:
        return (
            f"landing/{day}/: refused: {count:,} files exceeds the limit "
            f"(ANOMALYOPS_INGEST__MAX_FILES = {settings.ingest.max_files:,}); "
            "combine the day's exports"
        )
    return None


def _quarantined_at_ingest(lake: Lake, day: dt.date) -> bool:
    try:
        reason = read_reason(lake, day)
    except ValueError:  # an unreadable record is not ours to remove
        return False
    return reason is not None and reason.get("stage") == "ingest"


def ingest_as_dict(ds: str, settings: Settings) -> dict:
    return asdict(ingest(ds, settings))


def _quarantine(
    lake: Lake,
    day: dt.date,
    files: list[LandingFile],
    problems: list[str],
    limits: Limits,
    *,
    copy: bool,
) -> None:
    """Write ``quarantine/ds=<day>/``: the reason, and a copy of every landing file that is safe
    to copy (regular, within the size limit), streamed. A refused file (symlink, FIFO, device,
    too big) is neither copied nor read: only its name is recorded."""
    names = [f.path.rsplit("/", 1)[-1] for f in files]
    not_copied = [] if copy else names
    meta = {"reason": "ingest", "problems": len(problems)}
    with lake.transaction(Zone.QUARANTINE, day, meta=meta) as tmp:
        for file, name in zip(files, names, strict=True) if copy else []:
            try:
                with lake.fs.open(f"{tmp}/{name}", "wb") as dst:
                    copy_file(file, dst, limits)
            except IngestError:
                if lake.fs.exists(f"{tmp}/{name}"):
                    lake.fs.rm(f"{tmp}/{name}")
                not_copied.append(name)
        reason = {
            "ds": day.isoformat(),
            "stage": "ingest",
            "problems": problems,
            "files": names,
            "not_copied": not_copied,  # refused files: only their names are kept
        }
        with lake.fs.open(f"{tmp}/{REASON_FILE}", "wb") as f:
            f.write(json.dumps(reason, indent=2).encode())


def _put_atomic(lake: Lake, path: str, data: bytes) -> None:
    folder, name = path.rsplit("/", 1)
    lake.fs.makedirs(folder, exist_ok=True)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
    with lake.fs.open(tmp, "wb") as f:
        f.write(data)
    lake.fs.mv(tmp, path)
