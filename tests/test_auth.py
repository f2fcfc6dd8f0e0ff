"""JWT verification: one refusal per rule, the accepted shapes, replay across instances, the sandbox preset."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from pathlib import Path

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa

from cdshooks.settings import SettingsError
from conftest import full_prefetch
from conftest import hook_request
from conftest import make_app

BASE = "https://cds.example.org"
ISS = "https://ehr.example.org"
JKU = "https://ehr.example.org/.well-known/jwks.json"
DISCOVERY, SIGN = "/cds-services", "/cds-services/medical-policy-order-sign"
FEEDBACK = SIGN + "/feedback"
TOKENS_SEEN: list[str] = []   # every token minted here; the privacy test checks none reaches a log


def _public_jwk(private, kid, alg):
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = ec.generate_private_key(ec.SECP384R1())
JWKS = {"keys": [_public_jwk(EC_KEY, "ec-1", "ES384"), _public_jwk(RSA_KEY, "rsa-1", "RS384")]}


def token(claims=None, header=None, key=EC_KEY, alg="ES384", kid="ec-1", path=SIGN, drop=()):
    now = int(time.time())
    payload = {"iss": ISS, "aud": BASE + path, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    payload.update(claims or {})
    for name in drop:
        payload.pop(name, None)
    headers = {"kid": kid, "typ": "JWT", **(header or {})}
    if kid is None:
        headers.pop("kid")
    encoded = jwt.encode(payload, key, algorithm=alg, headers=headers)
    TOKENS_SEEN.append(encoded)
    return encoded


def unsigned(alg, signer=None, **claims):
    now = int(time.time())
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    header = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": "ec-1"}).encode())
    body = b64(json.dumps({"iss": ISS, "aud": BASE + SIGN, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4()),
                           **claims}).encode())
    signature = b64(signer(f"{header}.{body}".encode())) if signer else ""
    encoded = f"{header}.{body}.{signature}"
    TOKENS_SEEN.append(encoded)
    return encoded


@pytest.fixture
def issuers_file(tmp_path):
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({ISS: {"jwks": JWKS, "jku": JKU}}))
    return path


@pytest.fixture
def secured(tmp_path, issuers_file):
    return make_app(tmp_path, TRUSTED_ISSUERS=str(issuers_file), PUBLIC_BASE_URL=BASE)


def call(app, jwt_token, path=SIGN, method="post", body=None, headers=None):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {jwt_token}", **(headers or {})} if jwt_token else (headers or {})
    if method == "get":
        return client.get(path, headers=headers)
    if body is None:
        body = hook_request(prefetch=full_prefetch(app)) if path == SIGN else \
            {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}
    return client.post(path, json=body, headers=headers)


def assert_refused(response):
    assert response.status_code == 401
    body = response.get_json()
    assert body["issue"][0]["diagnostics"] == "Unauthorized"   # bare: no reason for the caller
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_valid_tokens_are_accepted_on_discovery_service_and_feedback(secured):
    assert call(secured, token(path=DISCOVERY), DISCOVERY, "get").status_code == 200
    assert call(secured, token()).status_code == 200
    assert call(secured, token(path=FEEDBACK), FEEDBACK).status_code == 200


def test_rsa_keys_are_accepted_too(secured):
    assert call(secured, token(key=RSA_KEY, alg="RS384", kid="rsa-1")).status_code == 200


def test_preflight_needs_no_token(secured):
    response = secured.test_client().options(SIGN, headers={"Origin": "https://sandbox.cds-hooks.org",
                                                            "Access-Control-Request-Method": "POST"})
    assert response.status_code in (200, 204)


def test_health_and_questionnaires_stay_open(secured):
    assert secured.test_client().get("/healthz").status_code == 200
    assert secured.test_client().get("/fhir/Questionnaire/intrathecal-pain-pump").status_code == 200


def test_missing_authorization_is_refused_with_cors_headers(secured):
    response = call(secured, None, headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert_refused(response)
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_unsigned_alg_none_is_refused(secured):
    assert_refused(call(secured, unsigned("none")))


def test_hs256_signed_with_the_public_key_as_secret_is_refused(secured):
    public_pem = EC_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = unsigned("HS256", lambda data: hmac.new(public_pem, data, hashlib.sha256).digest())
    assert_refused(call(secured, forged))


def test_signature_by_another_key_is_refused(secured):
    assert_refused(call(secured, token(key=OTHER_KEY)))


def test_expired_token_is_refused(secured):
    assert_refused(call(secured, token({"exp": int(time.time()) - 120, "iat": int(time.time()) - 600})))


def test_expiry_within_the_leeway_is_accepted(secured):
    assert call(secured, token({"exp": int(time.time()) - 30})).status_code == 200


@pytest.mark.parametrize("claims", [{"iat": int(time.time()) + 600}, {"nbf": int(time.time()) + 600}])
def test_token_from_the_future_is_refused(secured, claims):
    assert_refused(call(secured, token(claims)))


def test_wrong_audience_is_refused(secured):
    assert_refused(call(secured, token({"aud": BASE + "/cds-services/medical-policy-order-select"})))
    assert_refused(call(secured, token({"aud": "https://attacker.example" + SIGN})))


def test_audience_with_a_doubled_or_trailing_slash_is_normalized_and_accepted(secured):
    assert call(secured, token({"aud": BASE + "/cds-services//medical-policy-order-sign/"})).status_code == 200
    assert call(secured, token({"aud": ["https://other.example",
                                        "HTTPS://CDS.example.org:443" + SIGN]})).status_code == 200


def test_unknown_issuer_is_refused(secured):
    assert_refused(call(secured, token({"iss": "https://evil.example"})))


def test_unknown_kid_is_refused_after_one_refresh_of_the_configured_jku(secured):
    with responses.RequestsMock() as mock:
        mock.get(JKU, json={"keys": []})
        assert_refused(call(secured, token(kid="rotated")))
        assert_refused(call(secured, token(kid="rotated-again")))   # no second fetch within a minute
        assert len(mock.calls) == 1


def test_a_rotated_key_is_found_by_refreshing_the_configured_jku(secured):
    new_key = ec.generate_private_key(ec.SECP384R1())
    with responses.RequestsMock() as mock:
        mock.get(JKU, json={"keys": [_public_jwk(new_key, "ec-2", "ES384")]})
        assert call(secured, token(key=new_key, kid="ec-2")).status_code == 200
        assert call(secured, token(key=new_key, kid="ec-2")).status_code == 200   # cached
        assert len(mock.calls) == 1


def test_a_foreign_jku_is_refused_without_being_fetched(secured):
    with responses.RequestsMock() as mock:
        assert_refused(call(secured, token(header={"jku": "https://evil.example/jwks.json"})))
        assert len(mock.calls) == 0


def test_the_configured_jku_in_the_header_is_accepted(secured):
    assert call(secured, token(header={"jku": JKU + "/"})).status_code == 200


def test_missing_kid_and_wrong_typ_are_refused(secured):
    assert_refused(call(secured, token(kid=None)))
    assert_refused(call(secured, token(header={"typ": "at+jwt"})))


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "jti"])
def test_each_required_claim_must_be_present(secured, claim):
    assert_refused(call(secured, token(drop=(claim,))))


def test_a_replayed_jti_is_refused(secured):
    once = token()
    assert call(secured, once).status_code == 200
    assert_refused(call(secured, once))


def test_replay_is_refused_across_two_app_instances_sharing_a_store(tmp_path, issuers_file):
    first = make_app(tmp_path, TRUSTED_ISSUERS=str(issuers_file), PUBLIC_BASE_URL=BASE)
    second = make_app(tmp_path, TRUSTED_ISSUERS=str(issuers_file), PUBLIC_BASE_URL=BASE)
    once = token()
    assert call(first, once).status_code == 200
    assert_refused(call(second, once))


def test_refusals_are_logged_by_reason_never_with_the_token(secured, caplog):
    bad = token({"exp": int(time.time()) - 600, "iat": int(time.time()) - 900})
    with caplog.at_level(logging.WARNING, logger="cdshooks.web.auth"):
        call(secured, bad)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "cdshooks.web.auth"]
    assert "reason=expired" in line and f"iss={ISS}" in line
    assert bad not in caplog.text and bad.split(".")[2] not in caplog.text


def test_trusted_issuers_need_a_public_base_url(tmp_path, issuers_file):
    with pytest.raises(SettingsError, match="CDSHOOKS_PUBLIC_BASE_URL"):
        make_app(tmp_path, TRUSTED_ISSUERS=str(issuers_file), PUBLIC_BASE_URL=None)


@pytest.mark.parametrize("content", ['{"x": {}}', "not json", '{"x": {"jku": "ftp://x"}}', "{}"])
def test_a_broken_trusted_issuers_file_stops_start_up(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SettingsError, match="TRUSTED_ISSUERS"):
        make_app(tmp_path, TRUSTED_ISSUERS=str(path), PUBLIC_BASE_URL=BASE)


def test_the_sandbox_preset_accepts_a_token_signed_with_the_sandbox_key_pair(tmp_path):
    app = make_app(tmp_path, TRUSTED_ISSUERS="sandbox", PUBLIC_BASE_URL=BASE)
    pair = json.loads((Path(__file__).parent / "data" / "sandbox-jwk-keypair.json").read_text())["keys"][0]
    private = jwt.PyJWK.from_dict(pair).key
    now = int(time.time())
    sandbox_token = jwt.encode(
        {"iss": "https://sandbox.cds-hooks.org", "aud": BASE + SIGN, "exp": now + 300, "iat": now,
         "jti": str(uuid.uuid4())},
        private, algorithm="ES384",
        headers={"kid": pair["kid"], "typ": "JWT", "jku": "https://sandbox.cds-hooks.org/.well-known/jwks.json"})
    TOKENS_SEEN.append(sandbox_token)
    with responses.RequestsMock() as mock:   # pinned: works offline, nothing fetched
        assert call(app, sandbox_token).status_code == 200
        assert len(mock.calls) == 0
