"""The real-data benchmark's pieces: the hit metric, the bootstrap, git extraction in local time, and
the scoring path on a tiny synthetic set (real loader and profiles)."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from sendtime.configs.settings import load_settings
from sendtime.experiments import bench_realdata as B
from sendtime.experiments import realdata as R


def test_best_window_wraps_midnight_and_breaks_ties_by_population():
    dist = np.zeros((2, 24))
    dist[0, [22, 23, 0]] = [1, 2, 1]  # heaviest 3 hours: 22, 23, 0
    dist[1, [5, 15]] = 1  # windows starting at 3, 4, 5, 13, 14, 15 all hold 1: a tie
    population = np.zeros(24)
    population[14] = 1.0  # of the tied windows, the population prefers those covering 14: 13 and 14
    assert B.best_window(dist, population).tolist() == [22, 13]
    assert B.best_window(dist).tolist() == [22, 3]  # without a tie-break: the earliest
    assert B.in_window(np.array([22, 22, 22, 22]), np.array([22, 23, 0, 1])).tolist() == [
        True,
        True,
        True,
        False,
    ]


def test_weekday_windows_pick_each_days_own_hours():
    shape = np.zeros((1, 168))
    shape[0, 0 * 24 + 9] = 1.0  # Monday 09:00
    shape[0, 5 * 24 + 20] = 1.0  # Saturday 20:00
    starts = B.weekday_windows(shape)[0]
    assert starts[0] in (7, 8, 9) and starts[5] in (18, 19, 20)
    assert B.in_window(starts[0], 9) and B.in_window(starts[5], 20)


def test_bootstrap_share_is_pooled_and_its_error_is_over_people():
    hits = np.array([[1.0, 2.0, 0.0], [2.0, 2.0, 1.0]])
    later = np.array([2.0, 2.0, 1.0])
    share, se, boot = B.bootstrap_share(hits, later, resamples=500, seed=1)
    assert share.tolist() == pytest.approx([3 / 5, 1.0])  # pooled over activity, not a mean of people
    assert se[1] == pytest.approx(0.0)  # every person always hit: no resample can differ
    assert 0.1 < se[0] < 0.5
    assert boot.shape == (500, 2)
    # the same resamples for both methods: method 2 is never below method 1 in any of them
    assert (boot[:, 1] >= boot[:, 0]).all()
    # by hand: with one later active hour each, the share is a mean of 0/1 hits, whose bootstrap SE is
    # sqrt(p (1 - p) / n): 30 hits of 100 people -> 0.0458
    hits01 = (np.arange(100) < 30).astype(float)
    p, p_se, _ = B.bootstrap_share(hits01, np.ones(100), resamples=20000, seed=2)
    assert p == pytest.approx(0.3)
    assert p_se == pytest.approx(np.sqrt(0.3 * 0.7 / 100), rel=0.03)


def test_active_hours_count_a_burst_once_on_the_local_clock():
    events = pd.DataFrame(
        {
            "person": ["a", "a", "a", "b"],
            "at": pd.to_datetime(
                [
                    "2024-03-04T07:05:00Z",
                    "2024-03-04T07:50:00Z",
                    "2024-03-04T08:10:00Z",
                    "2024-03-04T07:05:00Z",
                ],
                utc=True,
            ),
            "offset_minutes": [120, 120, 120, -300],
        }
    )
    active = B.active_hours(events)
    got = sorted(zip(active["person"], active["local"].dt.hour, strict=True))
    assert got == [("a", 9), ("a", 10), ("b", 2)]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_extraction_gives_the_authors_local_hours(tmp_path):
    repo = tmp_path / "repo"
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_SYSTEM": os.devnull}

    def git(*args, **extra):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env={**env, **extra})

    committer = {"GIT_COMMITTER_NAME": "C", "GIT_COMMITTER_EMAIL": "c@example.org"}
    repo.mkdir()
    git("init", "-q", "-b", "main")
    commits = [
        ("Ann", "ann@example.org", "2024-03-04T09:15:00+02:00"),  # local 09, UTC 07
        ("Bob", "Bob@Example.org", "2024-03-04T23:30:00-05:00"),  # local 23 on Monday, UTC 04 Tuesday
        ("Ann", "ann@example.org", "2024-07-01T14:00:00+05:30"),  # local 14, UTC 08:30
        ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com", "2024-07-02T10:00:00+00:00"),
        ("Old", "old@example.org", "2005-01-01T10:00:00+00:00"),
        ("Bob", "bob@example.org", "2024-07-02T03:00:00+08:00"),  # squash-merged on GitHub: dropped
    ]
    web = {"GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com"}
    for k, (name, mail, date) in enumerate(commits):
        (repo / "f.txt").write_text(str(k))
        git("add", "f.txt")
        who = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": mail, "GIT_AUTHOR_DATE": date}
        by = {**web, "GIT_COMMITTER_DATE": date} if k == len(commits) - 1 else committer
        git("commit", "-q", "-m", f"c{k}", **who, **by)
    git("checkout", "-q", "-b", "side", "HEAD~1")
    (repo / "g.txt").write_text("g")
    git("add", "g.txt")
    side = {"GIT_AUTHOR_NAME": "Ann", "GIT_AUTHOR_EMAIL": "ann@example.org"}
    git("commit", "-q", "-m", "side", GIT_AUTHOR_DATE="2024-07-03T18:45:00-07:00", **side, **committer)
    git("checkout", "-q", "main")
    mia = {"GIT_AUTHOR_NAME": "Mia", "GIT_AUTHOR_EMAIL": "mia@example.org"}
    git("merge", "-q", "--no-ff", "-m", "merge", "side", **mia, **committer)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)

    log = R.git_log(repo / ".git", head.stdout.strip())
    assert len(log) == 7 and "mia@example.org" not in set(log["email"])  # the merge is left out
    events, dropped = R.git_events(log, "s", since="2010-01-01")
    assert dropped["bot author"] == 1
    assert dropped["made on GitHub's web interface (the clicker's time)"] == 1
    assert dropped["authored before 2010-01-01 (no local offset recorded)"] == 1
    active = B.active_hours(events)
    assert active["local"].dt.strftime("%a %H").tolist() == ["Mon 09", "Mon 23", "Mon 14", "Wed 18"]
    assert active["at"].min() == pd.Timestamp("2024-03-04T07:15:00Z")
    # persons are salted hashes: no address is written, and case does not split a person
    assert not events["person"].str.contains("@").any()
    assert events["person"].nunique() == 2


def test_outspot_offsets_follow_brussels_daylight_saving(tmp_path):
    csv = tmp_path / "opens.csv"
    csv.write_text(
        "user_id,opened\n7,2022-01-10 08:00:00.000000 UTC\n7,2022-07-10 08:00:00.000000 UTC\n8,not a time\n"
    )
    events, dropped = R.outspot_events(csv, "s")
    assert events["offset_minutes"].tolist() == [60, 120]
    assert dropped == {"no user id or unparseable time": 1}
    written = R.read_set(R.write_set(tmp_path / "out", "x", events, dropped, {"source": "test"}))
    assert written["at"].tolist() == events["at"].tolist()


def test_cutoffs_are_a_week_apart_and_leave_a_week_after():
    at = pd.Series(pd.date_range("2024-01-01", "2024-03-31", freq="h", tz="UTC"))
    active = pd.DataFrame({"person": "p", "at": at, "local": at.dt.tz_localize(None)})
    cuts = B.choose_cutoffs(active, 100)
    gaps = pd.Series(cuts).diff().dropna()
    assert len(cuts) > 5 and (gaps >= pd.Timedelta(days=7)).all()
    assert cuts[-1] <= at.max() - pd.Timedelta(days=7)
    assert all(c == c.floor("D") for c in cuts)


def _habit_world(people: int = 24, weeks: int = 10) -> pd.DataFrame:
    """Each person active at one own local hour, three weekdays a week; offsets differ by person."""
    rows = []
    start = pd.Timestamp("2024-01-01T00:00:00Z")  # a Monday
    for p in range(people):
        hour, offset = 6 + (p % 12), [-300, 0, 60, 330][p % 4]
        n_weeks = weeks if p % 3 else 2  # a third of them sparse before the last week: the 2-9 stratum
        for w in range(weeks - n_weeks, weeks):
            for day in (0, 2, 4):
                local = start + pd.Timedelta(days=7 * w + day, hours=hour, minutes=20)
                rows.append((f"p{p}", local - pd.Timedelta(minutes=offset), offset))
    return pd.DataFrame(rows, columns=["person", "at", "offset_minutes"])


def test_scoring_path_on_a_tiny_synthetic_set():
    active = B.active_hours(_habit_world())
    cutoff = pd.Timestamp("2024-03-04T00:00:00Z")  # the start of the tenth week
    settings = load_settings()
    rec = B.score_cutoff(active, cutoff, settings)
    assert set(rec["method"]) == set(B.METHODS)
    assert set(rec["stratum"]) == {"2-9", "10+"}
    per = rec.groupby("method")[["hits", "later"]].sum()
    share = per["hits"] / per["later"]
    # every later active hour is at the person's one habitual hour: their own window always hits
    assert share[B.RAW] == pytest.approx(1.0)
    assert share[B.SMOOTHED] == pytest.approx(1.0)
    assert share[B.RAW_TIES_SENDTIME] == pytest.approx(1.0)  # the profile only breaks ties
    assert share[B.POPULATION] < 0.5  # habits spread over 12 hours: one window holds at most 3 of them
    assert share[B.SENDTIME] > share[B.POPULATION]
    table = B.summarise(rec.assign(set="tiny", cutoff=cutoff), resamples=50)
    assert list(table["set"]) == ["tiny", "tiny", "pooled", "pooled"]
    assert table.loc[0, B.RAW + " se"] == pytest.approx(0.0)
    text = B.markdown(table)
    assert text.count("\n") == 2 + len(table) and "| tiny |" in text


def test_build_skips_sets_whose_source_is_absent_and_says_why(tmp_path):
    status = R.build(["git", "outspot"], tmp_path / "none", tmp_path / "none", tmp_path / "out", "s")
    assert status["git"].startswith("skipped: no commit 1a3e64c6c4a6")
    assert status["outspot"].startswith("skipped:") and "opens_2013_2023.csv" in status["outspot"]
    assert not (tmp_path / "out").exists()


def test_benchmark_command_runs_present_sets_and_skips_absent_ones(tmp_path, monkeypatch, capsys):
    world = _habit_world().assign(at=lambda d: pd.to_datetime(d["at"], utc=True))
    R.write_set(tmp_path, "tiny", world, {}, {"source": "test"})
    argv = ["bench_realdata", "--data", str(tmp_path), "--sets", "tiny", "absent", "--cutoffs", "3"]
    monkeypatch.setattr("sys.argv", [*argv, "--resamples", "20"])
    B.main()
    printed = capsys.readouterr().out
    assert "absent: skipped, no derived table" in printed
    assert "| tiny | 2-9 |" in (tmp_path / "results.md").read_text()
    records = pd.read_csv(tmp_path / "records.csv.gz")
    assert set(records["method"]) == set(B.METHODS) and set(records["set"]) == {"tiny"}
