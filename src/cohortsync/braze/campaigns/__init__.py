"""Campaigns and Canvases of the Braze-compatible service, and their outbox.

- :mod:`.definitions`: saving, changing, scheduling and reading campaigns and Canvases;
- :mod:`.rendering`: messages with ``{{${first_name}}}`` placeholders, checked at save time;
- :mod:`.audience`: reachable users of a Target Audience (include minus exclude segments);
- :mod:`.launching`: a launch writes every message to the outbox in one transaction;
  :func:`launch_due` launches scheduled ones exactly once;
- :mod:`.schedule`: the thread of the running service that calls it every second.

Nothing is delivered: the outbox (``braze_campaign_sends``) holds what a real
Braze would send. See docs/campaigns.md.
"""

from cohortsync.braze.campaigns.audience import audience_count, reachable_by_step
from cohortsync.braze.campaigns.definitions import (
    CHANNELS,
    Step,
    create_campaign,
    create_canvas,
    get_campaign,
    list_campaigns,
    schedule_campaign,
    update_campaign,
)
from cohortsync.braze.campaigns.launching import campaign_sends, launch_campaign, launch_due
from cohortsync.braze.campaigns.rendering import Template, compile_message
from cohortsync.braze.campaigns.schedule import CampaignScheduler

__all__ = [
    "CHANNELS",
    "CampaignScheduler",
    "Step",
    "Template",
    "audience_count",
    "campaign_sends",
    "compile_message",
    "create_campaign",
    "create_canvas",
    "get_campaign",
    "launch_campaign",
    "launch_due",
    "list_campaigns",
    "reachable_by_step",
    "schedule_campaign",
    "update_campaign",
]
