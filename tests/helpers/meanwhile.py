"""A run that ends while a reader reads: its job in a thread of its own, with its own connection."""

import contextlib
import threading
from collections.abc import Callable, Iterator

import processcache


@contextlib.contextmanager
def a_run_in_progress(url: str, group: str, job: str, machine: str,
                      error: Exception | None = None) -> Iterator[Callable[[], None]]:
    """A run of ``group/job`` in progress on *machine*; yields ``finish``, which ends it (failed with *error*,
    if given) and returns once its end is committed."""
    started, end, ended = threading.Event(), threading.Event(), threading.Event()

    def run() -> None:
        with contextlib.suppress(type(error) if error else ()):
            with processcache.cache_session(group, job, machine=machine, database=url):
                started.set()
                end.wait(60)
                if error is not None:
                    raise error
        ended.set()

    def finish() -> None:
        end.set()
        assert ended.wait(60), "the run did not end"

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert started.wait(60), "the run did not start"
        yield finish
    finally:
        end.set()
        thread.join(60)
