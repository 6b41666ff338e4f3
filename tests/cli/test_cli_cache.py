"""`processcache cache ...` as an operator uses it, on every backend."""

import json
import socket
import time

from cli_helpers import cli

from processcache import CacheContext, Registry, connect


def test_set_get_list_delete_and_clear(backend_url):
    db = ["-d", backend_url]
    assert cli("cache", "set", "ops/job", "cursor", '{"page": 12}', "-m", "box", *db).returncode == 0
    assert cli("cache", "set", "ops/job", "token", "abc", "--string", "--ttl", "1h", "-m", "box", *db).returncode == 0
    assert cli("cache", "set", "ops/job", "n", "1", "--append", "-m", "box", *db).returncode == 0
    assert cli("cache", "set", "ops/job", "n", "2", "--append", "-m", "box", *db).returncode == 0
    assert cli("cache", "set", "ops/job", "n", "3", "--append", "-m", "other", *db).returncode == 0
    replaced = cli("cache", "set", "ops/job", "cursor", '{"page": 13}', "-m", "box", *db)
    assert "stored entry" in replaced.stdout

    assert cli("cache", "get", "ops/job", "cursor", "-m", "box", *db).stdout == '{"page":13}\n'
    assert cli("cache", "get", "ops/job", "n", "-m", "box", *db).stdout == "1\n2\n"
    assert cli("cache", "get", "ops/job", "n", "--all-machines", *db).stdout == "1\n2\n3\n"
    entries = json.loads(cli("cache", "get", "ops/job", "token", "-m", "box", "--json", *db).stdout)
    assert entries[0]["value"] == "abc" and entries[0]["expires_at"] is not None
    missing = cli("cache", "get", "ops/job", "nothing", "-m", "box", *db)
    assert missing.returncode == 1 and "no entries under 'nothing' in ops/job on box" in missing.stderr

    listing = json.loads(cli("cache", "list", "ops/job", "-m", "box", "--json", *db).stdout)
    assert [(k["key"], k["entries"]) for k in listing] == [("cursor", 1), ("n", 2), ("token", 1)]
    assert listing[0]["size"] == len('{"page":13}')

    deleted = cli("cache", "delete", "ops/job", "n", "-m", "box", *db)
    assert deleted.returncode == 0 and "deleted 2 entries under 'n'" in deleted.stdout
    refused = cli("cache", "clear", "ops/job", "-m", "box", *db, input="n\n")
    assert refused.returncode == 1
    with connect(backend_url) as opened:
        assert CacheContext(opened, "ops", "job", "box").has_cache_key("cursor"), "answering no keeps the data"
    cleared = cli("cache", "clear", "ops/job", "-m", "box", "--yes", *db)
    assert cleared.returncode == 0 and "deleted 2 entries" in cleared.stdout
    with connect(backend_url) as opened:
        assert not CacheContext(opened, "ops", "job", "box").has_cache(machine="box")
        assert [e.value for e in CacheContext(opened, "ops", "job", "other").get_cache("n")] == [3]


def test_the_cache_commands_act_in_the_jobs_scope_unless_a_machine_is_named(backend_url):
    """What a job of scope="job" sees is every machine's; one of scope="machine" sees its host's."""
    registry = Registry()

    @registry.job("ops", "farm")
    def farm(ctx):
        ctx.create_cache("seen", ctx.machine)

    @registry.job("ops", "local", lock="machine")
    def local(ctx):
        ctx.create_cache("seen", ctx.machine)

    with connect(backend_url) as opened:
        for machine in ("web1", "web2"):
            farm.run(database=opened, machine=machine)
            local.run(database=opened, machine=machine)
    db = ["-d", backend_url]
    assert cli("cache", "get", "ops/farm", "seen", *db).stdout == '"web1"\n"web2"\n'
    assert cli("cache", "get", "ops/farm", "seen", "-m", "web2", *db).stdout == '"web2"\n'
    here = socket.gethostname()
    missing = cli("cache", "get", "ops/local", "seen", *db)
    assert missing.returncode == 1 and f"on {here}" in missing.stderr, "a per-machine job's data: this host's"
    assert cli("cache", "get", "ops/local", "seen", "-a", *db).stdout == '"web1"\n"web2"\n'
    replaced = cli("cache", "set", "ops/farm", "seen", '"reset"', *db)
    assert "for every machine" in replaced.stdout
    assert cli("cache", "get", "ops/farm", "seen", *db).stdout == '"reset"\n', "one value for the whole farm"
    cleared = cli("cache", "clear", "ops/local", "-m", "web1", "--yes", *db)
    assert cleared.stdout.startswith("deleted 1 entries of ops/local on web1")
    assert cli("cache", "get", "ops/local", "seen", "-a", *db).stdout == '"web2"\n'


def test_bad_values_and_targets_are_one_line(tmp_path):
    db = ["-d", f"sqlite:///{tmp_path}/c.db"]
    not_json = cli("cache", "set", "ops/job", "k", "{oops", *db)
    assert not_json.returncode == 1 and "VALUE is not JSON (" in not_json.stderr and "oops" not in not_json.stderr
    bad_target = cli("cache", "list", "just-a-name", *db)
    assert bad_target.returncode == 2 and "is not GROUP/JOB" in bad_target.stderr
    bad_key = cli("cache", "set", "ops/job", "k" * 300, "1", *db)
    assert bad_key.returncode == 1 and "the limit is 255" in bad_key.stderr


def test_list_export_and_jobs_hide_expired_entries(backend_url):
    with connect(backend_url) as opened:
        for machine in ("box", "other"):
            ctx = CacheContext(opened, "ops", "job", machine)
            ctx.create_cache("gone", "old", ttl=0.5)
            ctx.create_cache("mixed", "short", ttl=0.5)
            ctx.create_cache("mixed", "kept", ttl="1h")
            ctx.create_cache("live", 1)
    time.sleep(1.0)
    db = ["-d", backend_url]
    for scope, machines in [(["-m", "box"], 1), (["--all-machines"], 2)]:
        listing = json.loads(cli("cache", "list", "ops/job", *scope, "--json", *db).stdout)
        assert [(k["key"], k["entries"], k["size"]) for k in listing] == [
            ("live", machines, machines * len("1")), ("mixed", machines, machines * len('"kept"'))], scope
        table = cli("cache", "list", "ops/job", *scope, *db).stdout
        assert "gone" not in table and "live" in table, scope
    exported = [json.loads(line) for line in cli("cache", "export", "ops/job", *db).stdout.splitlines()]
    assert [(e["machine"], e["key"], e["value"]) for e in exported] == [
        ("box", "mixed", "kept"), ("box", "live", 1), ("other", "mixed", "kept"), ("other", "live", 1)]
    only_box = [json.loads(line) for line in cli("cache", "export", "ops/job", "-m", "box", *db).stdout.splitlines()]
    assert [(e["key"], e["value"]) for e in only_box] == [("mixed", "kept"), ("live", 1)]
    assert [job["entries"] for job in json.loads(cli("jobs", "--json", *db).stdout)] == [4]


def test_a_mistyped_job_is_refused_with_a_suggestion_and_creates_nothing(backend_url):
    CacheContext(connect(backend_url), "billing", "sync-invoices", "m").create_cache("token", "abc")
    for command, *rest in (["list"], ["get", "token"], ["delete", "token"], ["clear", "--yes"], ["export"]):
        result = cli("cache", command, "billing/sync-invoice", *rest, "-m", "m", "-d", backend_url)
        assert result.returncode == 1, command
        assert result.stderr.strip() == ("Error: no job billing/sync-invoice in this database: `processcache jobs`"
                                         " lists them (did you mean billing/sync-invoices?)"), command
    jobs = json.loads(cli("jobs", "--json", "-d", backend_url).stdout)
    assert [(j["group"], j["job"]) for j in jobs] == [("billing", "sync-invoices")]
    assert cli("cache", "get", "billing/sync-invoices", "token", "-m", "m", "-d", backend_url).stdout == '"abc"\n'


def test_delete_and_clear_count_only_the_entries_reads_showed(backend_url):
    ctx = CacheContext(connect(backend_url), "ops", "expiring", "m")
    ctx.create_cache("k", "gone soon", ttl=0.2)
    ctx.create_cache("k", "live")
    ctx.create_cache("other", "gone soon", ttl=0.2)
    time.sleep(0.5)
    assert "1 entries" not in cli("cache", "list", "ops/expiring", "-m", "m", "-d", backend_url).stdout
    deleted = cli("cache", "delete", "ops/expiring", "k", "-m", "m", "-d", backend_url)
    assert deleted.stdout.startswith("deleted 1 entries under 'k'"), deleted.stdout + deleted.stderr
    cleared = cli("cache", "clear", "ops/expiring", "-m", "m", "--yes", "-d", backend_url)
    assert cleared.stdout.startswith("deleted 0 entries"), cleared.stdout + cleared.stderr
    with connect(backend_url) as db:
        assert db.cache.export_rows(db.history.job_id("ops/expiring"), None) == []
