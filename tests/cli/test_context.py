"""`AppContext`: reading it has no side effect; only `connect()` may start the sandbox or save a token."""

from __future__ import annotations

import inspect
from functools import cached_property

import pytest

from support.env import free_port
from valyent_cli.cli.context import AppContext
from valyent_cli.local import daemon
from valyent_cli.local.autostart import is_listening


@pytest.fixture()
def down_local_profile(tmp_path, monkeypatch):
    """The `local` profile active, pointing at a port where no sandbox runs."""
    for name in ("VALYENT_API_TOKEN", "VALYENT_ENDPOINT", "VALYENT_PROFILE", "VALYENT_NAMESPACE", "VALYENT_FLEET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VALYENT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("VALYENT_LOCAL_DIR", str(tmp_path / "sbx"))
    monkeypatch.setenv("VALYENT_LOCAL_DRIVER", "process")
    from valyent_cli.config import save_local_profile

    port = free_port()
    save_local_profile(f"http://127.0.0.1:{port}", "vl_" + "a" * 40, f"http://127.0.0.1:{port}/initd/{{machine_id}}")
    yield port, tmp_path / "config" / "config.toml"
    daemon.stop(tmp_path / "sbx")  # whatever a failing run started


def test_reading_the_context_starts_nothing_and_writes_nothing(down_local_profile):
    port, config_file = down_local_profile
    before = config_file.read_bytes()
    ctx = AppContext()
    properties = [name for name, value in inspect.getmembers(AppContext)
                  if isinstance(value, (property, cached_property))]
    assert "settings" in properties
    for name in properties:
        try:
            getattr(ctx, name)
        except Exception:  # noqa: BLE001 - an error is fine; an effect is not
            pass
    settings = ctx.settings
    assert settings.is_local and settings.token == "vl_" + "a" * 40
    assert not is_listening("127.0.0.1", port), "reading the context started the sandbox"
    assert config_file.read_bytes() == before, "reading the context wrote the config"
    ctx.output()
    assert not is_listening("127.0.0.1", port)


def test_connect_is_the_step_that_starts_the_sandbox(down_local_profile):
    port, config_file = down_local_profile
    ctx = AppContext()
    first = ctx.settings
    client = ctx.connect()
    try:
        assert is_listening("127.0.0.1", port)
        assert ctx.connect() is client  # made once per run
        # a new data dir means a new token: the profile is saved with it, and the settings object read before the
        # step is left as it was (the context holds new settings)
        assert first.token == "vl_" + "a" * 40
        assert ctx.settings.token != first.token and ctx.settings.token in config_file.read_text()
        assert client.machines.list("default") == []
    finally:
        client.close()
