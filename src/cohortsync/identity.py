"""The identity of one tracked Braze cohort: the only place a cohort key is computed.

The cohort lock (``locks/<slug>.lock``), the mirror snapshots
(``snapshots/<slug>/``) and the run history (``runs.cohort_key``) are all
keyed by :class:`CohortKey`, so two spellings of one endpoint share one lock,
one snapshot and one run history.

Normalisation rules (:func:`normalize_endpoint`):

- surrounding whitespace is dropped;
- the scheme and the host are lower-cased (``https://REST.iad-01.braze.com``
  is ``https://rest.iad-01.braze.com``);
- the default port of the scheme is dropped (``:443`` for https, ``:80`` for
  http); any other port is kept;
- trailing slashes of the path are dropped, the path itself is kept as
  written (paths are case-sensitive); a query or fragment is dropped;
- an endpoint that is not a URL with a scheme and a host is lower-cased and
  loses its trailing slashes.

The partner and the cohort id are taken exactly as given (Braze tells
``VIP`` and ``vip`` apart). The data import key is never part of a key: only
its SHA-256 fingerprint (:func:`key_fingerprint`) is.

The catalog revision ``0002`` recomputes the keys stored by earlier releases
with these rules; it carries its own frozen copy of them, so change them only
together with a new revision that recomputes the stored keys again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalize_endpoint(endpoint: str) -> str:
    """The endpoint as one canonical string (the rules are in the module's docstring).

    ``https://REST.iad-01.braze.com:443/`` and ``https://rest.iad-01.braze.com``
    are one workspace endpoint and must share one cohort identity.
    """
    text = endpoint.strip()
    parts = urlsplit(text)
    if not parts.scheme or not parts.netloc:
        return text.rstrip("/").lower()
    scheme = parts.scheme.lower()
    netloc = parts.netloc.lower()
    host, colon, port = netloc.rpartition(":")
    default = DEFAULT_PORTS.get(scheme)
    if colon and (port == "" or (port.isdigit() and port.lstrip("0") == default)):
        netloc = host
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def key_fingerprint(data_import_key: str) -> str:
    """A fingerprint of the data import key: tells keys apart, cannot be used as one."""
    return hashlib.sha256(data_import_key.encode()).hexdigest()[:16]


class StoredCohort(Protocol):
    """What a run record holds of its cohort (the key's fingerprint, never the key)."""

    @property
    def endpoint(self) -> str: ...
    @property
    def key_hash(self) -> str: ...
    @property
    def partner(self) -> str: ...
    @property
    def cohort_id(self) -> str: ...


@dataclass(frozen=True)
class CohortKey:
    """What one tracked cohort is: the same cohort id in another workspace is another cohort.

    Build it with :meth:`for_destination` (from a data import key, which is
    fingerprinted, never stored) or :meth:`for_run` (from a run record); both
    normalise the endpoint.
    """

    endpoint: str
    key_fingerprint: str
    partner: str
    cohort_id: str

    @classmethod
    def for_destination(
        cls, endpoint: str, data_import_key: str, partner: str, cohort_id: str
    ) -> CohortKey:
        return cls.of(endpoint, key_fingerprint(data_import_key), partner, cohort_id)

    @classmethod
    def for_run(cls, run: StoredCohort) -> CohortKey:
        """The cohort a recorded run feeds (the record holds the key's fingerprint only)."""
        return cls.of(run.endpoint, run.key_hash, run.partner, run.cohort_id)

    @classmethod
    def of(cls, endpoint: str, fingerprint: str, partner: str, cohort_id: str) -> CohortKey:
        return cls(
            endpoint=normalize_endpoint(endpoint),
            key_fingerprint=fingerprint,
            partner=partner,
            cohort_id=cohort_id,
        )

    @property
    def slug(self) -> str:
        """A file-system-safe, unique directory name; readable prefix, hashed tail."""
        return _slug(self.endpoint, self.key_fingerprint, self.partner, self.cohort_id)

    @property
    def legacy_slugs(self) -> tuple[str, ...]:
        """Slugs earlier releases may have used for this cohort (they kept the default port)."""
        parts = urlsplit(self.endpoint)
        port = DEFAULT_PORTS.get(parts.scheme)
        if port is None or not parts.netloc:
            return ()
        spelled = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
        return (_slug(spelled, self.key_fingerprint, self.partner, self.cohort_id),)

    @property
    def history_key(self) -> str:
        """The run history's ``cohort_key`` column: endpoint, partner, cohort id, fingerprint."""
        return f"{self.endpoint}|{self.partner}|{self.cohort_id}|{self.key_fingerprint}"

    def describe(self) -> str:
        """How messages name the cohort: id, partner and endpoint (never the key)."""
        return f"cohort {self.cohort_id!r} ({self.partner} at {self.endpoint})"

    def to_dict(self) -> dict[str, str]:
        return {
            "endpoint": self.endpoint,
            "key_fingerprint": self.key_fingerprint,
            "partner": self.partner,
            "cohort_id": self.cohort_id,
        }


def _slug(endpoint: str, fingerprint: str, partner: str, cohort_id: str) -> str:
    raw = "\0".join((endpoint, fingerprint, partner, cohort_id))
    digest = hashlib.sha256(raw.encode()).hexdigest()[:20]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", cohort_id)[:40].strip("._") or "cohort"
    return f"{readable}-{digest}"
