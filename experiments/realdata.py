"""Real per-person activity logs for the real-data benchmark (bench_realdata): rebuilt, not shipped.

    python -m sendtime.experiments.realdata [--mirrors DIR] [--outspot DIR] [--out DIR] [--sets ...]

Each set is one public log of when people were active. Nothing fetched is kept in this repository: this
script reads a pinned public source on this machine and writes a small derived table per set under
`$SENDTIME_HOME/realdata/<set>/` (`events.csv.gz` and `manifest.json`):

| column | meaning |
|---|---|
| `person` | salted hash of the person's identifier (author e-mail, subscriber id): no name, no address |
| `at` | the instant, UTC |
| `offset_minutes` | the person's UTC offset at that instant: local time = at + offset |

Why these sources: a git commit's author date carries the author's own UTC offset, so each commit is a
moment of a person's activity *in their local time*, which is what a send-time model must predict.
Each project is one community with its own habits (a mailing-list C project, a scientific library, a
hobbyist game engine, a company's product, a UI library made mostly in China). Outspot's newsletter opens (../shared/data/outspot) are
UTC and one zone (Europe/Brussels).

Per git set: `git log --no-merges` up to the pinned commit, authors unified by the project's own
`.mailmap` at that commit (when it has one). Left out: merges (the merger's moment, not the
author's). Dropped and counted in the manifest: bot authors; commits GitHub's web interface made
(committer noreply@github.com at the author date: squash merges and web edits, dated when a maintainer
clicked); rows without an author e-mail or a parseable date; for numpy the Subversion era (every date
was stored as +00:00, so the local hour is lost).
What is personal: author e-mails and names are public in these repositories, but only their salted
hash is written; commit contents are never read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from sendtime.experiments import bench_outspot
from sendtime.features.identity import hash_values
from sendtime.home import sendtime_home

COLUMNS = ("person", "at", "offset_minutes")
BOT_PATTERN = r"\[bot\]|dependabot|renovate|github-actions|noreply@github\.com$"
FIELD_SEP = "\x1f"
GITHUB_COMMITTER = "noreply@github.com"


@dataclass(frozen=True)
class GitSet:
    """A git project's commit history, pinned to one commit of a public repository."""

    name: str
    repo: str  # owner/name on GitHub
    commit: str
    kind: str
    licence: str
    since: str | None = None  # commits authored before this are dropped (dates without a local offset)


@dataclass(frozen=True)
class OutspotSet:
    """Outspot's newsletter opens (../shared/data/outspot): UTC instants, subscribers in Belgium."""

    name: str
    file: str
    kind: str = "newsletter opens of a Belgian web shop's subscribers (UTC; Europe/Brussels)"
    licence: str = "none stated; published by Outspot as an open exercise (see its README)"


GIT_SETS = (
    GitSet(
        "git",
        "git/git",
        "1a3e64c6c4a623626ff0687008732a8e007e2a1c",
        "version control tool in C: patches by e-mail from volunteers and company staff worldwide",
        "GPL-2.0 (code); commit metadata is public",
    ),
    GitSet(
        "numpy",
        "numpy/numpy",
        "1f90bbb55e65e7de68921bc3f1a2d94492fdf689",
        "scientific Python library: academics and volunteers, GitHub pull requests",
        "BSD-3-Clause",
        since="2011-01-01",
    ),
    GitSet(
        "luanti",
        "minetest/minetest",
        "017318f117d210298b7e7a346cc43c53e3cacd32",
        "voxel game engine (Luanti, formerly Minetest): hobbyists, mostly in Europe",
        "LGPL-2.1-or-later (code), CC BY-SA 3.0 (media)",
    ),
    GitSet(
        "terraform",
        "hashicorp/terraform",
        "883c7221ee2e0bc2fad6912fd4b3cc4b53a598a7",
        "infrastructure tool: mostly one company's staff (HashiCorp), North America and Europe",
        "BUSL-1.1 (code since 2023, MPL-2.0 before); commit metadata is public",
    ),
    GitSet(
        "antd",
        "ant-design/ant-design",
        "2b258157ff20fb8948780e414dc1d74246aede40",
        "React UI library: a Chinese company's team (Ant Group) and contributors, 92% of commits at +08:00",
        "MIT",
    ),
)
OUTSPOT_SETS = (OutspotSet("outspot", "opens_2013_2023.csv"),)
SET_NAMES = tuple(s.name for s in GIT_SETS + OUTSPOT_SETS)


def default_out() -> Path:
    return sendtime_home() / "realdata"


def mirror_path(mirrors: Path, repo: str) -> Path:
    """Where a bare copy of `repo` is looked for: DIR/owner+name/repo (the layout of the mirror
    snapshots this was built from), else DIR/name.git (what `git clone --bare URL` makes)."""
    owner, name = repo.split("/")
    for path in (mirrors / f"{owner}+{name}" / "repo", mirrors / f"{name}.git"):
        if path.is_dir():
            return path
    return mirrors / f"{name}.git"


def git_log(git_dir: Path, commit: str) -> pd.DataFrame:
    """Author e-mail, name and ISO date (with the author's offset), committer e-mail and date, of every
    non-merge commit up to `commit`, authors unified by the `.mailmap` at that commit."""
    out = subprocess.run(
        [
            "git",
            f"--git-dir={git_dir}",
            "-c",
            f"mailmap.blob={commit}:.mailmap",
            "log",
            "--no-merges",
            f"--format=%aE{FIELD_SEP}%aN{FIELD_SEP}%aI{FIELD_SEP}%cE{FIELD_SEP}%cI",
            commit,
        ],
        capture_output=True,
        check=True,
        text=True,
        errors="replace",
    ).stdout
    rows = [line.split(FIELD_SEP) for line in out.splitlines() if line]
    return pd.DataFrame(rows, columns=["email", "name", "date", "committer_email", "committer_date"])


def parse_offsets(dates: pd.Series) -> tuple[pd.Series, pd.Series]:
    """ISO-8601 texts with offsets -> (UTC instants, offset in minutes); NaT / <NA> where unparseable."""
    text = dates.astype("string").str.strip()
    parts = text.str.extract(r"(?P<sign>[+-])(?P<h>\d\d):?(?P<m>\d\d)$")
    minutes = parts["h"].astype("Float64") * 60 + parts["m"].astype("Float64")
    offset = minutes.where(parts["sign"] != "-", -minutes).astype("Int64")
    at = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    offset = offset.where(at.notna())
    return at, offset


def _web_commits(log: pd.DataFrame) -> pd.Series:
    """Commits GitHub itself committed at the author date: squash merges, web edits, applied
    suggestions. Their date is when someone clicked, usually a maintainer merging another person's
    work, so it is not the author's moment of activity."""
    if "committer_email" not in log:
        return pd.Series(False, index=log.index)
    by_github = log["committer_email"].astype("string").str.strip().str.lower() == GITHUB_COMMITTER
    author = pd.to_datetime(log["date"], utc=True, errors="coerce", format="ISO8601")
    committed = pd.to_datetime(log["committer_date"], utc=True, errors="coerce", format="ISO8601")
    return by_github & (author == committed)


def git_events(log: pd.DataFrame, salt: str, since: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Commit log -> the derived table and the rows dropped by reason."""
    dropped: dict[str, int] = {}
    email = log["email"].astype("string").str.strip().str.lower()
    at, offset = parse_offsets(log["date"])
    reasons = {
        "no author e-mail": email.isna() | (email == ""),
        "unparseable date": at.isna() | offset.isna(),
        "bot author": email.str.contains(BOT_PATTERN, regex=True, na=False)
        | log["name"].astype("string").str.contains(BOT_PATTERN, regex=True, na=False),
        "made on GitHub's web interface (the clicker's time)": _web_commits(log),
    }
    if since is not None:
        reasons[f"authored before {since} (no local offset recorded)"] = at < pd.Timestamp(since, tz="UTC")
    keep = pd.Series(True, index=log.index)
    for reason, bad in reasons.items():
        bad = bad.fillna(False).astype(bool) & keep
        dropped[reason] = int(bad.sum())
        keep &= ~bad
    events = pd.DataFrame(
        {
            "person": hash_values(email[keep].reset_index(drop=True), salt),
            "at": at[keep].reset_index(drop=True),
            "offset_minutes": offset[keep].reset_index(drop=True).astype("int64"),
        }
    )
    return events.sort_values("at", kind="stable").reset_index(drop=True), dropped


def outspot_events(csv: Path, salt: str) -> tuple[pd.DataFrame, dict]:
    """Outspot opens -> the derived table; the offset is Brussels' at each instant (DST-correct)."""
    raw = pd.read_csv(csv, dtype=str)
    raw.columns = [c.strip().lower() for c in raw.columns]
    text = raw["opened"].str.replace(" UTC", "", regex=False).str.strip()
    at = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    person = raw["user_id"].astype("string").str.strip()
    bad = at.isna() | person.isna() | (person == "")
    keep = ~bad
    at = at[keep].reset_index(drop=True)
    local = at.dt.tz_convert(bench_outspot.TIMEZONE)
    offset = (local.dt.tz_localize(None) - at.dt.tz_localize(None)).dt.total_seconds() // 60
    events = pd.DataFrame(
        {
            "person": hash_values("outspot:" + person[keep].reset_index(drop=True), salt),
            "at": at,
            "offset_minutes": offset.astype("int64"),
        }
    )
    return events.sort_values("at", kind="stable").reset_index(drop=True), {
        "no user id or unparseable time": int(bad.sum())
    }


def write_set(out: Path, name: str, events: pd.DataFrame, dropped: dict, source: dict) -> Path:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    frame = events.assign(at=events["at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    frame[list(COLUMNS)].to_csv(folder / "events.csv.gz", index=False)
    manifest = {
        **source,
        "rows": len(events),
        "people": int(events["person"].nunique()),
        "span": [str(events["at"].min()), str(events["at"].max())],
        "dropped": dropped,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


def read_set(folder: Path) -> pd.DataFrame:
    """A derived table as written by `write_set`, with a clear error naming what is wrong."""
    path = folder / "events.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no derived table; run python -m sendtime.experiments.realdata")
    frame = pd.read_csv(path, dtype={"person": str})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    frame["at"] = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
    return frame


def build(sets: list[str], mirrors: Path, outspot: Path, out: Path, salt: str) -> dict[str, str]:
    """Rebuild every named set whose source is on this machine; say why for the others."""
    status: dict[str, str] = {}
    for spec in GIT_SETS:
        if spec.name not in sets:
            continue
        git_dir = mirror_path(mirrors, spec.repo)
        has = subprocess.run(
            ["git", f"--git-dir={git_dir}", "cat-file", "-e", f"{spec.commit}^{{commit}}"],
            capture_output=True,
        )
        if has.returncode != 0:
            status[spec.name] = f"skipped: no commit {spec.commit[:12]} in {git_dir}"
            continue
        events, dropped = git_events(git_log(git_dir, spec.commit), salt, spec.since)
        source = {"source": f"github.com/{spec.repo}", **asdict(spec)}
        status[spec.name] = str(write_set(out, spec.name, events, dropped, source))
    for spec in OUTSPOT_SETS:
        if spec.name not in sets:
            continue
        csv = outspot / spec.file
        if not csv.is_file():
            status[spec.name] = f"skipped: {csv} not found"
            continue
        events, dropped = outspot_events(csv, salt)
        source = {"source": "github.com/outspot/Outspot-Send-time-optimisation (data.csv)", **asdict(spec)}
        status[spec.name] = str(write_set(out, spec.name, events, dropped, source))
    return status


def main() -> None:
    from sendtime.configs.settings import load_settings

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--mirrors",
        type=Path,
        default=Path("/work/.mirror"),
        help="folder of bare git copies (owner+name/repo, or name.git from `git clone --bare`)",
    )
    parser.add_argument("--outspot", type=Path, default=bench_outspot.DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="default: $SENDTIME_HOME/realdata")
    parser.add_argument("--sets", nargs="+", default=list(SET_NAMES), choices=SET_NAMES)
    args = parser.parse_args()
    out = args.out or default_out()
    for name, result in build(args.sets, args.mirrors, args.outspot, out, load_settings().salt()).items():
        print(f"{name}: {result}")


if __name__ == "__main__":
    main()
