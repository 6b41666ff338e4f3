"""Many rows in one statement: Pony has no bulk insert, so each driver's own way.

Each function runs inside the caller's open Pony session (its transaction),
and returns the new rows' ids in the order given:

- SQLite: ``executemany``; the writer holds the database's write lock, so
  the new rowids are consecutive and end at ``last_insert_rowid()``.
- PostgreSQL: one multi-row ``INSERT ... RETURNING id`` per page
  (psycopg2's ``execute_values``).
- MySQL/MariaDB: one multi-row INSERT per page; InnoDB gives a multi-row
  INSERT consecutive ids from ``LAST_INSERT_ID()`` unless
  ``innodb_autoinc_lock_mode = 2``, where rows are inserted one by one.
"""

PAGE = 1000


def insert_many(db, table: str, columns: tuple[str, ...], rows: list[tuple]) -> list[int]:
    """Insert *rows* (tuples in *columns* order) into *table*; return their ids."""
    if not rows:
        return []
    connection = db.get_connection()
    dialect = db.provider.dialect
    names = ", ".join(columns)
    if dialect == "SQLite":
        cursor = connection.cursor()
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})", rows)
        cursor.execute("SELECT last_insert_rowid()")
        last = cursor.fetchone()[0]
        return list(range(last - len(rows) + 1, last + 1))
    if dialect == "PostgreSQL":
        from psycopg2.extras import execute_values

        cursor = connection.cursor()
        found = execute_values(cursor, f"INSERT INTO {table} ({names}) VALUES %s RETURNING id", rows,
                               page_size=PAGE, fetch=True)
        return [row[0] for row in found]
    return _insert_many_mysql(connection, table, names, len(columns), rows)


def _insert_many_mysql(connection, table: str, names: str, width: int, rows: list[tuple]) -> list[int]:
    cursor = connection.cursor()
    cursor.execute("SELECT @@innodb_autoinc_lock_mode, @@max_allowed_packet")
    mode, packet = cursor.fetchone()
    one = "(" + ", ".join(["%s"] * width) + ")"
    ids = []
    for chunk in _pages(rows, PAGE if int(mode) != 2 else 1, int(packet) // 2):
        cursor.execute(f"INSERT INTO {table} ({names}) VALUES " + ", ".join([one] * len(chunk)),
                       [value for row in chunk for value in row])
        first = cursor.lastrowid  # LAST_INSERT_ID(): the first row's id
        ids.extend(range(first, first + len(chunk)))
    return ids


def _pages(rows: list[tuple], most: int, max_bytes: int):
    """Runs of at most *most* rows whose text stays under *max_bytes* (one statement each)."""
    page, size = [], 0
    for row in rows:
        length = sum(len(value) for value in row if isinstance(value, str))
        if page and (len(page) == most or size + length > max_bytes):
            yield page
            page, size = [], 0
        page.append(row)
        size += length
    if page:
        yield page
