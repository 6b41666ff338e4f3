"""processcache's own transactions, told apart from any other Pony session in the thread.

Pony keeps one ``db_session`` flag per thread for every Pony ``Database`` in
the process, and flattens nested sessions into the outermost. An application
that uses Pony for its own data and calls processcache inside its own
``with db_session:`` would otherwise hold processcache's writes in its
transaction: uncommitted until it ends, gone if it rolls back or the
process dies. So processcache tracks its own transactions here, per thread
and per database, and:

- outside any Pony session, a transaction is a ``db_session`` of its own;
- inside a session processcache did not open, it commits (or rolls back)
  processcache's database alone when it ends, leaving the application's
  database to the application;
- inside one of processcache's own (a `CacheContext.batch`), it is a
  savepoint: an inner block that raises rolls back its own writes only.
"""

import contextlib
import itertools
import threading
from collections.abc import Iterator

from pony import orm
from pony.orm import core


class Transactions:
    """The transactions of one processcache Database; see the module docstring."""

    def __init__(self, pony) -> None:
        self.pony = pony
        self._local = threading.local()
        self._names = itertools.count(1)

    @property
    def active(self) -> bool:
        """Whether this thread is inside one of processcache's transactions on this database."""
        return getattr(self._local, "depth", 0) > 0

    @contextlib.contextmanager
    def __call__(self, immediate: bool = False) -> Iterator[None]:
        """A transaction: committed at the end of the block, rolled back on an exception.

        *immediate* takes SQLite's write lock at the start, so a read that
        decides a write cannot be overtaken by another writer.
        """
        if self.active:
            with self._savepoint():
                yield
        elif core.local.db_session is None:
            with orm.db_session(immediate=immediate), self._depth():
                yield
        else:
            with self._inside_foreign_session():
                yield

    @contextlib.contextmanager
    def ddl(self) -> Iterator[None]:
        """A schema-changing transaction (Pony's ``ddl`` session); the reads inside it join it."""
        with orm.db_session(ddl=True), self._depth():
            yield

    @contextlib.contextmanager
    def _depth(self) -> Iterator[None]:
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    @contextlib.contextmanager
    def _savepoint(self) -> Iterator[None]:
        name = f"processcache_{next(self._names)}"
        cursor = self.pony.get_connection().cursor()
        cursor.execute(f"SAVEPOINT {name}")
        try:
            with self._depth():
                yield
        except BaseException:
            cursor.execute(f"ROLLBACK TO SAVEPOINT {name}")
            raise
        cursor.execute(f"RELEASE SAVEPOINT {name}")

    @contextlib.contextmanager
    def _inside_foreign_session(self) -> Iterator[None]:
        try:
            with self._depth():
                yield
        except BaseException:
            self.pony.rollback()
            raise
        self.pony.commit()
