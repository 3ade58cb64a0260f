"""The end-to-end benchmark's audience really is N different people, with numbers that are valid."""

from __future__ import annotations

import pandas as pd

from sendtime.experiments.bench_schedule import distinct_audience
from sendtime.features import phones


def test_distinct_audience_rows_are_different_contacts_with_valid_numbers():
    people = pd.DataFrame({"email": [f"k{i}@example.com" for i in range(50)], "phone": [None] * 50})
    frame = distinct_audience(people, 5000, seed=1, new_share=0.9, new_email=0.9, new_phone=0.9)
    again = distinct_audience(people, 5000, seed=2, new_share=0.9, new_email=0.9, new_phone=0.9)
    assert len(frame) == 5000 and frame["customer_ref"].is_unique
    new = frame[~frame["email"].isin(people["email"])]
    assert new["email"].dropna().is_unique and new["phone"].dropna().is_unique
    assert 0.85 < new["email"].notna().mean() < 0.95 and 0.85 < new["phone"].notna().mean() < 0.95
    e164, _ = phones.parse_phones(new["phone"].dropna().tolist(), "US", workers=1)
    assert sum(e is not None for e in e164) > 0.99 * len(e164)
    assert not set(new["phone"].dropna()) & set(again["phone"].dropna())  # another seed, other numbers
