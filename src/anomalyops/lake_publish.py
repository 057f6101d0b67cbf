"""Publishing a partition: a complete temporary copy swapped into place, under a journal.

Before the old partition is touched, a journal (``<zone>/_tmp/ds=<day>.publish.json``) names
the complete new copy, which is kept until the new partition has its ``_SUCCESS`` marker
(written last: it is what makes a partition visible). A publish cut short (a failed copy, a
killed process) is finished later from the journal by :meth:`Publisher.complete`.

Local disks rename directories; object stores have no rename, so there the new copy is copied
in file by file, marker last. Callers hold the date's lock (:mod:`anomalyops.lake_lock`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable

log = logging.getLogger("anomalyops.lake")  # the lake's own logger, as before the split

SUCCESS = "_SUCCESS"
JOURNAL_SUFFIX = ".publish.json"


class Publisher:
    """Swaps temporary copies into place on one fsspec filesystem (``uri`` names paths in logs)."""

    def __init__(self, fs, uri: Callable[[str], str]):
        self.fs, self.uri = fs, uri

    @property
    def renames_directories(self) -> bool:
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        return bool({"file", "local"} & set(protocols))

    @staticmethod
    def journal_record(tmp: str, final: str) -> bytes:
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        return json.dumps({"tmp": tmp, "final": final, "started_at": started}).encode()

    def swap_in(self, tmp: str, final: str, journal: str | None = None) -> None:
        if not self.renames_directories:
            self._publish_by_copy(tmp, final)
            return
        # Rename the old partition aside (not delete) before renaming the new one in, so that
        # at every instant one complete copy exists under a known name.
        old = f"{tmp}.replaced"
        replaced = self.fs.exists(final)
        if replaced:
            self.fs.mv(final, old, recursive=True)
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        try:
            self.fs.mv(tmp, final, recursive=True)
        except BaseException:
            if replaced:
                self.fs.mv(old, final, recursive=True)
            if journal is not None:
                self.fs.rm(journal)  # the old partition is back whole: nothing to finish
            raise
        if replaced:
            log.info("replaced partition %s", self.uri(final))

    def _publish_by_copy(self, tmp: str, final: str) -> None:
        """Object stores have no directory rename: hide the old partition, copy, marker last.

        Readers see either the old partition, none, or the new one (never a mix). The complete
        new copy in ``_tmp/`` is removed by the caller only once the marker is in place.
        """
        replaced = self.fs.exists(final)
        if self.fs.exists(f"{final}/{SUCCESS}"):
            self.fs.rm(f"{final}/{SUCCESS}")
        if replaced:
            self.fs.rm(final, recursive=True)
        files = sorted(self.fs.find(tmp), key=lambda path: path.endswith(f"/{SUCCESS}"))
        for path in files:
            self.fs.copy(path, final + path[len(tmp) :])
        if replaced:
            log.info("replaced partition %s", self.uri(final))

    def finish(self, journal: str, tmp: str | None) -> None:
        # The journal goes first: once it is gone nothing will re-publish from ``tmp``.
        if self.fs.exists(journal):
            self.fs.rm(journal)
        for leftover in (tmp, f"{tmp}.replaced") if tmp else ():
            if self.fs.exists(leftover):
                self.fs.rm(leftover, recursive=True)

    def read_journal(self, journal: str) -> dict:
        """The journal's record; ``{}`` if unreadable (a journal is written before anything
        is touched, so a torn one means the publish never started). Raises FileNotFoundError."""
        with self.fs.open(journal, "rb") as f:
            raw = f.read()
        try:
            record = json.loads(raw)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def journal_names(self, journal: str, tmp: str) -> bool:
        try:
            return self.read_journal(journal).get("tmp") == tmp
        except FileNotFoundError:
            return False

    def complete(self, journal: str, final: str) -> bool:
        """Finish the publish ``journal`` records into ``final``; True if there was one."""
        try:
            record = self.read_journal(journal)
        except FileNotFoundError:
            return False  # nothing cut short, or another writer finished it meanwhile
        tmp = record.get("tmp")
        marker = f"{tmp}/{SUCCESS}"
        if tmp and self.fs.exists(marker) and not self._same_marker(marker, f"{final}/{SUCCESS}"):
            log.warning(
                "finishing the publish of %s started at %s from %s (it was cut short)",
                self.uri(final),
                record.get("started_at", "?"),
                self.uri(tmp),
            )
            self.swap_in(tmp, final)
        else:
            log.warning("cleaning up after a finished publish of %s", self.uri(final))
        self.finish(journal, tmp)
        return True

    def drop(self, journal: str, final: str) -> bool:
        """Abandon the unfinished publish ``journal`` records; True if there was one."""
        try:
            tmp = self.read_journal(journal).get("tmp")
        except FileNotFoundError:
            return False
        log.warning("dropping the unfinished publish of %s", self.uri(final))
        self.finish(journal, tmp)
        return True

    def _same_marker(self, a: str, b: str) -> bool:
        try:
            with self.fs.open(a, "rb") as fa, self.fs.open(b, "rb") as fb:
                return fa.read() == fb.read()
        except FileNotFoundError:
            return False
