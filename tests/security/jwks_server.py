"""An identity provider's JWKS endpoint on loopback, with keys the test generates.

The test changes ``keys`` to rotate them, sets ``down`` to make the endpoint
fail, and reads ``fetches`` to see how often the API asked.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "countersign-api"
ISSUER = "https://idp.test"


@dataclass(frozen=True)
class SigningKey:
    """A private key the identity provider signs with, and its ``kid``."""

    kid: str
    alg: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        """The public half, as the JWKS publishes it."""
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            data: dict[str, Any] = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": self.alg}

    def token(self, sub: str, roles: list[str], **claims: Any) -> str:
        """A token for this API (audience and issuer set unless overridden)."""
        payload = {
            "sub": sub,
            "roles": roles,
            "exp": int(time.time()) + 300,
            "aud": AUDIENCE,
            "iss": ISSUER,
            **claims,
        }
        headers = {"kid": self.kid}
        return jwt.encode(payload, self.private, algorithm=self.alg, headers=headers)


@dataclass
class Jwks:
    """What the endpoint serves, and what it saw."""

    url: str = ""
    keys: list[SigningKey] = field(default_factory=list)
    down: bool = False
    fetches: int = 0


@contextmanager
def jwks_server(*keys: SigningKey) -> Iterator[Jwks]:
    """Serve a JWKS with ``keys`` on 127.0.0.1 for the duration of the block."""
    state = Jwks(keys=list(keys))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            if state.down:
                self.send_error(503)
                return
            body = json.dumps({"keys": [k.jwk() for k in state.keys]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
