"""Identifier columns are checked from the Arrow schema, before any row is read."""

from __future__ import annotations

import pyarrow as pa
import pytest

from cohortsync.errors import SourceError
from cohortsync.export.identifiers import identifier_columns


def test_string_columns_in_any_arrow_layout_are_identifiers() -> None:
    schema = pa.schema(
        [
            ("user_ids", pa.large_string()),
            ("device_ids", pa.dictionary(pa.int32(), pa.string())),
            ("email", pa.string_view()),
            ("score", pa.int64()),
        ]
    )
    found = identifier_columns(schema, "email")
    assert found.columns == {"user_ids": "user_ids", "device_ids": "device_ids", "alias": "email"}
    assert found.kinds == ("user_ids", "device_ids", "alias")
    assert found.ignored == ("score",)
    assert found.alias_label == "email"


def test_a_non_string_identifier_column_is_named_with_its_type() -> None:
    schema = pa.schema([("user_ids", pa.string()), ("email", pa.int32())])
    with pytest.raises(SourceError, match="identifier column 'email' has type int32, not a string"):
        identifier_columns(schema, "email")


def test_no_identifier_column_names_what_was_found_and_expected() -> None:
    schema = pa.schema([("external_id", pa.string())])
    with pytest.raises(
        SourceError, match=r"^the result has no identifier column: found 'external_id'"
    ) as raised:
        identifier_columns(schema, None)
    assert "found 'external_id'; expected at least one of 'user_ids', 'device_ids'" in str(
        raised.value
    )
    assert "--alias-column" in str(raised.value)


def test_two_columns_of_one_identifier_name_fail() -> None:
    schema = pa.schema([("user_ids", pa.string()), ("user_ids", pa.string())])
    with pytest.raises(SourceError, match="the result has 2 columns named 'user_ids'"):
        identifier_columns(schema, None)
