"""Where a saved export sends: the destination and the run of saved settings.

A saved authentication (:mod:`cohortsync.catalog.auths`) becomes an export's
:class:`~cohortsync.export.spec.Destination` here, on the export's side, so
the catalog stores authentications without knowing what an export is, and
the export's spec imports nothing of the catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cohortsync.catalog.auths import auth_fields, unknown_auth
from cohortsync.catalog.db import open_catalog
from cohortsync.definitions import CohortExport
from cohortsync.errors import ConfigError
from cohortsync.export.rest_attribute import read_rest_api_key
from cohortsync.export.spec import (
    REST_ATTRIBUTE,
    Destination,
    ExportSpec,
    MirrorOptions,
    Source,
)
from cohortsync.secrets import read_data_import_key
from cohortsync.settings import Settings


def destination_for_auth(name: str, settings: Settings | None = None) -> Destination:
    """Build the :class:`Destination` of a saved authentication.

    The key is decrypted here, and (``partner-cohort``) the partner API key
    is chosen from settings by the endpoint's region, so callers (saved
    queries, activations, the scheduler) only ever handle an auth name. A
    ``rest-attribute`` authentication gives a ``rest-attribute`` destination
    with the default attribute (array mode, ``cohorts``); ``cohortsync
    export`` changes the mode and the attribute with its options.

    Raises:
        ConfigError: unknown name, unreadable key file, or no partner API key.
    """
    settings = settings or Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        fields = auth_fields(catalog, settings, name)
    finally:
        catalog.dispose()
    if fields is None:
        raise unknown_auth(name)
    if fields["type"] == REST_ATTRIBUTE:
        return Destination(
            endpoint=fields["endpoint"],
            data_import_key=fields["data_import_key"],
            partner_api_key="",
            auth_name=name,
            type=REST_ATTRIBUTE,
        )
    return Destination(
        endpoint=fields["endpoint"],
        data_import_key=fields["data_import_key"],
        partner_api_key=settings.partner_api_key_for(fields["endpoint"]),
        partner=fields["partner"],
        auth_name=name,
    )


def recorded_destination(
    target: Mapping[str, Any], key: str | None, settings: Settings
) -> Destination:
    """The destination of a recorded run given an endpoint, its key read anew.

    The run's record holds no key: ``key`` is ``-`` (stdin) or ``None`` (the
    environment: ``COHORTSYNC_DATA_IMPORT_KEY``, or ``COHORTSYNC_REST_API_KEY``
    for a ``rest-attribute`` run).

    Raises:
        ConfigError: no key, or (partner path) no partner API key for the endpoint.
    """
    if target.get("type") == REST_ATTRIBUTE:
        return Destination(
            endpoint=target["endpoint"],
            data_import_key=read_rest_api_key(key),
            partner_api_key="",
            auth_name=target.get("auth_name"),
            type=REST_ATTRIBUTE,
            attribute_mode=target.get("attribute_mode", "array"),
            attribute=target.get("attribute"),
        )
    return Destination(
        endpoint=target["endpoint"],
        data_import_key=read_data_import_key(key),
        partner_api_key=settings.partner_api_key_for(target["endpoint"]),
        partner=target["partner"],
        auth_name=target.get("auth_name"),
    )


def resumed_destination(
    target: Mapping[str, Any], key: str | None, settings: Settings
) -> Destination:
    """The destination of a recorded run, to resume it.

    A run of a saved authentication takes its key from there unless ``key``
    is given; the attribute of a ``rest-attribute`` run is the recorded one
    (an export may have chosen another mode or attribute than the default
    of its authentication), so the run resumes the cohort it started.

    Raises:
        ConfigError: as :func:`destination_for_auth` and :func:`recorded_destination`.
    """
    auth_name = target.get("auth_name")
    if not auth_name or key is not None:
        return recorded_destination(target, key, settings)
    destination = destination_for_auth(auth_name, settings)
    if destination.type != REST_ATTRIBUTE:
        return destination
    return replace(
        destination,
        attribute_mode=target.get("attribute_mode", "array"),
        attribute=target.get("attribute"),
    )


def _saved_destination(export: CohortExport, settings: Settings | None) -> Destination:
    """The destination of saved export settings, their attribute applied.

    Raises:
        ConfigError: as :func:`destination_for_auth`, or an attribute saved
            for a partner-cohort authentication.
    """
    destination = destination_for_auth(export.auth, settings)
    if destination.type == REST_ATTRIBUTE:
        return replace(
            destination, attribute_mode=export.attribute_mode, attribute=export.attribute
        )
    if export.attribute_mode != "array" or export.attribute is not None:
        raise ConfigError(
            f"the authentication {export.auth!r} delivers partner cohorts, which have no "
            "attribute mode or attribute",
            hint="leave attribute_mode and attribute out, or use a rest-attribute authentication",
        )
    return destination


def export_spec(
    export: CohortExport,
    source: Source,
    *,
    job: str,
    full_resync: bool = False,
    skip_invalid: bool = False,
    settings: Settings | None = None,
) -> ExportSpec:
    """The export run of saved settings (a query's export, an activation).

    The saved authentication becomes the destination here. The run skips
    invalid identifiers when the settings say so or ``skip_invalid`` asks it
    for this run; ``full_resync`` is a one-off of this run too.

    Raises:
        ConfigError: as :func:`destination_for_auth`.
    """
    return ExportSpec(
        source=source,
        destination=_saved_destination(export, settings),
        cohort_id=export.cohort_id,
        cohort_name=export.cohort_name,
        operation=export.operation,
        alias_column=export.alias_column,
        threads=export.threads,
        mirror=MirrorOptions(
            allow_empty=export.mirror.allow_empty,
            max_remove_pct=export.mirror.max_remove_pct,
            full_resync=full_resync,
        ),
        skip_invalid=export.skip_invalid or skip_invalid,
        job=job,
    )
