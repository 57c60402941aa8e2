"""Configuration: profiles, overrides and one clear message per problem."""

import pytest

from fi_spark.config import ConfigError, load_config


def test_local_profile_loads_with_defaults():
    cfg = load_config("local")
    assert cfg.engine.mode == "embedded"
    assert cfg.prepare.chunk_tokens == 256


def test_override_is_typed():
    cfg = load_config("local", ["prepare.chunk_tokens=512", "engine.mode=local"])
    assert cfg.prepare.chunk_tokens == 512 and cfg.engine.mode == "local"


@pytest.mark.parametrize("profile", ["databricks", "emr"])
def test_cluster_profiles_load(profile):
    assert load_config(profile).engine.mode == "cluster"


def test_unknown_key_names_itself_and_lists_known_keys():
    with pytest.raises(ConfigError) as err:
        load_config("local", ["prepare.chunk_tokenz=5"])
    assert "prepare.chunk_tokenz: unknown key" in str(err.value)
    assert "chunk_tokens" in str(err.value)


def test_wrong_type_names_key_and_value():
    with pytest.raises(ConfigError) as err:
        load_config("local", ["prepare.chunk_tokens=many"])
    assert "prepare.chunk_tokens" in str(err.value) and "'many'" in str(err.value)


def test_closed_choice_lists_choices():
    with pytest.raises(ConfigError) as err:
        load_config("local", ["engine.mode=turbo"])
    assert "engine.mode" in str(err.value) and "embedded" in str(err.value)


def test_cross_field_check():
    with pytest.raises(ConfigError, match="chunk_overlap"):
        load_config("local", ["prepare.chunk_overlap=300"])


def test_connect_needs_url():
    with pytest.raises(ConfigError, match="connect_url"):
        load_config("local", ["engine.mode=connect"])


def test_unknown_profile_lists_profiles():
    with pytest.raises(ConfigError, match="choose from .*local"):
        load_config("nope")


def test_malformed_override():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config("local", ["prepare.chunk_tokens"])
