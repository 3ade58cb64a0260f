"""`sendtime schedule --engine spark`: the batch plan with the audience scored on Spark.

The plan equals the local engine's row for row (tests/spark/test_schedule_parity.py): the executors
run the same predictor on their share of the audience, and the driver then runs the local engine's
own planner, `planner.schedule_frame`, on every row at once, with a stand-in predictor
(`SparkScoredPredictor`) whose `resolve` and `score` answer with what the executors computed.

What runs where:

- executors (`mapInPandas` over the audience's contacts, a batch at a time): `Predictor.resolve`
  (normalise, hash, find the profile or the cohort of each contact) and `Predictor.score` (the
  LightGBM champion over every row x channel x candidate hour), through `planner.resolve_audience`
  and `planner.score_audience` as the local engine calls them. Each Python worker loads the champion
  once (`_worker_predictor`, a module-level cache keyed by model version, snapshot and settings): the
  driver ships the booster's text in a broadcast and the path of the profile snapshot, which the
  executors read (a local or shared file system: on a cluster, put `SENDTIME_HOME` on storage every
  node can read). The hashing salt is resolved on the driver and shipped with the settings.
- driver (`planner.schedule_frame`): everything that couples rows, decided globally and never per
  partition: duplicates (the first row of each subscriber is planned), the holdout (keyed by
  subscriber_id and the seed), exploration (one seeded draw over all rows in audience order), SMS
  quiet hours, the SMS budget and the send-rate caps (`campaign.plan_campaign`: `allocation.sms_gain`,
  `capacity.assign_hours`), then the output table, its file, plot and summary.

Memory: the driver holds the audience table (its columns are carried through unchanged), the resolved
fields of every row (ids, profile rows, timezones, reasons: a few hundred bytes a row) and the score
grid the allocation needs, 2 x H float32 per row (a 24-hour window: 192 bytes; a 14-day window: 2.7
KB), so a million-row audience over a day needs of the order of 1 GB on the driver. The profile snapshot is
loaded by each executor's Python worker, never by the driver. Executors score `BATCH_ROWS` rows at a
time.
"""

from __future__ import annotations

import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.serving.campaign_options import Window
from sendtime.serving.plan_io import contacts, declared_timezones, read_audience, write_plan
from sendtime.serving.plan_report import format_summary, plot_plan
from sendtime.serving.planner import ScheduleResult, lap, resolve_audience, schedule_frame, score_audience

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

    from sendtime.serving.contacts import Audience
    from sendtime.serving.predictor import Predictor

ENGINE = "spark"
SPARK_STAGE = "resolve + score (spark)"
BATCH_ROWS = 10_000  # audience rows resolved and scored at once on an executor
_RESOLVED_SALT_ENV = ""  # os.environ.get("") is always None: executors use the salt resolved on the driver
_TEXT, _PICKLED = "text", "pickled"
_SCORED_SCHEMA = "rows binary, audience binary, scores binary, distinct long"


class EngineNotAvailable(NotImplementedError, ValueError):
    """An engine this build cannot run yet (a ValueError too, so the CLI reports it as a clear error)."""


@dataclass(frozen=True)
class ModelSpec:
    """What an executor needs to rebuild the driver's predictor: small and picklable, no model inside."""

    version: str
    snapshot: str  # folder of the profile snapshot (Profiles.save), readable by every executor
    settings: dict[str, Any]  # Settings.model_dump(), with the hashing salt resolved on the driver
    meta: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple:
        return (self.version, self.snapshot, pickle.dumps(self.settings))


# --- the executors' side -------------------------------------------------------------------------

_PREDICTORS: dict[tuple, Predictor] = {}  # per Python worker: the predictor of the last spec it served


def _load_predictor(spec: ModelSpec, model_text: str) -> Predictor:
    from sendtime.features.profiles import Profiles
    from sendtime.serving.predictor import Predictor
    from sendtime.training.profile_only import booster_from_string

    booster = booster_from_string(model_text)  # LightGBM or profile-only
    settings = Settings.model_validate(spec.settings)
    return Predictor(booster, Profiles.load(spec.snapshot), settings, spec.version, spec.meta)


def _worker_predictor(spec: ModelSpec, model_text) -> Predictor:
    """The predictor for `spec`, loaded once per Python worker (the broadcast is read only on a miss)."""
    key = spec.key()
    found = _PREDICTORS.get(key)
    if found is None:
        found = _load_predictor(spec, model_text.value)
        _PREDICTORS.clear()  # one model per worker: a new version replaces the old one
        _PREDICTORS[key] = found
    return found


def _decode(values: pd.Series, how: str) -> pd.Series:
    if how == _PICKLED:
        return pd.Series([None if v is None else pickle.loads(v) for v in values], dtype=object)
    return values.astype(object).where(values.notna(), None).reset_index(drop=True)


def _score_batches(batches, spec: ModelSpec, model_text, hours_ns: np.ndarray, encoding: dict[str, str]):
    """mapInPandas: resolve and score each batch of audience rows as `schedule_frame` does; one output
    record per batch (its row numbers, `Audience` and score grid, pickled NumPy arrays)."""
    predictor = _worker_predictor(spec, model_text)
    hours = pd.DatetimeIndex(hours_ns.view("datetime64[ns]")).tz_localize("UTC")
    for batch in batches:
        for lo in range(0, len(batch), BATCH_ROWS):  # bounds the score grids a worker holds at once
            pdf = batch.iloc[lo : lo + BATCH_ROWS]
            emails = _decode(pdf[S.AUDIENCE_EMAIL], encoding[S.AUDIENCE_EMAIL])
            phones = _decode(pdf[S.AUDIENCE_PHONE], encoding[S.AUDIENCE_PHONE])
            zones = None  # the audience's declared timezones, when it has the column
            if S.AUDIENCE_TIMEZONE in encoding:
                zones = _decode(pdf[S.AUDIENCE_TIMEZONE], encoding[S.AUDIENCE_TIMEZONE])
            aud = resolve_audience(predictor, emails, phones, zones)
            scores, distinct = score_audience(predictor, aud, hours)
            fields = {f: np.asarray(getattr(aud, f)) for f in type(aud).__dataclass_fields__}
            yield pd.DataFrame({
                "rows": [pickle.dumps(pdf["row"].to_numpy(np.int64), protocol=5)],
                "audience": [pickle.dumps(fields, protocol=5)],
                "scores": [pickle.dumps(np.asarray(scores), protocol=5)],
                "distinct": [int(distinct)],
            })  # fmt: skip


# --- the driver's side ---------------------------------------------------------------------------


class SparkScoredPredictor:
    """The predictor `planner.schedule_frame` sees on the driver: `resolve` and `score` answer with
    what the executors computed for this audience (same model, same snapshot), so that the planner
    itself, with every campaign-wide limit, is the local engine's, unchanged."""

    def __init__(self, settings: Settings, model_version: str, emails: pd.Series, phones: pd.Series,
                 audience: Audience, scores: np.ndarray, hours: pd.DatetimeIndex,
                 timezones: pd.Series | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.model_version = str(model_version)
        self.meta = {"engine": ENGINE, "model_version": self.model_version}
        self.audience, self.scores, self.hours = audience, scores, hours
        self._row_of_pair: dict = {}
        columns = [emails, phones] if timezones is None else [emails, phones, timezones]
        for row, pair in enumerate(zip(*(c.map(_contact_key) for c in columns), strict=True)):
            self._row_of_pair.setdefault(pair, row)

    def resolve(self, emails, phones, timezones=None) -> Audience:
        columns = [emails, phones] if timezones is None else [emails, phones, timezones]
        keys = zip(*(map(_contact_key, c) for c in columns), strict=True)
        try:
            rows = np.fromiter((self._row_of_pair[k] for k in keys), dtype=np.int64)
        except KeyError as exc:
            raise ValueError("spark schedule: a contact pair that was not scored on Spark") from exc
        if len(rows) == len(self.audience) and np.array_equal(rows, np.arange(len(rows))):
            return self.audience
        return self.audience.take(rows)

    def score(self, audience: Audience, hour_starts: pd.DatetimeIndex, channels=None, progress: bool = False):
        same = len(audience) == len(self.audience) and pd.DatetimeIndex(hour_starts).equals(self.hours)
        if not same or channels is not None or not _same_people(audience, self.audience):
            raise ValueError(
                "spark schedule: score() asked for other rows, hours or channels than were scored"
            )
        return self.scores


def _contact_key(value: object) -> object:
    """A contact as a dict key, missing values (None, NaN, NA) as one key, as pd.factorize groups them."""
    try:
        return None if pd.isna(value) else value
    except (TypeError, ValueError):  # an array-like cell: not a contact the predictor can use
        return repr(value)


def _same_people(a, b) -> bool:
    return a is b or pd.Series(a.subscriber_id, dtype=object).equals(pd.Series(b.subscriber_id, dtype=object))


def _ship(values: pd.Series) -> tuple[pd.Series, str, str]:
    """A contact column as Spark can carry it without changing a value: text as is, anything else
    (numbers from a Parquet audience, ...) pickled, so the executors see exactly what the local engine sees."""
    present = values.notna().to_numpy()
    if all(isinstance(v, str) for v in values[present]):
        return values.where(present, None), _TEXT, "string"
    return pd.Series([pickle.dumps(v) if ok else None for v, ok in zip(values, present, strict=True)],
                     dtype=object), _PICKLED, "binary"  # fmt: skip


def _audience_frame(audience) -> pd.DataFrame:
    """The audience as pandas: a table as given, a path read as the local engine reads it, a Spark
    DataFrame collected (its columns are carried through to the plan, so they end on the driver anyway)."""
    if isinstance(audience, pd.DataFrame):
        return audience.reset_index(drop=True)
    if isinstance(audience, str | Path):
        return read_audience(audience)
    if hasattr(audience, "toPandas"):
        return audience.toPandas()
    raise TypeError(
        f"audience: expected a pandas or Spark DataFrame or a path, got {type(audience).__name__}"
    )


def _as_window(window) -> Window:
    if isinstance(window, Window):
        return window
    hours = pd.DatetimeIndex(window)
    hours = hours.tz_localize("UTC") if hours.tz is None else hours.tz_convert("UTC")
    if not len(hours):
        raise ValueError("hour_starts: no candidate hour")
    return Window(hours[0], hours[-1] + pd.Timedelta(hours=1), hours, hours[0], 0)


def _worker_settings(settings: Settings) -> dict[str, Any]:
    dumped = settings.model_dump()
    dumped["data"]["salt"], dumped["data"]["salt_env"] = settings.salt(), _RESOLVED_SALT_ENV
    return dumped


def _model(settings: Settings, predictor: Predictor | None, scratch: list[Path]) -> tuple[ModelSpec, str]:
    """(spec, booster text) of the given predictor, else of the champion (without loading its profiles here)."""
    if predictor is not None:
        folder = Path(tempfile.mkdtemp(prefix="sendtime-spark-snapshot-"))
        scratch.append(folder)
        predictor.profiles.save(folder)
        spec = ModelSpec(
            predictor.model_version, str(folder), _worker_settings(predictor.settings), dict(predictor.meta)
        )
        return spec, predictor.booster.model_to_string()
    from sendtime.training import hour_guard, registry

    registry.configure_mlflow(settings.training.experiment)
    try:
        champ = registry.load_version(settings.training.registered_model, None)
    except LookupError as exc:
        raise LookupError(
            f"no champion model to plan with: train one with `sendtime train --data DIR` ({exc})"
        ) from exc
    meta = {
        "model_version": champ.version,
        "run_id": champ.run_id,
        "kind": champ.tags.get("kind"),
        hour_guard.TAG: hour_guard.parse(champ.tags.get(hour_guard.TAG)),
    }
    spec = ModelSpec(str(champ.version), str(champ.snapshot_dir), _worker_settings(settings), meta)
    return spec, champ.booster.model_to_string()


def score_spark(
    spark: SparkSession,
    frame: pd.DataFrame,
    spec: ModelSpec,
    model_text,
    hours: pd.DatetimeIndex,
    partitions: int | None = None,
) -> tuple[Audience, np.ndarray, int]:
    """Resolve and score every audience row on the executors: (Audience, scores [n, 2, H], distinct
    scoring inputs summed over the batches), in audience order."""
    from sendtime.serving.contacts import Audience

    n = len(frame)
    columns, encoding, types = {"row": np.arange(n, dtype=np.int64)}, {}, ["row long"]
    names = [S.AUDIENCE_EMAIL, S.AUDIENCE_PHONE]
    names += [S.AUDIENCE_TIMEZONE] if declared_timezones(frame) is not None else []
    for name in names:
        columns[name], encoding[name], kind = _ship(contacts(frame, name))
        types.append(f"{name} {kind}")
    hours_ns = hours.as_unit("ns").asi8.copy()
    shipped = spark.createDataFrame(pd.DataFrame(columns), ", ".join(types))
    if partitions:
        shipped = shipped.repartition(int(partitions))
    out = shipped.mapInPandas(
        lambda batches: _score_batches(batches, spec, model_text, hours_ns, encoding), _SCORED_SCHEMA
    ).toPandas()  # fmt: skip
    rows = np.concatenate([pickle.loads(b) for b in out["rows"]]) if len(out) else np.zeros(0, np.int64)
    order = np.argsort(rows, kind="stable")
    if not np.array_equal(rows[order], np.arange(n)):
        raise RuntimeError(f"spark schedule: {len(rows)} scored rows came back for {n} audience rows")
    parts = [pickle.loads(b) for b in out["audience"]]
    fields = Audience.__dataclass_fields__
    audience = Audience(*(np.concatenate([p[f] for p in parts])[order] for f in fields)) if parts else None
    scores = np.concatenate([pickle.loads(b) for b in out["scores"]])[order] if parts else None
    return audience, scores, int(out["distinct"].sum())


def plan_spark(
    audience: pd.DataFrame | str | Path | SparkDataFrame,
    hour_starts: Window | pd.DatetimeIndex,
    settings: Settings,
    *,
    spark: SparkSession | None = None,
    predictor: Predictor | None = None,
    partitions: int | None = None,
    timings: dict[str, float] | None = None,
    **options: Any,
) -> ScheduleResult:
    """`planner.schedule_frame` with resolution and scoring on Spark: the same plan, row for row.

    `hour_starts`: a `campaign_options.Window` (from `campaign_options.parse_window`), or the candidate UTC hour starts
    (then the campaign time is the first of them). `predictor` None: the registry's champion (its
    snapshot is read by the executors, not loaded here); a given predictor's snapshot is written to a
    temporary folder for them. `partitions`: Spark partitions of the audience (default: the session's
    parallelism). `options`: `schedule_frame`'s own (max_sms, max_per_hour, holdout, explore, seed, ...).
    """
    from sendtime.spark_session import configure_session, local_spark

    window = _as_window(hour_starts)
    timings = {} if timings is None else timings
    clock = time.perf_counter()
    frame = _audience_frame(audience)
    clock = lap(timings, "read", clock)
    spark = configure_session(spark) if spark is not None else local_spark()
    clock = lap(timings, "start spark", clock)
    scratch: list[Path] = []
    model_text = None
    try:
        spec, text = _model(settings, predictor, scratch)
        model_text = spark.sparkContext.broadcast(text)
        clock = lap(timings, "load model", clock)
        if len(frame):
            aud, scores, distinct = score_spark(spark, frame, spec, model_text, window.hours, partitions)
            stand_in = SparkScoredPredictor(
                Settings.model_validate(spec.settings), spec.version, contacts(frame, S.AUDIENCE_EMAIL),
                contacts(frame, S.AUDIENCE_PHONE), aud, scores, window.hours,
                declared_timezones(frame),
            )  # fmt: skip
        else:  # nothing to spread: the predictor itself answers an empty audience
            stand_in, distinct = predictor or _load_predictor(spec, text), 0
        lap(timings, SPARK_STAGE, clock)
    finally:
        if model_text is not None:
            model_text.unpersist()
        for folder in scratch:
            shutil.rmtree(folder, ignore_errors=True)
    result = schedule_frame(frame, stand_in, window, dedupe_scoring=False, timings=timings, **options)
    result.scored_rows = distinct  # the distinct inputs the executors scored (per batch)
    for stage in ("resolve", "score"):  # done above on Spark: the stand-in only looked the answers up
        timings[SPARK_STAGE] += timings.pop(stage, 0.0)
    return result


def run_schedule_spark(
    audience: str | Path,
    window: Window,
    out: str | Path,
    settings: Settings,
    *,
    engine: str = ENGINE,
    echo: Callable[[str], None] = print,
    predictor: Predictor | None = None,
    spark: SparkSession | None = None,
    **options: Any,
) -> int:
    """The rest of `schedule.run_schedule` (its options already checked) with the plan made on Spark:
    plan, write the file and its plot, print the summary."""
    if engine != ENGINE:
        raise EngineNotAvailable(f"--engine {engine}: unknown engine; use --engine local or --engine spark")
    result = plan_spark(audience, window, settings, spark=spark, predictor=predictor, **options)
    clock = time.perf_counter()
    out = Path(out)
    write_plan(result.frame, out)
    clock = lap(result.timings, "write", clock)
    png = plot_plan(result.plan, window.hours, out.with_suffix(".png"))
    lap(result.timings, "plot", clock)
    echo(format_summary(result, out, png))
    sys.stdout.flush()
    return 0
