"""Token auth, size limits, clear 4xx errors for bad input, no stack traces, CORS, and the
status/version/health routes."""
from __future__ import annotations

import hashlib
import json

import pytest


def test_a_token_guards_every_route_but_health_and_the_chat_page(make_client):
    client = make_client(auth_token="s3cret")
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/chat").status_code == 200  # static; its webhook calls carry the token
    for method, path, body in [("get", "/status", None), ("get", "/version", None),
                               ("post", "/model/parse", {"text": "hi"}),
                               ("post", "/webhooks/rest/webhook", {"message": "/greet"}),
                               ("get", "/conversations/a/tracker", None)]:
        denied = client.request(method, path, json=body)
        assert denied.status_code == 401, path
        assert "token" in denied.json()["error"]
        wrong = client.request(method, path, json=body, params={"token": "nope"})
        assert wrong.status_code == 401
    assert client.post("/model/parse", json={"text": "hi"},
                       params={"token": "s3cret"}).status_code == 200
    assert client.post("/model/parse", json={"text": "hi"},
                       headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/status", headers={"Authorization": "Bearer s3cre"}).status_code == 401


def test_big_bodies_and_long_texts_get_413(make_client):
    client = make_client(max_request_bytes=2_000, max_text_chars=50)
    big = client.post("/model/parse", json={"text": "x" * 3_000})
    assert big.status_code == 413 and "2000 bytes" in big.json()["error"]
    # a body larger than its Content-Length says is cut off by the actual size too
    chunks = (b'{"text": "' + b"y" * 1_000 for _ in range(3))
    streamed = client.post("/model/parse", content=chunks,
                           headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    long = client.post("/model/parse", json={"text": "z" * 51})
    assert long.status_code == 413 and "51 characters" in long.json()["error"]
    assert client.post("/model/parse/batch", json={"texts": ["ok", "z" * 51]}).status_code == 413
    assert client.post("/webhooks/rest/webhook",
                       json={"sender": "a", "message": "z" * 51}).status_code == 413
    assert client.post("/model/parse", json={"text": "z" * 50}).status_code == 200


def test_malformed_requests_get_422_with_a_clear_message(make_client):
    client = make_client()
    broken = client.post("/model/parse", content=b'{"text": "hi"',
                         headers={"Content-Type": "application/json"})
    assert broken.status_code == 422 and "not valid JSON" in broken.json()["error"]
    missing = client.post("/model/parse", json={"message": "hi"})
    assert missing.status_code == 422 and "'text' is missing" in missing.json()["error"]
    wrong = client.post("/model/parse/batch", json={"texts": "hi"})
    assert wrong.status_code == 422 and "texts" in wrong.json()["error"]
    webhook = client.post("/webhooks/rest/webhook", json={"sender": "a"})
    assert webhook.status_code == 422 and "'message' is missing" in webhook.json()["error"]
    assert client.get("/no/such/route").status_code == 404


def test_unexpected_errors_give_500_without_a_stack_trace(make_client, models, monkeypatch):
    client = make_client()

    def broken(*_):
        raise RuntimeError("the interpreter fell over")

    monkeypatch.setattr(models[0], "parse", broken)
    answer = client.post("/model/parse", json={"text": "hello"})
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal error: RuntimeError: the interpreter fell over"
    assert "Traceback" not in answer.text and "line " not in answer.text


def test_cors_only_when_asked(make_client):
    origin = {"Origin": "http://example.org"}
    plain = make_client().get("/health", headers=origin)
    assert "access-control-allow-origin" not in plain.headers
    client = make_client(cors_origins=["http://example.org"], auth_token="t")
    assert client.get("/health", headers=origin).headers["access-control-allow-origin"] == \
        "http://example.org"
    preflight = client.options("/model/parse", headers={
        **origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200


def test_status_version_health(make_client, bundles):
    client = make_client()
    status = client.get("/status").json()
    assert status["num_active_training_jobs"] == 0
    assert status["model_file"] == str(bundles.nlu)
    assert status["model_files"] == {"nlu": str(bundles.nlu), "policy": str(bundles.policy)}
    manifest = json.loads((bundles.nlu / "manifest.json").read_text())
    assert status["fingerprint"]["nlu"] == {f["name"]: f["sha256"] for f in manifest["files"]}
    assert status["fingerprint"]["nlu"]["model.safetensors"] == hashlib.sha256(
        (bundles.nlu / "model.safetensors").read_bytes()).hexdigest()
    assert status["bundles"]["policy"]["kind"] == "policy" and len(status["model_id"]) == 16
    version = client.get("/version").json()
    assert set(version) == {"version", "minimum_compatible_version"}
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("bad", [{"max_text_chars": 0}, {"max_request_bytes": -1}])
def test_settings_reject_nonsense_limits(bad):
    from serving.settings import ServerSettings

    with pytest.raises(ValueError):
        ServerSettings(nlu="x", **bad)
