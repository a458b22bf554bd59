"""``api.auth.authenticate`` through a FastAPI app: keys, JWT, dev mode, roles."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from countersign.security.api_keys import ApiKeyStore
from countersign.settings import Settings
from tests.api.conftest import eventually
from tests.security.apps import client_for, make_app

JWT_SECRET = "j" * 40


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.model_validate(
        {
            "auth_disabled": False,
            "api_keys_file": tmp_path / "api_keys.json",
            "jwt_secret": JWT_SECRET,
            "jwt_audience": "countersign",
        }
    )


@pytest.fixture
def store(settings: Settings) -> ApiKeyStore:
    return ApiKeyStore(settings.api_keys_file)


def token(sub: str = "carol", roles: list[str] | None = None, aud: str = "countersign") -> str:
    payload = {"sub": sub, "roles": roles or ["viewer"], "aud": aud, "exp": int(time.time()) + 60}
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


async def test_authenticate_bearer_api_key_returns_principal(
    settings: Settings, store: ApiKeyStore
) -> None:
    key = store.create("alice", ["approver"]).key
    async with client_for(make_app(settings), authorization=f"Bearer {key}") as http:
        response = await http.get("/whoami")

    assert response.status_code == 200
    assert response.json()["principal"] == {"id": "key:alice", "roles": ["approver"]}


async def test_authenticate_x_api_key_returns_principal(
    settings: Settings, store: ApiKeyStore
) -> None:
    key = store.create("bob", ["requester"]).key
    async with client_for(make_app(settings), **{"x-api-key": key}) as http:
        response = await http.get("/whoami")

    assert response.status_code == 200
    assert response.json()["principal"] == {"id": "key:bob", "roles": ["requester"]}


async def test_authenticate_jwt_returns_principal(settings: Settings) -> None:
    async with client_for(make_app(settings), authorization=f"Bearer {token()}") as http:
        response = await http.get("/whoami")

    assert response.status_code == 200
    assert response.json()["principal"] == {"id": "jwt:-:carol", "roles": ["viewer"]}


async def test_authenticate_missing_credentials_401(settings: Settings) -> None:
    async with client_for(make_app(settings)) as http:
        response = await http.get("/whoami")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthenticated"
    assert "credentials required" in response.json()["detail"]


async def test_authenticate_unknown_key_401_without_echo(
    settings: Settings, store: ApiKeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.create("alice", ["approver"])
    wrong = "csk_0123456789abcdef_" + "W" * 43
    async with client_for(make_app(settings), **{"x-api-key": wrong}) as http:
        response = await http.get("/whoami")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json() == {"detail": "unknown or revoked API key", "code": "unauthenticated"}
    assert wrong not in response.text
    assert wrong not in caplog.text


async def test_authenticate_revoked_key_401(settings: Settings, store: ApiKeyStore) -> None:
    created = store.create("alice", ["approver"])
    async with client_for(make_app(settings), authorization=f"Bearer {created.key}") as http:
        assert (await http.get("/whoami")).status_code == 200
        store.revoke(created.record.key_id)
        # The API's store looks at the file at most once a second.
        response = await eventually(lambda: http.get("/whoami"), lambda r: r.status_code == 401)

    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


async def test_authenticate_expired_jwt_401(settings: Settings) -> None:
    expired = jwt.encode(
        {"sub": "carol", "aud": "countersign", "exp": int(time.time()) - 3600},
        JWT_SECRET,
        algorithm="HS256",
    )
    async with client_for(make_app(settings), authorization=f"Bearer {expired}") as http:
        response = await http.get("/whoami")

    assert response.status_code == 401
    assert response.json() == {"detail": "token expired", "code": "unauthenticated"}


async def test_authenticate_wrong_audience_401(settings: Settings) -> None:
    other = token(aud="someone-else")
    async with client_for(make_app(settings), authorization=f"Bearer {other}") as http:
        response = await http.get("/whoami")

    assert response.status_code == 401
    assert response.json()["detail"] == "token audience is not accepted"


async def test_authenticate_basic_scheme_401(settings: Settings) -> None:
    async with client_for(make_app(settings), authorization="Basic YWxpY2U6cHc=") as http:
        response = await http.get("/whoami")

    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


async def test_authenticate_two_credentials_401(settings: Settings, store: ApiKeyStore) -> None:
    key = store.create("alice", ["approver"]).key
    headers = {"x-api-key": key, "authorization": f"Bearer {token()}"}
    async with client_for(make_app(settings), **headers) as http:
        response = await http.get("/whoami")

    assert response.status_code == 401
    assert "not both" in response.json()["detail"]


async def test_authenticate_malformed_key_file_500(settings: Settings) -> None:
    settings.api_keys_file.write_text("[]")
    key = "csk_0123456789abcdef_" + "W" * 43
    async with client_for(make_app(settings), **{"x-api-key": key}) as http:
        response = await http.get("/whoami")

    assert response.status_code == 500
    assert response.json()["code"] == "auth_misconfigured"


async def test_authenticate_dev_mode_trusts_user_id(tmp_path: Path) -> None:
    settings = Settings.model_validate({"auth_disabled": True, "api_keys_file": tmp_path / "k"})
    async with client_for(make_app(settings)) as http:
        response = await http.get("/whoami", params={"user_id": "dave"})

    assert response.status_code == 200
    assert response.json()["principal"]["id"] == "dev:dave"
    assert "admin" in response.json()["principal"]["roles"]


async def test_require_roles_missing_role_403(settings: Settings) -> None:
    async with client_for(make_app(settings), authorization=f"Bearer {token()}") as http:
        response = await http.post("/decide")

    assert response.status_code == 403
    assert response.json() == {
        "detail": "this needs one of the roles: approver",
        "code": "forbidden",
    }


async def test_require_roles_admin_passes(settings: Settings) -> None:
    admin = token(roles=["admin"])
    async with client_for(make_app(settings), authorization=f"Bearer {admin}") as http:
        response = await http.post("/decide")

    assert response.status_code == 200
    assert response.json()["principal"]["roles"] == ["admin"]
