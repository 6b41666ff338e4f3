"""What a job holds and calls: its cache and its context, memoised calls.

- `context`: ``CacheContext``, the ``ctx`` a job receives; ``current_context``.
- `reader`: ``read_cache``, a job's cache, logs and last success read without a run.
- `memo`: memoised calls, computed once across processes and machines;
  `memo_threads` their database work off the event loop, and outages.
- `loghandler`: stdlib logging into the log table (``ctx.logger``, ``capture_logging``).
- `codec`: cache values as JSON text.
"""
