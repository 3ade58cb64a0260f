"""Loading an export's events on Spark: each task validates a batch of rows as `load.validate_events`
would, and the driver keeps only the rejects, the row counts and the small tables (features/spark_engine.py
says what runs where). Each row keeps its position in the file (`rid`), so rejects are numbered as one
call over the whole file would number them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features import identity, load, tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

NAT = np.iinfo(np.int64).min  # pandas' NaT as int64 nanoseconds: a missing instant without a null
PARTITION_BITS = 33  # monotonically_increasing_id(): partition index << 33 | position in the partition
BYTES_PER_TASK = {".parquet": 8 << 20, ".csv": 32 << 20}  # validation tasks: roughly 300k events each
# the order of load.validate_events' checks: its rejects table lists them in this order
_REASON_ORDER = (
    "unparseable timestamp",
    "unknown channel",
    "unknown event type",
    "empty address",
    "open on sms (SMS has no opens)",
)

# what the validation tasks send back: a `kind` column says whether a row was kept (0) or rejected (1)
_VALID_SCHEMA = ("kind byte, rid long, at long, channel byte, event_type string, address string, message_id string, "
                 "machine_open boolean, bounce_type string, field string, reason string")  # fmt: skip


@dataclass
class SparkEvents:
    """The validated events on Spark plus what the driver keeps of the load: rejects and raw counts."""

    events: DataFrame  # rid, at (ns), channel (code), event_type, address (normalised, null: unusable), ...
    folder: load.DataFolder  # subscribers, links, rejects (all tables) and raw_rows; `events` left empty
    row_offsets: dict[int, int]  # scan partition -> raw rows before it
    rejected_positions: np.ndarray  # sorted 0-based raw positions of the rejected event rows
    cached: DataFrame | None = None  # the persisted validation output `events` reads: unpersist() frees it

    def unpersist(self) -> None:
        if self.cached is not None:
            self.cached.unpersist()

    def position(self, rid: np.ndarray) -> np.ndarray:
        """0-based position of each event id in the raw events file."""
        rid = np.asarray(rid, dtype=np.int64)
        offsets = pd.Series(self.row_offsets).reindex(rid >> PARTITION_BITS).to_numpy(np.int64)
        return offsets + (rid & ((1 << PARTITION_BITS) - 1))


# --------------------------------------------------------------------------------------------- load
def _event_columns(columns: list[str], path: Path) -> dict[str, str]:
    """Contract name -> the file's own column name (trimmed, any case); the load's error when one is missing."""
    by_name: dict[str, str] = {}
    for c in columns:
        by_name.setdefault(str(c).strip().lower(), c)
    load.require_columns(pd.DataFrame(columns=columns), S.EVENTS_REQUIRED, path)
    return {name: by_name[name] for name in (*S.EVENTS_REQUIRED, *S.EVENTS_OPTIONAL) if name in by_name}


def _nanosecond_columns(path: Path, columns: dict[str, str]) -> list[str]:
    """Parquet timestamp columns Spark reads as integer nanoseconds (spark.sql.legacy.parquet.nanosAsLong)."""
    if path.suffix != ".parquet":
        return []
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    out = []
    for name, original in columns.items():
        if original in schema.names:
            kind = schema.field(original).type
            if pa.types.is_timestamp(kind) and kind.unit == "ns":
                out.append(name)
    return out


def _validate_batches(batches, path: Path, ns_columns: list[str], region: str):
    """mapInPandas: `load.validate_events` and `identity.normalise_addresses` on each batch."""
    for raw in batches:
        if raw.empty:
            continue
        rid = raw.pop("_rid").to_numpy(np.int64)
        for name in ns_columns:  # int64 ns (NaT: int64 min) -> the type pandas' own Parquet read gives
            raw[name] = pd.Series(raw[name].to_numpy(np.int64).view("datetime64[ns]")).dt.tz_localize("UTC")
        rejects = load.Rejects()
        valid = load.validate_events(raw, path, rejects)
        kept = np.ones(len(raw), dtype=bool)
        parts = []
        bad = rejects.frame()
        if len(bad):
            rows = bad["row"].to_numpy(np.int64) - 1
            kept[rows] = False
            parts.append(pd.DataFrame({
                "kind": np.int8(1), "rid": rid[rows], "at": NAT, "channel": np.int8(-1), "field": bad["field"].to_numpy(),
                "reason": bad["reason"].to_numpy(),
            }))  # fmt: skip
        channel = pd.Series(np.asarray(valid[S.CHANNEL], dtype=object))
        message = pd.Series(np.asarray(valid[S.MESSAGE_ID], dtype=object))
        machine = pd.Series(np.asarray(valid[S.MACHINE_OPEN], dtype=object))
        bounce_type = pd.Series(np.asarray(valid[S.BOUNCE_TYPE], dtype=object))
        normalised = identity.normalise_addresses(valid[S.ADDRESS], channel, region)
        at = pd.DatetimeIndex(valid[S.TIMESTAMP]).tz_convert("UTC").as_unit("ns").asi8
        parts.append(pd.DataFrame({
            "kind": np.int8(0), "rid": rid[kept], "at": at,
            "channel": channel.map({c: i for i, c in enumerate(S.CHANNELS)}).to_numpy(np.int8),
            "event_type": np.asarray(valid[S.EVENT_TYPE], dtype=object),
            "address": normalised.astype(object).where(normalised.notna(), None).to_numpy(),
            "message_id": message.where(message.notna(), None).to_numpy(),
            "machine_open": machine.where(machine.notna(), None).to_numpy(),
            "bounce_type": bounce_type.where(bounce_type.notna(), None).to_numpy(),
        }))  # fmt: skip
        out = pd.concat(parts, ignore_index=True).reindex(
            columns=[c.split()[0] for c in _VALID_SCHEMA.split(", ")]
        )
        for name in ("event_type", "address", "message_id", "machine_open", "bounce_type", "field", "reason"):
            out[name] = out[name].astype(object).where(out[name].notna(), None)
        yield out


def load_events_spark(folder: str | Path, settings: Settings, spark: SparkSession) -> SparkEvents:
    """Read and validate a data folder: the events on Spark, the small tables on the driver.

    Same checks, rejects (numbered by row of the file) and errors as `load.load_folder`.
    """
    from pyspark.sql import functions as F

    folder = Path(folder)
    if not folder.is_dir():
        raise tables.DataError(
            f"{folder}: not a folder (expected a data folder holding events.parquet or events.csv)"
        )
    path = tables.find_table(folder, S.EVENTS_TABLE)
    if path is None:
        raise tables.DataError(f"{folder}: no events table (expected events.parquet or events.csv)")
    try:
        if path.suffix == ".parquet":
            raw = spark.read.parquet(str(path))
        else:  # every cell as text, as tables.read_table reads CSV; RFC 4180 quotes
            raw = spark.read.options(header=True, inferSchema=False, escape='"', multiLine=True).csv(
                str(path)
            )
    except Exception as exc:  # name the file either way, as tables.read_table does
        raise tables.DataError(f"{path}: cannot be read: {exc}") from exc
    columns = _event_columns(raw.columns, path)
    raw = raw.select(*[F.col(f"`{original}`").alias(name) for name, original in columns.items()])
    ns_columns = _nanosecond_columns(path, columns)
    for name in ns_columns:
        raw = raw.withColumn(name, F.coalesce(F.col(name), F.lit(NAT)))
    raw = raw.withColumn("_rid", F.monotonically_increasing_id())

    per_task = BYTES_PER_TASK[path.suffix]
    tasks = max(spark.sparkContext.defaultParallelism, math.ceil(path.stat().st_size / per_task))
    region = settings.data.default_region
    validated = raw.repartition(tasks, "_rid").mapInPandas(  # hash partitioning: no sort before it
        lambda batches: _validate_batches(batches, path, ns_columns, region), _VALID_SCHEMA
    ).persist()  # fmt: skip
    try:
        return _checked_events(validated, folder, path, settings)
    except BaseException:
        validated.unpersist()
        raise


def _checked_events(validated: DataFrame, folder: Path, path: Path, settings: Settings) -> SparkEvents:
    """The driver's share of the load: rejects numbered by file row, the small tables, the bad-share check."""
    from pyspark.sql import functions as F

    # every raw row comes back (kept or rejected): rows per scan partition give each row's file position
    counts = (
        validated.groupBy(F.shiftright("rid", PARTITION_BITS).alias("p")).count().toPandas().sort_values("p")
    )
    n_raw = int(counts["count"].sum())
    if n_raw == 0:
        raise tables.DataError(f"{path}: the events file has no rows: nothing to learn from")
    offsets = dict(
        zip(counts["p"].astype(int), (counts["count"].cumsum() - counts["count"]).astype(int), strict=True)
    )

    rejects = load.Rejects()
    data = load.DataFolder(folder, pd.DataFrame(), raw_rows={S.EVENTS_TABLE: n_raw})
    bad = validated.filter("kind = 1").select("rid", "field", "reason").toPandas()
    kept = validated.filter("kind = 0").drop("kind", "field", "reason")
    events = SparkEvents(kept, data, offsets, np.zeros(0), cached=validated)
    position = events.position(bad["rid"].to_numpy())
    order = np.lexsort((position, pd.Categorical(bad["reason"], categories=_REASON_ORDER).codes))
    event_rejects = pd.DataFrame({
        "table": S.EVENTS_TABLE, "file": path.name, "row": position[order] + 1, "field": bad["field"].to_numpy()[order],
        "reason": bad["reason"].to_numpy()[order],
    })  # fmt: skip
    events.rejected_positions = np.sort(position)
    if (sub_path := tables.find_table(folder, S.SUBSCRIBERS_TABLE)) is not None:
        table = tables.read_table(sub_path)
        data.raw_rows[S.SUBSCRIBERS_TABLE] = len(table)
        data.subscribers = load.validate_subscribers(table, sub_path, rejects)
    if (links_path := tables.find_table(folder, S.LINKS_TABLE)) is not None:
        table = tables.read_table(links_path)
        data.raw_rows[S.LINKS_TABLE] = len(table)
        data.links = load.validate_links(table, links_path, rejects)
    parts = [p for p in (event_rejects, rejects.frame()) if len(p)]
    data.rejects = pd.concat(parts, ignore_index=True) if parts else rejects.frame()

    share = len(bad) / n_raw
    if share > settings.data.bad_share_limit:
        counts_text = "; ".join(f"{k}: {v:,}" for k, v in data.reject_counts().items())
        raise tables.DataError(
            f"{path}: {len(bad):,} of {n_raw:,} rows ({share:.1%}) cannot be used, "
            f"more than data.bad_share_limit={settings.data.bad_share_limit:.0%} ({counts_text})"
        )
    if len(bad) == n_raw:
        raise tables.DataError(f"{path}: no usable event rows remain after validation")
    return events
