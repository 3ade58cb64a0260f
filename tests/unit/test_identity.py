import pandas as pd
import pytest

from sendtime.features.identity import (
    guess_channel,
    hash_values,
    normalise_addresses,
    normalise_emails,
    normalise_phones,
    resolve_identities,
)
from sendtime.schema import ADDRESS, ADDRESS_A, ADDRESS_B, ADDRESS_HASH, CHANNEL, OBSERVED_AT, SUBSCRIBER_ID

PHONE = "+12125550123"


def _addresses(*pairs: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=[CHANNEL, ADDRESS])


def _links(*rows: tuple) -> pd.DataFrame:
    columns = [ADDRESS_A, ADDRESS_B, OBSERVED_AT][: len(rows[0])]
    return pd.DataFrame(rows, columns=columns)


def _person(identity, channel: str, address: str) -> str:
    return identity.subscriber_ids(pd.Series([channel]), pd.Series([address])).iloc[0]


def test_email_case_and_space_variants_are_one_address():
    out = normalise_emails(pd.Series([" Ana@Example.COM", "ana@example.com ", "ANA@EXAMPLE.COM"]))
    assert out.tolist() == ["ana@example.com"] * 3


@pytest.mark.parametrize("bad", ["ana.example.com", "ana@@example.com", "ana@example", "", None])
def test_email_without_one_at_and_a_dotted_domain_is_unusable(bad):
    assert normalise_emails(pd.Series([bad])).isna().all()


def test_phone_formats_map_to_one_e164():
    raw = pd.Series(["+12125550123", "(212) 555-0123", "212-555-0123", "+1 212 555 0123"])
    assert normalise_phones(raw, "US").tolist() == [PHONE] * 4


@pytest.mark.parametrize("bad", ["not a phone", "12", "", None])
def test_unparseable_phone_is_na(bad):
    assert normalise_phones(pd.Series([bad])).isna().all()


def test_addresses_are_normalised_by_their_channel():
    out = normalise_addresses(
        pd.Series(["Ana@X.com", "(212) 555-0123", "ana@x.com"]), pd.Series(["EMAIL", "sms", "fax"]), "US"
    )
    assert out.tolist()[:2] == ["ana@x.com", PHONE]
    assert pd.isna(out.iloc[2])


def test_guess_channel():
    assert guess_channel(pd.Series(["a@x.com", "212-555-0123"])).tolist() == ["email", "sms"]


def test_hash_is_salted_truncated_and_keeps_na():
    out = hash_values(pd.Series(["a", "a", None]), "s1")
    assert out.iloc[0] == out.iloc[1] and len(out.iloc[0]) == 20
    assert pd.isna(out.iloc[2])
    assert hash_values(pd.Series(["a"]), "s2").iloc[0] != out.iloc[0]


def test_duplicate_addresses_give_one_row_each():
    identity = resolve_identities(_addresses(("email", "a@x.com"), ("email", "a@x.com")), None, "salt")
    assert len(identity.addresses) == 1
    assert list(identity.addresses.columns) == [CHANNEL, ADDRESS, ADDRESS_HASH, SUBSCRIBER_ID]


def test_transitive_links_make_one_person():
    addresses = _addresses(("email", "a@x.com"), ("sms", PHONE), ("email", "c@x.com"))
    # a - phone - c would break the one-address cap, so the cap is lifted to test transitivity alone
    links = _links(("A@X.com", "(212) 555-0123"), ("212-555-0123", "c@x.com"))
    identity = resolve_identities(addresses, links, "salt", max_addresses_per_channel=2)
    assert identity.addresses[SUBSCRIBER_ID].nunique() == 1
    assert identity.refused_links == 0


def test_shared_phone_goes_to_the_first_claim_and_the_other_link_is_refused():
    addresses = _addresses(("email", "ana@x.com"), ("email", "ben@x.com"))
    links = _links(
        ("ben@x.com", "212-555-0123", "2025-03-01T00:00:00Z"),  # later claim, first in the file
        ("Ana@x.com", "+1 212 555 0123", "2025-01-01T00:00:00Z"),
    )
    identity = resolve_identities(addresses, links, "salt", max_addresses_per_channel=1)
    assert identity.addresses[SUBSCRIBER_ID].nunique() == 2
    assert identity.refused_links == 1
    assert _person(identity, "sms", PHONE) == _person(identity, "email", "ana@x.com")
    assert _person(identity, "email", "ben@x.com") != _person(identity, "email", "ana@x.com")


def test_links_without_observed_at_come_after_dated_ones_then_in_input_order():
    addresses = _addresses(("email", "ana@x.com"), ("email", "ben@x.com"), ("email", "cy@x.com"))
    links = _links(
        ("cy@x.com", PHONE, None),
        ("ben@x.com", PHONE, None),
        ("ana@x.com", PHONE, "2025-01-01"),
    )
    identity = resolve_identities(addresses, links, "salt")
    assert identity.refused_links == 2
    assert _person(identity, "sms", PHONE) == _person(identity, "email", "ana@x.com")


def test_unusable_links_are_counted():
    identity = resolve_identities(_addresses(("email", "a@x.com")), _links(("a@x.com", "no phone")), "s")
    assert identity.unusable_links == 1
    assert len(identity.addresses) == 1


def test_ids_are_stable_across_runs_and_depend_on_the_salt():
    addresses = _addresses(("email", "a@x.com"), ("sms", PHONE))
    links = _links(("a@x.com", PHONE))
    first = resolve_identities(addresses, links, "salt").addresses
    again = resolve_identities(addresses.iloc[::-1], links, "salt").addresses
    other = resolve_identities(addresses, links, "pepper").addresses
    pd.testing.assert_frame_equal(first, again)
    assert not set(first[SUBSCRIBER_ID]) & set(other[SUBSCRIBER_ID])
    assert not set(first[ADDRESS_HASH]) & set(other[ADDRESS_HASH])


def test_no_raw_address_inside_ids_or_hashes():
    addresses = _addresses(("email", "a@x.com"), ("sms", PHONE), ("email", "b@x.com"))
    table = resolve_identities(addresses, _links(("a@x.com", PHONE)), "salt").addresses
    keys = pd.concat([table[SUBSCRIBER_ID], table[ADDRESS_HASH]])
    for raw in ["a@x.com", "b@x.com", PHONE, "2125550123", "@", "x.com"]:
        assert not keys.str.contains(raw, regex=False).any()


def test_a_link_to_an_unknown_address_joins_the_map():
    identity = resolve_identities(
        _addresses(("email", "a@x.com")), _links(("a@x.com", "(212) 555-0123")), "s"
    )
    assert set(identity.addresses[ADDRESS]) == {"a@x.com", PHONE}
    assert _person(identity, "sms", PHONE) == _person(identity, "email", "a@x.com")


def test_lookup_of_unknown_or_missing_address_is_na():
    identity = resolve_identities(_addresses(("email", "a@x.com")), None, "s")
    out = identity.subscriber_ids(
        pd.Series(["EMAIL", "email", "sms"]), pd.Series(["a@x.com", "z@x.com", None])
    )
    assert out.notna().tolist() == [True, False, False]
