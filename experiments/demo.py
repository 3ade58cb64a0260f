"""Helpers for `make demo`: a campaign audience drawn from a simulated world, its window, and a closing note.

The audience is what a campaign team would upload: known people with one or both contacts, a few
brand-new contacts (cold start), a row with no contact, and columns of their own carried through.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import home


def make_audience(data: Path, out: Path, size: int = 1500, seed: int = 0) -> Path:
    people = pd.read_parquet(data / "ground_truth" / "people.parquet")
    rng = np.random.default_rng(seed)
    rows = people.sample(n=min(size, len(people)), random_state=seed).reset_index(drop=True)
    audience = pd.DataFrame({"email": rows["email"], "phone": rows["phone"]})
    audience["email"] = audience["email"].where(rng.random(len(audience)) > 0.03)  # some rows lack the e-mail
    new = pd.DataFrame(
        {
            "email": [f"new.subscriber{i}@example.com" for i in range(20)],
            "phone": [f"+1312555{100 + i:04d}" if i % 2 else None for i in range(20)],
        }
    )
    empty = pd.DataFrame({"email": [None, ""], "phone": [None, " "]})
    audience = pd.concat([audience, new, empty], ignore_index=True)
    audience.insert(0, "customer_ref", [f"C{i:06d}" for i in range(len(audience))])
    audience["segment"] = rng.choice(["vip", "regular", "lapsed"], len(audience), p=[0.1, 0.7, 0.2])
    out.parent.mkdir(parents=True, exist_ok=True)
    audience.to_csv(out, index=False)
    print(f"wrote a demo audience of {len(audience):,} rows to {out}")
    return out


def window(data: Path) -> tuple[str, str]:
    """The day after the history ends, from 12:00 UTC for 24 hours: a campaign planned ahead."""
    meta = json.loads((data / "ground_truth" / "meta.json").read_text())
    end = pd.Timestamp(meta["end"])
    start = end.tz_convert("UTC").normalize() + pd.Timedelta(days=1, hours=12)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), (start + pd.Timedelta(hours=24)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def summary(plan: Path) -> None:
    df = pd.read_csv(plan) if plan.suffix == ".csv" else pd.read_parquet(plan)
    print("\n=== sendtime demo: done ===")
    print(f"plan:            {plan} ({len(df):,} rows, one per audience row)")
    print(f"channels:        {df['channel'].fillna('(none)').value_counts().to_dict()}")
    per_hour = pd.to_datetime(df["send_at"], utc=True).dt.strftime("%H:00").value_counts().sort_index()
    print("sends per UTC hour: " + ", ".join(f"{h} {n}" for h, n in per_hour.items()))
    png = plan.with_suffix(".png")
    if png.exists():
        print(f"plot:            {png}")
    print(f"MLflow UI:       .venv/bin/mlflow ui --backend-store-uri {home.tracking_uri()} --port 5000")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sendtime.experiments.demo")
    sub = parser.add_subparsers(dest="what", required=True)
    a = sub.add_parser("audience")
    a.add_argument("--data", type=Path, required=True)
    a.add_argument("--out", type=Path, required=True)
    w = sub.add_parser("window")
    w.add_argument("--data", type=Path, required=True)
    s = sub.add_parser("summary")
    s.add_argument("--plan", type=Path, required=True)
    args = parser.parse_args()
    if args.what == "audience":
        make_audience(args.data, args.out)
    elif args.what == "window":
        print(*window(args.data))
    else:
        summary(args.plan)


if __name__ == "__main__":
    main()
