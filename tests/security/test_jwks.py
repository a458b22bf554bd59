"""JWTs from an identity provider's JWKS: a local JWKS endpoint, keys rotated under it.

The verifier is PyJWT's ``PyJWKClient`` behind our pinning; these tests run it
against a real HTTP endpoint on loopback, then the real API over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import jwt
import pytest

from countersign.models import Principal
from countersign.security.jwt_auth import (
    JwksUnavailableError,
    JwtConfig,
    JwtConfigError,
    JwtError,
    JwtVerifier,
)
from countersign.settings import Settings
from tests.api.conftest import assert_error
from tests.security.conftest import SecureFactory
from tests.security.jwks_server import AUDIENCE, ISSUER, Jwks, SigningKey, jwks_server

RSA_1 = SigningKey.rsa("rsa-2026-01")
RSA_2 = SigningKey.rsa("rsa-2026-02")
EC_1 = SigningKey.ec("ec-2026-01")


@pytest.fixture
def idp() -> Iterator[Jwks]:
    with jwks_server(RSA_1, EC_1) as served:
        yield served


def verifier(idp: Jwks, *, cooldown: float = 0.0) -> JwtVerifier:
    config = JwtConfig(
        jwks_url=idp.url, audience=AUDIENCE, issuer=ISSUER, jwks_cooldown_seconds=cooldown
    )
    return JwtVerifier(config)


def test_rs256_and_es256_tokens_verify_with_one_fetch(idp: Jwks) -> None:
    check = verifier(idp)

    assert check.verify(RSA_1.token("alice", ["approver"])) == Principal(
        id=f"jwt:{ISSUER}:alice", roles=("approver",)
    )
    assert check.verify(EC_1.token("bob", ["viewer"])).id == f"jwt:{ISSUER}:bob"
    assert check.verify(RSA_1.token("carol", [])).id == f"jwt:{ISSUER}:carol"
    assert idp.fetches == 1


def test_rotated_key_accepted_after_refresh(idp: Jwks) -> None:
    check = verifier(idp)
    assert check.verify(RSA_1.token("alice", ["approver"])).id == f"jwt:{ISSUER}:alice"
    new_token = RSA_2.token("alice", ["approver"])
    with pytest.raises(JwtError, match="names no key"):
        check.verify(new_token)
    fetches_before_rotation = idp.fetches

    idp.keys = [RSA_2, EC_1]

    assert check.verify(new_token).id == f"jwt:{ISSUER}:alice"
    assert idp.fetches == fetches_before_rotation + 1
    # The retired key's tokens stop working once the provider drops it.
    with pytest.raises(JwtError, match="names no key"):
        check.verify(RSA_1.token("alice", ["approver"]))


def test_unknown_kid_refused_without_hammering_the_provider(idp: Jwks) -> None:
    check = verifier(idp, cooldown=30)
    assert check.verify(RSA_1.token("alice", [])).id == f"jwt:{ISSUER}:alice"

    for n in range(20):
        invented = SigningKey(f"invented-{n}", "RS256", RSA_1.private)
        with pytest.raises(JwtError, match="'kid' names no key of the identity provider"):
            check.verify(invented.token("mallory", ["admin"]))

    assert idp.fetches == 1


def test_token_whose_kid_names_a_key_of_another_algorithm_refused(idp: Jwks) -> None:
    # An RS256 token that names the EC key: a key serves only its own algorithm.
    confused = SigningKey(EC_1.kid, "RS256", RSA_1.private)

    with pytest.raises(JwtError, match="does not match its key"):
        verifier(idp).verify(confused.token("mallory", ["admin"]))


def test_token_without_kid_refused(idp: Jwks) -> None:
    claims = {"sub": "mallory", "exp": 2**31, "aud": AUDIENCE, "iss": ISSUER}
    token = jwt.encode(claims, RSA_1.private, algorithm="RS256")

    with pytest.raises(JwtError, match="no 'kid' header"):
        verifier(idp).verify(token)


def test_token_for_another_audience_or_issuer_refused(idp: Jwks) -> None:
    check = verifier(idp)

    with pytest.raises(JwtError, match="audience is not accepted"):
        check.verify(RSA_1.token("alice", [], aud="another-app"))
    with pytest.raises(JwtError, match="issuer is not accepted"):
        check.verify(RSA_1.token("alice", [], iss="https://evil.test"))


def test_hs256_token_refused_when_only_jwks_is_configured(idp: Jwks) -> None:
    claims = {"sub": "mallory", "exp": 2**31, "aud": AUDIENCE, "iss": ISSUER}
    token = jwt.encode(claims, "k" * 40, algorithm="HS256", headers={"kid": RSA_1.kid})

    with pytest.raises(JwtError, match="algorithm 'HS256' is not accepted"):
        verifier(idp).verify(token)


def test_provider_down_is_unavailable_not_a_bad_token(idp: Jwks) -> None:
    idp.down = True

    with pytest.raises(JwksUnavailableError, match="cannot fetch COUNTERSIGN_JWT_JWKS_URL"):
        verifier(idp).verify(RSA_1.token("alice", []))


def test_jwks_url_must_be_http_refused_at_start() -> None:
    values = {"jwt_jwks_url": "file:///etc/passwd", "jwt_audience": AUDIENCE, "jwt_issuer": ISSUER}

    with pytest.raises(ValueError, match="must be an https:// \\(or http://\\) URL"):
        Settings.model_validate(values)
    with pytest.raises(JwtConfigError, match="COUNTERSIGN_JWT_JWKS_URL"):
        JwtVerifier(JwtConfig(jwks_url="file:///etc/passwd", audience=AUDIENCE, issuer=ISSUER))


def test_jwks_without_audience_and_issuer_refused_at_start(idp: Jwks) -> None:
    with pytest.raises(ValueError, match="COUNTERSIGN_JWT_AUDIENCE and COUNTERSIGN_JWT_ISSUER"):
        Settings.model_validate({"jwt_jwks_url": idp.url})


async def test_api_accepts_jwks_tokens_rotation_and_refuses_unknown_kid(
    secure_api: SecureFactory, idp: Jwks
) -> None:
    settings = {
        "jwt_jwks_url": idp.url,
        "jwt_audience": AUDIENCE,
        "jwt_issuer": ISSUER,
        "jwt_jwks_cooldown": timedelta(0),
    }
    async with secure_api(**settings) as sec:
        rita = sec.remember(RSA_1.token("rita", ["viewer"]))
        before = await sec.http.get("/agents", headers={"Authorization": f"Bearer {rita}"})
        rotated = sec.remember(RSA_2.token("rita", ["viewer"]))
        too_early = await sec.http.get("/agents", headers={"Authorization": f"Bearer {rotated}"})
        idp.keys = [RSA_1, RSA_2, EC_1]
        after = await sec.http.get("/agents", headers={"Authorization": f"Bearer {rotated}"})
        ec = sec.remember(EC_1.token("vera", ["viewer"]))
        by_ec = await sec.http.get("/agents", headers={"Authorization": f"Bearer {ec}"})
        idp.down = True
        unknown = sec.remember(SigningKey.rsa("never-published").token("rita", ["admin"]))
        unavailable = await sec.http.get("/agents", headers={"Authorization": f"Bearer {unknown}"})

    assert before.status_code == 200, before.text
    message = assert_error(too_early, 401, "unauthenticated")
    assert message == "token 'kid' names no key of the identity provider"
    assert too_early.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert after.status_code == 200, after.text
    assert by_ec.status_code == 200, by_ec.text
    assert_error(unavailable, 503, "jwks_unavailable")
