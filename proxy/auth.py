"""API keys: only SHA-256 digests are kept in memory, and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from . import errors
from .settings import ApiKey


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's stable id (never the key itself), its app and its policy."""

    key_id: str
    app: str
    policy: str
    admin: bool = False


class KeyStore:
    def __init__(self, keys: list[ApiKey], admin_key: str | None = None) -> None:
        self._by_digest: dict[str, Principal] = {}
        #: key id -> (requests, tokens) per minute, for the keys that have a limit
        self.limits: dict[str, tuple[int | None, int | None]] = {}
        for k in keys:
            d = k.digest()
            p = self._by_digest[d] = Principal(k.id or f"key-{d[:12]}", k.app, k.policy)
            if k.rpm_limit or k.tpm_limit:
                self.limits[p.key_id] = (k.rpm_limit, k.tpm_limit)
        self._admin_digest = hashlib.sha256(admin_key.encode()).hexdigest() if admin_key else None

    def __len__(self) -> int:
        return len(self._by_digest)

    @staticmethod
    def _bearer(header: str | None) -> str:
        if not header:
            raise errors.Unauthorized("Missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise errors.Unauthorized("Malformed Authorization header: expected 'Bearer <key>'")
        return token

    def authenticate(self, header: str | None) -> Principal:
        digest = hashlib.sha256(self._bearer(header).encode()).hexdigest()
        found: Principal | None = None
        for known, principal in self._by_digest.items():  # every digest compared: timing-flat
            if hmac.compare_digest(known, digest):
                found = principal
        if found is None:
            raise errors.Unauthorized("Incorrect API key provided")
        return found

    def authenticate_admin(self, header: str | None) -> Principal:
        digest = hashlib.sha256(self._bearer(header).encode()).hexdigest()
        if self._admin_digest is None or not hmac.compare_digest(digest, self._admin_digest):
            raise errors.Unauthorized("Admin key required")
        return Principal("admin", "admin", "default", admin=True)
