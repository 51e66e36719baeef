"""How the stack starts uvicorn: proxy headers only from ECE_TRUSTED_PROXIES."""

import pytest

from ece.settings import Settings
from ops.stack.api import proxy_args, proxy_options


def test_no_trusted_proxy_by_default() -> None:
    settings = Settings()
    assert settings.trusted_proxies == ""
    assert proxy_args(settings) == ["--no-proxy-headers"]
    assert proxy_options(settings)["proxy_headers"] is False


def test_listed_proxies_are_passed_to_uvicorn() -> None:
    settings = Settings(trusted_proxies=" 10.0.0.5, 192.168.0.0/16 ,")
    assert proxy_args(settings) == [
        "--proxy-headers", "--forwarded-allow-ips", "10.0.0.5,192.168.0.0/16"
    ]


@pytest.mark.parametrize("bad", ["*", "proxy.example.com", "10.0.0.300"])
def test_anything_but_addresses_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="ECE_TRUSTED_PROXIES"):
        proxy_args(Settings(trusted_proxies=bad))
