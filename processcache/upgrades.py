"""Schema upgrades: from each version to the next, keeping every row.

Pony never ALTERs, so each version's changes are steps here: plain SQL the
three databases share, or Pony creating what is missing (a new index) before
the old is dropped. `upgrade` runs them under the schema lock,
in one transaction where the database allows (SQLite and PostgreSQL;
MySQL commits each ALTER by itself, so every step first checks whether it
is already done, and an interrupted upgrade resumes where it stopped).
"""

from pony import orm

from .dialects import SCHEMA_LOCK
from .entities import SCHEMA_VERSION
from .errors import SchemaError
from .store import VERSION_SQL


def _add_column(table: str, column: str, sql_type: str):
    def step(db, connection) -> None:
        if not _has_column(connection, table, column):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}", {})

    return step


def _replace_index(table: str, old: str):
    """Create this version's missing indexes, then drop *old* (reads always have one)."""

    def step(db, connection) -> None:
        db.schema.create_tables(db.provider, connection)  # only what is missing: here, the new index
        if db.provider.index_exists(connection, table, old, case_sensitive=False):
            db.execute(f"DROP INDEX {old}" + (f" ON {table}" if db.provider.dialect == "MySQL" else ""), {})

    return step


#: version -> steps that bring a database of that version to the next. Each
#: step first checks whether it is done, so an interrupted upgrade resumes.
UPGRADES = {
    1: [_add_column("process_job_runs", "exit_signal", "INTEGER")],
    2: [_replace_index("process_cache", "idx_process_cache__job_id_machine_entry_key")],
}


def upgrade(database) -> tuple[int, int]:
    """Bring *database* to `SCHEMA_VERSION`; return (from, to). Refuses newer databases."""
    db = database.pony
    lock, unlock = SCHEMA_LOCK[db.provider.dialect]
    with orm.db_session(ddl=True):
        connection = db.get_connection()
        if lock:
            db.execute(lock, {})
        try:
            found = db.select(VERSION_SQL, {})
            start = int(found[0]) if found else SCHEMA_VERSION
            if start > SCHEMA_VERSION:
                raise SchemaError(f"this database has schema version {start}, written by a newer processcache;"
                                  f" this version knows {SCHEMA_VERSION}: upgrade processcache to use it")
            for version in range(start, SCHEMA_VERSION):
                for step in UPGRADES[version]:
                    step(db, connection)
            db.execute("UPDATE processcache_meta SET value = $version WHERE name = 'schema_version'",
                       {"version": str(SCHEMA_VERSION)})
        finally:
            if unlock:
                db.execute(unlock, {})
    return start, SCHEMA_VERSION


def _has_column(connection, table: str, column: str) -> bool:
    cursor = connection.cursor()
    cursor.execute(f"SELECT * FROM {table} WHERE 1 = 0")
    return column.lower() in {described[0].lower() for described in cursor.description}
