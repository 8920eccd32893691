"""What the Facebook Ads source and the Graph stand-in (`cdp_assets.sandbox.facebook`) agree on.

The fields the project reads from each kind of Graph node: the source asks for exactly these, and the
stand-in serves them (refusing any other, as Graph refuses a field a node does not have). A field added
here needs its value in the stand-in too.
"""

from __future__ import annotations

CAMPAIGN_FIELDS = (
    "id",
    "name",
    "account_id",
    "status",
    "configured_status",
    "effective_status",
    "objective",
    "buying_type",
    "daily_budget",
    "lifetime_budget",
    "created_time",
    "updated_time",
    "start_time",
    "stop_time",
)
ADSET_FIELDS = (
    "id",
    "name",
    "account_id",
    "campaign_id",
    "status",
    "configured_status",
    "effective_status",
    "daily_budget",
    "lifetime_budget",
    "optimization_goal",
    "billing_event",
    "created_time",
    "updated_time",
    "start_time",
    "end_time",
)
AD_FIELDS = (
    "id",
    "name",
    "account_id",
    "campaign_id",
    "adset_id",
    "status",
    "configured_status",
    "effective_status",
    "creative",
    "created_time",
    "updated_time",
)
# Graph adds date_start and date_stop to every insights row, whatever the fields asked.
INSIGHT_FIELDS = (
    "account_id",
    "campaign_id",
    "campaign_name",
    "adset_id",
    "adset_name",
    "ad_id",
    "ad_name",
    "impressions",
    "reach",
    "clicks",
    "spend",
    "actions",
)

# How Graph writes a time: `2024-01-05T09:15:00-0800`, in the ad account's time zone.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
