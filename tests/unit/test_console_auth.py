"""The console's token checks (console.auth) with real keys and PyJWT: what is accepted, what refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
from datetime import datetime

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from coachflow import cli
from console.auth import (
    DEV_AUDIENCE,
    DEV_ISSUER,
    MAX_LIFETIME_S,
    AuthConfig,
    Forbidden,
    KeyConfigError,
    TokenRefused,
    Verifier,
    caller_ref,
    dev_private_key,
    dev_verifier,
    load_jwks,
    load_public_key,
    load_secret,
    load_teams,
    mint,
    parse_duration,
    principal,
)

ISSUER = "https://idp.example.test/"
AUDIENCE = "coachflow-console"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def claims(**overrides) -> dict:
    now = int(time.time())
    out = {"iss": ISSUER, "aud": AUDIENCE, "sub": "agent-1", "role": "agent", "iat": now, "exp": now + 600}
    out.update(overrides)
    return {k: v for k, v in out.items() if v is not None}


def sign(key, algorithm: str = "RS256", headers: dict | None = None, **overrides) -> str:
    return jwt.encode(claims(**overrides), key, algorithm=algorithm, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict, payload: dict, signature: bytes = b"") -> str:
    """A token built by hand, as an attacker would (PyJWT refuses to make some of these)."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"


@pytest.fixture
def verifier(rsa_key, tmp_path) -> Verifier:
    path = tmp_path / "idp.pem"
    path.write_bytes(public_pem(rsa_key))
    return Verifier([load_public_key(path)], ISSUER, AUDIENCE)


def refused(verifier: Verifier, token: str) -> str:
    with pytest.raises(TokenRefused) as info:
        verifier.verify(token)
    return info.value.reason


def test_a_good_token_gives_its_agent_and_role(verifier, rsa_key):
    checked = verifier.verify(sign(rsa_key, sub="agent-7", role="supervisor"))
    assert (checked.sub, checked.role, checked.iss) == ("agent-7", "supervisor", ISSUER)


def test_forged_and_tampered_signatures_are_refused(verifier, rsa_key, other_rsa_key):
    assert refused(verifier, sign(other_rsa_key)) == "bad_signature"
    header, _, signature = sign(rsa_key, sub="agent-1").split(".")
    other_payload = b64(json.dumps(claims(sub="agent-2")).encode())
    assert refused(verifier, f"{header}.{other_payload}.{signature}") == "bad_signature"


def test_expired_and_not_yet_valid_tokens_are_refused(verifier, rsa_key):
    now = int(time.time())
    assert refused(verifier, sign(rsa_key, iat=now - 700, exp=now - 100)) == "expired"
    assert refused(verifier, sign(rsa_key, nbf=now + 300)) == "not_yet_valid"
    assert refused(verifier, sign(rsa_key, iat=now + 300, exp=now + 900)) == "not_yet_valid"
    # Within the leeway for clock skew: still good.
    assert verifier.verify(sign(rsa_key, iat=now - 620, exp=now - 10)).sub == "agent-1"


def test_wrong_audience_and_issuer_are_refused(verifier, rsa_key):
    assert refused(verifier, sign(rsa_key, aud="another-app")) == "wrong_audience"
    assert refused(verifier, sign(rsa_key, iss="https://evil.example.test/")) == "wrong_issuer"
    assert verifier.verify(sign(rsa_key, aud=["another-app", AUDIENCE])).sub == "agent-1"


def test_alg_none_and_algorithm_confusion_are_refused(verifier, rsa_key):
    assert refused(verifier, hand_made({"alg": "none", "typ": "JWT"}, claims())) == "algorithm_not_allowed"
    assert refused(verifier, hand_made({"alg": "None"}, claims())) == "algorithm_not_allowed"
    # HS256 "signed" with the RSA public key as the secret: the classic confusion attack.
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    mac = hmac.new(public_pem(rsa_key), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert refused(verifier, f"{header}.{payload}.{b64(mac)}") == "algorithm_not_allowed"
    # Another RSA algorithm than the one configured for the key.
    assert refused(verifier, sign(rsa_key, algorithm="PS256")) == "algorithm_not_allowed"


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "role"])
def test_each_required_claim_is_required(verifier, rsa_key, claim):
    with pytest.raises(TokenRefused) as info:
        verifier.verify(sign(rsa_key, **{claim: None}))
    assert (info.value.reason, info.value.detail) == ("missing_claim", claim)


def test_bad_claims_malformed_tokens_and_long_lives_are_refused(verifier, rsa_key):
    assert refused(verifier, sign(rsa_key, role="admin")) == "bad_claim"
    assert refused(verifier, sign(rsa_key, sub="agent 1\n<script>")) == "bad_claim"
    now = int(time.time())
    assert refused(verifier, sign(rsa_key, iat=now, exp=now + MAX_LIFETIME_S + 60)) == "lifetime_too_long"
    for token in ("", "abc", "a.b", "a.b.c", "x" * 9000):
        assert refused(verifier, token) == "malformed"


def test_keys_by_type_and_from_a_certificate(tmp_path):
    ec_key = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "ec.pem").write_bytes(public_pem(ec_key))
    ec_verifier = Verifier([load_public_key(tmp_path / "ec.pem")], ISSUER, AUDIENCE)
    assert ec_verifier.keys[0].algorithm == "ES384"
    assert ec_verifier.verify(sign(ec_key, "ES384")).sub == "agent-1"

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(rsa_key.public_key())
            .serial_number(1).not_valid_before(datetime(2026, 1, 1))
            .not_valid_after(datetime(2036, 1, 1)).sign(rsa_key, hashes.SHA256()))
    (tmp_path / "idp.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key = load_public_key(tmp_path / "idp.crt", "PS256")
    assert Verifier([key], ISSUER, AUDIENCE).verify(sign(rsa_key, "PS256")).sub == "agent-1"


def test_a_shared_secret_file(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(b"s" * 40 + b"\n")
    path.chmod(0o600)
    verifier = Verifier([load_secret(path)], ISSUER, AUDIENCE)
    assert verifier.verify(sign(b"s" * 40, "HS256")).sub == "agent-1"
    assert refused(verifier, sign(b"t" * 40, "HS256")) == "bad_signature"
    path.chmod(0o644)
    with pytest.raises(KeyConfigError, match="readable by others"):
        load_secret(path)
    path.write_bytes(b"short")
    path.chmod(0o600)
    with pytest.raises(KeyConfigError, match="32 bytes"):
        load_secret(path)


def test_a_jwks_picks_the_key_by_kid(tmp_path, rsa_key, other_rsa_key):
    def jwk(key, kid):
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        return {**public, "kid": kid, "alg": "RS256", "use": "sig"}

    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(rsa_key, "k1"), jwk(other_rsa_key, "k2"),
                                         {"kty": "RSA", "use": "enc", "kid": "k3", "n": "x", "e": "AQAB"}]}))
    verifier = Verifier(load_jwks(path), ISSUER, AUDIENCE)
    assert verifier.verify(sign(rsa_key, headers={"kid": "k1"}, sub="a-1")).sub == "a-1"
    assert verifier.verify(sign(other_rsa_key, headers={"kid": "k2"}, sub="a-2")).sub == "a-2"
    assert refused(verifier, sign(rsa_key, headers={"kid": "k2"})) == "bad_signature"
    assert refused(verifier, sign(rsa_key, headers={"kid": "k9"})) == "unknown_key"
    assert refused(verifier, sign(rsa_key)) == "unknown_key"  # no kid among several keys


def test_key_files_the_console_refuses(tmp_path, rsa_key):
    private = tmp_path / "private.pem"
    private.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    with pytest.raises(KeyConfigError, match="private key"):
        load_public_key(private)
    (tmp_path / "pub.pem").write_bytes(public_pem(rsa_key))
    with pytest.raises(KeyConfigError, match="does not fit"):
        load_public_key(tmp_path / "pub.pem", "HS256")
    (tmp_path / "oct.json").write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))
    with pytest.raises(KeyConfigError, match="symmetric"):
        load_jwks(tmp_path / "oct.json")
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    (tmp_path / "nokid.json").write_text(json.dumps({"keys": [jwk, jwk]}))
    with pytest.raises(KeyConfigError, match="kid"):
        load_jwks(tmp_path / "nokid.json")
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(KeyConfigError, match="not a JWKS"):
        load_jwks(tmp_path / "bad.json")


def test_production_settings_go_together(tmp_path, rsa_key):
    (tmp_path / "pub.pem").write_bytes(public_pem(rsa_key))
    with pytest.raises(KeyConfigError, match="issuer"):
        AuthConfig(public_key=tmp_path / "pub.pem").verifier()
    with pytest.raises(KeyConfigError, match="needs a public key"):
        AuthConfig(issuer=ISSUER, audience=AUDIENCE, dev_key=tmp_path / "dev.pem").verifier()
    config = AuthConfig(public_key=tmp_path / "pub.pem", issuer=ISSUER, audience=AUDIENCE)
    assert not config.development and config.verifier().verify(sign(rsa_key)).sub == "agent-1"


def test_the_development_key_is_made_once_for_its_owner_only(tmp_path):
    path = tmp_path / "state" / "coachflow" / "dev.pem"
    key = dev_private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert dev_private_key(path).public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
    verifier = dev_verifier(path)
    checked = verifier.verify(mint(key, "agent-3", "supervisor", 60))
    assert (checked.sub, checked.role, checked.iss, checked.aud) == ("agent-3", "supervisor", DEV_ISSUER,
                                                                        DEV_AUDIENCE)
    assert refused(verifier, mint(ed25519.Ed25519PrivateKey.generate(), "agent-3")) == "bad_signature"
    assert refused(verifier, mint(key, "agent-3", now=time.time() - 3600, ttl_s=60)) == "expired"
    with pytest.raises(ValueError):
        mint(key, "agent-3", ttl_s=MAX_LIFETIME_S + 1)
    path.chmod(0o644)
    with pytest.raises(KeyConfigError, match="readable by others"):
        dev_private_key(path)


def test_coach_console_token_prints_the_consoles_address_with_the_token(tmp_path, capsys):
    key = tmp_path / "dev.pem"
    assert cli.main(["console", "token", "--agent", "agent-9", "--ttl", "30m", "--key", str(key)]) == 0
    out, err = capsys.readouterr()
    url, token = out.strip().split("#token=")
    assert url == "http://127.0.0.1:8765/" and "agent-9" in err and str(key) in err
    checked = dev_verifier(key).verify(token)
    assert checked.sub == "agent-9" and checked.role == "agent" and checked.exp - checked.iat == 1800
    assert cli.main(["console", "token", "--agent", "bad id", "--key", str(key)]) == 2


def test_who_sees_what(tmp_path):
    path = tmp_path / "teams.yaml"
    path.write_text("sup-1: [agent-1, agent-2]\nsup-2: []\n")
    teams = load_teams(path)
    key = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "dev.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "dev.pem").chmod(0o600)
    verifier = dev_verifier(tmp_path / "dev.pem")
    agent = principal(verifier.verify(mint(key, "agent-1")), teams)
    assert agent.agents == {"agent-1"} and agent.may_judge
    assert agent.sees("agent-1") and not agent.sees("agent-2")
    supervisor = principal(verifier.verify(mint(key, "sup-1", "supervisor")), teams)
    assert supervisor.agents == {"agent-1", "agent-2"} and not supervisor.may_judge
    for nobody in ("sup-2", "sup-9"):
        with pytest.raises(Forbidden, match="no_team"):
            principal(verifier.verify(mint(key, nobody, "supervisor")), teams)
    path.write_text("sup-1: agent-1\n")
    with pytest.raises(KeyConfigError, match="team file"):
        load_teams(path)


def test_durations_and_pseudonyms():
    assert [parse_duration(t) for t in ("90", "90s", "30m", "8h", "1d", "1.5h")] == [90, 90, 1800, 28800,
                                                                                      86400, 5400]
    with pytest.raises(ValueError):
        parse_duration("soon")
    assert caller_ref("agent-1") == caller_ref("agent-1") != caller_ref("agent-2")
    assert "agent-1" not in caller_ref("agent-1")



def test_the_console_no_longer_takes_an_agent_on_its_command_line():
    with pytest.raises(SystemExit, match="--agent is gone"):
        cli.main(["console", "--brokers", "127.0.0.1:1", "--agent", "agent-1"])
