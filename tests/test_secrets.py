"""The secrets adapter: the local AES-GCM keyring (files in a temp dir) and Vault Transit through
hvac against a local server that follows Vault's Transit API (base64 plaintext, key versions,
X-Vault-Token). Rotation + rewrap keep old ciphertexts decryptable; a backend that is down
fails closed."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from glyphoxa_htmx.adapters.secrets import (
    CIPHERTEXT_RE,
    LocalKeyring,
    SecretsError,
    SecretsUnavailable,
    VaultTransit,
    key_version,
)
from tests.support.fake_vault import FakeVault

SECRET = "sk-live-ThisIsAProviderKey-7f3a9c1234"


@pytest.fixture(scope="module")
def vault():
    server = FakeVault(k8s_jwt="eyJhbGciOiJSUzI1NiJ9.pod-service-account.sig").start()
    yield server
    server.stop()


# ---- local keyring ------------------------------------------------------------------------------


def test_local_keyring_roundtrip_file_and_format(tmp_path):
    ring = LocalKeyring(tmp_path / "instance" / "secrets-keyring.json")
    assert ring.health() is None  # nothing yet, but the directory can hold the file
    ct = ring.encrypt(SECRET)
    assert ct.startswith("local:v1:") and CIPHERTEXT_RE.match(ct) and SECRET not in ct
    assert ring.decrypt(ct) == SECRET
    assert ring.encrypt(SECRET) != ct  # a fresh nonce every time
    path = tmp_path / "instance" / "secrets-keyring.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["format"] == "glyphoxa-keyring" and [k["version"] for k in doc["keys"]] == [1]
    assert SECRET not in path.read_text()
    # Another process (a second instance on the same file) reads what this one wrote.
    assert LocalKeyring(path).decrypt(ct) == SECRET


def test_local_rotation_and_rewrap_keep_old_ciphertexts_readable(tmp_path):
    ring = LocalKeyring(tmp_path / "k.json")
    old = ring.encrypt(SECRET)
    other_process = LocalKeyring(tmp_path / "k.json")
    doc = json.loads((tmp_path / "k.json").read_text())
    doc["keys"][0]["created_at"] = "2020-01-01T00:00:00+00:00"  # an old key, as an operator's file has
    (tmp_path / "k.json").write_text(json.dumps(doc))
    assert ring.rotate() == 2
    kept = json.loads((tmp_path / "k.json").read_text())["keys"]
    assert kept[0]["created_at"] == "2020-01-01T00:00:00+00:00" and kept[1]["created_at"] > "2026"
    new = ring.encrypt("second-secret-value")
    assert key_version(old) == 1 and key_version(new) == 2  # new writes use the newest key
    assert ring.decrypt(old) == SECRET
    rewrapped = ring.rewrap(old)
    assert key_version(rewrapped) == 2 and ring.decrypt(rewrapped) == SECRET
    assert ring.rewrap(rewrapped) == rewrapped  # already newest: unchanged
    # The other process notices the rotation on disk.
    assert other_process.decrypt(rewrapped) == SECRET and key_version(other_process.encrypt("x" * 10)) == 2


def test_local_tampering_and_wrong_backend_are_refused(tmp_path):
    ring = LocalKeyring(tmp_path / "k.json")
    ct = ring.encrypt(SECRET)
    raw = bytearray(base64.b64decode(ct.split(":", 2)[2]))
    raw[-1] ^= 1
    with pytest.raises(SecretsError):
        ring.decrypt("local:v1:" + base64.b64encode(bytes(raw)).decode())
    with pytest.raises(SecretsError):
        ring.decrypt("local:v9:" + ct.split(":", 2)[2])  # unknown version
    with pytest.raises(SecretsError):
        ring.decrypt("vault:v1:abcd")
    with pytest.raises(SecretsError):
        ring.decrypt(SECRET)  # a plaintext is never "decrypted" into itself


def test_local_keyring_unreadable_is_unavailable(tmp_path):
    (tmp_path / "k.json").write_text("not json")
    ring = LocalKeyring(tmp_path / "k.json")
    assert ring.health() == "keyring file is malformed"
    with pytest.raises(SecretsUnavailable):
        ring.encrypt(SECRET)
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    ring = LocalKeyring(blocked / "k.json")
    with pytest.raises(SecretsUnavailable) as exc:
        ring.encrypt(SECRET)
    assert SECRET not in exc.value.message and "Nothing was saved" in exc.value.message


# ---- Vault Transit through hvac -----------------------------------------------------------------


def _transit(vault, **kw):
    kw.setdefault("token", "test-vault-token")
    return VaultTransit(vault.addr, key_name=kw.pop("key_name", "glyphoxa-provider-keys"), **kw)


def test_vault_encrypt_sends_base64_and_decrypts(vault):
    transit = _transit(vault)
    vault.requests.clear()
    ct = transit.encrypt(SECRET)
    assert ct.startswith("vault:v1:") and CIPHERTEXT_RE.match(ct) and SECRET not in ct
    (req,) = [r for r in vault.requests if "/encrypt/" in r["path"]]
    assert req["path"] == "/v1/transit/encrypt/glyphoxa-provider-keys"
    assert req["headers"]["X-Vault-Token"] == "test-vault-token"
    # Real Vault requires base64 plaintext (unlike the gateway's bot-token convention).
    assert json.loads(req["body"])["plaintext"] == base64.b64encode(SECRET.encode()).decode()
    assert transit.decrypt(ct) == SECRET
    assert transit.health() is None
    assert "test-vault-token" not in repr(transit)


def test_vault_rotation_and_rewrap(vault):
    transit = _transit(vault, key_name="rotation-test")
    old = transit.encrypt(SECRET)
    assert transit.rotate() == 2
    new = transit.encrypt("another-provider-key")
    assert key_version(old) == 1 and key_version(new) == 2
    assert transit.decrypt(old) == SECRET  # old versions keep decrypting
    rewrapped = transit.rewrap(old)
    assert key_version(rewrapped) == 2 and transit.decrypt(rewrapped) == SECRET
    assert any(r["path"] == "/v1/transit/rewrap/rotation-test" for r in vault.requests)


def test_vault_wrong_token_sealed_and_down_fail_closed(vault):
    with pytest.raises(SecretsUnavailable):
        _transit(vault, token="wrong").encrypt(SECRET)
    transit = _transit(vault)
    ct = transit.encrypt(SECRET)
    with pytest.raises(SecretsError):
        transit.decrypt(ct[:-6] + "AAAAAA")  # tampered: Vault answers 400
    vault.sealed = True
    try:
        assert transit.health() == "sealed"
        with pytest.raises(SecretsUnavailable):
            transit.encrypt(SECRET)
    finally:
        vault.sealed = False
    down = VaultTransit("http://127.0.0.1:9", token="t", timeout=1)
    assert down.health() == "unreachable"
    with pytest.raises(SecretsUnavailable) as exc:
        down.encrypt(SECRET)
    assert SECRET not in str(exc.value) and SECRET not in exc.value.details


def test_vault_kubernetes_auth(vault, tmp_path):
    jwt = tmp_path / "token"
    jwt.write_text(vault.k8s_jwt + "\n")
    transit = VaultTransit(vault.addr, k8s_role="glyphoxa-web", k8s_token_path=str(jwt))
    ct = transit.encrypt(SECRET)
    assert transit.decrypt(ct) == SECRET
    login = [r for r in vault.requests if r["path"] == "/v1/auth/kubernetes/login"][-1]
    assert json.loads(login["body"]) == {"role": "glyphoxa-web", "jwt": vault.k8s_jwt}
    # The Vault token expires: one re-login, then the call succeeds.
    vault.tokens = {"test-vault-token"}
    assert transit.decrypt(ct) == SECRET
    jwt.write_text("not-the-pod-token")
    vault.tokens = {"test-vault-token"}
    with pytest.raises(SecretsUnavailable):
        transit.decrypt(ct)


def test_backend_is_chosen_by_configuration(tmp_path):
    from glyphoxa_htmx.adapters.secrets import build
    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.config import ConfigError, load_settings

    local = build(load_settings(environ={"GLYPHOXA_INSTANCE_DIR": str(tmp_path)}))
    assert isinstance(local, LocalKeyring) and local.path == tmp_path / "secrets-keyring.json"
    vault = build(
        load_settings(environ={"VAULT_ADDR": "http://vault:8200", "VAULT_TOKEN": "t", "VAULT_TRANSIT_KEY": "custom"})
    )
    assert isinstance(vault, VaultTransit) and vault.key_name == "custom" and vault.mount == "transit"
    forced = build(
        load_settings(
            environ={
                "VAULT_ADDR": "http://vault:8200",
                "VAULT_TOKEN": "t",
                "SECRETS_BACKEND": "local",
                "SECRETS_KEYRING": str(tmp_path / "r.json"),
            }
        )
    )
    assert isinstance(forced, LocalKeyring)
    for bad in ({"SECRETS_BACKEND": "plaintext"}, {"SECRETS_BACKEND": "vault"}, {"VAULT_ADDR": "http://vault:8200"}):
        with pytest.raises(ConfigError):
            create_app(load_settings(environ={**bad, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"}))
    with pytest.raises(ConfigError, match="VAULT_TOKEN or VAULT_K8S_ROLE"):
        load_settings(environ={"GLYPHOXA_ENV": "production", "VAULT_ADDR": "http://vault:8200"}).validate()
