"""Column names and vocabularies of the public data contract (../shared/CONTRACT.md) and of our own tables.

One place for every name, so that a renamed column is a one-line change and a typo is an ImportError.
"""

from __future__ import annotations

# --- events table (required) -------------------------------------------------------------------
TIMESTAMP = "timestamp"
CHANNEL = "channel"
EVENT_TYPE = "event_type"
ADDRESS = "address"
MESSAGE_ID = "message_id"
MACHINE_OPEN = "machine_open"
BOUNCE_TYPE = "bounce_type"  # on bounce rows: hard, soft, or empty/anything else (unknown)

EVENTS_REQUIRED = (TIMESTAMP, CHANNEL, EVENT_TYPE, ADDRESS)
EVENTS_OPTIONAL = (MESSAGE_ID, MACHINE_OPEN, BOUNCE_TYPE)

# --- subscribers table (optional) --------------------------------------------------------------
TIMEZONE = "timezone"
SUBSCRIBED_AT = "subscribed_at"
SUBSCRIBERS_REQUIRED = (ADDRESS, CHANNEL)
SUBSCRIBERS_OPTIONAL = (TIMEZONE, SUBSCRIBED_AT)

# --- identity_links table (optional) -----------------------------------------------------------
ADDRESS_A = "address_a"
ADDRESS_B = "address_b"
OBSERVED_AT = "observed_at"
LINKS_REQUIRED = (ADDRESS_A, ADDRESS_B)
LINKS_OPTIONAL = (OBSERVED_AT,)

# --- table names in a data folder --------------------------------------------------------------
EVENTS_TABLE = "events"
SUBSCRIBERS_TABLE = "subscribers"
LINKS_TABLE = "identity_links"
GROUND_TRUTH_DIR = "ground_truth"  # written by `sendtime simulate`, never by a real platform

# --- vocabularies ------------------------------------------------------------------------------
EMAIL = "email"
SMS = "sms"
CHANNELS = (EMAIL, SMS)  # index 0 and 1 in every per-channel array

SEND = "send"
DELIVERED = "delivered"
OPEN = "open"
CLICK = "click"
CONVERSION = "conversion"
BOUNCE = "bounce"
UNSUBSCRIBE = "unsubscribe"
EVENT_TYPES = (SEND, DELIVERED, OPEN, CLICK, CONVERSION, BOUNCE, UNSUBSCRIBE)
HARD = "hard"  # bounce types; any other value (or none) is unknown and counts as soft
SOFT = "soft"
BOUNCE_TYPES = (HARD, SOFT)

HOURS_PER_WEEK = 168  # hour-of-week 0 = Monday 00:00-01:00 local time

# --- derived tables ----------------------------------------------------------------------------
SUBSCRIBER_ID = "subscriber_id"
ADDRESS_HASH = "address_hash"
TZ_SOURCE = "tz_source"  # subscribers_table | phone | linked_profile | activity | default

# --- audience and plan (sendtime schedule) -----------------------------------------------------
AUDIENCE_EMAIL = "email"
AUDIENCE_PHONE = "phone"
AUDIENCE_TIMEZONE = "timezone"  # optional: an IANA zone the sending system knows for the row
PLAN_CHANNEL = "channel"
SEND_AT = "send_at"
EXPECTED_ENGAGEMENT = "expected_engagement"
REASON = "reason"
