"""The study's answers in SQLite (`STUDY/answers.sqlite`), safe for many participants at once and
for a server killed at any moment.

The database runs in WAL mode with synchronous=FULL: a submitted page is one IMMEDIATE
transaction (its six ratings and its rank per version, and the page's row) that is either wholly
on disk before the participant sees the next page or not there at all. Each call opens its own
connection, so the server's threads never share one; writers queue on SQLite's lock (busy
timeout) instead of failing.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vbgm.errors import VbgmError
from vbgm.study import design
from vbgm.study.manifest import ANSWERS, Manifest

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read and typed
FIELDS = (*design.QUESTION_KEYS, "rank")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
    number INTEGER PRIMARY KEY,           -- 1, 2, ...: picks the counterbalancing row
    code TEXT NOT NULL UNIQUE,            -- what the participant types to resume
    created REAL NOT NULL,
    plan TEXT NOT NULL                    -- JSON [[video, [system, ...]], ...] in page order
);
CREATE TABLE IF NOT EXISTS pages (
    participant INTEGER NOT NULL REFERENCES participants(number),
    video TEXT NOT NULL,
    page INTEGER NOT NULL,
    submitted REAL NOT NULL,
    PRIMARY KEY (participant, video)
);
CREATE TABLE IF NOT EXISTS ratings (
    participant INTEGER NOT NULL REFERENCES participants(number),
    video TEXT NOT NULL,
    system TEXT NOT NULL,
    position INTEGER NOT NULL,            -- 0 = shown first (A)
    {", ".join(f"{k} INTEGER NOT NULL CHECK ({k} BETWEEN 1 AND 5)" for k in design.QUESTION_KEYS)},
    rank INTEGER NOT NULL CHECK (rank >= 1),
    PRIMARY KEY (participant, video, system)
);
"""


@dataclass(frozen=True)
class Participant:
    """A participant: number (1, 2, ...), resume code, and pages as (video name, systems in the
    order shown)."""

    number: int
    code: str
    plan: list[tuple[str, list[str]]]


def normalize_code(text: str) -> str:
    """A typed code in its stored form: upper case, without spaces or dashes."""
    return "".join(c for c in text.upper() if c.isalnum())


def show_code(code: str) -> str:
    """A code as shown to the participant: `ABCD-EFGH`."""
    return f"{code[:4]}-{code[4:]}"


class Store:
    """The answers of one study. Creates the database on first use; refuses one that belongs to
    another study (a different manifest id)."""

    def __init__(self, study: Path, manifest: Manifest) -> None:
        self.path = study / ANSWERS
        self.manifest = manifest
        try:
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('study', ?)", (manifest.id,))
                owner = db.execute("SELECT value FROM meta WHERE key='study'").fetchone()[0]
        except sqlite3.Error as exc:
            raise VbgmError(f"{self.path}: cannot use the answers database ({exc})") from exc
        if owner != manifest.id:
            raise VbgmError(f"{self.path}: these answers belong to another study (id {owner}, "
                            f"the manifest says {manifest.id})")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed whole, or rolled back on any error."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def new_participant(self) -> Participant:
        """Register a participant: the next number, a fresh code, and their pages' order."""
        with self._transaction() as db:
            number = db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM participants"
                                ).fetchone()[0]
            while True:
                code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
                if db.execute("SELECT 1 FROM participants WHERE code=?", (code,)).fetchone() \
                        is None:
                    break
            m = self.manifest
            pages = design.plan(number - 1, len(m.videos), m.systems, m.seed, code)
            plan = [(m.videos[v].name, order) for v, order in pages]
            db.execute("INSERT INTO participants VALUES (?, ?, ?, ?)",
                       (number, code, time.time(), json.dumps(plan)))
        return Participant(number, code, plan)

    def participant(self, code: str) -> Participant | None:
        """The participant with this code (as typed), or None."""
        with self._connect() as db:
            row = db.execute("SELECT number, code, plan FROM participants WHERE code=?",
                             (normalize_code(code),)).fetchone()
        if row is None:
            return None
        return Participant(row[0], row[1], [(v, list(s)) for v, s in json.loads(row[2])])

    def answers(self, number: int) -> dict[str, dict[str, dict[str, int]]]:
        """A participant's stored answers: video → system → field → value."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        with self._connect() as db:
            rows = db.execute(f"SELECT video, system, {', '.join(FIELDS)} FROM ratings "
                              f"WHERE participant=?", (number,)).fetchall()
        for video, system, *values in rows:
            out.setdefault(video, {})[system] = dict(zip(FIELDS, values, strict=True))
        return out

    def record_page(self, who: Participant, page: int,
                    answers: dict[str, dict[str, int]]) -> None:
        """Store one submitted page (0-based `page` of `who`'s plan): per system its six ratings
        and its rank. Replaces an earlier submission of the same page, in one transaction."""
        video, order = who.plan[page]
        if sorted(answers) != sorted(order):
            raise ValueError("an answer per version is needed")
        ranks = sorted(a["rank"] for a in answers.values())
        if ranks != list(range(1, len(order) + 1)):
            raise ValueError("the ranks must be 1..n, each once")
        for a in answers.values():
            if any(a[k] not in design.SCALE for k in design.QUESTION_KEYS):
                raise ValueError("each rating is 1..5")
        with self._transaction() as db:
            db.execute("DELETE FROM ratings WHERE participant=? AND video=?", (who.number, video))
            db.executemany(
                f"INSERT INTO ratings VALUES (?, ?, ?, ?, {', '.join('?' * len(FIELDS))})",
                [(who.number, video, s, order.index(s), *(answers[s][k] for k in FIELDS))
                 for s in order])
            db.execute("INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?)",
                       (who.number, video, page, time.time()))

    def ratings(self) -> list[dict[str, object]]:
        """Every stored rating row (participant, video, system, position, six ratings, rank)."""
        with self._connect() as db:
            cur = db.execute(f"SELECT participant, video, system, position, {', '.join(FIELDS)} "
                             f"FROM ratings ORDER BY participant, video, position")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def counts(self) -> tuple[int, int]:
        """(participants registered, pages answered)."""
        with self._connect() as db:
            return (db.execute("SELECT COUNT(*) FROM participants").fetchone()[0],
                    db.execute("SELECT COUNT(*) FROM pages").fetchone()[0])
