"""`Predictor.resolve`'s phone path (known numbers looked up, new ones parsed once, in parallel) gives
what the plain path gives: `identity.normalise_phones`, `identity.hash_values` and
`local_time.timezones_from_phones`, number for number; resolving in forked workers changes nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sendtime import forking
from sendtime.features import identity, local_time, phones
from sendtime.serving import contacts as contacts_module
from sendtime.serving.planner import load_predictor

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def predictor(trained_champion, test_settings):
    return load_predictor(test_settings)


@pytest.mark.parametrize("parallel", [False, True])
def test_phones_resolve_as_the_plain_path(predictor, small_world, monkeypatch, parallel):
    if parallel:  # in worker processes, even though the test runner has other threads
        monkeypatch.setattr(phones, "PARALLEL_MIN", 2)
        monkeypatch.setattr(forking, "can_fork", lambda: True)
    people = pd.read_parquet(small_world / "ground_truth" / "people.parquet")
    known = people["phone"].dropna().head(40).tolist()
    national = [f"({p[2:5]}) {p[5:8]}-{p[8:]}" for p in known[:10]]
    rng = np.random.default_rng(0)
    new = [f"+1{a}{e}{n:04d}" for a, e, n in zip(rng.choice(["212", "312", "415", "800"], 60),
           rng.integers(100, 1000, 60), rng.integers(0, 10_000, 60), strict=True)]  # fmt: skip
    odd = [None, "", " ", "12", "not a phone", "+447911123456", "07911 123456", "+18005550199", 12125550123.0]
    raw = pd.Series([*known, *national, *new, *odd, *known[:5], *new[:5]], dtype=object)
    salt = predictor.settings.salt()

    given, valid, own, new_id, zone, state, zones = predictor.contacts._contact_columns(
        1, raw.where(raw.notna(), None).tolist()
    )
    expected = identity.normalise_phones(raw, predictor.settings.data.default_region)
    np.testing.assert_array_equal(valid, expected.notna().to_numpy())
    hashed = identity.hash_values(expected, salt).fillna("").to_numpy()
    np.testing.assert_array_equal(
        own, predictor.contacts._row_of_hash["sms"].reindex(hashed).fillna(-1).to_numpy(np.int64)
    )
    assert _text(new_id) == _text(identity.hash_values(("sms:" + expected).astype(object), salt))
    assert _text(zone) == _text(local_time.timezones_from_phones(expected))
    plain_zones = local_time.phone_zone_sets(expected, local_time.timezones_from_phones(expected))
    assert _text(zones) == _text(plain_zones)  # every zone a number may be in, for SMS quiet hours
    toll_free = zones[raw.tolist().index("+18005550199")]
    assert {"America/Los_Angeles", "America/New_York", "Pacific/Honolulu"} <= set(toll_free.split("|"))
    assert (own[: len(known)] >= 0).sum() > 0 and valid[
        len(known) + 10 :
    ].sum() > 50  # known found, new parsed


def test_large_audiences_resolve_in_workers_as_in_one_process(predictor, small_world, monkeypatch):
    people = pd.read_parquet(small_world / "ground_truth" / "people.parquet")
    rng = np.random.default_rng(3)
    new = [f"+1{a}{e}{n:04d}" for a, e, n in zip(rng.choice(["212", "312", "415"], 300),
           rng.integers(100, 1000, 300), rng.integers(0, 10_000, 300), strict=True)]  # fmt: skip
    phones_ = [*people["phone"].head(200), *new, None, "12", "(212) 555-0123"]
    emails = [*people["email"].head(200), *(f"n{i}@example.com" for i in range(300)), None, "x@", " A@B.com "]
    one = predictor.contacts._contact_columns(0, emails), predictor.contacts._contact_columns(1, phones_)
    monkeypatch.setattr(contacts_module, "PARALLEL_CONTACTS", 2)
    monkeypatch.setattr(forking, "can_fork", lambda: True)
    many = predictor.contacts._contacts_in_bulk(emails, phones_)
    for a, b in zip(one, many, strict=True):
        for x, y in zip(a, b, strict=True):
            assert _text(x) == _text(y)


def _text(values) -> list[str]:
    """Values as text, every missing kind (None, NaN, <NA>) as one."""
    return ["<missing>" if pd.isna(v) else str(v) for v in values]
