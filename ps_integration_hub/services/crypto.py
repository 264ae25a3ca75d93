"""Encryption of connector secrets at rest.

The key comes from the server configuration (``ps_hub_secret_key`` in odoo.conf, or
the ``PS_HUB_SECRET_KEY`` environment variable), never from the database: a stolen
database dump alone does not reveal any credential. Several comma-separated keys may
be given; the first encrypts, all decrypt (key rotation).
"""

import functools
import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

ENV_VAR = "PS_HUB_SECRET_KEY"
CONFIG_OPTION = "ps_hub_secret_key"


class SecretKeyMissing(Exception):
    """No encryption key is configured."""


class SecretUndecryptable(Exception):
    """The stored secret was encrypted with a key that is no longer configured."""


def generate_key() -> str:
    """A new key, to paste into odoo.conf."""
    return Fernet.generate_key().decode()


def configured_keys(config_value: str | None) -> list[str]:
    """Keys from the configuration option, else from the environment."""
    raw = config_value or os.environ.get(ENV_VAR) or ""
    return [k.strip() for k in raw.split(",") if k.strip()]


def _fernet(keys: list[str]) -> MultiFernet:
    if not keys:
        raise SecretKeyMissing(
            f"No encryption key configured: set '{CONFIG_OPTION}' in the Odoo "
            f"configuration file or the {ENV_VAR} environment variable "
            "(generate one with: python3 -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')."
        )
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError as exc:
        raise SecretKeyMissing(
            f"The configured '{CONFIG_OPTION}' is not a valid Fernet key: {exc}"
        ) from None


def encrypt(plain: str, keys: list[str]) -> str:
    """Token of ``plain`` under the first key."""
    return _fernet(keys).encrypt(plain.encode()).decode()


def decrypt(token: str, keys: list[str]) -> str:
    """Plain text of ``token``; raises SecretUndecryptable when no key opens it.

    The inbound route decrypts the signing secret of every delivery: the last tokens opened
    are remembered per process (a changed secret is a new token, a changed key list a new
    cache key), which saves building the ciphers and checking the token's HMAC each time.
    """
    return _decrypt(token, tuple(keys))


@functools.lru_cache(maxsize=64)
def _decrypt(token: str, keys: tuple[str, ...]) -> str:
    try:
        return _fernet(list(keys)).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUndecryptable(
            "A stored secret cannot be decrypted with the configured key(s): "
            "re-enter the secret or restore the previous key."
        ) from None
