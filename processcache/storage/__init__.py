"""The SQL floor: every read and write of the ledger and the cache, on SQLite, PostgreSQL and MySQL/MariaDB.

- `database`: ``connect()`` and ``Database``, which composes the backend and the stores.
- `config`: database URLs (precedence, defaults, options, masking of passwords).
- `backend`: the one executor and the only module that touches Pony's
  internals and the drivers; `pool` the connections a process's threads
  share; `dialects` one ``Dialect`` per database; `retry` what a lost
  connection is and the budget; `waits` bounded waits on PostgreSQL;
  `sqlitefiles` the SQLite file, private and checked.
- `schema`: the Pony entities, the versions and the upgrades, the schema lock.
- `clock`: the database server's clock; `timeutil`, `texts`: time stamps and
  stored texts as they go in and out.
- `fence`: a locked run's writes checked against its lock.
- The stores: `cache` (entries), `runs` (runs and locks), `store` (groups,
  jobs, logs), `reports` (listings, check's reads, prune), `retirement`,
  `alerts`, `metrics`, `transfer` (``cache export``), `replay` (spooled runs
  into the ledger, once).

Nothing here imports from ``run``, ``monitor``, ``web`` or ``cli``
(tests/test_design.py keeps that rule).
"""
