"""Config versioning: keys from a newer anymal, migration of an older schema, refusal of newer / unknown ones."""

from __future__ import annotations

import json

import pytest

from adapters_hub import (
    CONFIG_NAME, ConfigFromNewerVersionWarning, SchemaVersionError, load_adapter_package, parse_config,
)
from adapters_hub.config import SCHEMA_VERSION
from adapters_hub.schema import MIGRATIONS, MIN_SCHEMA_VERSION


def _edit(package, change):
    data = json.loads((package / CONFIG_NAME).read_text())
    change(data)
    (package / CONFIG_NAME).write_text(json.dumps(data))


def test_unknown_keys_from_newer_anymal_load_with_a_warning(package, config):
    def newer(data):
        data["anymal_version"] = "0.9.0"
        data["safety_profile"] = "strict"
        data["llm"]["tokenizer_hash"] = "abc"
    _edit(package, newer)
    with pytest.warns(ConfigFromNewerVersionWarning) as record:
        loaded, _ = load_adapter_package(package)
    message = str(record[0].message)
    assert "written by anymal 0.9.0" in message
    assert "llm.tokenizer_hash" in message and "safety_profile" in message
    assert "upgrade anymal" in message
    assert loaded.llm == config.llm and loaded.anymal_version == "0.9.0"


def test_schema_0_is_migrated(config):
    data = config.to_dict()
    data["schema_version"] = 0
    data["num_query_tokens"] = data.pop("num_tokens")
    data["projector"]["kind"] = data["projector"].pop("type")
    migrated = parse_config(data)
    assert migrated == config
    assert 0 in MIGRATIONS and MIN_SCHEMA_VERSION == 0


def test_migrated_package_loads(package, config):
    def to_v0(data):
        data["schema_version"] = 0
        data["num_query_tokens"] = data.pop("num_tokens")
        data["projector"]["kind"] = data["projector"].pop("type")
    _edit(package, to_v0)
    # The weights' metadata still says schema 1 (what wrote them): the migrated config must match it.
    assert load_adapter_package(package)[0] == config


def test_newer_schema_is_refused_with_upgrade_advice(package):
    _edit(package, lambda d: d.update(schema_version=SCHEMA_VERSION + 1, anymal_version="2.0.0"))
    with pytest.raises(SchemaVersionError, match=r"schema version 2 \(written by anymal 2.0.0\).*upgrade anymal"):
        load_adapter_package(package)


def test_schema_older_than_any_migration_is_refused(config):
    data = config.to_dict()
    data["schema_version"] = -1
    with pytest.raises(SchemaVersionError, match="older than any this anymal can migrate"):
        parse_config(data)


@pytest.mark.parametrize("value", ["1", None, 1.0, True])
def test_non_integer_schema_is_refused(config, value):
    data = config.to_dict()
    data["schema_version"] = value
    with pytest.raises(SchemaVersionError, match="not an integer"):
        parse_config(data)
