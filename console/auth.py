"""Who is asking: the console's bearer tokens (signed JWTs, checked with PyJWT) and what each caller sees.

A token is accepted when its signature verifies with a configured key, under the
one algorithm that key is for (never ``none``; the algorithm comes from the key,
not from the token's header, so an RSA public key can never be used as an HMAC
secret), its issuer and audience are the configured ones, it has not expired, it
is not used before its ``nbf`` or ``iat`` (with ``leeway_s`` for clock skew), its
lifetime (``exp - iat``) is at most ``max_lifetime_s``, and it carries ``sub``
(the agent id) and ``role`` (``agent`` or ``supervisor``).

Keys come from a PEM public key or certificate, a shared-secret file (HMAC, at
least 32 bytes, readable by its owner only) or a JWKS document (a file; the
token's ``kid`` picks the key). Without any of them the console runs in
development mode on a development key (Ed25519) that ``coach console token``
mints with; the key is created on first use, readable by its owner only, under
the user's state directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from pydantic import ValidationError

from schemas.console import ConsoleClaims, ConsoleRole, TeamFile

#: Issuer and audience of development tokens.
DEV_ISSUER = "coachflow-console-dev"
DEV_AUDIENCE = "coachflow-console"
DEV_ALGORITHM = "EdDSA"
#: Development tokens last one shift unless ``--ttl`` says otherwise.
DEFAULT_TTL_S = 8 * 3600
#: Tokens that claim to live longer than this are refused (a leaked token's window).
MAX_LIFETIME_S = 24 * 3600
LEEWAY_S = 30.0
#: Longer Authorization values are refused before any parsing.
MAX_TOKEN_CHARS = 8192
MIN_SECRET_BYTES = 32
_JWS_DOTS = 2  # header.payload.signature

_RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_HMAC = ("HS256", "HS384", "HS512")
_EC_CURVES = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512", "secp256k1": "ES256K"}


#: PyJWT's refusals -> the console's reasons, most specific first.
_REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidAlgorithmError, "algorithm_not_allowed"),
    (jwt.PyJWTError, "malformed"),
)


class TokenRefused(Exception):
    """The token does not prove who the caller is (HTTP 401); ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Forbidden(Exception):
    """The caller is known but may not do this (HTTP 403); ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class KeyConfigError(ValueError):
    """A key, JWKS or team file the console cannot use (a start-up error)."""


@dataclass(frozen=True)
class VerificationKey:
    """One key and the one algorithm it verifies."""

    key: Any
    algorithm: str
    kid: str | None = None


def _family(key: Any) -> tuple[str, ...]:
    """The algorithms a key object can verify."""
    if isinstance(key, rsa.RSAPublicKey):
        return _RSA
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_CURVES.get(key.curve.name)
        if alg is None:
            raise KeyConfigError(f"unsupported elliptic curve {key.curve.name}")
        return (alg,)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return ("EdDSA",)
    if isinstance(key, bytes):
        return _HMAC
    raise KeyConfigError(f"unsupported key type {type(key).__name__}")


def _pick(key: Any, algorithm: str | None) -> str:
    family = _family(key)
    if algorithm is None:
        return family[0]
    if algorithm not in family:
        raise KeyConfigError(f"algorithm {algorithm} does not fit this key (it fits {', '.join(family)})")
    return algorithm


def _owner_only(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyConfigError(f"{path} is readable by others (mode {stat.filemode(mode)}): chmod 600 it")


def load_public_key(path: Path, algorithm: str | None = None) -> VerificationKey:
    """A PEM public key or X.509 certificate; ``algorithm`` defaults to the key type's first."""
    data = Path(path).read_bytes()
    if b"PRIVATE KEY" in data:
        raise KeyConfigError(f"{path} holds a private key: give the console the public key only")
    try:
        if b"BEGIN CERTIFICATE" in data:
            key: Any = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyConfigError(f"{path} is not a PEM public key or certificate: {exc}") from None
    return VerificationKey(key, _pick(key, algorithm))


def load_secret(path: Path, algorithm: str | None = None) -> VerificationKey:
    """A shared HMAC secret: the file's bytes without a trailing newline, owner-readable only."""
    path = Path(path)
    _owner_only(path)
    secret = path.read_bytes().rstrip(b"\r\n")
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyConfigError(f"{path}: an HMAC secret needs at least {MIN_SECRET_BYTES} bytes")
    return VerificationKey(secret, _pick(secret, algorithm))


def load_jwks(path: Path) -> list[VerificationKey]:
    """The signing keys of a JWKS document; each verifies its ``alg`` (or its type's default)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        entries = document["keys"]
        if not isinstance(entries, list):
            raise TypeError("keys is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyConfigError(f"{path} is not a JWKS document: {exc}") from None
    keys = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") == "oct":
            raise KeyConfigError(f"{path}: symmetric keys do not belong in a JWKS; use a secret file")
        try:
            jwk = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            raise KeyConfigError(f"{path}: key {entry.get('kid')!r} is unusable: {exc}") from None
        keys.append(VerificationKey(jwk.key, _pick(jwk.key, jwk.algorithm_name), jwk.key_id))
    if not keys:
        raise KeyConfigError(f"{path} holds no signing keys")
    kids = [k.kid for k in keys]
    if len(keys) > 1 and (None in kids or len(set(kids)) != len(kids)):
        raise KeyConfigError(f"{path}: with several keys, each needs its own kid")
    return keys


class Verifier:
    """Checks a bearer token and returns its claims, or raises :class:`TokenRefused`."""

    def __init__(self, keys: list[VerificationKey], issuer: str, audience: str, *,
                 leeway_s: float = LEEWAY_S, max_lifetime_s: float = MAX_LIFETIME_S) -> None:
        if not keys:
            raise KeyConfigError("no verification keys")
        if not issuer or not audience:
            raise KeyConfigError("an issuer and an audience are required")
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self.max_lifetime_s = max_lifetime_s

    def _key(self, header: Mapping[str, Any]) -> VerificationKey:
        kid = header.get("kid")
        if kid is None and len(self.keys) == 1:
            return self.keys[0]
        for key in self.keys:
            if key.kid is not None and key.kid == kid:
                return key
        raise TokenRefused("unknown_key", "no configured key has this token's kid")

    def verify(self, token: str) -> ConsoleClaims:
        if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != _JWS_DOTS:
            raise TokenRefused("malformed", "not a compact JWS")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRefused("malformed", "unreadable header") from None
        key = self._key(header)
        if header.get("alg") != key.algorithm:
            raise TokenRefused("algorithm_not_allowed", f"this key verifies {key.algorithm} only")
        try:
            payload = jwt.decode(
                token, key.key, algorithms=[key.algorithm], issuer=self.issuer, audience=self.audience,
                leeway=self.leeway_s, options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            reason = next(reason for kind, reason in _REFUSALS if isinstance(exc, kind))
            detail = exc.claim if isinstance(exc, jwt.MissingRequiredClaimError) else ""
            raise TokenRefused(reason, detail) from None
        if "role" not in payload:
            raise TokenRefused("missing_claim", "role")
        try:
            claims = ConsoleClaims.model_validate(payload)
        except ValidationError as exc:
            fields = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
            raise TokenRefused("bad_claim", fields) from None
        if claims.exp - claims.iat > self.max_lifetime_s:
            raise TokenRefused("lifetime_too_long", f"tokens may live {self.max_lifetime_s:.0f} s at most")
        return claims


# -- who sees what -------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """A verified caller: their id, role, the agents whose conversations they see, and expiry."""

    agent_id: str
    role: ConsoleRole
    agents: frozenset[str]
    expires_at: float

    @property
    def may_judge(self) -> bool:
        """Only an agent gives verdicts, on their own suggestions (a supervisor's view is read-only)."""
        return self.role == "agent"

    def sees(self, agent_id: str | None) -> bool:
        return agent_id is not None and agent_id in self.agents


def load_teams(path: Path | None) -> dict[str, frozenset[str]]:
    """The team file (YAML or JSON): supervisor id -> agent ids; none: no supervisor has a team."""
    if path is None:
        return {}
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        teams = TeamFile.model_validate(document).root
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise KeyConfigError(f"{path} is not a team file (supervisor id: [agent ids]): {exc}") from None
    return {supervisor: frozenset(agents) for supervisor, agents in teams.items()}


def principal(claims: ConsoleClaims, teams: Mapping[str, frozenset[str]]) -> Principal:
    """What a verified caller sees: an agent their own conversations, a supervisor their team."""
    if claims.role == "agent":
        agents = frozenset({claims.sub})
    else:
        agents = teams.get(claims.sub, frozenset())
        if not agents:
            raise Forbidden("no_team", "this supervisor has no team in the console's team file")
    return Principal(claims.sub, claims.role, agents, float(claims.exp))


# -- development key and tokens ---------------------------------------------------


def dev_key_path() -> Path:
    """``COACH_CONSOLE_DEV_KEY``, else ``$XDG_STATE_HOME/coachflow/console-dev-key.pem``."""
    explicit = os.environ.get("COACH_CONSOLE_DEV_KEY")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "coachflow" / "console-dev-key.pem"


def dev_private_key(path: Path, create: bool = True) -> ed25519.Ed25519PrivateKey:
    """The development signing key at ``path``, created (mode 0600) on first use."""
    path = Path(path)
    if not path.exists() and create:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
    _owner_only(path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise KeyConfigError(f"{path} is not an Ed25519 development key")
    return key


def dev_verifier(path: Path, **kwargs: Any) -> Verifier:
    """Accepts the tokens :func:`mint` makes with the development key at ``path``."""
    key = dev_private_key(path).public_key()
    return Verifier([VerificationKey(key, DEV_ALGORITHM)], DEV_ISSUER, DEV_AUDIENCE, **kwargs)


def mint(key: ed25519.Ed25519PrivateKey, agent_id: str, role: ConsoleRole = "agent",
         ttl_s: float = DEFAULT_TTL_S, *, now: float | None = None) -> str:
    """A development token for ``agent_id``, valid ``ttl_s`` seconds from ``now``."""
    if not 0 < ttl_s <= MAX_LIFETIME_S:
        raise ValueError(f"ttl must be between 1 s and {MAX_LIFETIME_S} s")
    issued = int(time.time() if now is None else now)
    claims = {"iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": agent_id, "role": role,
              "iat": issued, "nbf": issued, "exp": issued + int(ttl_s)}
    ConsoleClaims.model_validate(claims)  # an id the console would refuse fails here, not on the page
    return jwt.encode(claims, key, algorithm=DEV_ALGORITHM)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``8h`` or ``1d`` -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 90s, 30m, 8h)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


# -- configuration ------------------------------------------------------------------


@dataclass(frozen=True)
class AuthConfig:
    """Where the console's keys come from: one of a public key, a secret file or a JWKS, with
    issuer and audience; none of them means development mode (the development key)."""

    public_key: Path | None = None
    secret_file: Path | None = None
    jwks: Path | None = None
    algorithm: str | None = None
    issuer: str | None = None
    audience: str | None = None
    teams: Path | None = None
    dev_key: Path | None = None
    leeway_s: float = LEEWAY_S
    max_lifetime_s: float = MAX_LIFETIME_S

    @property
    def development(self) -> bool:
        return self.public_key is None and self.secret_file is None and self.jwks is None

    def verifier(self) -> Verifier:
        given = [p for p in (self.public_key, self.secret_file, self.jwks) if p is not None]
        if len(given) > 1:
            raise KeyConfigError("give one of a public key, a secret file or a JWKS")
        limits = {"leeway_s": self.leeway_s, "max_lifetime_s": self.max_lifetime_s}
        if self.development:
            if self.issuer or self.audience or self.algorithm:
                raise KeyConfigError(
                    "an issuer, audience or algorithm needs a public key, secret file or JWKS")
            return dev_verifier(self.dev_key or dev_key_path(), **limits)
        if not self.issuer or not self.audience:
            raise KeyConfigError("production keys need --issuer and --audience")
        if self.jwks is not None:
            if self.algorithm:
                raise KeyConfigError("a JWKS names each key's algorithm itself (alg); drop --jwt-algorithm")
            keys = load_jwks(self.jwks)
        elif self.public_key is not None:
            keys = [load_public_key(self.public_key, self.algorithm)]
        else:
            assert self.secret_file is not None
            keys = [load_secret(self.secret_file, self.algorithm)]
        return Verifier(keys, self.issuer, self.audience, **limits)


def caller_ref(agent_id: str) -> str:
    """A pseudonym of a caller for log lines: the first 12 hex digits of the id's SHA-256."""
    return "caller-" + hashlib.sha256(agent_id.encode()).hexdigest()[:12]
