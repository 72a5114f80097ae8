"""``cohortsync apply``: authentications, queries, audiences and activations as code.

One YAML file declares what should exist; ``apply`` compares it with the
catalog and creates or updates what differs, in dependency order
(authentications, parents, segments, queries, activations), and says what it
changed. Applying the same file twice changes nothing. It never deletes:
something removed from the file stays until deleted with its command.

Secrets never live in the file: a data import key must be a ``${ENV_VAR}``
reference, resolved from the environment at apply time. Any string may use
``${ENV_VAR}``; ``$${`` writes a literal ``${``. A missing variable fails
before anything changes, naming the variable and where it is used.

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

from cohortsync.audience.activations import upsert_activation
from cohortsync.audience.mapping import parse_mappings
from cohortsync.audience.parents import upsert_parent
from cohortsync.audience.rules import parse_rules, rules_to_json
from cohortsync.audience.segments import upsert_segment
from cohortsync.catalog import audiences
from cohortsync.catalog.audiences import ActivationRow, ParentRow, SegmentRow
from cohortsync.catalog.auths import auth_fields, upsert_auth
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import ConfigError
from cohortsync.export.spec import DEFAULT_PARTNER, DEFAULT_THREADS, Operation
from cohortsync.jobs.cron import check_cron
from cohortsync.queries import MirrorSettings, QueryExport, check_saved_sql, get_query, save_query
from cohortsync.settings import Settings
from cohortsync.textfiles import read_text
from cohortsync.warehouse.connect import require_stored_warehouse

ENV_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRET_FIELDS = frozenset({"data_import_key"})

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


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)


class AuthenticationDef(_Item):
    """A saved authentication: a workspace's endpoint and its data import key."""

    endpoint: str = Field(min_length=1)
    data_import_key: str = Field(min_length=1, repr=False)
    partner: str = DEFAULT_PARTNER


def _stored_warehouse(url: str | None) -> str | None:
    """A saved object's warehouse must outlive the command: stored, and an absolute path."""
    try:
        return require_stored_warehouse(url, "a saved definition")
    except ConfigError as error:
        raise ValueError(str(error)) from None


class ParentDef(_Item):
    """A parent segment: a customer table and its key column."""

    table: str = Field(min_length=1)
    key: str = Field(min_length=1)
    warehouse: str | None = None
    description: str | None = None

    _stored = field_validator("warehouse")(_stored_warehouse)


class SegmentDef(_Item):
    """A segment: rules (the JSON rule language, written as YAML) over a parent."""

    parent: str = Field(min_length=1)
    rules: dict[str, Any]
    description: str | None = None


class QueryDef(_Item):
    """A saved query with an optional export and schedule."""

    sql: str = Field(min_length=1)
    warehouse: str | None = None
    export: QueryExport | None = None
    schedule: str | None = None
    timezone: str = "UTC"

    _stored = field_validator("warehouse")(_stored_warehouse)


class ActivationDef(_Item):
    """An activation: a segment exported to a cohort, maybe on a schedule."""

    segment: str = Field(min_length=1)
    auth: str = Field(min_length=1)
    cohort_id: str = Field(min_length=1)
    mapping: list[str | dict[str, str]] = Field(min_length=1)
    cohort_name: str | None = None
    operation: Operation = "add"
    alias_column: str | None = None
    threads: int = Field(default=DEFAULT_THREADS, ge=1, le=64)
    cast_to_string: bool = False
    description: str | None = None
    schedule: str | None = None
    timezone: str = "UTC"
    mirror: MirrorSettings = Field(default_factory=MirrorSettings)


class AsCodeFile(BaseModel):
    """The whole file: one list per kind, each optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    authentications: list[AuthenticationDef] = Field(default_factory=list)
    parents: list[ParentDef] = Field(default_factory=list)
    segments: list[SegmentDef] = Field(default_factory=list)
    queries: list[QueryDef] = Field(default_factory=list)
    activations: list[ActivationDef] = Field(default_factory=list)

    @field_validator(*KINDS)
    @classmethod
    def _unique_names(cls, items: list[_Item]) -> list[_Item]:
        seen: set[str] = set()
        for item in items:
            if item.name in seen:
                raise ValueError(f"the name {item.name!r} is declared twice")
            seen.add(item.name)
        return items


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
        return AsCodeFile.model_validate(resolved)
    except ValidationError as error:
        first = error.errors()[0]
        where = _path_text(first["loc"])
        raise ConfigError(
            f"{path}: {where}: {first['msg'].removeprefix('Value error, ')}",
            hint="see docs/as-code.md for the format",
        ) from None


def _path_text(loc: tuple[int | str, ...] | list[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "file"


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
                        hint=f"write {name}: ${{BRAZE_DATA_IMPORT_KEY}} and export that variable",
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


def _auth_state(catalog: sa.Engine, settings: Settings, name: str) -> dict[str, Any] | None:
    return auth_fields(catalog, settings, name)


def _auth_desired(item: AuthenticationDef) -> dict[str, Any]:
    return {
        "endpoint": item.endpoint,
        "partner": item.partner,
        "data_import_key": item.data_import_key,
    }


def _parent_desired(item: ParentDef) -> dict[str, Any]:
    return {
        "table_name": item.table,
        "key_column": item.key,
        "warehouse_url": item.warehouse,
        "description": item.description,
    }


def _segment_desired(item: SegmentDef) -> dict[str, Any]:
    return {
        "parent": item.parent,
        "rules": rules_to_json(parse_rules(item.rules)),
        "description": item.description,
    }


def _query_desired(item: QueryDef) -> dict[str, Any]:
    return {
        "sql": item.sql,
        "warehouse_url": item.warehouse,
        "export": item.export.model_dump() if item.export else None,
        "schedule": check_cron(item.schedule, item.timezone) if item.schedule else None,
        "timezone": item.timezone if item.schedule else None,
    }


def _query_state(name: str, settings: Settings) -> dict[str, Any] | None:
    try:
        saved = get_query(name, settings=settings)
    except ConfigError:
        return None
    return {
        "sql": saved.sql,
        "warehouse_url": saved.warehouse_url,
        "export": saved.export.model_dump() if saved.export else None,
        "schedule": saved.schedule,
        "timezone": saved.timezone if saved.schedule else None,
    }


def _activation_desired(item: ActivationDef) -> dict[str, Any]:
    return {
        "segment": item.segment,
        "auth_name": item.auth,
        "cohort_id": item.cohort_id,
        "mapping": [m.to_dict() for m in parse_mappings(item.mapping)],
        "cohort_name": item.cohort_name,
        "operation": item.operation,
        "alias_column": item.alias_column,
        "threads": item.threads,
        "cast_to_string": item.cast_to_string,
        "description": item.description,
        "schedule_cron": check_cron(item.schedule, item.timezone) if item.schedule else None,
        "schedule_timezone": item.timezone,
        "mirror_allow_empty": item.mirror.allow_empty,
        "mirror_max_remove_pct": item.mirror.max_remove_pct,
    }


def _audience_state(catalog: sa.Engine, kind: type[Any], name: str) -> dict[str, Any] | None:
    row = audiences.get(catalog, kind, name)
    if row is None:
        return None
    state = audiences.definition(row)
    state.pop("name", None)
    return state


def plan(definitions: AsCodeFile, *, settings: Settings | None = None) -> list[Change]:
    """What applying ``definitions`` would change, item by item, without changing it."""
    settings = settings or Settings()
    catalog = open_catalog(settings.catalog_path)
    changes: list[Change] = []

    def add(kind: str, name: str, state: Any, desired: Any) -> None:
        try:
            changes.append(Change(kind, name, *_diff(state(), desired())))
        except ConfigError as error:
            raise ConfigError(f"{kind} {name}: {error.message}", hint=error.hint) from None

    try:
        for auth in definitions.authentications:
            add(
                "authentication",
                auth.name,
                lambda a=auth: _auth_state(catalog, settings, a.name),
                lambda a=auth: _auth_desired(a),
            )
        for parent in definitions.parents:
            add(
                "parent",
                parent.name,
                lambda p=parent: _audience_state(catalog, ParentRow, p.name),
                lambda p=parent: _parent_desired(p),
            )
        for segment in definitions.segments:
            add(
                "segment",
                segment.name,
                lambda s=segment: _audience_state(catalog, SegmentRow, s.name),
                lambda s=segment: _segment_desired(s),
            )
        for query in definitions.queries:
            add(
                "query",
                query.name,
                lambda q=query: _query_state(q.name, settings),
                lambda q=query: _query_desired(q),
            )
            check_saved_sql(query.name, query.sql, query.warehouse or settings.warehouse_url)
        for activation in definitions.activations:
            add(
                "activation",
                activation.name,
                lambda a=activation: _audience_state(catalog, ActivationRow, a.name),
                lambda a=activation: _activation_desired(a),
            )
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

    Every definition is read and resolved first, so a bad file changes
    nothing. Then each item that differs is created or updated through the
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
    result = ApplyResult(dry_run=dry_run)
    if dry_run:
        result.changes = changes
        return result
    items: list[Any] = [
        *definitions.authentications,
        *definitions.parents,
        *definitions.segments,
        *definitions.queries,
        *definitions.activations,
    ]
    for change, item in zip(changes, items, strict=True):
        if change.action != "unchanged":
            try:
                _apply_item(change, item, settings)
            except ConfigError as error:
                raise ConfigError(
                    f"{path}: {change.kind} {change.name}: {error.message}",
                    hint=error.hint,
                ) from None
        result.changes.append(change)
    return result


def _apply_item(change: Change, item: Any, settings: Settings) -> None:
    if isinstance(item, AuthenticationDef):
        _upsert_auth(item, settings)
    elif isinstance(item, ParentDef):
        upsert_parent(
            item.name,
            item.table,
            item.key,
            warehouse_url=item.warehouse,
            description=item.description,
            settings=settings,
        )
    elif isinstance(item, SegmentDef):
        upsert_segment(
            item.name, item.parent, item.rules, description=item.description, settings=settings
        )
    elif isinstance(item, QueryDef):
        save_query(
            item.name,
            item.sql,
            export=item.export,
            schedule=item.schedule,
            timezone=item.timezone,
            warehouse_url=item.warehouse,
            settings=settings,
        )
    elif isinstance(item, ActivationDef):
        upsert_activation(
            item.name,
            segment=item.segment,
            auth=item.auth,
            cohort_id=item.cohort_id,
            mapping=item.mapping,
            cohort_name=item.cohort_name,
            operation=item.operation,
            alias_column=item.alias_column,
            threads=item.threads,
            cast_to_string=item.cast_to_string,
            description=item.description,
            schedule=item.schedule,
            timezone=item.timezone,
            mirror_allow_empty=item.mirror.allow_empty,
            mirror_max_remove_pct=item.mirror.max_remove_pct,
            settings=settings,
        )


def _upsert_auth(item: AuthenticationDef, settings: Settings) -> None:
    """Create the authentication, or rewrite its endpoint, partner and (encrypted) key."""
    catalog = open_catalog(settings.catalog_path)
    try:
        upsert_auth(
            catalog,
            settings,
            name=item.name,
            endpoint=item.endpoint,
            data_import_key=item.data_import_key,
            partner=item.partner,
        )
    finally:
        catalog.dispose()
