"""Reading a data folder's tables and parsing their values, as the contract (../shared/CONTRACT.md) spells them.

Separate from validation (features/load.py) because the Spark engine reads and parses the same way on its
executors. Work is done per distinct value (channel, event type, timestamp text), so a 10M-row export
stays fast; nothing here drops a row: values that cannot be read become missing, for validation to count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S

_TRUE = {"true", "t", "1", "yes", "y"}

_FALSE = {"false", "f", "0", "no", "n", ""}

_OFFSET = r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"  # a time, then Z or +hh[:mm]


# every column a data folder's tables may use ("bounce_type": optional on events)
_CONTRACT_COLUMNS = frozenset(
    (*S.EVENTS_REQUIRED, *S.EVENTS_OPTIONAL, *S.SUBSCRIBERS_REQUIRED, *S.SUBSCRIBERS_OPTIONAL)
    + (*S.LINKS_REQUIRED, *S.LINKS_OPTIONAL, "bounce_type")
)

UNDECODABLE = "__sendtime_undecodable__"  # a column read_table adds: rows with bytes that are not UTF-8

UNDECODABLE_REASON = "not UTF-8 text"

_SURROGATES = "[\udc80-\udcff]"  # how Python's surrogateescape keeps the bytes it could not decode


class DataError(ValueError):
    """The input cannot be used as a whole; the message names the file and the problem."""


def find_table(folder: Path, name: str) -> Path | None:
    """`name.parquet` or `name.csv`; Parquet wins when both exist (it keeps types)."""
    for ext in (".parquet", ".csv"):
        candidate = folder / f"{name}{ext}"
        if candidate.exists():
            return candidate
    return None


def read_table(path: Path) -> pd.DataFrame:
    """Read one table as strings-or-native types; CSV is read as text so parsing is ours to report."""
    try:
        if path.suffix == ".parquet":
            return _read_parquet(path)
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        except UnicodeDecodeError:
            return _read_csv_with_undecodable_rows(path)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty (no header row)") from exc
    except DataError:
        raise
    except Exception as exc:  # pyarrow and the CSV parser raise many types; name the file either way
        raise DataError(f"{path}: cannot be read: {exc}") from exc


def _read_csv_with_undecodable_rows(path: Path) -> pd.DataFrame:
    """A CSV with some bytes that are not UTF-8 (a stray Latin-1 name, a cut multi-byte character):
    every cell that holds one is blanked and its row marked in the `UNDECODABLE` column, so that the
    row is rejected with its own reason and row number while the rest of the file loads. Read again
    only when the plain read failed, so clean files pay nothing."""
    frame = pd.read_csv(
        path, dtype=str, keep_default_na=False, na_values=[""], encoding_errors="surrogateescape"
    )
    if frame.columns.astype(str).str.contains(_SURROGATES, regex=True).any():
        raise DataError(f"{path}: the header row is not UTF-8 text; save the file as UTF-8")
    marked = np.zeros(len(frame), dtype=bool)
    for column in frame.columns:
        bad = frame[column].str.contains(_SURROGATES, regex=True, na=False).to_numpy(dtype=bool)
        if bad.any():
            frame.loc[bad, column] = np.nan
            marked |= bad
    frame[UNDECODABLE] = marked
    return frame


def undecodable_rows(raw: pd.DataFrame) -> np.ndarray:
    """Rows `read_table` marked as holding bytes that are not UTF-8."""
    if UNDECODABLE in raw.columns:
        return raw[UNDECODABLE].to_numpy(dtype=bool)
    return np.zeros(len(raw), dtype=bool)


def _read_parquet(path: Path) -> pd.DataFrame:
    """Parquet with its text columns as categoricals: an export repeats each address, channel, event type
    and message id many times, and one Python string per row is what makes 10M-row exports slow."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    nested = [f for f in schema if pa.types.is_nested(f.type)]
    used = [f for f in nested if f.name.strip().lower() in _CONTRACT_COLUMNS]
    if used:
        raise DataError(
            f"{path}: column {used[0].name!r} holds nested values ({used[0].type}); the contract's columns "
            "take one plain value per row (text, number, boolean or timestamp): flatten it before export"
        )
    columns = [f.name for f in schema if not pa.types.is_nested(f.type)]  # other nested columns: ignored
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    return pq.read_table(path, columns=columns, read_dictionary=text).to_pandas()


def require_columns(df: pd.DataFrame, required: tuple[str, ...], path: Path) -> None:
    columns = {str(c).strip().lower(): c for c in df.columns}
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in required if c not in columns]
    if missing:
        headerless = len(missing) == len(required) and len(df.columns) > 0  # a data row read as the header
        hint = "; the file may have no header row" if headerless else ""
        raise DataError(
            f"{path}: missing required column {', '.join(repr(m) for m in missing)} "
            f"(found: {', '.join(map(str, df.columns)) or 'none'}{hint})"
        )


def parse_timestamps(values: pd.Series) -> pd.Series:
    """ISO-8601 with offset or Z, or naive meaning UTC, to UTC; unparseable -> NaT.

    Also takes the common export spelling '2022-03-18 15:28:01.000000 UTC'. Strings with and without
    an offset are parsed apart: pandas' ISO-8601 parser (2.x) carries the offset of one string over to
    the naive strings after it in the same call, shifting them.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = _in_nanosecond_range(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC")
    text = values.astype("string").str.strip()
    text = text.str.replace(r"\s*UTC$", "+00:00", regex=True)
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    present = text.notna().to_numpy()
    aware = text.astype("string[pyarrow]").str.contains(_OFFSET, regex=True)  # pyarrow: a fast regex
    aware = aware.fillna(False).to_numpy(dtype=bool)
    for group in (present & aware, present & ~aware):
        if group.any():
            parsed[group] = pd.to_datetime(text[group], utc=True, errors="coerce", format="ISO8601")
    retry = (parsed.isna() & text.notna()).to_numpy()
    if retry.any():  # other spellings, per distinct value (few in practice)
        uniques = text[retry].unique()
        fixed = pd.to_datetime(pd.Series(uniques, dtype=object), utc=True, errors="coerce", format="mixed")
        lookup = pd.Series(fixed.array, index=pd.Index(uniques, dtype=object))
        parsed[retry] = lookup.reindex(text[retry].astype(object)).array
    return parsed


def _in_nanosecond_range(values: pd.Series) -> pd.Series:
    """Typed datetimes in nanoseconds, those beyond its range (years before 1678 or after 2261, which a
    Parquet file in micro- or milliseconds can hold) as missing: rejected rows, not a failed load."""
    unit = np.datetime_data(values.dtype.base if hasattr(values.dtype, "base") else values.dtype)[0]
    if unit == "ns":
        return values
    lo, hi = pd.Timestamp.min.value, pd.Timestamp.max.value  # nanoseconds since the epoch
    per = np.timedelta64(1, unit).astype("timedelta64[ns]").astype(np.int64)
    raw = values.array.asi8 if hasattr(values.array, "asi8") else values.to_numpy().astype(np.int64)
    outside = (raw < lo // per) | (raw > hi // per)
    return values.mask(outside).dt.as_unit("ns")


def normalise_vocabulary(values: pd.Series) -> pd.Series:
    """Lower-case and strip, per distinct value (channels and event types have a handful)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    cleaned = np.append(np.asarray(pd.Index(uniques).astype(str).str.strip().str.lower(), dtype=object), None)
    out = cleaned[np.where(codes >= 0, codes, len(uniques))]  # a column of nothing but blanks included
    return pd.Series(out, index=values.index, dtype=object)


def parse_booleans(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean")
    if pd.api.types.is_numeric_dtype(values.dtype):  # 0/1, as floats when a Parquet int column has nulls
        return (values != 0).astype("boolean").mask(values.isna())
    text = values.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[text.isin(_TRUE)] = True
    out[text.isin(_FALSE) & text.notna()] = False
    return out


def parse_bounce_types(values: pd.Series | None, n: int) -> pd.Categorical:
    """`hard` or `soft` in any case and spacing; anything else (empty, a platform's own word) is unknown
    (missing), never a rejected row: an unknown bounce is judged by the soft rule, which only suppresses
    an address after a run of failures (see `features/suppression.py`)."""
    if values is None:
        return pd.Categorical.from_codes(np.full(n, -1, np.int8), categories=list(S.BOUNCE_TYPES))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)  # judged per distinct value, not per row
    cleaned = pd.Index(uniques).astype(str).str.strip().str.lower()
    lookup = np.append(pd.Index(S.BOUNCE_TYPES).get_indexer(cleaned), -1).astype(np.int8)
    return pd.Categorical.from_codes(lookup[np.where(codes >= 0, codes, len(uniques))], list(S.BOUNCE_TYPES))


def blank(values: pd.Series) -> np.ndarray:
    """Missing or only white space; judged once per distinct value (addresses repeat a lot)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    blank = np.append(np.asarray(pd.Index(uniques).astype(str).str.strip() == "", dtype=bool), True)
    return blank[np.where(codes < 0, len(uniques), codes)]


def as_text(values: pd.Series) -> pd.Series:
    """Text values; a categorical stays categorical (string categories), so nothing is copied per row."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.rename_categories(values.cat.categories.astype(str))
    return values.astype(str)


def clean_ids(values: pd.Series) -> pd.Categorical:
    """Message ids as a categorical: stripped, blank -> missing, and cheap to join on downstream."""
    if isinstance(values.dtype, pd.CategoricalDtype) and values.cat.categories.dtype == object:
        categories = values.cat.categories
        stripped = categories.astype(str).str.strip()
        if stripped.equals(categories) and not (stripped == "").any():
            # already clean (the usual Parquet export): re-encoding millions of ids would only hash them
            # twice more, once to factorize and once to check the new categories are unique
            return values.array
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    cleaned = pd.Index(uniques).astype(str).str.strip()
    cleaned = cleaned.where(cleaned != "", None)
    cat_codes, categories = pd.factorize(pd.Series(np.asarray(cleaned, dtype=object)), use_na_sentinel=True)
    mapped = np.append(cat_codes, -1)[np.where(codes < 0, len(cat_codes), codes)]
    return pd.Categorical.from_codes(mapped, categories=pd.Index(categories, dtype=object))
