"""``cohortsync apply``: authentications, queries, audiences and activations as code.

One YAML file declares what should exist; ``apply`` compares it with the
catalog and creates or updates what differs, in dependency order
(authentications, parents, segments, queries, activations), and says what it
changed. Applying the same file twice changes nothing. It never deletes:
something removed from the file stays until deleted with its command.

Secrets never live in the file: a data import key (``data_import_key``) or a
REST API key (``rest_api_key``, of a ``type: rest-attribute`` authentication)
must be a ``${ENV_VAR}`` reference, resolved from the environment at apply time. Any string may use
``${ENV_VAR}``; ``$${`` writes a literal ``${``. A missing variable fails
before anything changes, naming the variable and where it is used.

A REST API key that the file creates or changes is checked against its
endpoint before anything is saved, with the same harmless ``/users/track``
request as ``cohortsync auth create``; a refused key applies nothing.

The format is documented in ``docs/as-code.md``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import sqlalchemy as sa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cohortsync import queries
from cohortsync.audience.activations import upsert_activation
from cohortsync.audience.parents import upsert_parent
from cohortsync.audience.rules import parse_rules, rules_to_json
from cohortsync.audience.segments import upsert_segment
from cohortsync.catalog import audiences
from cohortsync.catalog.audiences import SavedActivation, SavedParent, SavedSegment
from cohortsync.catalog.auths import auth_fields, upsert_auth
from cohortsync.catalog.db import open_catalog
from cohortsync.definitions import Activation, Authentication, Parent, Query, Segment, validated
from cohortsync.definitions.fields import Definition
from cohortsync.definitions.invalid import refusal
from cohortsync.errors import ConfigError, DestinationRefused
from cohortsync.export.credentials import check_credentials, checked_destination
from cohortsync.export.spec import REST_ATTRIBUTE
from cohortsync.settings import Settings
from cohortsync.textfiles import read_text
from cohortsync.warehouse.connect import require_stored_warehouse

ENV_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRET_FIELDS = frozenset({"data_import_key", "rest_api_key"})
FORMAT_HINT = "see docs/as-code.md for the format"

Action = Literal["create", "update", "unchanged"]
KINDS = ("authentications", "parents", "segments", "queries", "activations")
SINGULAR = {
    "authentications": "authentication",
    "parents": "parent",
    "segments": "segment",
    "queries": "query",
    "activations": "activation",
}


# --- the file's shape ---------------------------------------------------------------


def _stored_warehouse(url: str | None) -> str | None:
    """A saved object's warehouse must outlive the command: stored, and an absolute path."""
    try:
        return require_stored_warehouse(url, "a saved definition")
    except ConfigError as error:
        raise ValueError(str(error)) from None


class _StoredParent(Parent):
    """A parent of the file: its warehouse is checked and made absolute when read."""

    _stored = field_validator("warehouse")(_stored_warehouse)


class _StoredQuery(Query):
    """A query of the file: its warehouse is checked and made absolute when read."""

    _stored = field_validator("warehouse")(_stored_warehouse)


# Each kind of the file and its definition (:mod:`cohortsync.definitions`).
DEFINITIONS: dict[str, type[Definition]] = {
    "authentications": Authentication,
    "parents": _StoredParent,
    "segments": Segment,
    "queries": _StoredQuery,
    "activations": Activation,
}


class _Document(BaseModel):
    """The file before its items are read: one list per kind, each optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    authentications: list[dict[str, Any]] = Field(default_factory=list)
    parents: list[dict[str, Any]] = Field(default_factory=list)
    segments: list[dict[str, Any]] = Field(default_factory=list)
    queries: list[dict[str, Any]] = Field(default_factory=list)
    activations: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class AsCodeFile:
    """The whole file, every item a checked definition."""

    authentications: list[Authentication] = field(default_factory=list)
    parents: list[Parent] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    activations: list[Activation] = field(default_factory=list)

    def items(self) -> list[tuple[str, Definition]]:
        """``(kind, definition)`` in dependency order: what ``apply`` goes through."""
        return [(kind, item) for kind in KINDS for item in getattr(self, kind)]


# --- reading the file -------------------------------------------------------------------


def load_file(path: Path, *, environ: dict[str, str] | None = None) -> AsCodeFile:
    """Read, check and resolve a definitions file.

    Raises:
        ConfigError: unreadable file, bad YAML, a literal secret, a missing
            environment variable, or a definition of the wrong shape; the
            message names the file and the place in it.
    """
    text = read_text(path, str(path))
    try:
        raw = yaml.safe_load(text)
    except RecursionError:
        raise _too_deep(path) from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}{line}: {problem}", hint="fix the YAML syntax") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the file must be a mapping of kinds to lists",
            hint=f"top-level keys: version, {', '.join(KINDS)}",
        )
    _check_document_size(raw, path)
    _refuse_literal_secrets(raw, path)
    resolved = _resolve_env(raw, path, os.environ if environ is None else environ, "")
    try:
        document = _Document.model_validate(resolved)
    except ValidationError as error:
        problem = refusal(error, hint=FORMAT_HINT)
        raise ConfigError(f"{path}: {problem.message}", hint=problem.hint) from None
    read: dict[str, list[Any]] = {}
    for kind in KINDS:
        read[kind] = [
            _definition(path, kind, index, item)
            for index, item in enumerate(getattr(document, kind))
        ]
        _check_unique(path, kind, read[kind])
    return AsCodeFile(**read)


def _definition(path: Path, kind: str, index: int, item: dict[str, Any]) -> Definition:
    """One item of the file as its definition; a refusal names the file and the item."""
    name = item.get("name")
    subject = f"{SINGULAR[kind]} {name}" if isinstance(name, str) else f"{kind}[{index}]"
    if kind == "authentications":
        item = _auth_key(path, index, item)
    try:
        return validated(
            DEFINITIONS[kind], item, at=f"{kind}[{index}]", subject=subject, hint=FORMAT_HINT
        )
    except ConfigError as error:
        raise ConfigError(f"{path}: {error.message}", hint=error.hint) from None


def _auth_key(path: Path, index: int, item: dict[str, Any]) -> dict[str, Any]:
    """An authentication with its key in ``data_import_key``, whatever its type.

    A ``rest-attribute`` authentication names its key ``rest_api_key``, as
    the CLI does; the definition holds either key in one secret field.

    Raises:
        ConfigError: ``rest_api_key`` on a partner-cohort authentication, or
            a rest-attribute one given ``data_import_key``.
    """
    where = f"{path}: authentications[{index}]"
    kind = item.get("type", "partner-cohort")
    rest = kind == "rest-attribute"
    if "rest_api_key" in item and kind == "partner-cohort":
        raise ConfigError(
            f"{where}.rest_api_key belongs to an authentication of type rest-attribute",
            hint="add 'type: rest-attribute', or give data_import_key for a partner cohort",
        )
    if rest and "data_import_key" in item:
        raise ConfigError(
            f"{where}.data_import_key: a rest-attribute authentication holds a REST API key",
            hint="write rest_api_key: ${BRAZE_REST_API_KEY} instead",
        )
    if "rest_api_key" not in item:
        if not rest:
            return item  # a partner cohort's, or a type the definition refuses
        raise ConfigError(
            f"{where}: a rest-attribute authentication needs rest_api_key",
            hint="write rest_api_key: ${BRAZE_REST_API_KEY} and export that variable",
        )
    fields = {key: value for key, value in item.items() if key != "rest_api_key"}
    return {**fields, "data_import_key": item["rest_api_key"]}


def _check_unique(path: Path, kind: str, items: list[Definition]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            raise ConfigError(
                f"{path}: {kind}: the name {item.name!r} is declared twice", hint=FORMAT_HINT
            )
        seen.add(item.name)


def _refuse_literal_secrets(raw: dict[str, Any], path: Path) -> None:
    """A data import key or a URL password written in the file is refused, not used."""
    for kind in KINDS:
        items = raw.get(kind)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            where = f"{kind}[{index}]"
            for name in SECRET_FIELDS:
                value = item.get(name)
                if isinstance(value, str) and not _is_env_reference(value):
                    raise ConfigError(
                        f"{path}: {where}.{name} is written in the file; secrets are refused there",
                        hint=f"write {name}: ${{BRAZE_{name.upper()}}} and export that variable",
                    )
            url = item.get("warehouse")
            if isinstance(url, str) and "${" not in url and _has_password(url):
                raise ConfigError(
                    f"{path}: {where}.warehouse holds a password in the file",
                    hint="write the URL, or its password, as ${ENV_VAR}",
                )


# Limits of a definitions file once its YAML aliases are expanded. Aliases are
# shared references in the loaded document, so a few lines ("billion laughs")
# can stand for billions of values, and an alias inside its own anchor makes a
# cycle; every later step walks the document as a tree and would never end, or
# end in a RecursionError. A real file is far below both limits.
MAX_DOCUMENT_DEPTH = 64
MAX_DOCUMENT_VALUES = 500_000


def _too_deep(path: Path) -> ConfigError:
    return ConfigError(
        f"{path}: the document is nested more than {MAX_DOCUMENT_DEPTH} levels deep",
        hint="segment rules take at most 50 levels; flatten them with one 'and' or 'or'",
    )


def _check_document_size(raw: Any, path: Path) -> None:
    """Refuse a self-referencing alias, a document too deep, or too large after expansion.

    Raises:
        ConfigError: the document breaks one of the limits above.
    """
    seen = 0
    ancestors: set[int] = set()

    def walk(value: Any, depth: int) -> None:
        nonlocal seen
        seen += 1
        if seen > MAX_DOCUMENT_VALUES:
            raise ConfigError(
                f"{path}: the document holds more than {MAX_DOCUMENT_VALUES:,} values once its "
                "aliases (*name) are expanded",
                hint="write each definition out, or split the file; aliases that repeat "
                "aliases multiply",
            )
        if not isinstance(value, dict | list):
            return
        if id(value) in ancestors:
            raise ConfigError(
                f"{path}: an alias (*name) refers to its own anchor (&name), so the document "
                "never ends",
                hint="an anchor can only be reused after its value is complete",
            )
        if depth > MAX_DOCUMENT_DEPTH:
            raise _too_deep(path)
        ancestors.add(id(value))
        for child in value.values() if isinstance(value, dict) else value:
            walk(child, depth + 1)
        ancestors.discard(id(value))

    walk(raw, 1)


def _is_env_reference(value: str) -> bool:
    match = ENV_REFERENCE.fullmatch(value.strip())
    return match is not None and not match.group(1)


def _has_password(url: str) -> bool:
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False


def _resolve_env(value: Any, path: Path, environ: Any, where: str) -> Any:
    """Replace ``${NAME}`` in every string by the variable's value; ``$${`` stays ``${``."""
    if isinstance(value, dict):
        return {
            key: _resolve_env(item, path, environ, f"{where}.{key}" if where else str(key))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_resolve_env(item, path, environ, f"{where}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(1):  # "$${" escapes a literal "${"
            return "${" + match.group(2) + "}"
        name = match.group(2)
        if not ENV_NAME.fullmatch(name):
            raise ConfigError(
                f"{path}: {where}: ${{{name}}} is not a valid environment variable name",
                hint="use letters, digits and '_'; write $${ for a literal ${",
            )
        if name not in environ:
            raise ConfigError(
                f"{path}: {where}: environment variable {name} is not set",
                hint=f"export {name} before running 'cohortsync apply'",
            )
        return str(environ[name])

    return ENV_REFERENCE.sub(substitute, value)


# --- planning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What ``apply`` does (or would do) to one definition."""

    kind: str  # "authentication", "parent", ...
    name: str
    action: Action
    fields: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "fields": list(self.fields),
        }

    def __str__(self) -> str:
        sign = {"create": "+", "update": "~", "unchanged": "="}[self.action]
        text = f"{sign} {self.kind} {self.name}"
        if self.action == "update" and self.fields:
            text += f" ({', '.join(self.fields)})"
        if self.action == "unchanged":
            text += " (unchanged)"
        return text


@dataclass
class ApplyResult:
    """The changes of one ``apply``, in the order they were made."""

    dry_run: bool
    changes: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(change.action != "unchanged" for change in self.changes)

    def summary(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "unchanged": 0}
        for change in self.changes:
            counts[change.action] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "changed": self.changed,
            "changes": [change.to_dict() for change in self.changes],
            "summary": self.summary(),
        }


def _diff(
    current: dict[str, Any] | None, desired: dict[str, Any]
) -> tuple[Action, tuple[str, ...]]:
    if current is None:
        return "create", ()
    fields_changed = tuple(key for key in desired if current.get(key) != desired[key])
    return ("update", fields_changed) if fields_changed else ("unchanged", ())


def _fields(definition: Definition) -> dict[str, Any]:
    """What a definition declares, but its name: what ``apply`` compares."""
    fields = definition.model_dump()
    fields.pop("name")
    return fields


def _current(catalog: sa.Engine, settings: Settings, kind: str, name: str) -> dict[str, Any] | None:
    """What the catalog holds under ``name``, or ``None``."""
    if kind == "authentications":
        return auth_fields(catalog, settings, name)
    if kind == "queries":
        try:
            return _fields(queries.get_query(name, settings=settings))
        except ConfigError:
            return None
    saved: Definition | None
    if kind == "parents":
        saved = audiences.get(catalog, SavedParent, name)
    elif kind == "segments":
        saved = audiences.get(catalog, SavedSegment, name)
    else:
        saved = audiences.get(catalog, SavedActivation, name)
    return None if saved is None else _fields(saved)


def _desired(item: Definition) -> dict[str, Any]:
    """What the file declares, normalised as the catalog keeps it (segment rules)."""
    fields = _fields(item)
    if isinstance(item, Segment):
        fields["rules"] = rules_to_json(parse_rules(item.rules))
    return fields


def plan(definitions: AsCodeFile, *, settings: Settings | None = None) -> list[Change]:
    """What applying ``definitions`` would change, item by item, without changing it."""
    settings = settings or Settings()
    catalog = open_catalog(settings.catalog_path)
    changes: list[Change] = []
    try:
        for kind, item in definitions.items():
            label = f"{SINGULAR[kind]} {item.name}"
            try:
                action = _diff(_current(catalog, settings, kind, item.name), _desired(item))
                if isinstance(item, Query):
                    queries.check_saved_sql(
                        item.name, item.sql, item.warehouse or settings.warehouse_url
                    )
            except ConfigError as error:
                raise ConfigError(f"{label}: {error.message}", hint=error.hint) from None
            changes.append(Change(SINGULAR[kind], item.name, *action))
    finally:
        catalog.dispose()
    return changes


# --- applying -----------------------------------------------------------------------------


def apply_file(
    path: Path,
    *,
    dry_run: bool = False,
    settings: Settings | None = None,
    environ: dict[str, str] | None = None,
) -> ApplyResult:
    """Bring the catalog to the definitions of ``path``; returns what changed.

    Every definition is read and resolved first, and every REST API key the
    file creates or changes is checked against its endpoint, so a bad file
    changes nothing. Then each item that differs is created or updated through the
    same operations as the CLI (with the same checks against the warehouse),
    in dependency order. If one fails, the error says which, and the items
    before it stay applied: fix the file and apply again.
    """
    settings = settings or Settings()
    definitions = load_file(path, environ=environ)
    try:
        changes = plan(definitions, settings=settings)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error.message}", hint=error.hint) from None
    _check_rest_api_keys(path, definitions, changes, settings)
    result = ApplyResult(dry_run=dry_run)
    if dry_run:
        result.changes = changes
        return result
    for change, (_, item) in zip(changes, definitions.items(), strict=True):
        if change.action != "unchanged":
            try:
                _apply_item(item, settings)
            except ConfigError as error:
                raise ConfigError(
                    f"{path}: {change.kind} {change.name}: {error.message}",
                    hint=error.hint,
                ) from None
        result.changes.append(change)
    return result


def _check_rest_api_keys(
    path: Path, definitions: AsCodeFile, changes: list[Change], settings: Settings
) -> None:
    """Check each rest-attribute key the file creates or changes, as ``auth create`` does.

    This runs before anything is saved (and on a dry run, which then tells
    what applying would meet). An unchanged authentication was checked when
    it was saved and is not sent again, so re-applying a file stays offline.

    Raises:
        DestinationRefused: the endpoint refused a key; names the file's entry.
        ConfigError: an endpoint could not be reached; names the file's entry.
    """
    index = 0
    for change, (kind, item) in zip(changes, definitions.items(), strict=True):
        if kind != "authentications":
            continue
        where = f"{path}: authentications[{index}] ({item.name})"
        index += 1
        if change.action == "unchanged" or not isinstance(item, Authentication):
            continue
        if item.type != REST_ATTRIBUTE:
            continue
        try:
            check_credentials(checked_destination(item, settings))
        except DestinationRefused as error:
            raise DestinationRefused(
                f"{where}: its rest_api_key was refused: {error.message}",
                status=error.status,
                hint=error.hint,
            ) from None
        except ConfigError as error:
            raise ConfigError(
                f"{where}: its rest_api_key could not be checked: {error.message}",
                hint=error.hint,
            ) from None


def _apply_item(item: Definition, settings: Settings) -> None:
    """Create or update one definition through the same operation as its command."""
    if isinstance(item, Authentication):
        _upsert_auth(item, settings)
    elif isinstance(item, Parent):
        upsert_parent(item, settings=settings)
    elif isinstance(item, Segment):
        upsert_segment(item, settings=settings)
    elif isinstance(item, Query):
        queries.save(item, settings=settings)
    elif isinstance(item, Activation):
        upsert_activation(item, settings=settings)


def _upsert_auth(item: Authentication, settings: Settings) -> None:
    """Create the authentication, or rewrite its endpoint, partner and (encrypted) key."""
    catalog = open_catalog(settings.catalog_path)
    try:
        upsert_auth(catalog, settings, item)
    finally:
        catalog.dispose()
