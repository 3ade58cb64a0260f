"""Phone numbers in bulk: each distinct number parsed once, its E.164 form and its timezone read from
that one parse, on every core for large inputs.

Why: `phonenumbers` is pure Python, and the plain path pays for a never-seen number twice: once to
normalise it (parse, validity, format) and again in `local_time.timezones_from_phones` (which parses
the E.164 text and computes the number's type once more): ~35 us a number, ~45 s for a million. Here
one parse and one type check: ~8 us for the canonical '+1' text most numbers come as (`_parse`,
`_number_type`), ~20 us for any other shape, and `parse_phones` splits them over the cores. Both the
service (`Predictor.resolve`) and the training path (`identity.normalise_phones`, whose parse also
hands the timezones to `prepare`) go this way.

The answers are exactly the plain path's (tests/unit/test_phones.py compares them on valid, invalid,
national, international and garbage numbers, and on thousands of random ones), because `phonenumbers`
still decides everything:
- valid: `number_type(n) != UNKNOWN` is `is_valid_number(n)`: both run the type rules of the region
  that `region_code_for_number` finds, so the type costs nothing extra;
- the type also says whether the number is geographic, which is all `time_zones_for_number` needs
  besides the number itself: a geographic number's zones are those of the longest listed prefix of its
  digits (`time_zones_for_geographical_number`), any other valid number's are its country's;
- `zones_for_e164` keeps `timezones_from_phones`' rule that numbers sharing their first digits share the
  zone of the first of them, so even its answer for a whole column is reproduced, not approximated.

Bulk parsing switches on the pattern cache of `phonenumbers` where the installed version has one (off by
default; it keeps the metadata's compiled regexes instead of asking `re.compile` millions of times: a
quarter less time, the same answers).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType, phonenumberutil
from phonenumbers import timezone as phone_timezone

from sendtime import forking
from sendtime.features import local_time

PARALLEL_MIN = 50_000  # distinct numbers from which parsing is spread over processes (~1 s in one)
_MISSING = object()


def parse_phone(text: str, region: str) -> tuple[str | None, str | None]:
    """(E.164, timezone) of one phone text read in `region`; (None, None) when unparseable or invalid.

    The timezone is `local_time`'s reading of the number's zone list (None when it does not pin one
    clock down, e.g. a toll-free +1 800 number).
    """
    try:
        number = _parse(text, region)
    except phonenumbers.NumberParseException:
        return None, None
    kind = _number_type(number)
    if kind == PhoneNumberType.UNKNOWN:  # exactly the numbers is_valid_number rejects
        return None, None
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if phonenumbers.is_number_type_geographical(kind, number.country_code):
        zones = phone_timezone.time_zones_for_geographical_number(number)
    else:
        zones = phone_timezone.time_zones_for_number(number)
    return e164, local_time._zone_of(tuple(zones))


def _parse(text: str, region: str) -> phonenumbers.PhoneNumber:
    """`phonenumbers.parse`, with its answer for the one text shape that dominates audiences given directly.

    Our canonical text of a North American number is '+1' and ten ASCII digits, the first 2-9 (an area
    code). `parse` reads the country code, finds nothing to strip (the +1 national prefix is '1') nor to
    keep (no extension, no leading zero) and returns just (1, the ten digits): built here in ~1 us
    instead of ~12. `_shortcut_agrees` checks that on this library before it is trusted, and the tests
    compare it with `parse` on many numbers. Validity, type and zone still come from `phonenumbers`.
    """
    if (
        len(text) == 12
        and text[:2] == "+1"
        and "2" <= text[2] <= "9"
        and text[3:].isascii()
        and text[3:].isdigit()
        and _shortcut_agrees()
    ):
        return phonenumbers.PhoneNumber(country_code=1, national_number=int(text[2:]))
    return phonenumbers.parse(text, region)


@functools.cache
def _shortcut_agrees() -> bool:
    samples = ("+12125550123", "+12000000000", "+19999999999", "+18005550199", "+15555555555", "+12345678901")
    return all(
        phonenumbers.parse(t, r) == phonenumbers.PhoneNumber(country_code=1, national_number=int(t[2:]))
        for t in samples
        for r in ("US", "GB", None)
    )


def _number_type(number: phonenumbers.PhoneNumber) -> int:
    """`phonenumbers.number_type`, without its second pass for North American numbers.

    For +1 it finds the region by trying each +1 region's type rules, US first (US has no leading-digit
    shortcut), and then runs the winner's rules again. A +1 number whose type by the US rules is known is
    therefore a US number of that type, answered from the first pass (~4 us instead of ~10); anything
    else, and any library whose +1 regions do not start so, goes the library's way.
    """
    us = _us_rules() if number.country_code == 1 else None
    if us is not None:
        kind = _TYPE_RULES(phonenumbers.national_significant_number(number), us)
        if kind != PhoneNumberType.UNKNOWN:
            return kind
    return phonenumbers.number_type(number)


_TYPE_RULES = getattr(phonenumberutil, "_number_type_helper", None)  # the rules number_type runs


@functools.cache
def _us_rules():
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(1, ())
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("US")
    if _TYPE_RULES is None or not regions or regions[0] != "US" or metadata is None:
        return None
    return None if metadata.leading_digits is not None else metadata


def _parse_chunk(job: tuple[list[str], str]) -> tuple[list, list]:
    texts, region = job
    pairs = [parse_phone(t, region) for t in texts]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _start_worker() -> None:
    """Keep compiled metadata patterns, where this `phonenumbers` can (a switch of recent versions)."""
    from phonenumbers import re_util

    enable = getattr(re_util, "enable_pattern_cache", None)
    if enable is not None:
        enable()


def parse_phones(
    texts: Sequence[str], region: str, workers: int | None = None
) -> tuple[list[str | None], list[str | None]]:
    """`parse_phone` of every text (distinct texts, so nothing is parsed twice), in order.

    `workers` None: every available core from `PARALLEL_MIN` texts on (`forking.map_in_forks`: only
    where forking is safe; otherwise, and with `workers=1`, in this process, with the same answers).
    """
    texts = [str(t) for t in texts]
    if workers is None:
        workers = forking.available_cores() if len(texts) >= PARALLEL_MIN else 1
    jobs = [(part, region) for part in forking.chunks(texts, workers * forking.CHUNKS_PER_WORKER)]
    parts = forking.map_in_forks(_parse_chunk, jobs, workers, initializer=_start_worker)
    if parts is None:
        _start_worker()
        return _parse_chunk((texts, region))
    return [e for p in parts for e in p[0]], [z for p in parts for z in p[1]]


def zones_for_e164(e164: pd.Series, known: Mapping[str, str | None]) -> pd.Series:
    """`local_time.timezones_from_phones(e164)`, exactly, parsing only numbers `known` lacks.

    That function gives every number the zone of the first number sharing its first
    `TIMEZONE_LONGEST_PREFIX` digits (the library's zone table is keyed by prefixes at most that long);
    the same first numbers are chosen here, and their zones looked up in `known` (E.164 -> zone, from
    `parse_phones`) before anything is parsed.
    """
    text = e164.astype("string")
    prefix = text.str.slice(0, 1 + phone_timezone.TIMEZONE_LONGEST_PREFIX)
    codes, uniques = pd.factorize(prefix, use_na_sentinel=True)
    first = pd.Series(np.arange(len(text))).groupby(codes).first()
    representative = text.to_numpy(dtype=object)[first.reindex(range(len(uniques))).to_numpy()]
    zones = np.array([known.get(str(r), _MISSING) for r in representative], dtype=object)
    todo = np.flatnonzero(np.array([z is _MISSING for z in zones], dtype=bool))
    if len(todo):
        zones[todo] = local_time.timezones_from_phones(
            pd.Series(representative[todo], dtype=object)
        ).to_numpy(dtype=object)
    done = pd.array([None if pd.isna(z) else z for z in zones], dtype="string")
    return pd.Series(done.take(codes, allow_fill=True), index=e164.index, dtype="string")
