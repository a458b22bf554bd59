"""JWT verification: pinned algorithms, required claims, audience and issuer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from countersign.models import Principal
from countersign.security.jwt_auth import JwtConfig, JwtConfigError, JwtError, JwtVerifier
from countersign.settings import Settings

SECRET = "s" * 40
AUD = "countersign"
ISS = "https://idp.example"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "sub": "alice",
        "roles": ["approver", "viewer"],
        "exp": int(time.time()) + 300,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_verify_hs256_returns_principal() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET))

    assert verifier.verify(hs256()) == Principal(id="jwt:-:alice", roles=("approver", "viewer"))


def rs256_config(key: rsa.RSAPrivateKey) -> JwtConfig:
    return JwtConfig(public_key=public_pem(key), audience=AUD, issuer=ISS)


def test_verify_rs256_returns_principal(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = JwtVerifier(rs256_config(rsa_key))
    token = jwt.encode(claims(roles=["admin"], aud=AUD, iss=ISS), rsa_key, algorithm="RS256")

    assert verifier.verify(token) == Principal(id=f"jwt:{ISS}:alice", roles=("admin",))


def test_verify_rs256_without_aud_or_iss_claim_raises(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = JwtVerifier(rs256_config(rsa_key))

    with pytest.raises(JwtError, match="lacks the 'aud' claim"):
        verifier.verify(jwt.encode(claims(iss=ISS), rsa_key, algorithm="RS256"))
    with pytest.raises(JwtError, match="lacks the 'iss' claim"):
        verifier.verify(jwt.encode(claims(aud=AUD), rsa_key, algorithm="RS256"))


@pytest.mark.parametrize(("audience", "issuer"), [(None, ISS), (AUD, None), (None, None)])
def test_rs256_without_audience_or_issuer_setting_refused_at_start(
    rsa_key: rsa.RSAPrivateKey, audience: str | None, issuer: str | None
) -> None:
    values = {"jwt_public_key": public_pem(rsa_key), "jwt_audience": audience, "jwt_issuer": issuer}

    with pytest.raises(ValueError, match="COUNTERSIGN_JWT_AUDIENCE and COUNTERSIGN_JWT_ISSUER"):
        Settings.model_validate(values)
    with pytest.raises(JwtConfigError, match="are required with"):
        JwtVerifier(JwtConfig(public_key=public_pem(rsa_key), audience=audience, issuer=issuer))


def test_verify_forged_signature_raises() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET))
    forged = jwt.encode(claims(roles=["admin"]), "f" * 40, algorithm="HS256")

    with pytest.raises(JwtError, match="signature is invalid"):
        verifier.verify(forged)


def test_verify_tampered_payload_raises() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET))
    header, _, signature = hs256().split(".")
    payload = b64(json.dumps(claims(roles=["admin"])).encode())

    with pytest.raises(JwtError, match="signature is invalid"):
        verifier.verify(f"{header}.{payload}.{signature}")


def test_verify_expired_raises() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET, leeway_seconds=5))

    with pytest.raises(JwtError, match="token expired"):
        verifier.verify(hs256(exp=int(time.time()) - 60))


def test_verify_expired_within_leeway_accepted() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET, leeway_seconds=120))

    assert verifier.verify(hs256(exp=int(time.time()) - 60)).id == "jwt:-:alice"


def test_verify_without_exp_raises() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET))
    token = jwt.encode({"sub": "alice", "roles": []}, SECRET, algorithm="HS256")

    with pytest.raises(JwtError, match="lacks the 'exp' claim"):
        verifier.verify(token)


def test_verify_alg_none_raises() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET))
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(roles=["admin"])).encode())

    with pytest.raises(JwtError, match="algorithm 'none' is not accepted"):
        verifier.verify(f"{header}.{payload}.")


def test_verify_hs256_signed_with_public_key_raises(rsa_key: rsa.RSAPrivateKey) -> None:
    # Algorithm confusion: HMAC "signed" with the RSA public key the server holds.
    pem = public_pem(rsa_key)
    verifier = JwtVerifier(JwtConfig(public_key=pem, audience=AUD, issuer=ISS))
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(roles=["admin"])).encode())
    signature = hmac.new(pem.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()

    with pytest.raises(JwtError, match="algorithm 'HS256' is not accepted"):
        verifier.verify(f"{header}.{payload}.{b64(signature)}")


def test_verify_wrong_audience_raises() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET, audience="countersign"))

    with pytest.raises(JwtError, match="audience is not accepted"):
        verifier.verify(hs256(aud="another-service"))
    assert verifier.verify(hs256(aud="countersign")).id == "jwt:-:alice"


def test_verify_wrong_issuer_raises() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET, issuer="https://idp.example"))

    with pytest.raises(JwtError, match="issuer is not accepted"):
        verifier.verify(hs256(iss="https://evil.example"))
    assert verifier.verify(hs256(iss="https://idp.example")).id == "jwt:https://idp.example:alice"


def test_verify_malformed_roles_raises() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET))

    with pytest.raises(JwtError, match="'roles' claim must be a list of strings"):
        verifier.verify(hs256(roles="admin"))


def test_verifier_short_secret_raises() -> None:
    with pytest.raises(JwtConfigError, match="at least 32 bytes"):
        JwtVerifier(JwtConfig(secret="short"))


def test_verifier_non_pem_public_key_raises() -> None:
    with pytest.raises(JwtConfigError, match="not a PEM public key"):
        JwtVerifier(JwtConfig(public_key="not a key", audience=AUD, issuer=ISS))
