"""``processcache alerts``: the messages ``check --notify`` queued, sent, and still tries. Parse, call, format."""

import json

import click

from ..durations import format_duration
from ..storage import shown
from .format import database_option, echo_json, echo_table, json_option, one_line_errors, opened

DELIVERY_STATUSES = ["pending", "sending", "sent", "failed"]


@click.command()
@click.option("--status", type=click.Choice(DELIVERY_STATUSES), help="Only messages with this status.")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1), help="How many messages.")
@database_option
@json_option
@one_line_errors
def alerts(status, limit, database, as_json):
    """The alerts `check --notify` queued, newest first: to which channel, and whether they got there.

    Muted jobs (`processcache jobs mute`) are listed first, on stderr.
    A message is pending until a check sends it, sent once the channel took
    it, and failed after its last attempt: a channel that did not answer is
    tried again by later `check --notify` runs after 1, 5 and 15 minutes, then hourly,
    seven attempts in all. Channels are shown without their tokens.

    \b
    Examples:
        processcache alerts
        processcache alerts --status failed --json
    """
    from ..monitor.channels import shown_channel

    with opened(database) as db:
        found = db.alerts.deliveries(limit, status)
        muted = db.alerts.muted()
    masked = [record._replace(channel=shown_channel(record.channel)) for record in found]
    if as_json:
        echo_json([{**record._asdict(), "body": _json(record.body)} for record in masked])
        return
    for job, left in muted:
        click.echo(f"{shown(job)} is muted for {format_duration(left)} more", err=True)
    echo_table(["ID", "JOB", "EVENT", "CHANNEL", "STATUS", "TRIES", "CREATED", "LAST ERROR"],
               [[r.id, r.job, r.event, r.channel, r.status, r.attempts, r.created_at, r.last_error or "-"]
                for r in masked], empty="no alert has been queued")


def _json(body: str):

    return json.loads(body)
