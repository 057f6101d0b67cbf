"""Has a day's data fully arrived in ``landing/<date>/``?

A feed that copies several files, or one large file, must not be ingested half-way. A day is
complete when the feed says so with a marker file (``_READY`` by default, written last), or,
for feeds that cannot write one, when no file in the folder has changed for a quiet period.
Only the folder's listing is read (names, sizes, modification times), never file contents,
so checking is cheap enough to repeat every minute while the triggerer waits.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

from anomalyops.lake import Lake
from anomalyops.settings import LandingSettings
from anomalyops.sources.landing_read import READABLE_SUFFIXES


class ArrivalState(enum.Enum):
    READY = "ready"
    """Complete: ingest may read it."""
    INCOMPLETE = "incomplete"
    """Files are there, but the marker is not and they have not been quiet long enough."""
    EMPTY = "empty"
    """No readable file yet (the marker alone does not count: see :attr:`Arrival.problem`)."""


@dataclass(frozen=True)
class ArrivalRules:
    ready_marker: str | None = "_READY"
    quiet_period_s: float | None = 600.0

    @classmethod
    def from_settings(cls, landing: LandingSettings) -> ArrivalRules:
        return cls(ready_marker=landing.ready_marker, quiet_period_s=landing.quiet_period_s)


@dataclass(frozen=True)
class Arrival:
    state: ArrivalState
    files: list[str]
    """The readable files (CSV/Parquet) in the folder, sorted."""
    detail: str
    """One sentence for logs and the "data late" email: why the day is (not) complete."""
    problem: str | None = None
    """Set when waiting cannot help (a marker with no data): fail now, do not wait."""
    ignored: list[str] = field(default_factory=list)
    """Other files in the folder (not CSV/Parquet), named so a misnamed export is noticed."""

    @property
    def ready(self) -> bool:
        return self.state is ArrivalState.READY


def is_readable(name: str) -> bool:
    """A file ingest reads: a CSV/Parquet name that is not hidden or private (``.x``, ``_x``)."""
    return name.lower().endswith(READABLE_SUFFIXES) and not name.startswith((".", "_"))


def check_arrival(lake: Lake, day: dt.date, rules: ArrivalRules, now: dt.datetime) -> Arrival:
    """Judge ``landing/<day>/`` at ``now`` (timezone-aware) by ``rules``."""
    folder = lake.landing_path(day)
    where = f"{lake.uri(folder)}/"
    if not lake.fs.exists(folder):
        return Arrival(ArrivalState.EMPTY, [], f"{where} does not exist yet")
    entries = [e for e in lake.fs.ls(folder, detail=True) if e.get("type") != "directory"]
    by_name = {_name(e): e for e in entries}
    files = sorted(n for n in by_name if is_readable(n))
    marked = bool(rules.ready_marker) and rules.ready_marker in by_name
    ignored = sorted(n for n in by_name if n not in files and n != rules.ready_marker)
    if not files:
        if marked:
            return Arrival(
                ArrivalState.EMPTY,
                [],
                f"{where}{rules.ready_marker} says the day is complete",
                problem=(
                    f"{where}{rules.ready_marker} marks the day complete but the folder holds no "
                    f"{'/'.join(READABLE_SUFFIXES)} file" + _also(ignored)
                ),
                ignored=ignored,
            )
        return Arrival(
            ArrivalState.EMPTY,
            [],
            f"no {'/'.join(READABLE_SUFFIXES)} file in {where} yet" + _also(ignored),
            ignored=ignored,
        )
    if marked:
        return Arrival(
            ArrivalState.READY, files, f"{where}{rules.ready_marker} found", None, ignored
        )
    waiting_for = f"{rules.ready_marker}" if rules.ready_marker else ""
    if rules.quiet_period_s is None:
        return Arrival(
            ArrivalState.INCOMPLETE,
            files,
            f"{len(files)} file(s) in {where}, waiting for {waiting_for}",
            ignored=ignored,
        )
    # Every entry counts, hidden ones included: a feed's temp file being written is activity.
    times = [_modified(e) for name, e in by_name.items() if name != rules.ready_marker]
    if any(t is None for t in times):
        return Arrival(
            ArrivalState.INCOMPLETE,
            files,
            f"the store reports no modification time for files in {where}, so no quiet period "
            f"can be measured: write {rules.ready_marker or 'a marker'} when the day is complete",
            ignored=ignored,
        )
    last = max(times)
    quiet = dt.timedelta(seconds=rules.quiet_period_s)
    if now - last >= quiet:
        return Arrival(
            ArrivalState.READY,
            files,
            f"{len(files)} file(s) in {where}, unchanged since {last:%Y-%m-%d %H:%M:%S} UTC "
            f"(quiet period {_span(quiet)})",
            ignored=ignored,
        )
    either = f"{waiting_for} or " if waiting_for else ""
    return Arrival(
        ArrivalState.INCOMPLETE,
        files,
        f"{len(files)} file(s) in {where}, last changed {last:%Y-%m-%d %H:%M:%S} UTC: waiting "
        f"for {either}{_span(quiet)} without changes",
        ignored=ignored,
    )


def _name(entry: dict) -> str:
    return str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]


def _modified(entry: dict) -> dt.datetime | None:
    """The entry's modification time as aware UTC; fsspec stores name it differently."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = entry.get(key)
        if value is None:
            continue
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(float(value), tz=dt.timezone.utc)
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return None


def _also(ignored: list[str]) -> str:
    if not ignored:
        return ""
    shown = ", ".join(ignored[:5]) + (", ..." if len(ignored) > 5 else "")
    return f" (not read: {shown}; only {'/'.join(READABLE_SUFFIXES)} files are ingested)"


def _span(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def write_marker(lake: Lake, day: dt.date, marker: str | None) -> None:
    """Mark ``landing/<day>/`` complete, as a well-behaved feed does after its last file."""
    if marker:
        lake.fs.pipe_file(f"{lake.landing_path(day)}/{marker}", b"")
