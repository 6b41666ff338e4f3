"""Schema upgrades: from each version and revision to the next, keeping every row.

A version changes tables or columns older processcache releases could not
use: they refuse a newer one. A revision changes only what they can use as
it is (an index; a nullable column they neither insert nor read), so a farm
upgrading one machine at a time keeps running.

Pony never ALTERs, so each change is a step here: a column added as the
entities declare it (Pony writes each database's SQL type), or Pony
creating what is missing (a new index) before the old is dropped. `upgrade` runs them under the schema lock,
in one transaction where the database allows (SQLite and PostgreSQL;
MySQL commits each ALTER by itself, so every step first checks whether it
is already done, and an interrupted upgrade resumes where it stopped).
"""


from .schema import SCHEMA_REVISION, SCHEMA_VERSION
from ..errors import SchemaError
from .store import CURRENT


def _add_columns_as_declared(table: str, *columns: str):
    """Add *columns* as this version's entities declare them, in each database's own SQL type.

    Pony writes the definition (``DATETIME``, ``TIMESTAMP`` or
    ``DATETIME(6)``; MySQL's text with its character set and collation), so
    an upgraded table is the same as a new one, on every database.
    """

    def step(db, connection) -> None:
        declared = db.schema.tables[table].column_dict
        for column in columns:
            if not _has_column(connection, table, column):
                db.execute(f"ALTER TABLE {table} ADD COLUMN {declared[column].get_sql()}", {})

    return step


def _replace_index(table: str, old: str | None = None):
    """Create this version's missing indexes, then drop *old*, if any (reads always have one)."""

    def step(db, connection) -> None:
        db.schema.create_tables(db.provider, connection)  # only what is missing: here, the new index
        if old is not None and db.provider.index_exists(connection, table, old, case_sensitive=False):
            db.execute(f"DROP INDEX {old}" + (f" ON {table}" if db.provider.dialect == "MySQL" else ""), {})

    return step


#: (version, revision) a step brings a database to, and the step, in order.
#: Each step first checks whether it is done, so an interrupted upgrade resumes.
STEPS = [
    ((2, 0), _add_columns_as_declared("process_job_runs", "exit_signal")),
    ((2, 1), _replace_index("process_cache", "idx_process_cache__job_id_machine_entry_key")),
    ((2, 2), _add_columns_as_declared("process_jobs", "retired_at", "scope")),
    ((2, 3), _replace_index("process_cache")),
]


def upgrade(database) -> tuple[tuple[int, int], tuple[int, int]]:
    """Bring *database* to this version and revision; return the (version, revision) before and after.

    Refuses newer versions (`Store.schema_change` reads the version first);
    a newer revision of this version is left as it is.
    """
    db = database.pony
    with database.store.schema_change() as start:
        if start is None:
            raise SchemaError(f"{database.url} has no processcache tables to upgrade:"
                              " `processcache db sync` creates them")
        if start >= CURRENT:
            return start, start
        connection = db.get_connection()
        for state, step in STEPS:
            if start < state:
                step(db, connection)
        _record(db, "schema_version", SCHEMA_VERSION)
        _record(db, "schema_revision", SCHEMA_REVISION)
    return start, CURRENT


def _record(db, name: str, value: int) -> None:
    if db.select("SELECT name FROM processcache_meta WHERE name = $name", {"name": name}):
        db.execute("UPDATE processcache_meta SET value = $value WHERE name = $name", {"name": name, "value": str(value)})
    else:
        db.insert("processcache_meta", name=name, value=str(value))


def _has_column(connection, table: str, column: str) -> bool:
    cursor = connection.cursor()
    cursor.execute(f"SELECT * FROM {table} WHERE 1 = 0")
    return column.lower() in {described[0].lower() for described in cursor.description}
