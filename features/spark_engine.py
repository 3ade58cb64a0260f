"""The Spark engine of the feature base and the profile build (`bench_profiles --engine spark`).

Loading the events on Spark is features/spark_load.py; this module takes the validated events from
there to the FeatureBase.

It runs the local engine's own functions, split so that the per-event work is distributed and only
small, global facts meet on the driver. The result equals the local engine's (`load_folder` +
`prepare.build_feature_base` + `profiles.build_profiles`) exactly: the same tables, in the same order,
with the same dtypes, and bit-identical profile arrays (tests/spark/test_profiles_parity.py).

What runs where:

=====================================================  =============================================
on the executors (Python, one pandas batch at a time)  on the driver
=====================================================  =============================================
read the events table (Parquet or CSV, by Spark)       read the subscribers and identity-links tables
`load.validate_events` per batch (rejects counted      (`load.validate_subscribers`/`validate_links`;
and numbered as one call over the file would)          they hold one row per address, not per event)
`identity.normalise_addresses` per batch               the bad-share check, the rejects table
distinct (channel, address) pairs (a Spark distinct)   `identity.resolve_identities` over the distinct
blast counts per channel and 10-minute bucket, and     pairs + links (`prepare.resolve_people`), then
per-channel audiences (Spark aggregations)             the pair -> subscriber map, broadcast-joined
`signals.extract_signals` per group of subscribers     timezone sources (table, phone, linked row)
(groupBy(sub % k).applyInPandas) with the whole        `local_time.resolve_timezones`, phone states
export's facts passed in (`signals.SignalContext`)     assembling the FeatureBase (sorting the groups'
                                                       rows back into the local engine's order)
the local hour-of-week of every send and engagement    `profiles.build_profiles` (unchanged, one node;
                                                       it infers activity timezones as of its instant)
=====================================================  =============================================

Memory: the raw events (addresses, message ids, free text) never reach the driver. It holds the
distinct addresses (the identity graph), per-subscriber arrays, and the FeatureBase: every send, human
engagement and opt-out as 16-to-40-byte rows (about half of the raw events in simulated worlds: 8 MB
for a 1M-event export). `build_profiles` then runs on the driver exactly as in the local engine and
dominates: about 50 KB per subscriber at its peak (several float64 [n, 2, 168] arrays at once;
measured 450 MB for 9,500 subscribers). So the Spark engine lifts the limit on events (tens of
millions on a laptop's driver: only their signal rows are collected) but not the one on subscribers:
about 300,000 subscribers per 16 GB of driver memory. Profiles for millions of subscribers would need
`build_profiles` itself split by subscriber (its cohort and population sums are small reductions),
which this engine does not do. The driver's JVM (`spark.driver.memory`, 2 GB in `local_spark`) also
caches the validated events, the joined events and the groups' output (MEMORY_AND_DISK: it spills).

Speed: on one machine the local engine is faster. Moving every event between the JVM and the Python
workers (Arrow) and through two shuffles costs more than the pandas work it spreads: a 1M-event world
takes about 50 s for the feature base on local[2] against 4 s locally (bench_profiles). The engine is
for exports that do not fit one machine's memory as raw events, on a cluster.

Order and precision: each event keeps its position in the file (`row`: Spark's partition index and
the position inside the partition, which for one events file is the file's order), so ties in time
are broken exactly as the local engine breaks them. Timestamps cross the JVM as integer nanoseconds
(never Spark's microsecond timestamps), so no instant is rounded.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import Settings, SignalSettings
from sendtime.features import local_time, prepare, signals
from sendtime.features.prepare import FeatureBase
from sendtime.features.spark_load import NAT, SparkEvents, load_events_spark

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from sendtime.features.profiles import Profiles
    from sendtime.features.strengths import Shrinkage

log = logging.getLogger(__name__)

EVENTS_PER_TASK = 250_000  # signal groups are sized to about this many events
BUCKET_NS = 600 * 10**9  # signals.BLAST_BUCKET, ten minutes

# what the signal groups send back: one schema, a `table` column says what a row is
_SENDS, _ENGAGEMENTS, _OPTOUTS, _STATS = range(4)
_GROUP_SCHEMA = ("table byte, sub int, channel byte, at long, kind byte, sent_at long, delay_h double, "
                 "triggered boolean, row long, how short, n long, stat string")  # fmt: skip


# ------------------------------------------------------------------------------------ signal groups
def _signal_group(pdf: pd.DataFrame, signal_settings: SignalSettings, context):
    """applyInPandas: `signals.extract_signals` on every event of a group of subscribers; one row table
    (see `_GROUP_SCHEMA`). Activity timezones are inferred later, per profile instant (profiles.py)."""
    pdf = pdf.sort_values("rid", kind="stable")  # the file's order: ties in time break as in one call
    frame = pd.DataFrame({
        "sub": pdf["sub"].to_numpy(np.int32),
        "channel": pdf["channel"].to_numpy(np.int8),
        "event_type": pdf["event_type"].to_numpy(dtype=object),
        "at": pd.to_datetime(pdf["at"].to_numpy(np.int64), unit="ns", utc=True),
        "message_id": pdf["message_id"].to_numpy(dtype=object),
        "machine_open": pdf["machine_open"].to_numpy(dtype=object),
        S.BOUNCE_TYPE: pdf["bounce_type"].to_numpy(dtype=object),
        signals.ROW: pdf["rid"].to_numpy(np.int64),
    })  # fmt: skip
    sig = signals.extract_signals(frame, signal_settings, context)
    eng = sig.engagements
    parts = [
        _rows(_SENDS, sig.sends, triggered=sig.sends["triggered"].to_numpy(bool)),
        _rows(_ENGAGEMENTS, eng, kind=eng["kind"].to_numpy(np.int8), sent_at=_ns(eng["sent_at"]),
              delay_h=eng["delay_h"].to_numpy(np.float64)),
        _rows(_OPTOUTS, sig.optouts, kind=sig.optouts["kind"].to_numpy(np.int8)),
    ]  # fmt: skip

    stats = dict(sig.stats)
    parts.append(
        pd.DataFrame(
            {"table": np.int8(_STATS), "stat": list(stats), "n": np.array(list(stats.values()), np.int64)}
        )
    )
    return pd.concat([_fill(part) for part in parts], ignore_index=True)


def _ns(at: pd.Series) -> np.ndarray:
    """Instants as int64 nanoseconds, NaT as int64 min."""
    return pd.DatetimeIndex(at).tz_convert("UTC").as_unit("ns").asi8


def _rows(table: int, frame: pd.DataFrame, **extra) -> pd.DataFrame:
    return pd.DataFrame({
        "table": np.int8(table), "sub": frame["sub"].to_numpy(np.int32), "channel": frame["channel"].to_numpy(np.int8),
        "at": _ns(frame["at"]), "row": frame[signals.ROW].to_numpy(np.int64), **extra,
    })  # fmt: skip


_FILL = {"table": np.int8, "sub": np.int32, "channel": np.int8, "at": np.int64, "kind": np.int8, "sent_at": np.int64,
         "delay_h": np.float64, "triggered": bool, "row": np.int64, "how": np.int16, "n": np.int64}  # fmt: skip
_DEFAULT = {
    "at": NAT,
    "sent_at": NAT,
    "delay_h": np.nan,
    "triggered": False,
    "channel": -1,
    "kind": -1,
    "how": -1,
}


def _fill(part: pd.DataFrame) -> pd.DataFrame:
    """One kind of row with every column of `_GROUP_SCHEMA`: the ones it lacks get a default, never a null
    (Arrow and pandas would turn an integer column with nulls into floats, and int64 nanoseconds lose
    precision as floats)."""
    out = pd.DataFrame(index=part.index)
    for name, dtype in _FILL.items():
        out[name] = (
            part[name].to_numpy(dtype) if name in part else np.full(len(part), _DEFAULT.get(name, 0), dtype)
        )
    out["stat"] = part["stat"].to_numpy(object) if "stat" in part else None
    return out


def _add_local_hours(batches, zone_of_sub, zone_names):
    """mapInPandas: the local hour-of-week of each send and engagement, in its person's final timezone."""
    codes, names = zone_of_sub.value, np.asarray(zone_names.value, dtype=object)
    for pdf in batches:
        timed = pdf["table"].isin([_SENDS, _ENGAGEMENTS]).to_numpy()
        how = np.full(len(pdf), -1, dtype=np.int16)
        if timed.any():
            at = pd.Series(pd.to_datetime(pdf["at"].to_numpy(np.int64)[timed], unit="ns", utc=True))
            zones = pd.Series(names[codes[pdf["sub"].to_numpy()[timed]]])
            how[timed] = local_time.local_hour_of_week(at, zones)
        pdf["how"] = how
        yield pdf


# ------------------------------------------------------------------------------------- feature base
def _address_rejects(events: SparkEvents, unusable: pd.DataFrame) -> pd.DataFrame:
    """Rows whose address cannot be normalised, numbered by position among the validated events, as
    `prepare._distinct_addresses` numbers them."""
    position = events.position(unusable["rid"].to_numpy())
    order = np.argsort(position, kind="stable")
    position, channel = position[order], unusable["channel"].to_numpy()[order]
    valid_position = position - np.searchsorted(events.rejected_positions, position)
    return pd.DataFrame({
        "table": S.EVENTS_TABLE, "file": "events", "row": valid_position + 1, "field": S.ADDRESS,
        "reason": np.where(channel == S.CHANNELS.index(S.SMS), "unparseable phone number", "invalid e-mail address"),
    })  # fmt: skip


def _signal_context(events: DataFrame) -> signals.SignalContext:
    """The whole export's facts `extract_signals` needs (see signals.SignalContext), by Spark aggregation:
    sends and deliveries per channel and 10-minute bucket (which of the two stands for the sends depends
    on whether the export has sends at all), then the distinct recipients per channel of that one."""
    from pyspark.sql import functions as F

    bucket = (F.col("at") - F.pmod(F.col("at"), F.lit(BUCKET_NS))).alias("bucket")
    sendlike = events.filter(F.col("event_type").isin(S.SEND, S.DELIVERED))
    counts = sendlike.groupBy("event_type", "channel", bucket).count().toPandas()
    has = set(counts["event_type"])
    sends_are_deliveries = S.SEND not in has and S.DELIVERED in has
    kind = S.DELIVERED if sends_are_deliveries else S.SEND
    blasts = counts[counts["event_type"] == kind]
    sizes = pd.Series(
        blasts["count"].to_numpy(np.int64),
        index=pd.MultiIndex.from_arrays(
            [blasts["channel"].to_numpy(np.int64), blasts["bucket"].to_numpy(np.int64)]
        ),
    )
    audience = np.zeros(len(S.CHANNELS), dtype=np.int64)
    sent = sendlike.filter(F.col("event_type") == kind)
    for channel, people in sent.groupBy("channel").agg(F.countDistinct("sub")).collect():
        audience[int(channel)] = int(people)
    return signals.SignalContext(sends_are_deliveries, S.DELIVERED in has, sizes, audience)


def _zone_codes(zones: pd.Series) -> tuple[np.ndarray, list[str]]:
    codes, names = pd.factorize(zones.to_numpy(dtype=object), use_na_sentinel=True)
    return codes.astype(np.int32), [str(n) for n in names]


def build_feature_base_spark(
    data_dir: str | Path, settings: Settings, spark: SparkSession | None = None
) -> FeatureBase:
    """`prepare.build_feature_base(load_folder(data_dir))`, with the per-event work on Spark (module docstring)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from sendtime.spark_session import configure_session, local_spark

    spark = configure_session(spark) if spark is not None else local_spark()
    sc = spark.sparkContext
    events = load_events_spark(data_dir, settings, spark)
    cached = [events]
    broadcasts = []
    try:
        # identity: distinct normalised pairs in, people out (driver), then the map back by broadcast join
        ev = events.events
        pairs = (
            ev.filter("address IS NOT NULL")
            .select(F.col("channel").alias("code"), "address")
            .distinct()
            .toPandas()
        )
        pairs[S.CHANNEL] = np.asarray(S.CHANNELS, dtype=object)[pairs["code"].to_numpy(np.int64)]
        unusable = ev.filter("address IS NULL").select("rid", "channel").toPandas()
        address_rejects = _address_rejects(events, unusable)
        region = settings.data.default_region
        table = prepare._subscriber_addresses(events.folder, region)
        idmap, subs = prepare.resolve_people(pairs, table, events.folder.links, settings)
        sub_of_pair = pd.Index(subs[S.SUBSCRIBER_ID]).get_indexer(
            idmap.subscriber_ids(pairs[S.CHANNEL], pairs[S.ADDRESS]).fillna("").to_numpy()
        )
        if (sub_of_pair < 0).any():  # every normalised event address is a node of the identity graph
            raise RuntimeError("spark engine: an event address did not resolve to a subscriber")
        mapping = spark.createDataFrame(
            pd.DataFrame({"channel": pairs["code"].to_numpy(np.int8), "address": pairs[S.ADDRESS].to_numpy(object),
                          "sub": sub_of_pair.astype(np.int32)}),
            "channel byte, address string, sub int",
        )  # fmt: skip
        joined = ev.join(F.broadcast(mapping), ["channel", "address"], "inner").drop("address")
        joined = joined.persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(joined)

        # whole-export facts for the groups: blast counts, audiences, known timezones
        context = _signal_context(joined)
        n_usable = events.folder.raw_rows[S.EVENTS_TABLE] - len(events.rejected_positions) - len(unusable)
        table_tz, phone_tz, linked_tz = prepare.timezone_sources(subs, idmap, table)

        n_groups = max(spark.sparkContext.defaultParallelism, math.ceil(n_usable / EVENTS_PER_TASK))
        signal_settings = settings.signals
        grouped = joined.groupBy((F.col("sub") % n_groups).alias("_group")).applyInPandas(
            lambda pdf: _signal_group(pdf, signal_settings, context), _GROUP_SCHEMA
        ).persist(StorageLevel.MEMORY_AND_DISK)  # fmt: skip
        cached.append(grouped)

        small = grouped.filter(F.col("table") == _STATS).toPandas()
        stats_rows = small[small["table"] == _STATS]
        totals = stats_rows.groupby("stat", sort=False)["n"].sum()

        # timezones by precedence; the activity inference happens per profile instant (profiles.py)
        activity_tz = pd.Series(pd.NA, index=range(len(subs)), dtype=object)
        tz = prepare.finish_timezones(subs, (table_tz, phone_tz, linked_tz, activity_tz), settings)
        subs = prepare.finish_subscribers(subs, tz)

        # local hour-of-week per row on the executors, then the tables back in the local engine's order
        zone_codes, zone_names = _zone_codes(subs["timezone"])
        zone_b, zone_names_b = sc.broadcast(zone_codes), sc.broadcast(zone_names)
        broadcasts += [zone_b, zone_names_b]
        rows = grouped.filter(F.col("table") <= _OPTOUTS).mapInPandas(
            lambda batches: _add_local_hours(batches, zone_b, zone_names_b), _GROUP_SCHEMA
        ).toPandas()  # fmt: skip
        sends, engagements, optouts = _assemble(rows)
    finally:
        for frame in cached:
            frame.unpersist()
        for b in broadcasts:
            b.unpersist()

    stats = {str(k): int(v) for k, v in totals.items()}
    stats.update(prepare.identity_stats(int(len(unusable)), idmap, subs, tz))
    log.info("spark feature base: %d usable events, %d subscribers", n_usable, len(subs))
    return FeatureBase(
        subscribers=subs,
        addresses=prepare.address_lookup(idmap),
        sends=sends,
        engagements=engagements,
        optouts=optouts,
        has_sends=len(sends) > 0,
        stats=stats,
        rejects=address_rejects,
    )


def _instants(ns: pd.Series) -> pd.Series:
    return pd.Series(ns.to_numpy(np.int64).view("datetime64[ns]")).dt.tz_localize("UTC")


def _assemble(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The groups' rows as the local engine's tables: its columns, dtypes and order (time, kind, file row)."""
    out = []
    for table, order_by, columns in (
        (_SENDS, ("at",), ("triggered", "how")),
        (_ENGAGEMENTS, ("at", "kind"), ("kind", "sent_at", "delay_h", "how")),
        (_OPTOUTS, (), ("kind",)),
    ):
        part = rows[rows["table"] == table]
        keys = [part["row"].to_numpy(np.int64)] + [part[k].to_numpy(np.int64) for k in reversed(order_by)]
        part = part.iloc[np.lexsort(keys)].reset_index(drop=True)
        frame = pd.DataFrame({"sub": part["sub"].to_numpy(np.int32), "channel": part["channel"].to_numpy(np.int8),
                              "at": _instants(part["at"])})  # fmt: skip
        for name in columns:
            values = part[name]
            if name == "sent_at":
                values = _instants(values)
            frame[name] = values.to_numpy(dtype=_FILL.get(name)) if name != "sent_at" else values
        out.append(frame)
    return out[0], out[1], out[2]


def build_profiles_spark(
    data_dir: str | Path,
    as_of: pd.Timestamp | str | None = None,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
    shrinkage: Shrinkage | None = None,
) -> Profiles:
    """`build_profiles(build_feature_base_spark(data_dir), as_of)`: profiles from the events before `as_of`.

    `as_of` None: one second after the last event (every event counts). `spark` None: `local_spark()`.
    """
    from sendtime.configs.settings import load_settings
    from sendtime.features.profiles import build_profiles

    settings = settings or load_settings()
    base = build_feature_base_spark(data_dir, settings, spark)
    if as_of is None:
        as_of = base.span[1] + pd.Timedelta(seconds=1)
    return build_profiles(base, as_of, settings.profiles, shrinkage)
