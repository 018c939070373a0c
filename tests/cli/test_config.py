"""valyent_cli.config: precedence, the file format, atomic and locked writes, the project file, token safety."""

from __future__ import annotations

import errno
import os
import stat
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from valyent_cli import config
from valyent_cli.config import ConfigError

ENV_VARS = (
    config.ENV_TOKEN,
    config.ENV_PROFILE,
    config.ENV_ENDPOINT,
    config.ENV_NAMESPACE,
    config.ENV_FLEET,
    config.ENV_REGION,
    config.ENV_INITD,
    config.ENV_ALLOW_HTTP,
)


@pytest.fixture()
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated config dir (not yet created) and a working directory with no project file above it."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    directory = tmp_path / "config"
    monkeypatch.setenv(config.ENV_CONFIG_DIR, str(directory))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return directory


def write_config(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    path.write_text(text)
    return path


# -- precedence ----------------------------------------------------------------------------------------------

LEVELS = {
    # key: (flag kwarg, env var, allowed in the project file, default)
    "endpoint": ("endpoint", config.ENV_ENDPOINT, False, config.DEFAULT_ENDPOINT),
    "namespace": ("namespace", config.ENV_NAMESPACE, True, None),
    "fleet": ("fleet", config.ENV_FLEET, True, None),
    "token": ("token", config.ENV_TOKEN, False, None),
}


def _value(key: str, level: str) -> str:
    if key == "endpoint":
        return f"https://{level}.example/v1"
    return f"{key}-{level}"


@pytest.mark.parametrize("key", list(LEVELS))
def test_each_level_wins_over_the_next(cfg: Path, monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    kwarg, env_name, in_project, default = LEVELS[key]
    write_config(cfg, f'active = "p"\n[profiles.p]\n{key} = "{_value(key, "profile")}"\n')
    if in_project:
        Path("valyent.toml").write_text(f'{key} = "{_value(key, "project")}"\n')
    monkeypatch.setenv(env_name, _value(key, "environment"))
    flags = {kwarg: _value(key, "flag")}

    expected = [("flag", flags), ("environment", {})]
    for source, kwargs in expected:
        s = config.load_settings(**kwargs)
        assert getattr(s, key) == _value(key, source)
        assert s.sources[key] == source
    monkeypatch.delenv(env_name)
    if in_project:
        s = config.load_settings()
        assert (getattr(s, key), s.sources[key]) == (_value(key, "project"), "project file")
        Path("valyent.toml").unlink()
    s = config.load_settings()
    assert (getattr(s, key), s.sources[key]) == (_value(key, "profile"), "profile")
    (cfg / "config.toml").unlink()
    s = config.load_settings()
    assert (getattr(s, key), s.sources[key]) == (default, "default")


def test_profile_choice_flag_over_environment_over_active(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(
        cfg,
        'active = "a"\n[profiles.a]\nfleet = "fa"\n[profiles.b]\nfleet = "fb"\n[profiles.c]\nfleet = "fc"\n',
    )
    assert (config.load_settings().profile, config.load_settings().sources["profile"]) == ("a", "profile")
    monkeypatch.setenv(config.ENV_PROFILE, "b")
    s = config.load_settings()
    assert (s.profile, s.fleet, s.sources["profile"]) == ("b", "fb", "environment")
    s = config.load_settings(profile="c")
    assert (s.profile, s.fleet, s.sources["profile"]) == ("c", "fc", "flag")


def test_an_unknown_profile_is_an_error_naming_the_known_ones(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(cfg, '[profiles.a]\n[profiles.b]\n')
    with pytest.raises(ConfigError, match=r"no profile named 'zz' \(from --profile\); profiles: a, b"):
        config.load_settings(profile="zz")
    monkeypatch.setenv(config.ENV_PROFILE, "yy")
    with pytest.raises(ConfigError, match="VALYENT_PROFILE"):
        config.load_settings()


def test_no_file_at_all_gives_the_defaults(cfg: Path) -> None:
    s = config.load_settings()
    assert s.profile is None and s.token is None
    assert s.endpoint == config.DEFAULT_ENDPOINT
    assert s.initd_endpoint == config.DEFAULT_INITD_ENDPOINT
    assert s.timeout == 30.0 and s.region is None and s.allow_http is False and s.is_local is False
    assert s.project == {} and s.project_path is None
    assert set(s.sources.values()) == {"default"}
    assert not cfg.exists(), "reading must never create the config directory"


def test_empty_environment_variables_count_as_unset(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(cfg, 'active = "a"\n[profiles.a]\nnamespace = "ns"\n')
    monkeypatch.setenv(config.ENV_NAMESPACE, "")
    monkeypatch.setenv(config.ENV_PROFILE, "")
    s = config.load_settings()
    assert (s.profile, s.namespace) == ("a", "ns")


def test_region_initd_and_allow_http_from_environment(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.ENV_REGION, "eu-2")
    monkeypatch.setenv(config.ENV_INITD, "http://127.0.0.1:9/initd/{machine_id}")
    monkeypatch.setenv(config.ENV_ALLOW_HTTP, "1")
    s = config.load_settings()
    assert (s.region, s.initd_endpoint, s.allow_http) == ("eu-2", "http://127.0.0.1:9/initd/{machine_id}", True)
    assert s.sources["initd_endpoint"] == "environment"


def test_bad_values_name_their_source(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="--endpoint"):
        config.load_settings(endpoint="ftp://x")
    monkeypatch.setenv(config.ENV_ENDPOINT, "not a url")
    with pytest.raises(ConfigError, match="VALYENT_API_URL"):
        config.load_settings()
    monkeypatch.delenv(config.ENV_ENDPOINT)
    path = write_config(cfg, 'active = "a"\n\n[profiles.a]\nnamespace = "x"\ntimeout = "soon"\n')
    with pytest.raises(ConfigError) as info:
        config.load_settings()
    assert info.value.path == path and info.value.line == 5
    assert f"{path}, line 5" in str(info.value)


def test_the_token_from_the_environment_is_stripped_and_never_in_repr(cfg: Path, monkeypatch) -> None:
    monkeypatch.setenv(config.ENV_TOKEN, "  secret-token-value-1234\n")
    s = config.load_settings()
    assert s.token == "secret-token-value-1234"
    assert "secret" not in repr(s)


# -- the file: format, modes, atomicity, locking -------------------------------------------------------------


def test_written_file_is_0600_in_a_0700_directory(cfg: Path) -> None:
    config.create_profile("a", {"token": "t0k3n-abcdefgh"})
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o700
    assert stat.S_IMODE((cfg / "config.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE((cfg / "config.toml.lock").stat().st_mode) == 0o600


def test_a_rewrite_tightens_a_loose_mode_and_keeps_unknown_keys(cfg: Path) -> None:
    path = write_config(
        cfg,
        'theme = "dark"\nactive = "a"\n[profiles.a]\nendpoint = "https://a.example"\nfuture_key = [1, 2]\n'
        "[profiles.a.nested]\nx = 1\n[plugins.foo]\nenabled = true\n",
    )
    path.chmod(0o644)
    config.set_profile_value("a", "fleet", "web")
    doc = tomllib.loads(path.read_text())
    assert doc["theme"] == "dark" and doc["plugins"] == {"foo": {"enabled": True}}
    assert doc["profiles"]["a"] == {
        "endpoint": "https://a.example",
        "future_key": [1, 2],
        "nested": {"x": 1},
        "fleet": "web",
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_format_starts_with_active_then_profile_tables(cfg: Path) -> None:
    config.create_profile("prod", {"endpoint": "https://console.valyent.cloud/v1", "namespace": "acme"})
    config.set_profile_value("prod", "timeout", "12.5")
    config.set_profile_value("prod", "allow_http", "no")
    text = (cfg / "config.toml").read_text()
    assert text.startswith('active = "prod"\n')
    assert tomllib.loads(text)["profiles"]["prod"] == {
        "endpoint": "https://console.valyent.cloud/v1",
        "namespace": "acme",
        "timeout": 12.5,
        "allow_http": False,
    }


@pytest.mark.parametrize(
    "text, line",
    [
        ('active = "a"\n[profiles.a]\nendpoint = "https://x\n', 3),
        ('active = "a"\n\n\n[profiles.a\n', 4),
        ("active = 'a'\nactive = 'b'\n", 2),
    ],
)
def test_a_broken_file_names_file_and_line_and_is_never_overwritten(cfg: Path, text: str, line: int) -> None:
    path = write_config(cfg, text)
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        config.load_settings()
    assert info.value.path == path and info.value.line == line
    assert f"{path}, line {line}: invalid TOML" in str(info.value)
    for change in (
        lambda: config.create_profile("new", {}),
        lambda: config.save_local_profile("http://127.0.0.1:1/v1", "tok", "http://127.0.0.1:1/initd/{machine_id}"),
        lambda: config.use_profile("a"),
    ):
        with pytest.raises(ConfigError):
            change()
    assert path.read_bytes() == before


def test_a_file_that_is_not_utf8_is_reported_with_its_line(cfg: Path) -> None:
    path = cfg / "config.toml"
    cfg.mkdir()
    path.write_bytes(b'active = "a"\n# caf\xe9\n')
    with pytest.raises(ConfigError) as info:
        config.load_settings()
    assert info.value.line == 2 and "UTF-8" in str(info.value)


def test_a_wrong_shape_is_reported(cfg: Path) -> None:
    write_config(cfg, 'profiles = "nope"\n')
    with pytest.raises(ConfigError, match="line 1: `profiles` must be a table"):
        config.load_settings()


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(cfg: Path, monkeypatch) -> None:
    config.create_profile("a", {"namespace": "one"})
    path = cfg / "config.toml"
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(config.toml.os, "fsync", disk_full)  # the module that writes config.toml
    with pytest.raises(ConfigError, match="No space left on device.*previous file is unchanged") as info:
        config.set_profile_value("a", "namespace", "two")
    assert info.value.path == path
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in cfg.iterdir()) == ["config.toml", "config.toml.lock"]


def test_an_unwritable_directory_is_a_clear_error(cfg: Path, tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(config.ENV_CONFIG_DIR, str(blocker / "sub"))
    with pytest.raises(ConfigError, match="cannot create the configuration directory"):
        config.create_profile("a", {})


def test_concurrent_writers_in_threads_all_land(cfg: Path) -> None:
    import threading

    config.create_profile("base", {})
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            config.create_profile(f"t{i}", {"fleet": f"f{i}"})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(config.list_profiles()[1]) == 21


# -- profile operations --------------------------------------------------------------------------------------


def test_first_profile_becomes_active_later_ones_only_with_activate(cfg: Path) -> None:
    assert config.create_profile("a", {}) is True
    assert config.create_profile("b", {}) is False
    assert config.create_profile("c", {}, activate=True) is True
    assert config.list_profiles()[0] == "c"
    with pytest.raises(ConfigError, match="already exists"):
        config.create_profile("a", {})
    assert config.delete_profile("c") is True
    assert config.list_profiles()[0] is None


def test_set_profile_value_validates_and_coerces(cfg: Path) -> None:
    config.create_profile("a", {})
    config.set_profile_value("a", "timeout", "7")
    config.set_profile_value("a", "allow_http", "yes")
    config.set_profile_value("a", "endpoint", "https://x.example/v1/")
    assert config.get_profile("a") == {"timeout": 7.0, "allow_http": True, "endpoint": "https://x.example/v1"}
    with pytest.raises(ConfigError, match="unknown key 'colour'; valid keys: endpoint, token"):
        config.set_profile_value("a", "colour", "x")
    with pytest.raises(ConfigError, match="must contain \\{machine_id\\}"):
        config.set_profile_value("a", "initd_endpoint", "https://initd.example")
    with pytest.raises(ConfigError, match="no profile named 'zz'"):
        config.set_profile_value("zz", "fleet", "x")
    config.set_profile_value("a", "timeout", None)
    assert "timeout" not in config.get_profile("a")


def test_save_local_profile_returns_the_previous_active_and_marks_local(cfg: Path) -> None:
    config.create_profile("prod", {"token": "prod-token-123456", "region": "gra-1"})
    previous = config.save_local_profile(
        "http://127.0.0.1:8421/v1", "local-token-abcdef", "http://127.0.0.1:8421/initd/{machine_id}"
    )
    assert previous == "prod"
    s = config.load_settings()
    assert (s.profile, s.is_local, s.fleet, s.token) == ("local", True, "default", "local-token-abcdef")
    assert config.get_profile("prod")["token"] == "prod-token-123456"
    # A second start refreshes the token, keeps keys the user added, and reports "local" as the previous one.
    config.set_profile_value("local", "region", "lab")
    assert config.save_local_profile("http://127.0.0.1:9/v1", "tok2-abcdefgh", "http://127.0.0.1:9/i/{machine_id}") == "local"
    assert config.get_profile("local")["region"] == "lab"
    config.set_active(previous)
    assert config.load_settings().is_local is False
    assert config.save_local_profile("http://127.0.0.1:9/v1", "t-abcdefgh", "http://127.0.0.1:9/i/{machine_id}", activate=False) == "prod"
    assert config.load_settings().profile == "prod"


def test_a_profile_with_local_true_is_local(cfg: Path) -> None:
    write_config(cfg, 'active = "lab"\n[profiles.lab]\nlocal = true\n')
    assert config.load_settings().is_local is True


# -- the project file ----------------------------------------------------------------------------------------


def test_project_file_is_found_in_a_parent_and_gives_machine_defaults(cfg: Path, tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "work" / "valyent.toml"
    project.write_text(
        'fleet = "web"\nregion = "gra-1"\n[machine]\nimage = "nginx:1.27"\ncpus = 2\nmemory = 512\n'
        'cpu_kind = "eco"\nrestart = "on-failure"\nmax_retries = 3\ncmd = "nginx -g \'daemon off;\'"\n'
        "auto_destroy = true\n[machine.env]\nPORT = 8080\nDEBUG = false\n"
    )
    deep = tmp_path / "work" / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    s = config.load_settings()
    assert s.project_path == project
    assert (s.fleet, s.region, s.sources["fleet"]) == ("web", "gra-1", "project file")
    assert s.project["machine"]["image"] == "nginx:1.27"
    d = s.machine_defaults
    assert d["env"] == ["PORT=8080", "DEBUG=false"]
    assert d["cmd"] == ["nginx", "-g", "daemon off;"]
    assert (d["cpus"], d["memory"], d["restart"], d["auto_destroy"]) == (2, 512, "on-failure", True)


@pytest.mark.parametrize(
    "text, message, line",
    [
        ('fleet = "a"\nendpoint = "https://evil.example"\n', "`endpoint` is not allowed in a project file", 2),
        ('token = "x"\n', "`token` is not allowed", 1),
        ('flet = "a"\n', "unknown key 'flet'; valid keys: fleet, region, namespace, machine", 1),
        ('[machine]\nimage = "x"\ncpus = 0\n', "[machine] cpus must be integer >= 1", 3),
        ('[machine]\nmemroy = 5\n', "unknown key 'memroy' in [machine]; valid keys: image", 2),
        ('[machine]\nrestart = "sometimes"\n', "restart must be one of always, on-failure, never", 2),
        ('[machine]\nenv = ["NOEQUALS"]\n', "env must be list of KEY=VALUE", 2),
        ("fleet = [\n", "invalid TOML", None),
    ],
)
def test_a_bad_project_file_names_file_line_and_valid_keys(cfg: Path, text: str, message: str, line) -> None:
    Path("valyent.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load_settings()
    assert message in str(info.value)
    assert info.value.path == Path("valyent.toml").resolve()
    if line is not None:
        assert info.value.line == line


# -- token safety --------------------------------------------------------------------------------------------


def _settings(endpoint: str, *, token: str | None = "tok-abcdefgh", allow_http: bool = False, initd=None):
    return config.Settings(
        profile=None,
        endpoint=endpoint,
        token=token,
        namespace=None,
        fleet=None,
        region=None,
        initd_endpoint=initd or config.DEFAULT_INITD_ENDPOINT,
        timeout=30.0,
        allow_http=allow_http,
        is_local=False,
        sources={"endpoint": "flag"},
    )


@pytest.mark.parametrize(
    "endpoint",
    ["https://api.example/v1", "http://127.0.0.1:8421/v1", "http://localhost:3000", "http://[::1]:80/v1", "http://127.8.0.1"],
)
def test_https_and_loopback_are_safe(endpoint: str) -> None:
    config.check_transport_safety(_settings(endpoint))


@pytest.mark.parametrize("endpoint", ["http://ravel.internal:3000", "http://10.0.0.5/v1", "http://localhost.evil.com"])
def test_plain_http_elsewhere_is_refused_unless_allowed(endpoint: str) -> None:
    with pytest.raises(config.InsecureTransportError, match="refusing to send the API token over plain http") as info:
        config.check_transport_safety(_settings(endpoint))
    assert "allow_http" in str(info.value) and "tok-abcdefgh" not in str(info.value)
    assert isinstance(info.value, ConfigError)
    config.check_transport_safety(_settings(endpoint, allow_http=True))
    config.check_transport_safety(_settings(endpoint, token=None))  # nothing secret to send


def test_the_initd_host_is_checked_too() -> None:
    with pytest.raises(config.InsecureTransportError, match="initd_endpoint"):
        config.check_transport_safety(_settings("https://api.example", initd="http://{machine_id}.example"))


# -- the Go CLI's file, masking ------------------------------------------------------------------------------


def test_parse_go_config_reads_flat_keys_quotes_and_comments() -> None:
    text = '---\n# written by valyent-go\nkey: "vly_abc:def#ghi"\nnamespace: acme # team\nnested:\n  key: no\nother: \'it\'\'s\'\n'
    assert config.parse_go_config(text) == {"key": "vly_abc:def#ghi", "namespace": "acme", "nested": "", "other": "it's"}


@hsettings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=60))
def test_parse_go_config_reads_any_token_as_a_yaml_encoder_quotes_it(token: str) -> None:
    double = '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'
    single = "'" + token.replace("'", "''") + "'"
    assert config.parse_go_config(f"key: {double}\n")["key"] == token
    assert config.parse_go_config(f"key: {single}\n")["key"] == token


def test_import_go_config_makes_a_profile(cfg: Path, tmp_path: Path) -> None:
    go = tmp_path / "config.yaml"
    go.write_text("key: vly_imported_token_1234\nnamespace: acme\n")
    assert config.import_go_config(go, "old") == ("old", True)
    assert config.get_profile("old") == {"token": "vly_imported_token_1234", "namespace": "acme"}
    go.write_text("namespace: acme\n")
    with pytest.raises(ConfigError, match="no `key`"):
        config.import_go_config(go, "again")
    with pytest.raises(ConfigError, match="no such file"):
        config.import_go_config(tmp_path / "missing.yaml")


def test_mask_and_fingerprint_never_reveal_the_token() -> None:
    assert config.mask_token("vly_0123456789abcdef") == "vly_…cdef"
    assert config.mask_token("0123456789abcdefghij") == "…ghij"
    assert config.mask_token("short") == "…"
    fp = config.fingerprint("vly_0123456789abcdef")
    assert len(fp) == 8 and all(c in "0123456789abcdef" for c in fp)


@hsettings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["namespace", "fleet", "region"]),
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_categories=("Cs", "Cc", "Zs")), min_size=1, max_size=30),
    )
)
def test_profile_values_round_trip_through_the_file(tmp_path_factory, values) -> None:
    directory = tmp_path_factory.mktemp("rt")
    store = config.ConfigStore(directory / "config.toml")
    with store.edit() as doc:
        doc.setdefault("profiles", {})["p"] = dict(values)
    assert store.profiles()["p"] == values
