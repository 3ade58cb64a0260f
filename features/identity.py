"""Identity: raw addresses in, salted keys out, so that nothing downstream holds personal data.

Addresses are normalised (e-mail: trimmed and lower-cased; phone: E.164) and every (channel, address)
pair becomes a node; identity links (two addresses typed into one form, or the e-mail and phone of
one audience row) are edges, and a person is a connected component, so links merge transitively.

The shared-address rule. A family phone typed into the forms of two different e-mails would merge two
people into one. So one person holds at most `max_addresses_per_channel` addresses per channel:
links are accepted in `observed_at` order (links without `observed_at` last, then input order), and a
link that would give the merged person more addresses on a channel than the cap is refused and
counted. The shared phone thus goes with the e-mail that claimed it first; the second e-mail stays a
person of its own. Only components that break the cap are replayed link by link (rare), so the common
case stays vectorised.

`subscriber_id` is the salted hash of the component's smallest "channel:address" string: stable
across runs for the same inputs and salt, and never containing a raw address.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import phonenumbers
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sendtime.features import phones
from sendtime.schema import (
    ADDRESS,
    ADDRESS_A,
    ADDRESS_B,
    ADDRESS_HASH,
    CHANNEL,
    EMAIL,
    LINKS_TABLE,
    OBSERVED_AT,
    SMS,
    SUBSCRIBER_ID,
)

# one '@', no blanks, a non-empty local part, a domain of non-empty dot-separated labels ending in a
# top-level label of 2+ characters: pragmatic (what a sending platform would bounce at once), checked
# by one vectorised regex per distinct address rather than a full RFC 5322 parser
_EMAIL_PATTERN = r"[^@\s]+@(?:[^@\s.]+\.)+[^@\s.]{2,}"
_KEY_SEP = ":"


def _per_unique(values: pd.Series, transform: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Apply `transform` to the distinct non-missing values only: exports repeat each address many times."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    done = pd.array(transform(pd.Series(uniques, dtype=object)).to_numpy(dtype=object), dtype="string")
    return pd.Series(done.take(codes, allow_fill=True), index=values.index, dtype="string")


def _emails(uniques: pd.Series) -> pd.Series:
    text = uniques.astype("string").str.strip().str.lower()
    return text.where(text.str.fullmatch(_EMAIL_PATTERN).fillna(False).astype(bool))


def normalise_emails(values: pd.Series) -> pd.Series:
    """Trimmed, lower-cased e-mail addresses; <NA> for anything that cannot be one."""
    return _per_unique(values, _emails)


_EMAIL_RE = re.compile(_EMAIL_PATTERN)
_NON_DIGIT = re.compile(r"\D")


def normalise_email(text: str) -> str | None:
    """`normalise_emails` of one text, without a Series: the service meets most people one at a time."""
    text = text.strip().lower()
    return text if _EMAIL_RE.fullmatch(text) else None


def _phone_text(value: object) -> str:
    # a phone column read as numbers comes back as 12125550123.0
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _canonical_phone_text(uniques: pd.Series, region: str) -> pd.Series:
    """Cheap, vectorised pre-normalisation so that the formats of one number collapse before parsing.

    '(212) 555-0123', '212-555-0123' and '+1 212 555 0123' all become '+12125550123' (the NANP rule
    is applied only when the default region dials +1); everything else keeps its digits and leading
    '+', and `phonenumbers` still decides validity. Parsing is the expensive step (~0.1 ms a number).
    """
    text = uniques.map(_phone_text).astype("string")
    plus = text.str.startswith("+").fillna(False)
    digits = text.str.replace(r"\D", "", regex=True)
    out = digits.where(~plus, "+" + digits)
    if phonenumbers.country_code_for_region(region) == 1:
        ten = ~plus & (digits.str.len() == 10)
        eleven = ~plus & (digits.str.len() == 11) & digits.str.startswith("1")
        out = out.where(~ten, "+1" + digits).where(~eleven, "+" + digits)
    return out.where(digits.str.len() > 0, text)


def canonical_phone(value: object, region: str) -> str:
    """`_canonical_phone_text` of one value, the same steps on a plain string."""
    text = _phone_text(value)
    digits = _NON_DIGIT.sub("", text)
    if not digits:
        return text
    if text.startswith("+"):
        return "+" + digits
    if phonenumbers.country_code_for_region(region) == 1:
        if len(digits) == 10:
            return "+1" + digits
        if len(digits) == 11 and digits.startswith("1"):
            return "+" + digits
    return digits


def canonical_phones(values: pd.Series, default_region: str = "US") -> pd.Series:
    """The cheap canonical text of each phone (no validity check): see `_canonical_phone_text`."""
    return _per_unique(values, lambda u: _canonical_phone_text(u, default_region))


# (canonical text, region) -> (E.164, zone) of the numbers parsed so far
_PARSED: dict[tuple[str, str], tuple[str | None, str | None]] = {}
PARSED_MAX = 1_000_000  # numbers kept between calls (events, subscribers, links meet the same ones)


def normalise_phones(
    values: pd.Series, default_region: str = "US", zones: dict[str, str | None] | None = None
) -> pd.Series:
    """E.164 numbers; national formats read in `default_region`; <NA> when unparseable or invalid.

    Each distinct number is parsed once (`phones.parse_phones`, on every core for many) and kept for
    the next call: the events, the subscribers table and the links repeat the same numbers. `zones`,
    when given, collects each valid number's timezone from that same parse, so that the timezones of
    the people's phones (`phones.zones_for_e164`) need no second parse.
    """

    def parse(texts: pd.Series) -> pd.Series:
        keys = [(str(t), default_region) for t in texts]
        answers = {k: _PARSED[k] for k in keys if k in _PARSED}
        todo = [k for k in keys if k not in answers]
        if todo:
            e164, found = phones.parse_phones([k[0] for k in todo], default_region)
            fresh = dict(zip(todo, zip(e164, found, strict=True), strict=True))
            answers.update(fresh)
            if len(_PARSED) + len(fresh) > PARSED_MAX:
                _PARSED.clear()
            _PARSED.update(fresh)
        if zones is not None:
            zones.update(answers[k] for k in keys if answers[k][0] is not None)
        return pd.Series([answers[k][0] for k in keys], index=texts.index, dtype=object)

    return _per_unique(
        values, lambda uniques: _per_unique(_canonical_phone_text(uniques, default_region), parse)
    )


def normalise_addresses(
    addresses: pd.Series,
    channels: pd.Series,
    default_region: str,
    zones: dict[str, str | None] | None = None,
) -> pd.Series:
    """Each address normalised by the rules of its own channel; <NA> when unusable or the channel unknown.
    `zones`: see `normalise_phones`."""
    channel = channels.astype("string").str.strip().str.lower().to_numpy(dtype=object)
    rules = {EMAIL: normalise_emails, SMS: lambda v: normalise_phones(v, default_region, zones)}
    out = pd.Series(pd.NA, index=addresses.index, dtype="string")
    for name, normalise in rules.items():
        rows = np.flatnonzero(channel == name)
        if len(rows):
            out.iloc[rows] = normalise(addresses.iloc[rows]).to_numpy()
    return out


def guess_channel(addresses: pd.Series) -> pd.Series:
    """Identity links carry no channel: an '@' means e-mail, anything else is taken for a phone."""
    has_at = addresses.astype("string").str.contains("@", regex=False).fillna(False).astype(bool)
    return pd.Series(np.where(has_at, EMAIL, SMS), index=addresses.index, dtype="string")


def _sha(uniques: pd.Series, salt: str) -> pd.Series:
    prefix, sha = f"{salt}\x1f", hashlib.sha256  # a plain loop: a third faster than Series.map on 1M values
    return pd.Series(
        [sha(f"{prefix}{v}".encode()).hexdigest()[:20] for v in uniques], index=uniques.index, dtype=object
    )


def hash_value(value: str, salt: str) -> str:
    """`hash_values` of one text (`_sha`'s formula)."""
    return hashlib.sha256(f"{salt}\x1f{value}".encode()).hexdigest()[:20]


def hash_values(values: pd.Series, salt: str) -> pd.Series:
    """Salted, truncated sha256: a stable key that cannot be reversed without the salt; <NA> stays <NA>."""
    return _per_unique(values, lambda u: _sha(u, salt))


@dataclass
class IdentityMap:
    """Every known (channel, address) with its hash and the person it belongs to."""

    addresses: pd.DataFrame  # channel, address, address_hash, subscriber_id
    refused_links: int
    unusable_links: int
    _by_channel: dict[str, tuple[pd.Index, np.ndarray]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        table = self.addresses
        self._by_channel = {
            name: (pd.Index(part[ADDRESS].to_numpy(dtype=object)), part[SUBSCRIBER_ID].to_numpy(dtype=object))
            for name, part in table.groupby(table[CHANNEL].astype(str), sort=False)
        }

    def subscriber_ids(self, channel: pd.Series, address: pd.Series) -> pd.Series:
        """Subscriber of each normalised (channel, address), matched by position; <NA> when unknown."""
        codes, names = pd.factorize(channel.to_numpy(dtype=object))
        wanted = address.to_numpy(dtype=object)
        out = np.full(len(wanted), pd.NA, dtype=object)
        for k, name in enumerate(names):
            known = self._by_channel.get(str(name).strip().lower())
            if known is None:
                continue
            rows = np.flatnonzero(codes == k)
            where = known[0].get_indexer(wanted[rows])
            found = where >= 0
            out[rows[found]] = known[1][where[found]]
        return pd.Series(out, index=address.index, dtype="string")


def _keys(channel: pd.Series, address: pd.Series) -> pd.Series:
    """ "channel:address" strings, matched by position (the two series may carry different indexes)."""
    as_text = [pd.Series(s.to_numpy(dtype=object), dtype="string") for s in (channel, address)]
    return as_text[0] + _KEY_SEP + as_text[1]


def _require(frame: pd.DataFrame, columns: tuple[str, ...], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"{table}: missing column(s) {', '.join(missing)}")


def _ordered_links(links: pd.DataFrame, default_region: str) -> tuple[pd.DataFrame, int]:
    """Links normalised and sorted in acceptance order; the count of links with an unusable end."""
    _require(links, (ADDRESS_A, ADDRESS_B), LINKS_TABLE)
    ends = {}
    for side in (ADDRESS_A, ADDRESS_B):
        channel = guess_channel(links[side])
        ends[side] = pd.DataFrame(
            {CHANNEL: channel, ADDRESS: normalise_addresses(links[side], channel, default_region)}
        )
    observed = links[OBSERVED_AT] if OBSERVED_AT in links.columns else pd.Series(pd.NaT, index=links.index)
    if not pd.api.types.is_datetime64_any_dtype(observed):
        observed = pd.to_datetime(observed, utc=True, errors="coerce", format="ISO8601")
    usable = (ends[ADDRESS_A][ADDRESS].notna() & ends[ADDRESS_B][ADDRESS].notna()).to_numpy()
    columns = {
        "channel_a": ends[ADDRESS_A][CHANNEL],
        "address_a": ends[ADDRESS_A][ADDRESS],
        "channel_b": ends[ADDRESS_B][CHANNEL],
        "address_b": ends[ADDRESS_B][ADDRESS],
        "observed": observed,
    }
    frame = pd.DataFrame({k: v.reset_index(drop=True) for k, v in columns.items()})[usable]
    frame = frame.sort_values("observed", kind="stable", na_position="last").reset_index(drop=True)
    return frame, int((~usable).sum())


def _capped_labels(
    labels: np.ndarray, a: np.ndarray, b: np.ndarray, channel: np.ndarray, n_channels: int, cap: int
) -> tuple[np.ndarray, int]:
    """Replay, in order, the links of the components that break the cap; refuse those that would break it."""
    per_channel = np.zeros((labels.max() + 1, n_channels), dtype=np.int64)
    np.add.at(per_channel, (labels, channel), 1)
    broken = (per_channel > cap).any(axis=1)
    if not broken.any():
        return labels, 0
    parent: dict[int, int] = {}
    held: dict[int, np.ndarray] = {}

    def find(node: int) -> int:
        root = node
        while parent.get(root, root) != root:
            root = parent[root]
        while node != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    def holdings(root: int) -> np.ndarray:
        return held.get(root, np.bincount([channel[root]], minlength=n_channels))

    refused = 0
    replay = np.flatnonzero(broken[labels[a]])
    for x, y in zip(a[replay].tolist(), b[replay].tolist(), strict=True):
        rx, ry = find(x), find(y)
        if rx == ry:
            continue
        merged = holdings(rx) + holdings(ry)
        if (merged > cap).any():
            refused += 1
            continue
        parent[ry] = rx
        held[rx] = merged
        held.pop(ry, None)
    out = labels.copy()
    nodes = np.flatnonzero(broken[labels])
    out[nodes] = labels.max() + 1 + np.array([find(int(n)) for n in nodes])
    return pd.factorize(out)[0], refused


def resolve_identities(
    addresses: pd.DataFrame,
    links: pd.DataFrame | None,
    salt: str,
    max_addresses_per_channel: int = 1,
    default_region: str = "US",
) -> IdentityMap:
    """Group normalised (channel, address) pairs and raw identity links into people (see module docstring)."""
    _require(addresses, (CHANNEL, ADDRESS), "addresses")
    known = pd.DataFrame(
        {
            CHANNEL: addresses[CHANNEL].astype("string").str.strip().str.lower().to_numpy(),
            ADDRESS: addresses[ADDRESS].astype("string").to_numpy(),
        }
    ).dropna()
    if links is None:
        links = pd.DataFrame(columns=[ADDRESS_A, ADDRESS_B])
    ordered, unusable = _ordered_links(links, default_region)
    ends = [
        ordered[[f"channel_{s}", f"address_{s}"]].set_axis([CHANNEL, ADDRESS], axis=1) for s in ("a", "b")
    ]
    nodes = pd.concat([known, *ends], ignore_index=True).astype("string")
    nodes["key"] = _keys(nodes[CHANNEL], nodes[ADDRESS]).to_numpy()
    nodes = nodes.drop_duplicates("key").sort_values("key").reset_index(drop=True)

    index = pd.Index(nodes["key"].to_numpy(dtype=object))
    a = index.get_indexer(_keys(ends[0][CHANNEL], ends[0][ADDRESS]).to_numpy(dtype=object))
    b = index.get_indexer(_keys(ends[1][CHANNEL], ends[1][ADDRESS]).to_numpy(dtype=object))
    n = len(nodes)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    channel, channel_names = pd.factorize(nodes[CHANNEL])
    refused = 0
    if n:
        labels, refused = _capped_labels(labels, a, b, channel, len(channel_names), max_addresses_per_channel)

    # nodes are sorted by key, so a component's smallest key is its first node
    first = pd.Series(np.arange(n)).groupby(labels).transform("min").to_numpy()
    table = nodes[[CHANNEL, ADDRESS]].copy()
    table[ADDRESS_HASH] = hash_values(nodes[ADDRESS], salt)
    table[SUBSCRIBER_ID] = hash_values(nodes["key"].iloc[first].reset_index(drop=True), salt)
    return IdentityMap(addresses=table, refused_links=refused, unusable_links=unusable)


def uses_default_salt(settings) -> bool:
    """The salt in force is the built-in default: neither `SENDTIME_SALT` nor `data.salt` was set."""
    from sendtime.configs.settings import DataSettings

    return settings.salt() == DataSettings.model_fields["salt"].default


def default_salt_warning(settings, data_dir) -> str | None:
    """A loud warning when real data would be hashed with the built-in salt; None otherwise.

    The default salt is public (it is in this source), so a hash made with it is reversible by anyone
    with a list of guessed addresses: hash each guess the same way and look it up. A simulated world
    (`sendtime simulate` writes `ground_truth/meta.json`; `make demo` trains on one) holds only made-up
    addresses, so it stays quiet there.
    """
    from pathlib import Path

    from sendtime.schema import GROUND_TRUTH_DIR

    if not uses_default_salt(settings):
        return None
    if (Path(data_dir) / GROUND_TRUTH_DIR / "meta.json").is_file():
        return None
    name = settings.data.salt_env
    return (
        "!" * 100 + "\n"
        f"WARNING: address hashes use sendtime's built-in default salt (neither {name} nor data.salt is set).\n"
        "The default is public, so anyone holding the feature tables, logs or MLflow artifacts can reverse\n"
        "the hashes with a list of guessed e-mail addresses or phone numbers. Before training on real data:\n"
        f"  export {name}=\"$(python -c 'import secrets; print(secrets.token_hex(32))')\"\n"
        "and set the same value wherever this model schedules or serves (see README, Privacy).\n" + "!" * 100
    )
