"""An export as a new user brings it: does every reachable row get a lawful send?

    python -m sendtime.experiments.bench_export [--world events_only] [--weeks 8] [--subscribers 4000]
        [--seeds 0 1 2] [--max-sms-share 0.3]

A zoo world (written apart from the estimator; `events_only` has transient bounces and no subscribers
table or identity links) is trained with the default config, exactly as `sendtime train` would, and a
24 h campaign is planned for everyone the world ever had, as `sendtime schedule` would. Two figures a
careful sender checks, each from the world's truth rather than from sendtime's own view:
- **unsent reachable rows**: rows with at least one contact that was still reachable at the export's end
  (not hard-bounced, not unsubscribed) that got no send, apart from rows a stated SMS budget leaves out;
- **SMS outside quiet hours**: planned texts whose hour is outside 08:00-21:00 in any zone the phone
  number itself may be in (`phonenumbers`, every zone of the number) or in the person's true zone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

FEDERAL = (8, 21)  # 08:00-21:00 local: the federal floor every zone must allow


def number_zones(phone: str) -> list[str]:
    """Every IANA zone `phonenumbers` gives a number (none for an unknown one)."""
    import phonenumbers
    from phonenumbers import timezone as pn_tz

    try:
        num = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return []
    return [z for z in pn_tz.time_zones_for_number(num) if z != "Etc/Unknown"]


def outside_quiet_hours(send_at: pd.Series, phones: pd.Series, true_zones: pd.Series) -> np.ndarray:
    """Texts whose hour [send_at, send_at + 1 h) is not inside 08:00-21:00 in every zone they may be in."""
    bad = np.zeros(len(send_at), dtype=bool)
    for i, (at, phone, tz) in enumerate(zip(send_at, phones, true_zones, strict=True)):
        zones = set(number_zones(phone))
        if isinstance(tz, str) and tz:
            zones.add(tz)
        for z in zones:
            local = at.tz_convert(z)
            start = local.hour + local.minute / 60
            if start < FEDERAL[0] or start + 1 > FEDERAL[1]:
                bad[i] = True
                break
    return bad


def run_one(world: str, weeks: int, subscribers: int, seed: int, share: float | None, cache: Path) -> dict:
    from sendtime.configs.settings import load_settings
    from sendtime.experiments.demo import window
    from sendtime.experiments.zoo import generate
    from sendtime.serving.schedule import run_schedule
    from sendtime.workflows.train import train

    tag = f"{world}-{subscribers}-{weeks}-{seed}"
    data = cache / f"world-{tag}"
    if not (data / "ground_truth" / "people.parquet").exists():
        generate(world, data, subscribers=subscribers, weeks=weeks, seed=seed)
    store = cache / f"home-{tag}"
    shutil.rmtree(store, ignore_errors=True)
    os.environ["SENDTIME_HOME"] = str(store)
    settings = load_settings()
    result = train(data, settings, progress=False, echo=lambda *a, **k: None)

    people = pd.read_parquet(data / "ground_truth" / "people.parquet")
    audience = people[["email", "phone"]].copy()
    audience_path = cache / f"audience-{tag}.csv"
    audience.to_csv(audience_path, index=False)
    start, end = window(data)
    max_sms = None if share is None else int(share * len(audience))
    plan_path = cache / f"plan-{tag}.csv"
    run_schedule(
        audience=str(audience_path), start=start, end=end, out=str(plan_path), settings=settings,
        max_sms=max_sms,
    )  # fmt: skip
    plan = pd.read_csv(plan_path, keep_default_na=False)

    has_email = people["email"].fillna("").astype(str).str.len() > 0
    has_phone = people["phone"].fillna("").astype(str).str.len() > 0
    reachable = (has_email & ~people["email_stopped"]) | (has_phone & ~people["sms_stopped"])
    unsent = (plan["channel"] == "").to_numpy()
    budget = plan["reason"].str.contains("budget", case=False).to_numpy()
    sms = (plan["channel"] == "sms").to_numpy()
    send_at = pd.to_datetime(plan.loc[sms, "send_at"], utc=True)
    outside = outside_quiet_hours(send_at, people.loc[sms, "phone"], people.loc[sms, "timezone"])
    return {
        "world": world,
        "weeks": weeks,
        "subscribers": subscribers,
        "seed": seed,
        "kind": result.kind,
        "promoted": result.promoted,
        "rows": len(plan),
        "reachable": int(reachable.sum()),
        "unsent_reachable": int((reachable.to_numpy() & unsent & ~budget).sum()),
        "left_out_by_budget": int((reachable.to_numpy() & unsent & budget).sum()),
        "unsent_unreachable": int((~reachable.to_numpy() & unsent).sum()),
        "sms": int(sms.sum()),
        "sms_outside_quiet_hours": int(outside.sum()),
        "email": int((plan["channel"] == "email").sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sendtime.experiments.bench_export", description=__doc__)
    parser.add_argument("--world", nargs="+", default=["events_only"])
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--subscribers", type=int, default=4000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-sms-share", type=float, default=None, help="an SMS budget as a share of rows")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "sendtime-bench-export")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for world in args.world:
        for seed in args.seeds:
            r = run_one(world, args.weeks, args.subscribers, seed, args.max_sms_share, args.cache)
            print(", ".join(f"{k}={v}" for k, v in r.items()), flush=True)
            rows.append(r)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
