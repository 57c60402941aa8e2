"""Configuration: profiles, overrides, one clear message per problem, and one place per section and default."""

import re

import pytest
import yaml

from fi_spark.config import Config, ConfigError, load_config
from tests.conftest import REPO


def test_local_profile_loads_with_defaults():
    """The default profile loads and keeps the built-in engine and chunking."""
    cfg = load_config("local")
    assert cfg.engine.mode == "embedded"
    assert cfg.prepare.chunk_tokens == 256


def test_override_is_typed():
    """--set values are parsed as YAML scalars into the section's types."""
    cfg = load_config("local", ["prepare.chunk_tokens=128", "engine.mode=local"])
    assert cfg.prepare.chunk_tokens == 128 and cfg.engine.mode == "local"


@pytest.mark.parametrize("profile", ["databricks", "emr"])
def test_cluster_profiles_load(profile):
    """The shipped cluster profiles are valid."""
    assert load_config(profile).engine.mode == "cluster"


def test_unknown_key_names_itself_and_lists_known_keys():
    """A typo names the key and lists the section's known keys."""
    with pytest.raises(ConfigError) as err:
        load_config("local", ["prepare.chunk_tokenz=5"])
    assert "prepare.chunk_tokenz: unknown key" in str(err.value)
    assert "chunk_tokens" in str(err.value)


def test_unknown_key_in_an_inherited_section_lists_all_its_keys():
    """A section built on shared thresholds (web = WebQualityThresholds + input keys) lists both kinds of keys."""
    with pytest.raises(ConfigError) as err:
        load_config("local", ["web.gopher_min_wordz=5"])
    assert "web.gopher_min_wordz: unknown key" in str(err.value)
    assert "gopher_min_words" in str(err.value) and "extractor" in str(err.value)


def test_wrong_type_names_key_and_value():
    """A wrong type names the key and the value given."""
    with pytest.raises(ConfigError) as err:
        load_config("local", ["prepare.chunk_tokens=many"])
    assert "prepare.chunk_tokens" in str(err.value) and "'many'" in str(err.value)


def test_closed_choice_lists_choices():
    """A closed choice lists what may be chosen."""
    with pytest.raises(ConfigError) as err:
        load_config("local", ["engine.mode=turbo"])
    assert "engine.mode" in str(err.value) and "embedded" in str(err.value)


def test_cross_field_check():
    """Checks across keys run at load time (overlap below chunk size, min below max in the shared thresholds)."""
    with pytest.raises(ConfigError, match="chunk_overlap"):
        load_config("local", ["prepare.chunk_overlap=300"])
    with pytest.raises(ConfigError, match="prepare.min_chars must not exceed prepare.max_chars"):
        load_config("local", ["prepare.min_chars=500", "prepare.max_chars=400"])


def test_connect_needs_url():
    """engine.mode=connect without a URL fails at load time."""
    with pytest.raises(ConfigError, match="connect_url"):
        load_config("local", ["engine.mode=connect"])


def test_unknown_profile_lists_profiles():
    """An unknown profile name lists the profiles there are."""
    with pytest.raises(ConfigError, match="choose from .*local"):
        load_config("nope")


def test_malformed_override():
    """An override without '=' says what shape is expected."""
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config("local", ["prepare.chunk_tokens"])


def test_near_dedup_is_on_by_default():
    """Near-duplicate removal runs unless a profile turns it off (every web-corpus user expects it)."""
    assert Config().near_dedup.enabled is True
    assert load_config("local").near_dedup.enabled is True


def test_each_section_has_its_module_in_the_config_package():
    """Each section's model is one module of fi_spark.config (named after the code it configures: the config
    package sits below every stage family, so no family and the config import each other); Config composes 17."""
    homes = {name: field.annotation.__module__ for name, field in Config.model_fields.items()}
    assert homes == {
        "engine": "fi_spark.config.model",
        "tables": "fi_spark.config.model",
        "tracking": "fi_spark.config.model",
        "prepare": "fi_spark.config.text",
        "llm": "fi_spark.config.llm",
        "queries": "fi_spark.config.queries",
        "templates": "fi_spark.config.genericize",
        "embed": "fi_spark.config.embed",
        "index": "fi_spark.config.index",
        "match": "fi_spark.config.match",
        "decontam": "fi_spark.config.decontam",
        "instantiate": "fi_spark.config.instantiate",
        "judge": "fi_spark.config.judge",
        "export": "fi_spark.config.export",
        "report": "fi_spark.config.report",
        "web": "fi_spark.config.text",
        "near_dedup": "fi_spark.config.dedup",
    }


SHOWN_DEFAULTS = ("engine", "tables", "tracking", "prepare")  # local.yaml repeats these sections' defaults


def test_local_profile_says_truthfully_what_it_lists():
    """conf/local.yaml: its 'defaults' sections equal the built-in defaults, its overrides differ from them and
    their '# default: X' comments name the real default."""
    path = REPO / "conf" / "local.yaml"
    listed = yaml.safe_load(path.read_text(encoding="utf-8"))
    defaults = Config().model_dump(mode="json")
    for section, keys in listed.items():
        for key, value in keys.items():
            if section in SHOWN_DEFAULTS:
                assert value == defaults[section][key], f"local.yaml {section}.{key} is listed as a default"
            else:
                assert value != defaults[section][key], f"local.yaml {section}.{key} is listed as an override"
    stated: dict[tuple[str, str], object] = {}  # (section, key) -> the default its comment names
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\w+:", line):
            section = line.split(":")[0]
        found = re.match(r"^  (\w+): [^#]*# default:? ([^\s;(,]+)", line)
        if found and section not in SHOWN_DEFAULTS:
            stated[(section, found.group(1))] = yaml.safe_load(found.group(2))
    overrides = {(s, k) for s, keys in listed.items() if s not in SHOWN_DEFAULTS for k in keys}
    assert set(stated) == overrides, "every override states its default"
    assert stated == {(s, k): defaults[s][k] for s, k in overrides}
