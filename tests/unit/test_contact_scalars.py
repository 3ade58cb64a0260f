"""The API's small-call paths give exactly what the vectorised (bulk) paths give.

A subscriber met for the first time is resolved on plain values (`contact_scalars`), and a few rows skip
the factorisations of `zone_sets`, `declared_zones` and the policy's reasons. Each pair is compared here on
random inputs: first the scalar twins alone (no model), then, on the session's champion, contact for
contact (every field and missing marker) and decision for decision (channel, hour, window, scores and
reasons) over many random requests: e-mails, phones of several countries and formats, bad phones, unknown
people, declared timezones, channels, windows and last sends.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sendtime.features import identity, local_time
from sendtime.serving import api, contact_scalars, policy, quiet_hours
from sendtime.serving import contacts as contacts_module

ZONES = ["America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London", "Europe/Berlin",
         "Asia/Kolkata", "Australia/Sydney", "Asia/Tokyo", "America/Sao_Paulo", "Pacific/Honolulu"]  # fmt: skip
FOREIGN = ["+447911123456", "07911 123456", "+44 20 7946 0958", "+491702429069", "+49 30 901820", "+33612345678",
           "+61412345678", "+61 2 9374 4000", "+919812345678", "+5511987654321", "+81312345678",
           "+18005550199", "+18885550123", "+12085550123", "+1 (306) 555-0123"]  # fmt: skip
BAD_PHONES = ["12", "x", "+1", "++", "555", "+999123", "(212) 555", "phone: none", "+12125550123 ext"]
BAD_EMAILS = ["a@b", "no-at.example.com", "a@@b.com", "a b@c.com", "@x.com", "x@.com", "x@y.c"]
MISSING = [None, "", "  ", "nan", "NaN"]
AREAS = ["212", "214", "305", "312", "415", "206", "617", "713", "808", "907", "604", "416"]


def _new_phone(rng: np.random.Generator) -> str:
    area, number = rng.choice(AREAS), f"{rng.integers(200, 1000)}{rng.integers(0, 10_000):04d}"
    forms = [f"+1{area}{number}", f"({area}) {number[:3]}-{number[3:]}", f"1-{area}-{number[:3]}-{number[3:]}",
             f"{area}.{number[:3]}.{number[3:]}", f" +1 {area} {number} "]  # fmt: skip
    return forms[rng.integers(len(forms))]


def _known_forms(phone: str) -> list[str]:
    """A known E.164 number as people type it (US numbers only have national forms)."""
    if not phone.startswith("+1"):
        return [phone]
    d = phone[2:]
    return [phone, f"({d[:3]}) {d[3:6]}-{d[6:]}", f"1{d}", f" {d} ", f"+1 {d[:3]} {d[3:6]} {d[6:]}"]


def _email(rng, known: list[str]) -> str | None:
    kind = rng.random()
    if kind < 0.4:
        e = known[rng.integers(len(known))]
        return [e, e.upper(), f"  {e} ", e.title()][rng.integers(4)]
    if kind < 0.7:
        return f"new.{rng.integers(1 << 30):x}@example.{rng.choice(['org', 'com', 'co.uk'])}"
    if kind < 0.85:
        return BAD_EMAILS[rng.integers(len(BAD_EMAILS))]
    return MISSING[rng.integers(len(MISSING))]


def _phone(rng, known: list[str]) -> str | None:
    kind = rng.random()
    if kind < 0.35:
        forms = _known_forms(known[rng.integers(len(known))])
        return forms[rng.integers(len(forms))]
    if kind < 0.6:
        return _new_phone(rng)
    if kind < 0.75:
        return FOREIGN[rng.integers(len(FOREIGN))]
    if kind < 0.87:
        return BAD_PHONES[rng.integers(len(BAD_PHONES))]
    return MISSING[rng.integers(len(MISSING))]


# --------------------------------------------------------------------------- scalar twins, no model
@pytest.mark.parametrize("seed", range(5))
def test_scalar_twins_of_normalising_and_hashing(seed):
    rng = np.random.default_rng(seed)
    known = [f"p{i}@example.com" for i in range(20)]
    emails = [e for e in (_email(rng, known) for _ in range(300)) if e is not None]
    phones = [
        p for p in (_phone(rng, ["+12125550123", "+447911123456"]) for _ in range(300)) if p is not None
    ]
    phones += ["+١٢١٢٥٥٥٠١٢٣", "２１２５５５０１２３", "12125550123.0"]  # non-ASCII digits, a float's text
    bulk = identity.normalise_emails(pd.Series(emails, dtype=object))
    assert [identity.normalise_email(e) for e in emails] == [None if pd.isna(v) else v for v in bulk]
    for region in ("US", "GB"):
        bulk = identity.canonical_phones(pd.Series(phones, dtype=object), region)
        assert [identity.canonical_phone(p, region) for p in phones] == bulk.tolist()
    bulk = identity.hash_values(pd.Series(emails, dtype=object), "pepper")
    assert [identity.hash_value(e, "pepper") for e in emails] == bulk.tolist()


@pytest.mark.parametrize("seed", range(5))
def test_zone_sets_declared_zones_and_reasons_row_by_row(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    cells = [*ZONES, None, np.nan, pd.NA, "", " ", "America/Chicago|America/Denver", " Europe/London "]
    columns = [np.array([cells[k] for k in rng.integers(len(cells), size=n)], dtype=object) for _ in range(4)]
    declared = [
        [*ZONES, None, "", " ", "Mars/Base", " Asia/Tokyo", "nan"][k] for k in rng.integers(16, size=n)
    ]
    codes = rng.integers(0, len(policy._REASON_TEXT), size=n)
    base = np.array([["personal history", None, "linked profile", "", np.nan][k] for k in rng.integers(5, size=n)],
                    dtype=object)  # fmt: skip
    small = (quiet_hours.zone_sets(*columns), local_time.declared_zones(declared, n),
             policy._compose_reasons(codes, base, n), policy._compose_reasons(codes, None, n))  # fmt: skip
    monkeypatch.setattr(quiet_hours, "ZONE_SETS_BY_ROW", -1)
    monkeypatch.setattr(local_time, "DECLARED_BY_ROW", -1)
    monkeypatch.setattr(policy, "_REASONS_BY_ROW", -1)
    bulk = (quiet_hours.zone_sets(*columns), local_time.declared_zones(declared, n),
            policy._compose_reasons(codes, base, n), policy._compose_reasons(codes, None, n))  # fmt: skip
    _same(small[0], bulk[0])
    for a, b in zip(small[1], bulk[1], strict=True):
        _same(a, b)
    _same(small[2], bulk[2])
    _same(small[3], bulk[3])


def _same(a: np.ndarray, b: np.ndarray, name: str = "") -> None:
    """Equal arrays: dtype, shape, values, and the same kind of missing marker in each cell."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, name
    for x, y in zip(a.reshape(-1).tolist(), b.reshape(-1).tolist(), strict=True):
        assert type(x) is type(y) and (x == y if not pd.isna(x) else pd.isna(y)), (name, x, y)


# ------------------------------------------------------------------------- on the session's champion
@pytest.fixture(scope="module")
def served(trained_champion, test_settings, small_world):
    from sendtime.serving.predictor import Predictor

    predictor = Predictor.from_registry(test_settings, version=trained_champion.version)
    table = pd.read_parquet(small_world / "subscribers.parquet")
    channel = table["channel"].str.lower()
    known = {c: table.loc[channel == c, "address"].dropna().astype(str).tolist() for c in ("email", "sms")}
    return predictor, test_settings, known


def _fresh(served):
    """A predictor with empty memos, so that every contact is met for the first time."""
    from sendtime.serving.predictor import Predictor

    predictor, settings, _ = served
    return Predictor(predictor.booster, predictor.profiles, settings, predictor.model_version, predictor.meta)


def _bulk_paths(patch: pytest.MonkeyPatch) -> None:
    """Every small-call shortcut off: contacts, zones, grids and reasons go the vectorised way."""
    patch.setattr(contacts_module, "SMALL_AUDIENCE", -1)
    patch.setattr(contacts_module, "SCALAR_CONTACTS", -1)
    patch.setattr(quiet_hours, "ZONE_SETS_BY_ROW", -1)
    patch.setattr(quiet_hours, "MEMO_SMALL", -1)
    patch.setattr(local_time, "DECLARED_BY_ROW", -1)
    patch.setattr(policy, "_REASONS_BY_ROW", -1)


@pytest.mark.parametrize("seed", range(4))
def test_contacts_on_scalars_are_the_vectorised_columns(served, seed):
    _, _, known = served
    index = _fresh(served).contacts
    rng = np.random.default_rng(seed)
    emails = [_email(rng, known["email"]) for _ in range(120)]
    phones = [_phone(rng, known["sms"]) for _ in range(120)]
    phones += ["+12125550123", "+12125550999", "+18005550199", "+18005550100"]  # shared prefixes, one call
    for c, values in ((0, emails), (1, phones)):
        assert contact_scalars.takes(values)
        rows = index._scalar_rows(c, values)
        columns = index._contact_columns(c, values)
        for j, (field, want) in enumerate(zip(contacts_module.ContactColumns._fields, columns, strict=True)):
            got = np.array([r[j] for r in rows], dtype=contacts_module._CONTACT_DTYPES[j])
            _same(got, want, field)
    assert sum(r[2] >= 0 for r in index._scalar_rows(1, phones)) > 10  # known people were found


def _request(rng, known) -> dict:
    """A random request; three in four hold no unreadable contact (one would make the whole request a 422)."""
    readable = rng.random() < 0.75

    def draw(make, bad):
        value = make()
        while readable and value in bad:
            value = make()
        return value

    subscribers = []
    for _ in range(int(rng.integers(1, 5))):
        person = {}
        if rng.random() < 0.8:
            person["email"] = draw(lambda: _email(rng, known["email"]), BAD_EMAILS)
        if rng.random() < 0.6:
            person["phone"] = draw(lambda: _phone(rng, known["sms"]), BAD_PHONES)
        if rng.random() < 0.4:
            person["timezone"] = [*ZONES, None, ""][rng.integers(len(ZONES) + 2)]
        if rng.random() < 0.15:
            person["last_sent"] = {"email": "2026-11-03T04:00:00Z", "sms": "2026-11-03T15:30:00Z"}
        subscribers.append(person)
    start = pd.Timestamp("2026-11-01T00:00Z") + pd.Timedelta(hours=int(rng.integers(0, 24 * 20)))
    body = {"subscribers": subscribers, "include_scores": bool(rng.random() < 0.7),
            "window": {"start": start.isoformat(), "end": (start + pd.Timedelta(hours=int(rng.integers(1, 170)))).isoformat()}}  # fmt: skip
    channels = [None, ["email"], ["sms"], ["email", "sms"]][rng.integers(4)]
    if channels is not None:
        body["channels"] = channels
    return body


def _answers(predictor, settings, bodies: list[dict]) -> list[tuple[int, dict]]:
    out = []
    for k, body in enumerate(bodies):
        status, answer = api.handle(
            "predict", json.dumps(body), predictor, settings, np.random.default_rng(k)
        )
        out.append((status, api.as_json(answer)))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_first_sight_decisions_are_the_bulk_paths(served, seed):
    _, settings, known = served
    rng = np.random.default_rng(100 + seed)
    bodies = [_request(rng, known) for _ in range(80)]
    fast = _answers(_fresh(served), settings, bodies)
    with pytest.MonkeyPatch.context() as patch:
        _bulk_paths(patch)
        bulk = _answers(_fresh(served), settings, bodies)
    for body, a, b in zip(bodies, fast, bulk, strict=True):
        assert a == b, body
    statuses = [status for status, _ in fast]
    assert statuses.count(200) > 40 and statuses.count(422) > 0  # bad contacts are refused alike
    decided = [d for status, answer in fast if status == 200 for d in answer["decisions"]]
    assert {d["channel"] for d in decided} >= {"email", "sms"}
    assert any(d["reason"].startswith("new subscriber") for d in decided)
    assert any(d["scores"] for d in decided)


def test_audiences_on_scalars_are_the_bulk_audiences(served):
    from sendtime.serving.contacts import Audience

    _, _, known = served
    rng = np.random.default_rng(7)
    emails = [_email(rng, known["email"]) for _ in range(60)]
    phones = [_phone(rng, known["sms"]) for _ in range(60)]
    zones = [[*ZONES, None, "", "Mars/Base"][k] for k in rng.integers(len(ZONES) + 3, size=60)]
    got = _fresh(served).resolve(emails, phones, zones)
    with pytest.MonkeyPatch.context() as patch:
        _bulk_paths(patch)
        want = _fresh(served).resolve(emails, phones, zones)
    for name in Audience.__dataclass_fields__:
        _same(getattr(got, name), getattr(want, name), name)
