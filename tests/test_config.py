"""Node configuration: a dev node, whose dev accounts anyone at /signin may use, listens on a
loopback address unless explicitly told otherwise; Secure session cookies on request."""

from __future__ import annotations

import pytest

from cairn.config import NodeConfig, is_loopback
from cairn.core.errors import ConfigError


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"])
def test_a_dev_node_may_listen_on_loopback(host: str) -> None:
    assert is_loopback(host)
    assert NodeConfig.from_env(dev=True, host=host).host == host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "cairn.example"])
def test_a_dev_node_on_a_public_address_is_refused_unless_told_loudly(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="--unsafe-dev-on-public-address") as refused:
        NodeConfig.from_env(dev=True, host=host)
    assert f"must not listen on {host}" in refused.value.message
    assert "as any dev account, the operator included" in refused.value.message
    allowed = NodeConfig.from_env(dev=True, host=host, unsafe_dev_on_public_address=True)
    assert allowed.dev and allowed.host == host
    assert NodeConfig.from_env(host=host).host == host  # a node without dev accounts may


def test_secure_cookies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert NodeConfig.from_env().secure_cookies is False
    monkeypatch.setenv("CAIRN_SECURE_COOKIES", "1")
    assert NodeConfig.from_env().secure_cookies is True
