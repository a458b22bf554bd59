"""JWT bearer tokens: HS256 with a shared secret; RS256 or ES256 with a static
public key or the identity provider's JWKS.

The algorithm is pinned by configuration, never chosen by the token: a token is
verified with HS256 only against ``COUNTERSIGN_JWT_SECRET``, with RS256 only
against ``COUNTERSIGN_JWT_PUBLIC_KEY``, and with RS256 or ES256 against the key
of ``COUNTERSIGN_JWT_JWKS_URL`` whose ``kid`` the token names, and only with
the algorithm that key is for. ``alg: none``, any other algorithm, and the
classic confusion (an HS256 token "signed" with the RSA public key) are refused
before any signature check.

JWKS: the key set is fetched with PyJWT's ``PyJWKClient``, cached for
``COUNTERSIGN_JWT_JWKS_CACHE`` seconds, and fetched again at once when a token
names a ``kid`` the cached set lacks (the provider rotated its keys), at most
once per ``COUNTERSIGN_JWT_JWKS_COOLDOWN`` seconds so that tokens with invented
``kid`` values cannot make us hammer the provider.

Claims: ``sub`` and ``iss`` make the principal id, ``jwt:<iss>:<sub>`` (``-``
for a token without ``iss``), so the same subject from another issuer, or an
API key of that name, is someone else; ``roles`` is a list of role names
(absent means no roles), ``exp`` is required. With a public key or JWKS, ``aud`` and
``iss`` are required and checked (``COUNTERSIGN_JWT_AUDIENCE``,
``COUNTERSIGN_JWT_ISSUER``): an identity provider signs tokens for every
application it serves, and only these two claims say a token is meant for us.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import jwt
from jwt import PyJWKClient, PyJWKClientConnectionError, PyJWKClientError
from pydantic import BaseModel, ConfigDict

from countersign.limits import MAX_ID_LENGTH
from countersign.models import Principal
from countersign.settings import Settings

HS256 = "HS256"
RS256 = "RS256"
ES256 = "ES256"
#: Algorithms accepted from a JWKS, each only with a key made for it.
JWKS_ALGORITHMS = frozenset({RS256, ES256})
MIN_HMAC_SECRET_BYTES = 32
#: A JWT principal's id is ``jwt:<iss>:<sub>`` (``-`` for a token without ``iss``).
JWT_PREFIX = "jwt:"


class JwtConfigError(Exception):
    """JWT verification is configured wrongly (short secret, unreadable key)."""


class JwksUnavailableError(Exception):
    """The identity provider's key set could not be fetched (not the caller's fault)."""


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
    jwks_url: str | None = None
    jwks_cache_seconds: float = 300.0
    jwks_cooldown_seconds: float = 30.0
    jwks_timeout_seconds: float = 5.0
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtConfig:
        """The JWT configuration that ``settings`` give."""
        return cls(
            secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
            public_key=settings.jwt_public_key,
            jwks_url=settings.jwt_jwks_url,
            jwks_cache_seconds=settings.jwt_jwks_cache.total_seconds(),
            jwks_cooldown_seconds=settings.jwt_jwks_cooldown.total_seconds(),
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway_seconds=settings.jwt_leeway.total_seconds(),
        )

    @property
    def enabled(self) -> bool:
        """Whether any JWT key is configured."""
        return bool(self.secret) or bool(self.public_key) or bool(self.jwks_url)

    @property
    def problem(self) -> str | None:
        """What is wrong with this configuration, or ``None`` (checked at start-up too)."""
        if self.public_key and self.jwks_url:
            return "set COUNTERSIGN_JWT_PUBLIC_KEY or COUNTERSIGN_JWT_JWKS_URL, not both"
        if self.jwks_url and urlparse(self.jwks_url).scheme not in ("https", "http"):
            return "COUNTERSIGN_JWT_JWKS_URL must be an https:// (or http://) URL"
        if (self.public_key or self.jwks_url) and not (self.audience and self.issuer):
            return (
                "COUNTERSIGN_JWT_AUDIENCE and COUNTERSIGN_JWT_ISSUER are required with "
                "COUNTERSIGN_JWT_PUBLIC_KEY or COUNTERSIGN_JWT_JWKS_URL: an identity provider "
                "signs tokens for every application it serves, and only 'aud' and 'iss' say "
                "a token is meant for this one"
            )
        return None


class JwtVerifier:
    """Verifies bearer JWTs against the configured keys.

    Args:
        config: Keys and claim checks.

    Raises:
        JwtConfigError: When the HMAC secret is too short, the public key is
            not a PEM RSA public key, the JWKS URL is not http(s), or an
            asymmetric key comes without audience and issuer.
    """

    def __init__(self, config: JwtConfig) -> None:
        self.config = config
        if config.problem:
            raise JwtConfigError(config.problem)
        self._keys: dict[str, Any] = {}
        self._jwks: PyJWKClient | None = None
        if config.jwks_url:
            try:
                self._jwks = PyJWKClient(
                    config.jwks_url,
                    lifespan=config.jwks_cache_seconds,
                    cooldown_duration=config.jwks_cooldown_seconds,
                    timeout=config.jwks_timeout_seconds,
                )
            except PyJWKClientError as exc:
                raise JwtConfigError(f"COUNTERSIGN_JWT_JWKS_URL: {exc}") from exc
        if config.secret:
            if len(config.secret.encode()) < MIN_HMAC_SECRET_BYTES:
                raise JwtConfigError(
                    f"COUNTERSIGN_JWT_SECRET must be at least {MIN_HMAC_SECRET_BYTES} bytes"
                )
            self._keys[HS256] = config.secret
        if config.public_key:
            self._keys[RS256] = _load_pem_public_key(config.public_key)

    @property
    def may_fetch(self) -> bool:
        """Whether :meth:`verify` may fetch keys over the network (call it off the loop)."""
        return self._jwks is not None

    def verify(self, token: str) -> Principal:
        """The principal a token names.

        Raises:
            JwtError: When the token is malformed, unsigned, signed with another
                algorithm or key (or a ``kid`` the provider does not publish),
                expired, for another audience or issuer, or lacks ``sub``/``exp``
                or has malformed ``roles``.
            JwksUnavailableError: When the provider's key set cannot be fetched.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise JwtError("malformed token") from exc
        alg = header.get("alg")
        if isinstance(alg, str) and alg in self._keys:
            key = self._keys[alg]
        elif isinstance(alg, str) and alg in JWKS_ALGORITHMS and self._jwks is not None:
            key = self._jwks_key(alg, header.get("kid"))
        else:
            # Covers "none" and algorithm confusion: only a configured pair
            # (algorithm, key) is ever tried.
            raise JwtError(f"token algorithm {alg!r} is not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
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

    def _jwks_key(self, alg: str, kid: object) -> Any:
        assert self._jwks is not None
        if not isinstance(kid, str) or not kid:
            raise JwtError("token has no 'kid' header")
        try:
            jwk = self._jwks.get_signing_key(kid)
        except PyJWKClientConnectionError as exc:
            raise JwksUnavailableError(f"cannot fetch COUNTERSIGN_JWT_JWKS_URL: {exc}") from exc
        except PyJWKClientError as exc:
            raise JwtError("token 'kid' names no key of the identity provider") from exc
        if jwk.algorithm_name != alg:
            # A key serves the one algorithm it was made for: an ES256 token
            # never verifies against an RSA key, nor RS256 against an EC one.
            raise JwtError(f"token algorithm {alg!r} does not match its key")
        return jwk.key


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
    issuer = claims.get("iss")
    if issuer is not None and not isinstance(issuer, str):
        raise JwtError("token 'iss' claim must be a string")
    # The issuer is part of the identity: the same subject from two issuers
    # (or an API key of that name) is another principal.
    principal_id = f"{JWT_PREFIX}{issuer or '-'}:{sub}"
    if len(principal_id) > MAX_ID_LENGTH:
        raise JwtError(f"token 'iss' and 'sub' claims exceed {MAX_ID_LENGTH} characters together")
    return Principal(id=principal_id, roles=tuple(roles))


def looks_like_jwt(credential: str) -> bool:
    """Whether a bearer credential has the three-part shape of a JWS."""
    return credential.count(".") == 2
