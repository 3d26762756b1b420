"""REST adapter configuration: what is accepted, and errors that name the field, not the value."""

from importlib.metadata import entry_points
from typing import Any

import pytest

from adapters.base import ConfigError
from adapters.egress import EgressGuard
from adapters.registry import GROUP, installed_kinds, load_adapters
from adapters.rest import RestAdapter, RestConfig, parse_config

LOOPBACK = EgressGuard(allowed_networks=["127.0.0.1/32"])  # receivers listen here

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + "A" * 43
URL = "https://agency.example/webhooks"


def raw(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"url": URL, "secrets": [SECRET]}
    return config | changes


def test_minimal_config_gets_defaults() -> None:
    config = parse_config(raw())

    assert config == RestConfig(url=URL, secrets=(SECRET,))
    assert config.timeout_seconds == 10.0
    assert config.oauth2 is None


def test_full_config_parses() -> None:
    oauth2 = {
        "token_url": "https://idp.example/token",
        "client_id": "hub",
        "client_secret": "s",
        "scope": "events:write",
    }
    config = parse_config(
        raw(
            secrets=[SECRET, OTHER_SECRET],
            timeout_seconds=2.5,
            oauth2=oauth2,
            client_cert_file="/etc/hub/client.pem",
            client_key_file="/etc/hub/client.key",
            ca_file="/etc/hub/ca.pem",
        )
    )

    assert config.secrets == (SECRET, OTHER_SECRET)
    assert config.oauth2 is not None
    assert config.oauth2.scope == "events:write"
    assert RestAdapter(egress=LOOPBACK).endpoint(config) == URL


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": "ftp://agency.example/x"}, "`url`"),
        ({"url": "https:///no-host"}, "`url`"),
        ({"url": "https://user:pw@agency.example/x"}, "`url`"),
        ({"url": 5}, "$.url"),
        ({"secrets": []}, "`secrets`"),
        ({"secrets": "whsec_abc"}, "$.secrets"),
        ({"secrets": [SECRET, "not-a-secret"]}, "`secrets[1]`"),
        ({"secrets": ["whsec_c2hvcnQ="]}, "`secrets[0]`"),
        ({"secrets": ["whsec_!!!!not*base64!!!!!!!!!!!!!!!!!!"]}, "`secrets[0]`"),
        ({"timeout_seconds": 0}, "$.timeout_seconds"),
        ({"timeout_seconds": 3600}, "$.timeout_seconds"),
        ({"oauth2": {"token_url": "https://idp/token", "client_id": "hub"}}, "client_secret"),
        (
            {"oauth2": {"token_url": "idp/token", "client_id": "hub", "client_secret": "s"}},
            "`oauth2.token_url`",
        ),
        (
            {"oauth2": {"token_url": "https://idp/t", "client_id": "", "client_secret": "s"}},
            "`oauth2.client_id`",
        ),
        ({"client_key_file": "/etc/hub/client.key"}, "`client_key_file`"),
        ({"ca_file": ""}, "`ca_file`"),
        ({"colour": "blue"}, "`colour`"),
    ],
)
def test_invalid_config_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw(**changes))

    assert field in str(caught.value)


def test_config_errors_never_repeat_a_secret() -> None:
    leaky = "whsec_" + "x" * 10 + "%%%"
    with pytest.raises(ConfigError) as caught:
        parse_config(raw(secrets=[leaky]))

    assert leaky not in str(caught.value)
    assert "x" * 10 not in str(caught.value)


def test_unpadded_base64_secrets_are_accepted() -> None:
    unpadded = SECRET.rstrip("=")

    assert parse_config(raw(secrets=[unpadded])).secrets == (unpadded,)


def test_rest_is_an_installed_adapter_kind() -> None:
    assert "rest" in installed_kinds()
    [entry] = [ep for ep in entry_points(group=GROUP) if ep.name == "rest"]
    adapter = entry.load()(egress=LOOPBACK)

    assert isinstance(adapter, RestAdapter)
    assert adapter.kind == "rest"


async def test_load_adapters_finds_rest() -> None:
    adapters = load_adapters(LOOPBACK)

    assert isinstance(adapters["rest"], RestAdapter)
    for adapter in adapters.values():
        await adapter.aclose()
