"""`sendtime ...`: the thin front door. Each command parses its options, calls the Python API
(`notebook.py`, what `import sendtime` exports), prints and returns the exit code.

Heavy imports (settings, MLflow, LightGBM, BentoML) happen inside the commands, so `sendtime --help` is
instant. `predict` and `serve` are the HTTP API's own front doors (`serving.api`, `serving.run`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from sendtime import logsetup, notebook


def whole_number(low: int, high: int):
    """An argparse type: a whole number in [low, high]. Options end up in numpy arrays and timestamps,
    where a number too large overflows deep inside with a traceback; here it is one clear line."""

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: expected {low:,} to {high:,}")
        return value

    return parse


MAX_COUNT = 2**53  # caps on sends: far beyond any audience, and exact as a float64 and an int64
MAX_SUBSCRIBERS = 20_000_000  # simulated people: ~200 bytes each per table in memory, plus events
MAX_DAYS = 3_650  # simulated days of history: ten years keep every timestamp in range
MAX_SEED = 2**32 - 1


def _settings(args: argparse.Namespace):
    from sendtime.configs.settings import load_settings

    return load_settings(getattr(args, "config", None))


def _share(text: str) -> float:
    """An argparse type: a number from 0 to 1 (argparse turns the error into a one-line usage message)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text}")
    return value


def cmd_simulate(args: argparse.Namespace) -> int:
    summary = notebook.simulate(
        args.out,
        subscribers=args.subscribers,
        days=args.days,
        seed=args.seed,
        progress=True,
        soft_bounce_rate=args.soft_bounce_rate,
        untyped_bounce_share=args.untyped_bounce_share,
    )
    print(
        f"wrote a simulated world to {args.out}: {summary['people']:,} people, {summary['events']:,} events "
        f"in {summary['seconds']:.1f} s (ground truth in {Path(args.out) / 'ground_truth'})"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from sendtime.training import baselines

    result = notebook.train(
        args.data,
        args.config,
        allow_kind_change=args.allow_kind_change,
        progress=True,
        echo=print,
        engine=args.engine,
    )
    print(f"run id: {result.run_id}")
    if result.model_kind == "profile_only":
        print(
            f"model kind: {result.kind}, profile-only decision maker (no LightGBM: each profile's click rate "
            "and response curve give the probabilities; too little data to train and test a model)"
        )
        print(f"registered version: {result.version} (tagged model_kind=profile_only; not tested)")
        print(f"promoted to champion: {'yes' if result.promoted else 'no'} ({result.note})")
        return 0
    print(f"model kind: {result.kind}")
    print(f"registered version: {result.version}")
    m = result.metrics
    line = f"test log loss {m.get('log_loss', float('nan')):.4f} (best baseline "
    line += f"{min(m.get(f'{b}_log_loss', float('inf')) for b in baselines.NAMES):.4f}), AUC {m.get('auc', float('nan')):.3f}"
    print(line)
    if "model_capture" in m:
        print(
            f"capture {m['model_capture']:.3f} (smoothed histogram {m.get('smoothed_histogram_capture', float('nan')):.3f}); "
            f"with a 30% SMS budget {m.get('budget30_model_capture', float('nan')):.3f}"
        )
    if "window_share" in m:  # the decision measure without ground truth (README: the gate)
        print(f"engagement share in the chosen windows {m['window_share']:.3f}")
    champ = "none" if result.champion_log_loss is None else f"{result.champion_log_loss:.4f}"
    print(f"champion log loss on this test set, with its own profile settings: {champ}")
    print(result.gate)
    if not result.promoted and result.champion_log_loss is None:
        from sendtime.training import registry

        if registry.champion_version(_settings(args).training.registered_model) is None:
            print(
                "note: there is no champion yet, so `schedule`, `predict` and `serve` have no model to use "
                "until a version passes the gate (see rejects.csv and the reasons above)"
            )
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    notebook.tune(
        args.data,
        args.trials,
        args.config,
        out_config=args.out_config,
        study=args.study,
        progress=True,
        echo=print,
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    notebook.evaluate(args.data, args.version, args.config, progress=True, echo=print)
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    caps = {}
    for item in args.max_per_hour or []:
        channel, _, number = item.partition("=")
        if not number.isdigit() or int(number) > MAX_COUNT or channel.strip().lower() not in ("email", "sms"):
            raise SystemExit(
                f"--max-per-hour {item!r}: expected CHANNEL=N with CHANNEL email or sms and N a whole number "
                f"up to {MAX_COUNT:,}"
            )
        caps[channel.strip().lower()] = int(number)
    notebook.schedule(
        args.audience,
        args.start,
        args.end,
        args.out,
        args.config,
        max_sms=args.max_sms,
        max_per_hour=caps,
        holdout=args.holdout,
        explore=args.explore,
        campaign_time=args.campaign_time,
        seed=args.seed,
        engine=args.engine,
        echo=print,
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    notebook.report(
        args.plan,
        args.data,
        args.out,
        args.version,
        args.config,
        campaign_time=args.campaign_time,
        export_end=args.export_end,
        seed=args.seed,
        echo=print,
    )
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    r = notebook.refresh(args.data, args.config, progress=True, echo=print, engine=args.engine)
    print(
        f"refreshed model version {r.version} ({r.model_kind}): profiles as of {r.profiles_as_of} "
        f"(were as of {r.previous_as_of or 'unknown'}), {r.subscribers:,} subscribers, "
        f"opted out: {', '.join(f'{c} {n:,}' for c, n in r.opted_out.items())}; {r.seconds:.1f} s"
    )
    print(
        f"snapshot: {r.snapshot_uri} (run {r.run_id}); `serve` picks it up at its next poll or POST /reload"
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from sendtime.serving.api import predict_once

    text = Path(args.request).read_text() if args.request else sys.stdin.read()
    status, body = predict_once(text, _settings(args))
    print(json.dumps(body, indent=2))
    return 0 if status < 400 else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from sendtime.serving.run import serve

    return serve(port=args.port, host=args.host, config=args.config)


class _Version(argparse.Action):
    """`--version`: the installed package's version, read from its metadata only when asked (argparse's
    own version action would need it each time the parser is built)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from sendtime import installed_version

        print(f"sendtime {installed_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sendtime", description="Which channel and what time to send, per subscriber."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    logsetup.add_option(parser)
    parser.add_argument("--version", action=_Version, help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write a realistic synthetic data folder plus its ground truth")
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument(
        "--subscribers",
        type=whole_number(1, MAX_SUBSCRIBERS),
        default=2000,
        help="number of people (default 2000)",
    )
    p.add_argument("--days", type=whole_number(1, MAX_DAYS), default=84, help="days of history (default 84)")
    p.add_argument("--seed", type=whole_number(0, MAX_SEED), default=0)
    p.add_argument(
        "--soft-bounce-rate",
        type=_share,
        default=0.0,
        help="share of e-mails to live addresses that bounce transiently (bounce_type soft; default 0)",
    )
    p.add_argument(
        "--untyped-bounce-share",
        type=_share,
        default=0.0,
        help="share of bounce rows exported without a bounce_type (default 0)",
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "train", help="build features, train, evaluate against baselines, log to MLflow, register"
    )
    p.add_argument(
        "--data", required=True, help="data folder (events, optional subscribers and identity_links)"
    )
    p.add_argument("--config", help="YAML settings file (see configs/default.yaml)")
    p.add_argument(
        "--allow-kind-change",
        action="store_true",
        help="let a model trained on another kind of data (opens-only activity vs send response) "
        "replace the champion (training.allow_kind_change)",
    )
    _engine_option(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("tune", help="Optuna search; each trial a nested MLflow run; writes the best config")
    p.add_argument("--data", required=True)
    p.add_argument("--trials", type=whole_number(1, 1_000_000), required=True)
    p.add_argument("--config", help="base YAML settings")
    p.add_argument("--out-config", default="configs/tuned.yaml", help="where to write the best settings")
    p.add_argument("--study", default="sendtime", help="Optuna study name (resumable)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "evaluate", help="offline report for the champion (against ground truth where present)"
    )
    p.add_argument("--data", required=True)
    p.add_argument("--config")
    p.add_argument("--version", help="registered model version (default: the champion)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("schedule", help="a send plan for a campaign audience")
    p.add_argument("--audience", required=True, help="CSV or Parquet: email, phone[, timezone]")
    p.add_argument("--start", required=True, help="window start, ISO-8601 with offset or Z")
    p.add_argument("--end", required=True, help="window end, ISO-8601 with offset or Z")
    p.add_argument("--out", required=True, help="plan file (.csv or .parquet)")
    p.add_argument("--max-sms", type=whole_number(0, MAX_COUNT), help="cap on the number of SMS in the plan")
    p.add_argument(
        "--max-per-hour", action="append", metavar="CHANNEL=N", help="cap sends per clock hour (repeatable)"
    )
    p.add_argument("--holdout", type=float, default=0.0, help="share kept on the plain campaign time")
    p.add_argument("--campaign-time", help="the campaign's plain send time (default: window start)")
    p.add_argument(
        "--explore", type=float, default=0.0, help="share of random feasible hours, with propensities"
    )
    p.add_argument("--seed", type=whole_number(0, MAX_SEED), default=0)
    p.add_argument("--engine", choices=["local", "spark"], default="local")
    p.add_argument("--config")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser(
        "report", help="what a sent plan achieved: lift over the holdout, off-policy values, calibration"
    )
    p.add_argument("--plan", required=True, help="the plan `sendtime schedule` wrote (.csv or .parquet)")
    p.add_argument("--data", required=True, help="export folder with the events that followed the plan")
    p.add_argument("--out", help="folder for report.md, figures and tables (default: PLAN-report beside it)")
    p.add_argument("--version", help="model version that made the plan (default: the champion; see README)")
    p.add_argument("--campaign-time", help="the campaign's plain send time (default: the holdout's)")
    p.add_argument("--export-end", help="when the export was taken (default: its last event)")
    p.add_argument("--seed", type=whole_number(0, MAX_SEED), default=0, help="bootstrap seed")
    p.add_argument("--config")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("refresh", help="today's profiles for the champion from an export, without retraining")
    p.add_argument("--data", required=True, help="export folder; its last event is the profiles' instant")
    p.add_argument("--config", help="settings for the store and model name (the recipe is the version's)")
    _engine_option(p)
    p.set_defaults(func=cmd_refresh)

    p = sub.add_parser("predict", help="answer one prediction request (JSON) exactly as the HTTP API does")
    p.add_argument("--request", help="JSON file (default: standard input)")
    p.add_argument("--config")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("serve", help="start the BentoML prediction service")
    p.add_argument("--port", type=whole_number(1, 65_535), default=3000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--config")
    p.set_defaults(func=cmd_serve)
    for command in sub.choices.values():  # before or after the command's name
        logsetup.add_option(command)
    return parser


def _engine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=["local", "spark"],
        default="local",
        help="spark: the feature base (validation, identity, signals, local time) on Spark, with the "
        "spark extra and Java 17; the same model as local",
    )


class Terminated(SystemExit):
    """SIGTERM, turned into an exception so that clean-up runs on the way out: the plan's temporary file
    goes, worker processes are stopped, the MLflow run is ended as FAILED, scratch folders are removed."""


# Code that must not be cut off half-way: a database write interrupted inside SQLAlchemy can leave its
# SQLite lock held, and the run could then not even be ended as FAILED ("database is locked").
_ATOMIC_MODULES = ("sqlalchemy", "sqlite3", "alembic", "mlflow.store")
_RETRY_SECONDS = 0.05


def _in_atomic_code(frame) -> bool:
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith(_ATOMIC_MODULES):
            return True
        frame = frame.f_back
    return False


def _terminate(signum, frame) -> None:
    if _in_atomic_code(frame):  # let the write finish; the signal comes back in a moment
        timer = threading.Timer(_RETRY_SECONDS, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timer.start()
        return
    raise Terminated(128 + signum)


def _on_sigterm(handler):
    """Install `handler` for SIGTERM (main thread only); returns the previous one, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logsetup.configure(parser, args)
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    # OpenMP threads that spin while waiting slow LightGBM down by 10-100x on a busy 2-core machine
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from sendtime.features.tables import DataError

    previous = _on_sigterm(_terminate)
    try:
        return int(args.func(args) or 0)
    except (DataError, FileNotFoundError, ValueError, LookupError, OverflowError) as exc:
        print(f"sendtime {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Terminated as stop:
        print(f"sendtime {args.command}: stopped by SIGTERM", file=sys.stderr)
        return int(stop.code)
    finally:
        if previous is not None:
            _on_sigterm(previous)


if __name__ == "__main__":
    sys.exit(main())
