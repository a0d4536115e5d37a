"""The history database, through SQLAlchemy Core: SQLite by default (a file, nothing to install),
PostgreSQL (or another SQL server SQLAlchemy speaks) by URL.

Tables (all prefixed ``llmperf_``):

- ``meta``: ``schema_version``.
- ``sessions``: one row per pytest session or imported file: time, suite, commit, branch, host,
  plugin version, source, the redacted session environment, whether the session saved the
  baseline, and how many cases and values it holds (``verify`` checks these counts).
- ``fingerprints``: each distinct environment fingerprint once (id = ``Fingerprint.id()``).
- ``cases``: one row per case of a session: ids, fingerprint, pass/fail, saturation status,
  the baseline verdict and the per-metric verdicts, the gates.
- ``run_values``: every run's raw value of every metric (case row, run index, metric, value).

A session is written in one transaction: it is stored whole or not at all, so a writer killed
mid-write loses nothing already stored (SQLite's journal and PostgreSQL's WAL roll the torn
transaction back). SQLite runs in WAL mode with a busy timeout and takes the write lock at the
start of the transaction (``BEGIN IMMEDIATE``), so two CI jobs writing the same file queue
instead of failing; WAL needs a local file system (not NFS). PostgreSQL writers insert
fingerprints with ``ON CONFLICT DO NOTHING`` and create the schema under an advisory lock.

Size (about 480 lines), stated: one class, ``HistoryStore``, over one SQLAlchemy schema; the
write transaction, the reads and ``verify`` must agree on the same tables and counts, so they
are kept together. The schema-free parts live in ``history.model`` and ``history.session``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pytest_llmperf.history.model import CaseEntry, HistoryError, SessionRecord

SCHEMA_VERSION: Final[int] = 1
BUSY_TIMEOUT_S: Final[float] = 120.0

metadata = sa.MetaData()

meta = sa.Table(
    "llmperf_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

sessions = sa.Table(
    "llmperf_sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uid", sa.String(64), nullable=False, unique=True),
    sa.Column("started", sa.String(32), nullable=False, index=True),
    sa.Column("finished", sa.String(32)),
    sa.Column("suite", sa.String(200), nullable=False),
    sa.Column("commit_sha", sa.String(64)),
    sa.Column("branch", sa.String(200)),
    sa.Column("dirty", sa.Boolean),
    sa.Column("host", sa.String(200)),
    sa.Column("plugin_version", sa.String(64)),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("source_path", sa.Text),
    sa.Column("complete", sa.Boolean, nullable=False),
    sa.Column("baseline_saved", sa.Boolean, nullable=False),
    sa.Column("environment", sa.Text, nullable=False),
    sa.Column("n_cases", sa.Integer, nullable=False),
    sa.Column("n_values", sa.Integer, nullable=False),
)

fingerprints = sa.Table(
    "llmperf_fingerprints",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("data", sa.Text, nullable=False),
)

cases = sa.Table(
    "llmperf_cases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "session_id",
        sa.Integer,
        sa.ForeignKey("llmperf_sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("case_id", sa.String(400), nullable=False),
    sa.Column("model", sa.String(400), nullable=False),
    sa.Column("workload", sa.String(200), nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column(
        "fingerprint_id", sa.String(32), sa.ForeignKey("llmperf_fingerprints.id"), nullable=False
    ),
    sa.Column("partial_fingerprint", sa.Boolean, nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(32)),
    sa.Column("client_bound", sa.Boolean, nullable=False),
    sa.Column("verdict", sa.String(32)),
    sa.Column("verdicts", sa.Text, nullable=False),
    sa.Column("gates", sa.Text, nullable=False),
    sa.Column("n_runs", sa.Integer, nullable=False),
    sa.Index("ix_llmperf_cases_case_fp", "case_id", "fingerprint_id"),
)

run_values = sa.Table(
    "llmperf_run_values",
    metadata,
    sa.Column(
        "case_row",
        sa.Integer,
        sa.ForeignKey("llmperf_cases.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("run", sa.Integer, primary_key=True),
    sa.Column("metric", sa.String(100), primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
)


def resolve_url(target: str | os.PathLike[str]) -> str:
    """A database URL from a URL or a file path (a path means a SQLite file). A bare
    ``postgresql://`` URL uses psycopg 3 when it is installed and psycopg2 is not."""
    text = os.fspath(target)
    if "://" not in text:
        return "sqlite:///" + str(Path(text).expanduser().resolve())
    url = sa.engine.make_url(text)
    if url.drivername == "postgresql":
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
            url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def display_url(url: str) -> str:
    """The URL with its password hidden, for messages and reports."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL we can parse: show nothing of it that might be secret
        return "<database URL>"


@dataclass(frozen=True)
class Recorded:
    session_id: int
    stored: bool  # False: a session with this uid was already there (nothing written)


class HistoryStore:
    """One history database. Create it with a URL or a SQLite file path; the schema is created
    on first use. ``close`` (or ``with``) releases the connections."""

    def __init__(self, target: str | os.PathLike[str], *, create: bool = True) -> None:
        self.url = resolve_url(target)
        self.display = display_url(self.url)
        parsed = sa.engine.make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            db = parsed.database
            if not db or db == ":memory:":
                raise HistoryError(
                    "an in-memory SQLite history keeps nothing; give a file path or a "
                    "sqlite:///path URL"
                )
            path = Path(db)
            if not path.exists():
                if not create:
                    raise HistoryError(
                        f"no history store at {path}; run pytest --llmperf once (it records "
                        "every session there) or import results with "
                        "'python -m pytest_llmperf history import'"
                    )
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise HistoryError(
                        f"cannot create the folder of the history store {path}: {exc.strerror}"
                    ) from None
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S}
            kwargs["poolclass"] = sa.pool.NullPool
        try:
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
        except (ImportError, sa.exc.ArgumentError) as exc:
            raise HistoryError(
                f"cannot open the history store {self.display}: {exc}. For PostgreSQL install "
                "a driver (pip install 'psycopg[binary]') and use postgresql+psycopg://..."
            ) from None
        if self.dialect == "sqlite":
            _sqlite_pragmas(self.engine)
        self._writer = self.engine.execution_options(llmperf_write=True)
        self._ready = False
        self._create = create

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    def _connect_error(self, exc: Exception) -> HistoryError:
        return HistoryError(f"cannot use the history store {self.display}: {exc}")

    def ensure_schema(self) -> None:
        if self._ready:
            return
        try:
            with self._writer.begin() as conn:
                if self.dialect == "postgresql":
                    # Two jobs creating the tables at once would collide on the catalog.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(762011)"))
                metadata.create_all(conn, checkfirst=True)
                row = conn.execute(
                    sa.select(meta.c.value).where(meta.c.key == "schema_version")
                ).first()
                if row is None:
                    conn.execute(meta.insert().values(key="schema_version", value="1"))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise HistoryError(
                        f"the history store {self.display} was written by a newer "
                        f"pytest-llmperf (schema {row[0]}, this one reads {SCHEMA_VERSION}); "
                        "upgrade pytest-llmperf"
                    )
        except sa.exc.SQLAlchemyError as exc:
            raise self._connect_error(exc) from None
        self._ready = True

    # -- writing ----------------------------------------------------------------------------
    def record(self, session: SessionRecord) -> Recorded:
        """Store one session in a single transaction (idempotent by ``session.uid``). The
        caller redacts first (``SessionRecord.redacted``); the plugin always does."""
        self.ensure_schema()
        try:
            with self._writer.begin() as conn:
                existing = conn.execute(
                    sa.select(sessions.c.id).where(sessions.c.uid == session.uid)
                ).first()
                if existing is not None:
                    return Recorded(int(existing[0]), stored=False)
                self._put_fingerprints(
                    conn, {c.fingerprint.id(): c.fingerprint for c in session.cases}
                )
                sid = self._insert_session(conn, session)
                for c in session.cases:
                    self._insert_case(conn, sid, c)
                return Recorded(int(sid), stored=True)
        except sa.exc.SQLAlchemyError as exc:
            raise HistoryError(
                f"could not record the session in the history store {self.display} "
                f"(nothing of it was written): {exc}"
            ) from None

    @staticmethod
    def _insert_session(conn: Connection, session: SessionRecord) -> int:
        """The session's row; its id."""
        return conn.execute(
            sessions.insert().values(
                uid=session.uid,
                started=session.started,
                finished=session.finished,
                suite=session.suite,
                commit_sha=session.commit,
                branch=session.branch,
                dirty=session.dirty,
                host=session.host,
                plugin_version=session.plugin_version,
                source=session.source,
                source_path=session.source_path,
                complete=session.complete,
                baseline_saved=session.baseline_saved,
                environment=_dump(session.environment),
                n_cases=len(session.cases),
                n_values=session.n_values,
            )
        ).inserted_primary_key[0]

    @staticmethod
    def _insert_case(conn: Connection, sid: int, c: CaseEntry) -> None:
        """One case's row of session ``sid``, then every value of its runs (a row per run and
        metric, metrics in name order)."""
        cid = conn.execute(
            cases.insert().values(
                session_id=sid,
                case_id=c.case_id,
                model=c.model,
                workload=c.workload,
                concurrency=c.concurrency,
                fingerprint_id=c.fingerprint.id(),
                partial_fingerprint=c.partial_fingerprint,
                passed=c.passed,
                status=c.status,
                client_bound=c.client_bound,
                verdict=c.verdict,
                verdicts=_dump(list(c.verdicts)),
                gates=_dump(list(c.gates)),
                n_runs=len(c.runs),
            )
        ).inserted_primary_key[0]
        rows = [
            {"case_row": cid, "run": i, "metric": k, "value": float(v)}
            for i, run in enumerate(c.runs)
            for k, v in sorted(run.items())
        ]
        if rows:
            conn.execute(run_values.insert(), rows)

    def _put_fingerprints(self, conn: Connection, fps: Mapping[str, Any]) -> None:
        rows = [{"id": k, "data": _dump(fp.to_dict())} for k, fp in sorted(fps.items())]
        if not rows:
            return
        if self.dialect in ("sqlite", "postgresql"):
            if self.dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            conn.execute(insert(fingerprints).on_conflict_do_nothing(index_elements=["id"]), rows)
            return
        have = {
            r[0]
            for r in conn.execute(
                sa.select(fingerprints.c.id).where(fingerprints.c.id.in_([r["id"] for r in rows]))
            )
        }
        todo = [r for r in rows if r["id"] not in have]
        if todo:
            conn.execute(fingerprints.insert(), todo)

    def prune(
        self,
        *,
        before: str | None = None,
        keep_last: int | None = None,
        dry_run: bool = False,
    ) -> list[int]:
        """Delete sessions started before ``before`` (ISO time) and/or all but the newest
        ``keep_last``; returns the ids deleted (or that would be, with ``dry_run``). Child rows
        go in the same transaction; fingerprints no case uses any more go too."""
        if before is None and keep_last is None:
            raise HistoryError("say what to prune: --before DATE and/or --keep-last N")
        if keep_last is not None and keep_last < 0:
            raise HistoryError("--keep-last must be 0 or more")
        self.ensure_schema()
        with self._writer.begin() as conn:
            rows = conn.execute(
                sa.select(sessions.c.id, sessions.c.started).order_by(
                    sessions.c.started.desc(), sessions.c.id.desc()
                )
            ).all()
            doomed = set()
            if before is not None:
                doomed |= {r.id for r in rows if r.started < before}
            if keep_last is not None:
                doomed |= {r.id for r in rows[keep_last:]}
            ids = sorted(doomed)
            if dry_run or not ids:
                return ids
            case_rows = sa.select(cases.c.id).where(cases.c.session_id.in_(ids))
            conn.execute(run_values.delete().where(run_values.c.case_row.in_(case_rows)))
            conn.execute(cases.delete().where(cases.c.session_id.in_(ids)))
            conn.execute(sessions.delete().where(sessions.c.id.in_(ids)))
            used = sa.select(cases.c.fingerprint_id)
            conn.execute(fingerprints.delete().where(fingerprints.c.id.not_in(used)))
        if self.dialect == "sqlite":
            raw = self.engine.raw_connection()  # VACUUM must run outside any transaction
            try:
                raw.cursor().execute("VACUUM")  # give the freed pages back to the disk
            finally:
                raw.close()
        return ids

    # -- reading ----------------------------------------------------------------------------
    def sessions(self) -> list[dict[str, Any]]:
        self.ensure_schema()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(sessions).order_by(sessions.c.started, sessions.c.id))
            return [dict(r._mapping) for r in rows]

    def fingerprints(self) -> dict[str, dict[str, Any]]:
        self.ensure_schema()
        with self.engine.connect() as conn:
            return {r.id: json.loads(r.data) for r in conn.execute(sa.select(fingerprints))}

    def values(
        self,
        *,
        metrics: Sequence[str] | None = None,
        case_ids: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Every stored run value (with its case and session), oldest session first."""
        self.ensure_schema()
        q = (
            sa.select(
                sessions.c.id.label("session_id"),
                sessions.c.started,
                sessions.c.commit_sha,
                sessions.c.suite,
                sessions.c.baseline_saved,
                cases.c.id.label("case_row"),
                cases.c.case_id,
                cases.c.fingerprint_id,
                cases.c.partial_fingerprint,
                cases.c.passed,
                cases.c.client_bound,
                cases.c.verdict,
                run_values.c.run,
                run_values.c.metric,
                run_values.c.value,
            )
            .select_from(sessions.join(cases).join(run_values))
            .order_by(sessions.c.started, sessions.c.id, cases.c.id, run_values.c.run)
        )
        if metrics is not None:
            q = q.where(run_values.c.metric.in_(list(metrics)))
        if case_ids is not None:
            q = q.where(cases.c.case_id.in_(list(case_ids)))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def verify(self) -> list[str]:
        """Problems found (empty when consistent): the database's own check, and every
        session holding exactly the cases and values it was written with."""
        self.ensure_schema()
        problems: list[str] = []
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                res = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
                if res != ["ok"]:
                    problems.append("SQLite integrity_check: " + "; ".join(map(str, res)))
            n_cases = dict(
                conn.execute(
                    sa.select(cases.c.session_id, sa.func.count()).group_by(cases.c.session_id)
                ).all()
            )
            n_vals = dict(
                conn.execute(
                    sa.select(cases.c.session_id, sa.func.count())
                    .select_from(cases.join(run_values))
                    .group_by(cases.c.session_id)
                ).all()
            )
            for s in conn.execute(
                sa.select(sessions.c.id, sessions.c.n_cases, sessions.c.n_values)
            ):
                got_c, got_v = n_cases.get(s.id, 0), n_vals.get(s.id, 0)
                if (got_c, got_v) != (s.n_cases, s.n_values):
                    problems.append(
                        f"session {s.id}: {got_c} cases / {got_v} values stored, "
                        f"written with {s.n_cases} / {s.n_values}"
                    )
            orphans = conn.execute(
                sa.select(sa.func.count())
                .select_from(cases)
                .where(cases.c.session_id.not_in(sa.select(sessions.c.id)))
            ).scalar_one()
            if orphans:
                problems.append(f"{orphans} case rows belong to no session")
        return problems


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, allow_nan=False)


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL, a busy timeout, foreign keys, and write transactions that take the lock up front
    (SQLAlchemy's documented recipe for pysqlite's transaction handling)."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("llmperf_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
