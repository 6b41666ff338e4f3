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
- inside one of processcache's own, it joins it; a `CacheContext.batch`
  inside a batch is a savepoint instead, so an inner block that raises
  rolls back its own writes only.

Work that must not share the transaction's fate (the logs written inside a
batch, which explain why it failed) is deferred with `after` to the moment
the outermost transaction has ended, committed or rolled back.
"""

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator

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
    def __call__(self, immediate: bool = False, savepoint: bool = False) -> Iterator[None]:
        """A transaction: committed at the end of the block, rolled back on an exception.

        *immediate* takes SQLite's write lock at the start, so a read that
        decides a write cannot be overtaken by another writer. Inside another
        of processcache's transactions it joins that one, or with *savepoint*
        is a savepoint in it.
        """
        if self.active:
            with self._savepoint() if savepoint else self._depth():
                yield
        elif core.local.db_session is None:
            with self._outermost(orm.db_session(immediate=immediate)):
                yield
        else:
            with self._outermost(self._inside_foreign_session()):
                yield

    @contextlib.contextmanager
    def ddl(self) -> Iterator[None]:
        """A schema-changing transaction (Pony's ``ddl`` session); the reads inside it join it."""
        with self._outermost(orm.db_session(ddl=True)):
            yield

    def after(self, callback: Callable[[], None]) -> None:
        """Call *callback* once this thread's outermost transaction has ended (at once outside any)."""
        if not self.active:
            callback()
            return
        self._local.after.append(callback)

    @contextlib.contextmanager
    def _outermost(self, session) -> Iterator[None]:
        self._local.after = []
        try:
            with session, self._depth():
                yield
        except BaseException:
            self._run_after(quiet=True)  # the transaction's own error is the one to see
            raise
        self._run_after(quiet=False)

    def _run_after(self, quiet: bool) -> None:
        callbacks, self._local.after = self._local.after, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                if not quiet:
                    raise

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
            yield
        except BaseException:
            self.pony.rollback()
            raise
        self.pony.commit()
