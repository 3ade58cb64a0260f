"""Area code -> US state, for the state SMS quiet-hour rules (serving/quiet_hours.py).

A fact about phone numbers, so it lives with them: `prepare` stores each person's `phone_state` from it
while building the feature base, and the predictor reads it for numbers given directly.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pandas as pd
import phonenumbers
from phonenumbers import geocoder

_US_E164 = re.compile(r"^\+1(\d{3})\d{7}$")

_STATE_NAMES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "florida": "FL", "georgia": "GA",
    "hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN", "iowa": "IA", "kansas": "KS",
    "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD", "massachusetts": "MA",
    "michigan": "MI", "minnesota": "MN", "mississippi": "MS", "missouri": "MO", "montana": "MT",
    "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM",
    "new york": "NY", "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK",
    "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC",
    "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT",
    "virginia": "VA", "washington": "WA", "washington state": "WA", "west virginia": "WV",
    "wisconsin": "WI", "wyoming": "WY", "washington d.c.": "DC", "district of columbia": "DC",
}  # fmt: skip
_STATE_CODES = frozenset(_STATE_NAMES.values())


def state_for_phones(e164: pd.Series) -> pd.Series:
    """Two-letter US state of each E.164 number from its area code; <NA> when not US or unknown.

    An area code never crosses a state line, so the lookup runs once per distinct area code
    (phonenumbers' offline geocoder), not per number. Toll-free and non-geographic codes give <NA>.
    """
    text = e164.astype("string").str.strip()
    area = text.str.extract(_US_E164, expand=False)
    states = {code: _state_for_area_code(code) for code in area.dropna().unique()}
    return area.map(states).astype("string").rename(e164.name)


@lru_cache(maxsize=2048)
def _state_for_area_code(code: str) -> str | None:
    number = phonenumbers.parse(f"+1{code}5550123")
    if phonenumbers.region_code_for_number(number) != "US":
        return None  # Canada, Caribbean and other NANP members
    return _state_from_description(geocoder.description_for_number(number, "en"))


def _state_from_description(description: str) -> str | None:
    """'New York, NY' -> NY, 'Texas' -> TX, 'Washington State' -> WA; None when unrecognised."""
    description = description.strip()
    if not description:
        return None
    suffix = description.rsplit(",", 1)[-1].strip().upper()
    if "," in description and suffix in _STATE_CODES:
        return suffix
    return _STATE_NAMES.get(description.lower())
