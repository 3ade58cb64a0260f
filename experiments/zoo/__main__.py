"""`python -m sendtime.experiments.zoo --world NAME --out DIR [--subscribers N] [--weeks W] [--seed S]`."""

from __future__ import annotations

import argparse
import json
import sys

from sendtime.experiments.zoo import WORLDS, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sendtime.experiments.zoo", description=__doc__)
    parser.add_argument("--world", required=True, choices=list(WORLDS), help="; ".join(
        f"{k}: {w.about}" for k, w in WORLDS.items()))  # fmt: skip
    parser.add_argument("--out", required=True, help="data folder to write (with ground_truth/)")
    parser.add_argument("--subscribers", type=int, default=4000, help="people (default 4000)")
    parser.add_argument("--weeks", type=int, default=None, help="export length (default: the world's own)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = generate(args.world, args.out, subscribers=args.subscribers, weeks=args.weeks, seed=args.seed)
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
