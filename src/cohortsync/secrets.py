"""Secrets at rest: the data import keys of saved authentications.

Keys are encrypted with Fernet under one local key file,
``$COHORTSYNC_HOME/secret.key``. The file is created atomically with mode 0600
and refused when its mode is wider: a key file others can read protects
nothing, so we would rather stop than pretend.

A key file is created only for a home with no saved authentication. When
authentications exist and the file is missing (a home copied without it, a
deleted file), a fresh key could decrypt none of them and would make the loss
permanent once something is encrypted with it, so the file is never silently
re-created: the error says how to restore it or re-create the authentications.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from cohortsync.errors import ConfigError

if TYPE_CHECKING:  # loaded when a key is used: an export with --data-import-key needs none
    from cryptography.fernet import MultiFernet

KEY_FILE_NAME = "secret.key"


def key_file_path(home: Path) -> Path:
    """Where the local secret key lives inside a home directory."""
    return home / KEY_FILE_NAME


def _create_key_file(path: Path) -> None:
    """Write a fresh Fernet key with mode 0600, atomically (no world-readable window)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    from cryptography.fernet import Fernet

    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, Fernet.generate_key())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        # link() refuses to replace: if another process won the race, keep its key.
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)


def missing_key_error(home: Path) -> ConfigError:
    """The key file is gone while saved authentications were encrypted with it."""
    path = key_file_path(home)
    return ConfigError(
        f"the secret key file {path} is missing, so the saved authentications cannot be decrypted",
        hint=f"restore the file from a backup to {path} (then 'chmod 600 {path}'), or re-create "
        "each authentication: 'cohortsync auth delete NAME' then 'cohortsync auth create NAME' "
        "('cohortsync auth list' names them)",
    )


def load_fernet(home: Path, *, create: bool = False) -> MultiFernet:
    """The Fernet cipher of this home.

    The key file holds one Fernet key a line. It holds one, but while
    :func:`cohortsync.catalog.auths.rekey_auths` re-encrypts the saved keys it
    holds the new key first and the older ones after it: the cipher encrypts
    with the first and decrypts with any, so every saved key stays readable
    whenever the re-keying stops.

    Args:
        create: make the key file when it is missing. Only for a home with no
            saved authentication (the caller checks): otherwise a new key
            would hide that every saved key became unreadable.

    Raises:
        ConfigError: the key file is missing (and ``create`` is false), is
            readable by group or others, or is not a key.
    """
    path = key_file_path(home)
    if not path.exists():
        if not create:
            raise missing_key_error(home)
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"the secret key file {path} has mode {mode:04o}, readable by others",
            hint=f"run 'chmod 600 {path}' and try again",
        )
    from cryptography.fernet import Fernet, MultiFernet

    try:
        keys = path.read_bytes().split()
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as error:
        raise ConfigError(
            f"the secret key file {path} does not hold a Fernet key",
            hint="restore it from a backup; saved authentications cannot be read without it",
        ) from error


def add_new_key(home: Path) -> bytes:
    """Put a fresh key first in the key file, the current ones after it; returns the new key.

    From then on new secrets are encrypted with it, and old ones still decrypt.
    """
    from cryptography.fernet import Fernet

    load_fernet(home)  # the current file must be a readable, private key file
    path = key_file_path(home)
    new = Fernet.generate_key()
    _replace_key_file(path, [new, *path.read_bytes().split()])
    return new


def keep_only_key(home: Path, key: bytes) -> None:
    """Make ``key`` the key file's only key (the end of a re-keying)."""
    _replace_key_file(key_file_path(home), [key])


def _replace_key_file(path: Path, keys: list[bytes]) -> None:
    """Replace the key file with ``keys``, one a line: a private temporary file, renamed."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, b"\n".join(keys) + b"\n")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


def encrypt(home: Path, secret: str, *, create_key: bool = False) -> bytes:
    """Encrypt ``secret`` with the home's key (see :func:`load_fernet` for ``create_key``)."""
    return load_fernet(home, create=create_key).encrypt(secret.encode())


def decrypt(home: Path, token: bytes) -> str:
    """Decrypt a token written by :func:`encrypt`.

    Raises:
        ConfigError: the token was written under another key file.
    """
    from cryptography.fernet import InvalidToken

    try:
        return load_fernet(home).decrypt(token).decode()
    except InvalidToken as error:
        raise ConfigError(
            f"a saved data import key cannot be decrypted with {key_file_path(home)}",
            hint="the key file was replaced: restore the original from a backup, or run "
            "'cohortsync auth delete NAME' then 'cohortsync auth create NAME' for each "
            "authentication",
        ) from error


def mask(secret: str, *, visible: int = 4) -> str:
    """``****abcd``: enough to recognise a key, never enough to use it."""
    if len(secret) <= visible * 2:
        return "****"
    return "****" + secret[-visible:]


# Below this length a key is also a common word fragment ("k" in "network"):
# it is masked only where it stands alone, so messages stay readable.
SHORT_SECRET = 8


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced by its mask."""
    if not secret:
        return text
    if len(secret) >= SHORT_SECRET:
        return text.replace(secret, mask(secret))
    standalone = re.compile(rf"(?<![\w-]){re.escape(secret)}(?![\w-])")
    return standalone.sub(mask(secret), text)


def mask_prefix(secret: str, *, visible: int = 4) -> str:
    """``abcd…``: the masked form used in printed request bodies."""
    if len(secret) <= visible * 2:
        return "…"
    return secret[:visible] + "…"


DATA_IMPORT_KEY_ENV = "COHORTSYNC_DATA_IMPORT_KEY"


def read_data_import_key(value: str | None) -> str:
    """The data import key from an option value, stdin or the environment.

    ``-`` reads the key from stdin and ``None`` falls back to
    ``COHORTSYNC_DATA_IMPORT_KEY``, so a key need not sit in shell history.

    Raises:
        ConfigError: no key anywhere, or an empty one.
    """
    import sys

    if value == "-":
        key = sys.stdin.readline().strip()
        source = "stdin"
    elif value is None:
        key = os.environ.get(DATA_IMPORT_KEY_ENV, "").strip()
        source = DATA_IMPORT_KEY_ENV
        if not key:
            raise ConfigError(
                "no data import key given",
                hint=f"pass --data-import-key KEY, --data-import-key - (stdin) or set "
                f"{DATA_IMPORT_KEY_ENV}",
            )
    else:
        key = value.strip()
        source = "--data-import-key"
    if not key:
        raise ConfigError(f"the data import key from {source} is empty")
    return key
