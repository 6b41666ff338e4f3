"""The ``processcache`` command group: each command lives in the module named here, imported when it runs."""

import importlib

import click

from .. import __version__

#: Each command, by the module of processcache.cli that holds it.
COMMANDS = {"run": "run", "exec": "run", "db": "db", "cache": "cache", "jobs": "jobs", "check": "jobs", "prune": "jobs",
            "runs": "runs", "logs": "runs", "locks": "locks", "alerts": "alerts", "metrics": "metrics",
            "report": "report", "serve": "report", "spool": "spool", "schedule": "schedule",
            "pause": "jobs", "resume": "jobs", "window": "jobs", "pool": "pools"}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (or help lists it).

    ``processcache run`` is what cron starts every minute: it should not pay
    for importing the operations and cache commands.
    """

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name in COMMANDS and name not in self.commands:
            module = importlib.import_module(f"processcache.cli.{COMMANDS[name]}")
            self.add_command(getattr(module, name, None) or getattr(module, f"{name}_"))  # exec_: not the builtin
        return super().get_command(ctx, name)

    def resolve_command(self, ctx, args):
        """Click's, suggesting the closest command among the lazy ones too (``jbos``: did you mean 'jobs'?)."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand:
            raise click.exceptions.NoSuchCommand(args[0], possibilities=self.list_commands(ctx), ctx=ctx) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="processcache")
def main():
    """Keep what cron and batch jobs fetched between runs, and record every run.

    \b
    Run a job (a function decorated with @job) from a crontab:
        processcache run jobs/hello.py:hello
        processcache run mypackage.jobs:hello --database postgresql://cron@db/cron
    """
