"""Who is calling: JWT verification, roles, and the rule that a user acts on its own data only."""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt

from tidings.config import MIN_SECRET_BYTES, Settings
from tidings.errors import bad_input, forbidden
from tidings.inputs import storable

SECRET_FILE_NAME = "jwt-secret"
MAX_SUBJECT_LENGTH = 200
VERIFIED_TOKENS_KEPT = 4096  # verified tokens remembered per process (a signature check costs more than a request)


class Role(StrEnum):
    USER = "user"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller: `subject` is the JWT `sub`; a service may act for any user."""

    subject: str
    role: Role
    expires_at: datetime | None = None

    @property
    def is_service(self) -> bool:
        return self.role is Role.SERVICE

    def target_user(self, user_id: str | None) -> str:
        """The user an operation acts on: a user's own id, or the one a service names."""
        if self.is_service:
            if not user_id:
                raise bad_input("A service token must pass userId", argument="userId")
            check_user_id(user_id)
            return user_id
        if user_id is not None and user_id != self.subject:
            raise forbidden("A user token may only act on its own notifications")
        return self.subject

    def require_service(self) -> None:
        if not self.is_service:
            raise forbidden("Only a service token may do this")


class InvalidToken(Exception):
    """The token is missing, malformed, expired or not signed by us: `reason` says which, never quoting the token."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


# Why PyJWT refused a token, in words of our own: its messages are not ours to promise never quote the token.
# Subclasses first (InvalidSignatureError is a DecodeError).
_REFUSALS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.ImmatureSignatureError, "not valid yet"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.MissingRequiredClaimError, "a required claim is missing"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.DecodeError, "malformed"),
)


def _refusal(error: jwt.PyJWTError) -> InvalidToken:
    if isinstance(error, jwt.MissingRequiredClaimError) and error.claim in ("sub", "exp", "iss", "aud"):
        return InvalidToken(f"the {error.claim} claim is missing")
    for kind, reason in _REFUSALS:
        if isinstance(error, kind):
            return InvalidToken(reason, expired=kind is jwt.ExpiredSignatureError)
    return InvalidToken(f"invalid ({type(error).__name__})")


class NoSigningKey(Exception):
    """`tidings token` has no key that the server would verify with: the message says what to set."""


def check_user_id(user_id: str) -> None:
    if not user_id.strip() or len(user_id) > MAX_SUBJECT_LENGTH:
        raise bad_input(f"userId must be 1 to {MAX_SUBJECT_LENGTH} characters", argument="userId")
    if not storable(user_id):
        raise bad_input("userId must not contain NUL characters", argument="userId")


class InvalidSecretFile(Exception):
    """The data directory's secret file is empty or too short to sign with: the message says what to do."""


def read_secret(data_dir: Path) -> str | None:
    """The signing secret the server made in `data_dir`, if it made one there; a short or empty one is refused."""
    path = data_dir.resolve() / SECRET_FILE_NAME
    try:
        secret = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise InvalidSecretFile(
            f"{path} cannot be read ({error.strerror}): fix TIDINGS_DATA_DIR, or set TIDINGS_JWT_SECRET"
        ) from None
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise InvalidSecretFile(
            f"{path} holds {'no' if not secret else 'a too short'} secret (at least {MIN_SECRET_BYTES} bytes): "
            "delete it and start the server to make a new one (tokens signed with the old one stop working), "
            "or set TIDINGS_JWT_SECRET"
        )
    return secret


def load_or_create_secret(data_dir: Path) -> str:
    """The embedded default's signing secret: made once by the server, kept in the data directory with mode 0600.

    Written whole to a temporary file, then linked to its name: two workers starting at once agree on one secret
    (the link fails for the second), and neither can read a file that exists but is not written yet.
    """
    path = data_dir / SECRET_FILE_NAME
    secret = read_secret(data_dir)
    if secret is not None:
        return secret
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd, temporary = tempfile.mkstemp(dir=data_dir, prefix=f".{SECRET_FILE_NAME}-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secret)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:  # another worker linked its secret first: use that one
            existing = read_secret(data_dir)
            if existing is None:
                raise InvalidSecretFile(f"{path} disappeared as it was made: start the server again") from None
            return existing
    finally:
        os.unlink(temporary)
    return secret


class TokenVerifier:
    """Verifies (and, with a signing key, mints) tokens: algorithm pinned, issuer, audience and leeway applied.

    HS algorithms use the shared secret. RS/ES algorithms verify with a PEM public key or a JWKS file (keys chosen
    by `kid`), for deployments whose tokens come from an identity provider.
    """

    def __init__(self, settings: Settings, secret: str | None = None) -> None:
        self._algorithm = settings.jwt_algorithm
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway
        self._service_claim = settings.jwt_service_claim
        self._service_value = settings.jwt_service_value
        required = ["sub", "exp"] + (["iss"] if self._issuer else []) + (["aud"] if self._audience else [])
        self._options: Any = {"require": required, "verify_aud": self._audience is not None}  # jwt's Options
        self._jwks: dict[str, Any] = {}
        self._verified: OrderedDict[str, Identity] = OrderedDict()
        self._verify_key: Any = secret
        self._signing_key: Any = secret
        if settings.jwt_public_key_file is not None:
            self._verify_key = settings.jwt_public_key_file.read_text()
        if settings.jwt_jwks_file is not None:
            key_set = jwt.PyJWKSet.from_json(settings.jwt_jwks_file.read_text())
            self._jwks = {key.key_id or "": key for key in key_set.keys}
        if settings.jwt_private_key_file is not None:
            self._signing_key = settings.jwt_private_key_file.read_text()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """The server's verifier; the embedded default's secret is made on first use."""
        if not settings.jwt_algorithm.startswith("HS"):
            return cls(settings)
        return cls(settings, settings.jwt_secret or load_or_create_secret(settings.data_dir))

    @classmethod
    def signer(cls, settings: Settings) -> tuple[TokenVerifier, str]:
        """For `tidings token`: a verifier that mints with the server's key, and where that key came from.

        Never makes a secret: one made here would sign tokens that the server, with a secret of its own, rejects.
        """
        if not settings.jwt_algorithm.startswith("HS"):
            if settings.jwt_private_key_file is None:
                raise NoSigningKey(
                    f"TIDINGS_JWT_ALGORITHM={settings.jwt_algorithm} tokens are signed by your identity provider; "
                    "to mint one in development, set TIDINGS_JWT_PRIVATE_KEY_FILE"
                )
            return cls(settings), f"signed with the private key {settings.jwt_private_key_file.resolve()}"
        if settings.jwt_secret:
            return cls(settings, settings.jwt_secret), "signed with TIDINGS_JWT_SECRET"
        data_dir = settings.data_dir.resolve()
        secret = read_secret(data_dir)
        if secret is None:
            raise NoSigningKey(
                f"no signing secret: TIDINGS_JWT_SECRET is unset and {data_dir / SECRET_FILE_NAME} does not exist "
                "(tidings serve makes it at its first start); run this where the server runs, or set "
                "TIDINGS_DATA_DIR or TIDINGS_JWT_SECRET as the server has them"
            )
        return cls(settings, secret), f"signed with the secret of the data dir {data_dir}"

    def _key_for(self, token: str) -> Any:
        if not self._jwks:
            return self._verify_key
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None and len(self._jwks) == 1:
            return next(iter(self._jwks.values())).key
        key = self._jwks.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("no key for its kid")
        return key.key

    def verify(self, token: str) -> Identity:
        """The identity of a valid token; a token verified before is taken from a bounded cache until it expires.

        Only tokens that passed every check are kept, keyed by their whole text, so a hit is the same token: what
        could change since (time) is checked again, the expiry with the same leeway.
        """
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at is not None and cached.expires_at.timestamp() + self._leeway > time.time():
                self._verified.move_to_end(token)
                return cached
            del self._verified[token]
        identity = self._verify(token)
        self._verified[token] = identity
        if len(self._verified) > VERIFIED_TOKENS_KEPT:
            self._verified.popitem(last=False)
        return identity

    def _verify(self, token: str) -> Identity:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key_for(token),
                algorithms=[self._algorithm],  # pinned: never "none", never a switch between key types
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options=self._options,
            )
        except jwt.PyJWTError as error:
            raise _refusal(error) from error
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_LENGTH:
            raise InvalidToken("sub is not a non-empty string")
        if not storable(subject):
            raise InvalidToken("sub is not a user id")
        role = Role.SERVICE if self._grants_service(claims.get(self._service_claim)) else Role.USER
        try:
            expires_at = datetime.fromtimestamp(claims["exp"], UTC)
        except (OverflowError, ValueError, OSError):
            raise InvalidToken("exp is out of range") from None
        return Identity(subject=subject, role=role, expires_at=expires_at)

    def _grants_service(self, value: object) -> bool:
        """The service claim's value names the service value: equal, in a list, or in a space-separated scope."""
        if isinstance(value, str):
            return value == self._service_value or self._service_value in value.split(" ")
        if isinstance(value, list):
            return self._service_value in value
        return False

    def verify_header(self, value: str | None) -> Identity:
        """Accept `Bearer <jwt>` (prefix optional, any case)."""
        if not value:
            raise InvalidToken("no token")
        token = value.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        return self.verify(token)

    def mint(self, subject: str, *, service: bool = False, ttl: timedelta = timedelta(days=1)) -> str:
        if self._signing_key is None:
            raise NoSigningKey("minting RS/ES tokens needs TIDINGS_JWT_PRIVATE_KEY_FILE")
        now = datetime.now(UTC)
        claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + ttl}
        if service:
            claims[self._service_claim] = self._service_value
        if self._issuer:
            claims["iss"] = self._issuer
        if self._audience:
            claims["aud"] = self._audience
        return jwt.encode(claims, self._signing_key, algorithm=self._algorithm)


def authorization_from_params(params: object) -> str | None:
    """The `authorization` key of a connection_init payload, matched case-insensitively.

    Also found one level down under `headers`, where some clients nest what they would send as HTTP headers.
    """
    if not isinstance(params, dict):
        return None
    headers = params.get("headers")
    for source in (params, headers if isinstance(headers, dict) else {}):
        for key, value in source.items():
            if isinstance(key, str) and key.lower() == "authorization" and isinstance(value, str):
                return value
    return None
