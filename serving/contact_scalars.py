"""Contacts resolved on plain Python values: `ContactIndex`'s path for the few new contacts of an API call.

Why: the vectorised path (`ContactIndex._contact_columns`) builds some thirty pandas objects a call, about
8 ms whatever the number of contacts, and a subscriber met for the first time is most of the API's
traffic. Here each step is the scalar twin of the vectorised one: the same trimming and regex, the same
salted hash (`identity.normalise_email`, `canonical_phone`, `hash_value`), the same `phonenumbers` parse
(`phones.parse_phone`) and zone lookups, one dict probe of the snapshot's address index. The two rules
of phones that span a column (numbers sharing their first `TIMEZONE_LONGEST_PREFIX` digits take the
zone, and the zone set, of the first of them) are applied over the contacts of the call, as the
vectorised path applies them over its column. So every field is the vectorised path's, missing markers
included (<NA> for a phone's zone and state, None elsewhere): tests/unit/test_contact_scalars.py
compares them on random contacts, and tests/unit/test_api.py whole decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from phonenumbers import timezone as phone_timezone

from sendtime.features import identity, local_time, phones
from sendtime.features.us_area_codes import _US_E164, _state_for_area_code
from sendtime.schema import EMAIL, SMS

_PREFIX = 1 + phone_timezone.TIMEZONE_LONGEST_PREFIX  # '+' and the digits the zone tables are keyed by

RowOfHash = Callable[
    [str], "int | None"
]  # a hash's profile row (-1: its person has no profile), None: unknown


def rows(
    c: int, values: Sequence[str | None], lookup: tuple[pd.Index, np.ndarray], salt: str, region: str
) -> list[tuple]:
    """`ContactColumns` rows of channel c's contacts (0 e-mail, 1 phone); `lookup`: the snapshot's
    address index of that channel (hashes, and the profile row of each)."""
    hashes, profile_rows = lookup

    def row_of_hash(value: str) -> int | None:
        try:
            return int(profile_rows[hashes.get_loc(value)])
        except KeyError:
            return None

    if c == 0:
        return email_rows(values, row_of_hash, salt)
    return phone_rows(values, row_of_hash, salt, region)


def takes(values: Sequence) -> bool:
    """Whether these contacts can go this way: plain strings or None (anything else, such as a phone
    read as a number, goes the vectorised way)."""
    return all(v is None or type(v) is str for v in values)


def given(value: str | None) -> bool:
    """`contacts._given` of one value: not None, not blank, not the text 'nan'."""
    return value is not None and value.strip() != "" and value.lower() != "nan"


def email_rows(values: Sequence[str | None], row_of_hash: RowOfHash, salt: str) -> list[tuple]:
    """`ContactColumns` rows of e-mail contacts."""
    out = []
    for value in values:
        norm = identity.normalise_email(value) if given(value) else None
        own, new_id = -1, None
        if norm is not None:
            row = row_of_hash(identity.hash_value(norm, salt))
            own = -1 if row is None else row
            new_id = identity.hash_value(f"{EMAIL}:{norm}", salt)
        out.append((given(value), norm is not None, own, new_id, None, None, None))
    return out


def phone_rows(values: Sequence[str | None], row_of_hash: RowOfHash, salt: str, region: str) -> list[tuple]:
    """`ContactColumns` rows of phone contacts.

    As `ContactIndex._phones`: a number whose canonical text hashes to a snapshot address is that
    (valid, E.164) number and is not parsed; any other is parsed once, and the hash of its E.164 form
    looked up.
    """
    norms: list[str | None] = []
    owns: list[int] = []
    parsed: dict[str, str | None] = {}  # E.164 -> zone, of the numbers parsed
    for value in values:
        norm, own = None, -1
        if given(value):
            canonical = identity.canonical_phone(value, region)
            hashed = identity.hash_value(canonical, salt)
            row = row_of_hash(hashed)
            if row is not None and row >= 0:
                norm, own = canonical, row
            else:
                norm, zone = phones.parse_phone(canonical, region)
                if norm is not None:
                    parsed[norm] = zone
                    if norm != canonical:
                        row = row_of_hash(identity.hash_value(norm, salt))
                    own = -1 if row is None else row
        norms.append(norm)
        owns.append(own)

    zone_of: dict[str, str | None] = {}  # prefix -> the zone of its first number (`phones.zones_for_e164`)
    set_of: dict[str, str | None] = {}  # prefix -> the zone set of its first zoneless number
    out = []
    for value, norm, own in zip(values, norms, owns, strict=True):
        if norm is None:
            out.append((given(value), False, own, None, pd.NA, pd.NA, None))
            continue
        prefix = norm[:_PREFIX]
        if prefix not in zone_of:
            zone_of[prefix] = parsed[norm] if norm in parsed else local_time._zone_for_number(norm)
        zone = zone_of[prefix]
        if zone is None:
            if prefix not in set_of:
                set_of[prefix] = local_time._zone_set_for_number(norm)
            zones = set_of[prefix]
        else:
            zones = zone
        area = _US_E164.search(norm.strip())
        state = _state_for_area_code(area.group(1)) if area else None
        new_id = identity.hash_value(f"{SMS}:{norm}", salt)
        out.append(
            (
                True,
                True,
                own,
                new_id,
                pd.NA if zone is None else zone,
                pd.NA if state is None else state,
                zones,
            )
        )
    return out
