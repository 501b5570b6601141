"""The admin API on a real gateway: token checks, slots, weights, sticky routing, load failures."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from conveyor.clients.gateway import GatewayClient, GatewayClientError
from conveyor.local.gateway import GatewayServer
from tests.serving.conftest import ServingModels, records_body

pytestmark = pytest.mark.integration


def _version(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


def test_admin_needs_the_token(gateway: GatewayServer, serving_models: ServingModels) -> None:
    url = f"{gateway.url}/admin/deployments/flights/slots/stable"
    body = {"model_uri": serving_models.shuffled}
    missing = httpx.put(url, json=body)
    assert missing.status_code == 401
    assert "missing 'Authorization: Bearer <token>'" in missing.json()["message"]
    wrong = httpx.put(url, json=body, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 403
    basic = httpx.get(f"{gateway.url}/admin/deployments", headers={"Authorization": f"Basic {gateway.token}"})
    assert basic.status_code == 403
    # nothing changed: the champion still answers
    answer = httpx.post(gateway.url + "/invocations", content=records_body(serving_models.rows[:1]))
    assert answer.headers["x-model-version"] == _version(serving_models.good)


def test_failed_load_keeps_the_current_version_serving(
    admin: GatewayClient, fresh: str, serving_models: ServingModels
) -> None:
    for uri, why in [(serving_models.unloadable, "weights file is corrupt"), ("models:/no_such_model/1", "")]:
        with pytest.raises(GatewayClientError) as err:
            admin.deploy_slot(fresh, uri)
        assert err.value.status == 422
        assert why in str(err.value) and "the current version keeps serving" in str(err.value)
    deployment = admin.deployment(fresh)
    assert deployment["slots"]["stable"]["model_version"] == _version(serving_models.good)
    answer = admin.predict({"dataframe_records": serving_models.rows[:1]}, deployment=fresh)
    assert answer.status_code == 200
    assert answer.headers["x-model-version"] == _version(serving_models.good)
    assert any("loaded into stable" in e["reason"] for e in deployment["events"])


def test_bad_admin_requests_change_nothing(
    admin: GatewayClient, fresh: str, serving_models: ServingModels
) -> None:
    cases = [
        (lambda: admin.set_weights(fresh, canary=30), 409, "no canary loaded"),
        (lambda: admin.set_weights(fresh, canary=130), 422, "integer percent 0..100"),
        (lambda: admin.deploy_slot(fresh, serving_models.good_too, slot="blue"), 422, "unknown slot 'blue'"),
        (
            lambda: admin.deploy_slot("nope", serving_models.good_too, slot="canary"),
            404,
            "load its stable slot",
        ),
        (lambda: admin.remove_slot(fresh, "stable"), 409, "cannot be emptied"),
        (lambda: admin.promote(fresh), 409, "no canary version to promote"),
        (lambda: admin.rollback(fresh), 409, "no previous version kept warm"),
        (lambda: admin.start_rollout(fresh, {"model_uri": "m", "steps": [50, 10]}), 422, "strictly increase"),
        (lambda: admin.start_rollout(fresh, {"model_uri": "m", "strategy": "yolo"}), 422, "unknown strategy"),
        (
            lambda: admin.start_rollout(fresh, {"model_uri": "m", "analysis": {"intervall_s": 1}}),
            422,
            "intervall_s",
        ),
        (lambda: admin.rollout_action(fresh, "resume"), 409, "has no rollout"),
    ]
    for call, status, message in cases:
        with pytest.raises(GatewayClientError) as err:
            call()
        assert err.value.status == status, (message, err.value)
        assert message in str(err.value)
    deployment = admin.deployment(fresh)
    assert list(deployment["slots"]) == ["stable"]
    assert deployment["canary_weight"] == 0


def test_weights_sticky_routing_promote_and_instant_rollback(
    admin: GatewayClient, fresh: str, serving_models: ServingModels
) -> None:
    old, new = _version(serving_models.good), _version(serving_models.good_too)
    admin.deploy_slot(fresh, serving_models.good_too, slot="canary")
    admin.set_weights(fresh, canary=30)
    payload = {"dataframe_records": serving_models.rows[:1]}
    answers = Counter(admin.predict(payload, deployment=fresh).headers["x-model-slot"] for _ in range(200))
    assert 30 < answers["canary"] < 90 and answers["canary"] + answers["stable"] == 200  # ~60 of 200
    # the same key always lands on the same side
    for user in ("alice", "bob", "carol", "dave"):
        slots = {
            admin.predict(payload, deployment=fresh, x_conveyor_key=user).headers["x-model-slot"]
            for _ in range(10)
        }
        assert len(slots) == 1
    # an explicit slot header reaches a version directly (smoke tests before shifting traffic)
    assert (
        admin.predict(payload, deployment=fresh, x_conveyor_slot="canary").headers["x-model-version"] == new
    )

    promoted = admin.promote(fresh)
    assert promoted["slots"]["stable"]["model_version"] == new and "canary" not in promoted["slots"]
    assert promoted["previous"]["model_version"] == old
    assert admin.predict(payload, deployment=fresh).headers["x-model-version"] == new
    rolled = admin.rollback(fresh)
    assert rolled["slots"]["stable"]["model_version"] == old
    assert admin.predict(payload, deployment=fresh).headers["x-model-version"] == old
    assert [e["event"] for e in rolled["events"]][-4:] == ["deploy", "weights", "promote", "rollback"]


def test_rollback_to_a_named_version_staging_slot_and_alias_reload(
    admin: GatewayClient, fresh: str, serving_models: ServingModels, mlflow_uri: str
) -> None:
    from mlflow import MlflowClient

    rolled = admin.rollback(fresh, model_uri=serving_models.good_too)
    assert rolled["slots"]["stable"]["model_version"] == _version(serving_models.good_too)
    staged = admin.deploy_slot(fresh, serving_models.good, slot="staging")
    assert staged["slots"]["staging"]["weight"] == 0
    assert "staging" not in admin.remove_slot(fresh, "staging")["slots"]

    # a deployment that follows an alias picks up the alias's new version on reload
    client = MlflowClient()
    client.set_registered_model_alias("serving_flights", "reload_test", _version(serving_models.good))
    name = fresh + "-alias"
    admin.deploy_slot(name, "models:/serving_flights@reload_test")
    client.set_registered_model_alias("serving_flights", "reload_test", _version(serving_models.good_too))
    reloaded = admin.reload(name)
    assert reloaded["slots"]["stable"]["model_version"] == _version(serving_models.good_too)
    assert reloaded["previous"]["model_version"] == _version(serving_models.good)
    admin.delete(name)
    assert not admin.exists(name)


def test_wrong_types_in_admin_bodies_are_422_naming_the_field(
    admin: GatewayClient, fresh: str, serving_models: ServingModels
) -> None:
    """Each of these answered 500 (or was accepted and broke the rollout later) before the typed bodies."""
    admin.deploy_slot(fresh, serving_models.good_too, slot="canary")
    admin.set_weights(fresh, canary=30)
    before = admin.deployment(fresh)
    cases = [
        (lambda: admin.start_rollout(fresh, {"model_uri": "m", "steps": "x"}), "steps", "must be integers"),
        (
            lambda: admin.start_rollout(fresh, {"model_uri": "m", "steps": [10.5, 50]}),
            "steps",
            "must be integers",
        ),
        (
            lambda: admin.start_rollout(fresh, {"model_uri": "m", "analysis": {"interval_s": "abc"}}),
            "analysis.interval_s",
            "must be a finite number, got 'abc'",
        ),
        (
            lambda: admin.start_rollout(fresh, {"model_uri": "m", "analysis": {"count": True}}),
            "analysis.count",
            "must be an integer",
        ),
        (lambda: admin.start_rollout(fresh, {"model_uri": 5}), "model_uri", "model_uri must be a string"),
        (lambda: admin.set_weights(fresh, canary=True), "canary", "integer percent 0..100"),
        (lambda: admin.set_weights(fresh, canary=50, shadow="half"), "shadow", "number in 0..1"),
        (lambda: admin.deploy_slot(fresh, 5, slot="canary"), "model_uri", "'model_uri' must be a model URI"),
        (lambda: admin.promote(fresh, slot=[]), "slot", "'slot' must be one of"),
        (lambda: admin.rollback(fresh, model_uri=["x"]), "model_uri", "'model_uri' must be a model URI"),
    ]
    for call, field, message in cases:
        with pytest.raises(GatewayClientError) as err:
            call()
        assert (err.value.status, err.value.field) == (422, field), err.value
        assert message in str(err.value)
    # a request refused in part changes nothing: no shadow is loaded, so the canary stays at 30
    with pytest.raises(GatewayClientError) as err:
        admin.set_weights(fresh, canary=50, shadow=0.5)
    assert err.value.status == 409 and "no shadow loaded" in str(err.value)
    after = admin.deployment(fresh)
    assert (after["canary_weight"], after["rollout"], after["events"]) == (30, None, before["events"])


def test_deployment_names_are_dns_labels_checked_on_create(
    admin: GatewayClient, gateway: GatewayServer, serving_models: ServingModels
) -> None:
    for bad in ("Flights", "flight_delays", "-flights", "flights-", "f" * 64, "flïghts"):
        with pytest.raises(GatewayClientError) as err:
            admin.deploy_slot(bad, serving_models.good)
        assert (err.value.status, err.value.field) == (422, "name"), bad
        assert "DNS-1123 label" in str(err.value)
        assert not admin.exists(bad)
    name = "f" * 63
    assert admin.deploy_slot(name, serving_models.good)["name"] == name
    admin.delete(name)


def test_admin_and_feedback_bodies_are_bounded_and_json(gateway: GatewayServer) -> None:
    headers = {"Authorization": f"Bearer {gateway.token}", "content-type": "application/json"}
    big = b'{"model_uri": "' + b"m" * 70_000 + b'"}'  # over the 64 KiB this gateway runs with
    for method, path in [
        ("PUT", "/admin/deployments/flights/slots/canary"),
        ("POST", "/admin/deployments/flights/rollouts"),
        ("POST", "/feedback"),
    ]:
        response = httpx.request(method, gateway.url + path, content=big, headers=headers)
        assert response.status_code == 413, (path, response.text)
        assert "larger than 65536 bytes" in response.json()["message"]
        csv = httpx.request(
            method, gateway.url + path, content=b"a,b", headers={**headers, "content-type": "text/csv"}
        )
        assert csv.status_code == 415, (path, csv.text)
        broken = httpx.request(method, gateway.url + path, content=b"{nope", headers=headers)
        assert broken.status_code == 400 and "malformed JSON" in broken.json()["message"]
