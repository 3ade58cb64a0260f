"""The bulk phone path (`features.phones`) answers exactly as the plain path: `phonenumbers` for the
E.164 form (parse, is_valid_number, format) and `local_time` for the timezone (which parses the E.164
text again), on valid, invalid, national, international and garbage numbers, in one process or several."""

from __future__ import annotations

import numpy as np
import pandas as pd
import phonenumbers
import pytest

from sendtime import forking
from sendtime.features import identity, local_time, phones

MIX = [
    # valid, international
    "+12125550123", "+13125550123", "+14155550123", "+16045550123", "+18765550123", "+17875550123",
    "+447911123456", "+442079460958", "+33612345678", "+4915123456789", "+81312345678", "+61212345678",
    "+5511987654321", "+79123456789", "+919876543210", "+8613812345678", "+27821234567", "+351912345678",
    # valid, not geographic or spanning zones
    "+18005550199", "+18885550123", "+19005550199", "+15005550100", "+17005550100", "+80012345678",
    # national formats, read in the default region
    "(212) 555-0123", "212-555-0123", "1 212 555 0123", "2125550123", "12125550123", "212.555.0123",
    "07911 123456", "020 7946 0958", "011 44 20 7946 0958", "+44 (0) 20 7946 0958",
    # invalid
    "+12120000000", "+11234567890", "+1212555012", "+121255501234", "+999123", "+0123456", "0000000000",
    # garbage
    "abc", "12", "", " ", "+", "++1", "0", "phone: 212 555 0123", "1-800-FLOWERS", "212-555-0123 ext. 45",
    "+1-212-555-0123;ext=9", "２１２５５５０１２３", "٢١٢٥٥٥٠١٢٣", "tel:+1-212-555-0123", "NaN", "None",
]  # fmt: skip


def _plain_e164(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(str(text).strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _plain(text: str, region: str) -> tuple[str | None, str | None]:
    e164 = _plain_e164(text, region)
    return e164, (None if e164 is None else local_time._zone_for_number(e164))


@pytest.mark.parametrize("region", ["US", "GB", "DE"])
def test_each_number_parses_as_the_plain_path_does(region):
    for text in MIX:
        assert phones.parse_phone(text, region) == _plain(text, region), text


def test_normalise_phones_answers_as_the_plain_path_and_keeps_the_zones_it_parsed():
    raw = pd.Series([*MIX, 12125550123.0, 4479111234.0, "+12125550123"], dtype=object)
    canonical = identity.canonical_phones(raw, "US")
    expected = [None if pd.isna(t) else _plain_e164(t, "US") for t in canonical]
    zones: dict = {}
    got = identity.normalise_phones(raw, "US", zones)
    assert [None if pd.isna(v) else v for v in got] == expected
    valid = got.dropna()
    assert set(zones) == set(valid)
    pd.testing.assert_series_equal(
        phones.zones_for_e164(valid, zones), local_time.timezones_from_phones(valid), check_names=False
    )


def test_random_numbers_of_many_countries():
    rng = np.random.default_rng(0)
    codes = [
        "1",
        "7",
        "20",
        "27",
        "33",
        "34",
        "39",
        "44",
        "49",
        "52",
        "55",
        "61",
        "81",
        "86",
        "91",
        "234",
        "351",
        "852",
    ]
    texts = [
        f"+{rng.choice(codes)}{''.join(map(str, rng.integers(0, 10, rng.integers(5, 13))))}"
        for _ in range(3000)
    ]
    texts += [f"{''.join(map(str, rng.integers(0, 10, rng.integers(7, 12))))}" for _ in range(1000)]
    texts += [f"+1{a}{e}{n:04d}" for a, e, n in zip(rng.integers(200, 1000, 1500), rng.integers(200, 1000, 1500),
              rng.integers(0, 10_000, 1500), strict=True)]  # fmt: skip
    got = [phones.parse_phone(t, "US") for t in texts]
    assert got == [_plain(t, "US") for t in texts]
    assert 0.2 < np.mean([e is not None for e, _ in got]) < 0.9  # both kinds are well represented


def test_parallel_parsing_gives_the_same_answers_in_order(monkeypatch):
    monkeypatch.setattr(forking, "can_fork", lambda: True)  # workers even if the test runner has threads
    rng = np.random.default_rng(1)
    texts = [*MIX, *(f"+1{a}{e}{n:04d}" for a, e, n in zip(rng.choice(["212", "415", "800"], 400),
             rng.integers(100, 1000, 400), rng.integers(0, 10_000, 400), strict=True))]  # fmt: skip
    assert phones.parse_phones(texts, "US", workers=2) == phones.parse_phones(texts, "US", workers=1)


def test_zones_for_e164_reproduce_timezones_from_phones_including_its_prefix_rule():
    numbers = [
        "+12125550123", "+12125550199", "+13125550123", None, "+447911123456", "+18005550199",
        "+12125550123", "+61212345678", "+61212345699", "+79123456789", "+14155550123", None,
    ]  # fmt: skip
    series = pd.Series(numbers, dtype="string", index=range(100, 100 + len(numbers)))
    expected = local_time.timezones_from_phones(series)
    parsed = dict(zip(*phones.parse_phones([n for n in numbers if n], "US"), strict=True))
    for known in (parsed, {}, dict(list(parsed.items())[:3])):  # all, none or a few zones known already
        got = phones.zones_for_e164(series, known)
        pd.testing.assert_series_equal(got, expected, check_names=False)


def test_workers_that_cannot_start_leave_the_work_to_this_process(monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    class Broken:
        def __init__(self, *args, **kwargs):
            raise BrokenProcessPool("no processes here")

    monkeypatch.setattr(forking, "can_fork", lambda: True)
    monkeypatch.setattr(forking, "ProcessPoolExecutor", Broken)
    with pytest.warns(RuntimeWarning, match="no processes here"):
        got = phones.parse_phones(MIX, "US", workers=2)
    assert got == phones.parse_phones(MIX, "US", workers=1)
    monkeypatch.setattr(forking, "can_fork", lambda: False)  # another thread runs: no fork, no warning
    assert phones.parse_phones(MIX, "US", workers=2) == got


def test_map_in_forks_keeps_order_and_cuts_even_chunks(monkeypatch):
    monkeypatch.setattr(forking, "can_fork", lambda: True)
    assert forking.map_in_forks(abs, list(range(-20, 0)), 2) == list(range(20, 0, -1))
    assert [len(c) for c in forking.chunks(list(range(10)), 4)] == [3, 3, 3, 1]
    assert forking.chunks([], 4) == [] and forking.chunks("abcdef", 1) == ["abcdef"]
    monkeypatch.setattr(forking, "can_fork", lambda: False)
    assert forking.map_in_forks(abs, [1, 2], 2) is None  # the caller computes


def test_the_north_american_shortcut_builds_what_parse_returns():
    rng = np.random.default_rng(2)
    digits = rng.integers(0, 10, (20_000, 10))
    digits[:, 0] = rng.integers(2, 10, 20_000)  # the only shape the shortcut takes: '+1' then 2-9
    texts = ["+1" + "".join(map(str, row)) for row in digits] + ["+12000000000", "+19999999999"]
    assert phones._shortcut_agrees()
    for text in texts:
        for region in ("US", "GB"):
            assert phones._parse(text, region) == phonenumbers.parse(text, region), text
    for other in (
        "+11234567890",
        "+1212555012",
        "+1２１２５５５０１２３",
        "+1 212 555 0123",
        "+121255501234",
    ):
        assert phones._parse(other, "US") == phonenumbers.parse(other, "US")  # other shapes: parse itself


def test_workers_are_forked_only_beside_threads_known_to_be_idle(monkeypatch):
    class Thread:
        def __init__(self, name, daemon):
            self.name, self.daemon = name, daemon

    me = forking.threading.current_thread()
    for others, expected in (
        ([], True),
        ([Thread("tqdm_monitor", True)], True),  # a progress bar's idle monitor
        ([Thread("MlflowLocalArtifactRepository_0", False)], False),
        ([Thread("worker", True)], False),
    ):
        monkeypatch.setattr(forking.threading, "enumerate", lambda others=others: [me, *others])
        assert forking.can_fork() is expected, others
