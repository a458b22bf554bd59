"""JWT bearer tokens: HS256 with a shared secret or RS256 with a public key.

The algorithm is pinned by configuration, never chosen by the token: a token is
verified with HS256 only against ``COUNTERSIGN_JWT_SECRET`` and with RS256 only
against ``COUNTERSIGN_JWT_PUBLIC_KEY``. ``alg: none``, any other algorithm, and
the classic confusion (an HS256 token "signed" with the RSA public key) are
refused before any signature check.

Claims: ``sub`` is the principal id, ``roles`` a list of role names (absent
means no roles), ``exp`` is required; ``aud`` and ``iss`` are checked when
configured. PyJWT refuses a token that carries ``aud`` when no audience is
configured, so set ``COUNTERSIGN_JWT_AUDIENCE`` if your issuer adds one.
"""

from __future__ import annotations

from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict

from countersign.models import Principal
from countersign.settings import Settings

HS256 = "HS256"
RS256 = "RS256"
MIN_HMAC_SECRET_BYTES = 32


class JwtConfigError(Exception):
    """JWT verification is configured wrongly (short secret, unreadable key)."""


class JwtError(Exception):
    """A token was refused.

    Attributes:
        reason: Short, credential-free explanation safe to return to the caller.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JwtConfig(BaseModel):
    """What JWT verification needs, taken from the settings (hashable, for caching)."""

    model_config = ConfigDict(frozen=True)

    secret: str | None = None
    public_key: str | None = None
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtConfig:
        """The JWT configuration that ``settings`` give."""
        return cls(
            secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
            public_key=settings.jwt_public_key,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway_seconds=settings.jwt_leeway.total_seconds(),
        )

    @property
    def enabled(self) -> bool:
        """Whether any JWT key is configured."""
        return bool(self.secret) or bool(self.public_key)


class JwtVerifier:
    """Verifies bearer JWTs against the configured keys.

    Args:
        config: Keys and claim checks.

    Raises:
        JwtConfigError: When the HMAC secret is too short or the public key is
            not a PEM RSA public key.
    """

    def __init__(self, config: JwtConfig) -> None:
        self.config = config
        self._keys: dict[str, Any] = {}
        if config.secret:
            if len(config.secret.encode()) < MIN_HMAC_SECRET_BYTES:
                raise JwtConfigError(
                    f"COUNTERSIGN_JWT_SECRET must be at least {MIN_HMAC_SECRET_BYTES} bytes"
                )
            self._keys[HS256] = config.secret
        if config.public_key:
            self._keys[RS256] = _load_pem_public_key(config.public_key)

    def verify(self, token: str) -> Principal:
        """The principal a token names.

        Raises:
            JwtError: When the token is malformed, unsigned, signed with another
                algorithm or key, expired, for another audience or issuer, or
                lacks ``sub``/``exp`` or has malformed ``roles``.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise JwtError("malformed token") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._keys:
            # Covers "none" and algorithm confusion: only a configured pair
            # (algorithm, key) is ever tried.
            raise JwtError(f"token algorithm {alg!r} is not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=self._keys[alg],
                algorithms=[alg],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "sub"], "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise JwtError("token expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise JwtError("token signature is invalid") from exc
        except jwt.InvalidAudienceError as exc:
            raise JwtError("token audience is not accepted") from exc
        except jwt.InvalidIssuerError as exc:
            raise JwtError("token issuer is not accepted") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise JwtError(f"token lacks the {exc.claim!r} claim") from exc
        except jwt.ImmatureSignatureError as exc:
            raise JwtError("token is not valid yet") from exc
        except jwt.InvalidTokenError as exc:
            raise JwtError("invalid token") from exc
        return _principal(claims)


def _load_pem_public_key(pem: str) -> Any:
    # Imported here: only RS256 deployments need the cryptography backend.
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise JwtConfigError("COUNTERSIGN_JWT_PUBLIC_KEY is not a PEM public key") from exc
    if not isinstance(key, RSAPublicKey):
        raise JwtConfigError("COUNTERSIGN_JWT_PUBLIC_KEY must be an RSA public key")
    return key


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise JwtError("token 'sub' claim must be a non-empty string")
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise JwtError("token 'roles' claim must be a list of strings")
    return Principal(id=sub, roles=tuple(roles))


def looks_like_jwt(credential: str) -> bool:
    """Whether a bearer credential has the three-part shape of a JWS."""
    return credential.count(".") == 2
