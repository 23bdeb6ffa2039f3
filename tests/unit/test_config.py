"""load_config: defaults < nube.toml in the data dir < NUBE_* env vars < overrides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from appliance.config import DEFAULT_DATA_DIR, Config, load_config


def write_toml(data_dir: Path, text: str) -> None:
    (data_dir / "nube.toml").write_text(text)


def test_defaults_apply_without_a_file_env_or_overrides(tmp_path: Path) -> None:
    assert load_config(tmp_path, environ={}) == Config(data_dir=tmp_path)


def test_toml_in_the_data_dir_overrides_defaults(tmp_path: Path) -> None:
    write_toml(tmp_path, 'port = 8181\nregion = "North"\n')
    config = load_config(tmp_path, environ={})
    assert (config.port, config.region) == (8181, "North")


def test_unknown_toml_keys_are_kept_in_extra(tmp_path: Path) -> None:
    write_toml(tmp_path, "[compute]\ncpu_allocation = 4\n")
    assert load_config(tmp_path, environ={}).extra == {"compute": {"cpu_allocation": 4}}


def test_env_var_overrides_the_toml(tmp_path: Path) -> None:
    write_toml(tmp_path, 'region = "North"\n')
    assert load_config(tmp_path, environ={"NUBE_REGION": "South"}).region == "South"


def test_env_var_for_an_integer_setting_becomes_an_int(tmp_path: Path) -> None:
    assert load_config(tmp_path, environ={"NUBE_TOKEN_EXPIRATION": "600"}).token_expiration == 600


def test_override_beats_the_env_var(tmp_path: Path) -> None:
    config = load_config(tmp_path, overrides={"port": 9999}, environ={"NUBE_PORT": "8181"})
    assert config.port == 9999


def test_none_override_leaves_the_lower_layer_in_place(tmp_path: Path) -> None:
    config = load_config(tmp_path, overrides={"port": None}, environ={"NUBE_PORT": "8181"})
    assert config.port == 8181


def test_non_integer_for_an_integer_setting_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="setting port must be an integer"):
        load_config(tmp_path, environ={"NUBE_PORT": "eighty"})


def test_nube_data_dir_env_var_chooses_the_data_dir_and_its_toml(tmp_path: Path) -> None:
    write_toml(tmp_path, "s3_port = 9100\n")
    config = load_config(environ={"NUBE_DATA_DIR": str(tmp_path)})
    assert (config.data_dir, config.s3_port) == (tmp_path, 9100)


def test_explicit_data_dir_beats_the_env_var(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={"NUBE_DATA_DIR": str(tmp_path / "elsewhere")})
    assert config.data_dir == tmp_path


def test_data_dir_defaults_to_var_lib_nube() -> None:
    assert Config().data_dir == DEFAULT_DATA_DIR == Path("/var/lib/nube")


def test_process_environment_is_read_when_no_environ_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUBE_BIND", "127.0.0.1")
    assert load_config(tmp_path).bind == "127.0.0.1"


def test_database_keys_and_run_dirs_live_in_the_data_dir(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    assert (config.db_path, config.keys_dir, config.run_dir) == (
        tmp_path / "nube.db",
        tmp_path / "keys",
        tmp_path / "run",
    )


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]
