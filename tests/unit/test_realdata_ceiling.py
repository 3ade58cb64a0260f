"""The real-data ceiling: its raw member is the benchmark's raw window, its family moves the window the
way each part should, and leave-one-set-out never scores a set with a member chosen on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sendtime.experiments import bench_realdata as B
from sendtime.experiments import realdata as R
from sendtime.experiments import realdata_ceiling as C


def _world(people: int = 30, weeks: int = 10, seed: int = 0) -> pd.DataFrame:
    """People active around an own local hour (+-1 hour), a third of them only in the last two weeks."""
    rng = np.random.default_rng(seed)
    rows, start = [], pd.Timestamp("2024-01-01T00:00:00Z")
    for p in range(people):
        hour = 7 + (p % 12)
        first = weeks - 2 if p % 3 == 0 else 0
        for w in range(first, weeks):
            for day in (0, 2, 4):
                h = hour + int(rng.integers(-1, 2))
                rows.append((f"p{p}", start + pd.Timedelta(days=7 * w + day, hours=h, minutes=10), 0))
    return pd.DataFrame(rows, columns=["person", "at", "offset_minutes"])


def test_raw_member_is_the_benchmarks_raw_window():
    active = B.active_hours(_world())
    cutoff = pd.Timestamp("2024-03-04T00:00:00Z")
    mine = C.score_cutoff(active, cutoff)
    theirs = B.score_cutoff(
        active, cutoff, None, shapes_fn=lambda b, c, people, s: np.ones((len(people), 168))
    )
    raw = mine[mine["member"] == C.RAW_MEMBER].set_index("person")
    ref = theirs[theirs["method"] == B.RAW].set_index("person")
    assert len(raw) == len(ref) > 0
    assert (raw["hits"] == ref["hits"]).all() and (raw["later"] == ref["later"]).all()
    assert set(mine["member"]) == set(C.member_names()) and len(C.member_names()) == 150


def test_family_parts_do_what_they_say():
    counts = np.zeros((2, 24))
    counts[0, 5], counts[1, [2, 3]] = 4.0, [1.0, 1.0]
    blurred = C.circular_blur(counts, 1)
    assert blurred.sum() == pytest.approx(counts.sum()) and blurred[0, 4] == pytest.approx(1.0)
    # relative recency: weights sum to the person's count whatever the half life
    rc = C.recency_counts(np.array([0, 0, 1]), np.array([3, 9, 3]), np.array([1.0, 400.0, 2.0]), 2, 30.0)
    assert rc.sum(axis=1) == pytest.approx([2.0, 1.0]) and rc[0, 3] > 1.9
    shapes = np.eye(24)[[5, 5, 20]]
    prior = C.similar_prior(counts, shapes, 4)
    assert prior[0].argmax() == 5 and prior[0, 20] == pytest.approx(0.0)  # like the 05:00 people only
    assert prior[1] == pytest.approx(shapes.mean(axis=0))  # nobody similar: everyone's average


def test_leave_one_set_out_scores_each_set_with_a_member_chosen_elsewhere():
    members = ["a", "b", C.RAW_MEMBER]
    idx = pd.MultiIndex.from_product([["2-9"], members], names=["stratum", "member"])
    table = pd.DataFrame({"x": [1.0, 0.1, 0.2], "y": [0.1, 0.5, 0.2], "z": [0.1, 0.5, 0.2]}, index=idx)
    table["pooled"] = table.mean(axis=1)
    out = C.ceiling(table).set_index("estimate")
    # x is scored with b (best on y and z: 0.5), y and z with a (best on x and the other: 0.5 vs 0.3):
    # every set gets the member that is worst on it, which hindsight (1.0, 0.5, 0.5) hides
    assert out.loc["leave one set out", "share"] == pytest.approx(0.1)
    assert out.loc["each set's best, hindsight", "share"] == pytest.approx(np.mean([1.0, 0.5, 0.5]))
    assert out.loc["raw window", "share"] == pytest.approx(0.2)
    assert out.loc["best member, hindsight", "members"] == "a"


def test_command_writes_the_table_and_skips_absent_sets(tmp_path, monkeypatch, capsys):
    world = _world().assign(at=lambda d: pd.to_datetime(d["at"], utc=True))
    R.write_set(tmp_path, "tiny", world, {}, {"source": "test"})
    R.write_set(
        tmp_path,
        "tiny2",
        _world(seed=1).assign(at=lambda d: pd.to_datetime(d["at"], utc=True)),
        {},
        {"source": "test"},
    )
    monkeypatch.setattr(
        "sys.argv",
        ["realdata_ceiling", "--data", str(tmp_path), "--sets", "tiny", "tiny2", "absent", "--cutoffs", "3"],
    )
    C.main()
    printed = capsys.readouterr().out
    assert "absent: skipped" in printed
    text = (tmp_path / "ceiling.md").read_text()
    assert "| 2-9 | leave one set out |" in text and "| 10+ | raw window |" in text
    assert pd.read_csv(tmp_path / "ceiling.csv").shape[0] == 2 * 150
