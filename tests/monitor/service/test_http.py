"""The secured HTTP surface: bearer tokens on /api/v1, /metrics auth, TLS, and the refusal to
bind off loopback without a token. Real HTTP on 127.0.0.1; actions are fakes except where the
real silence functions run on SQLite."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, Gauge
from support.kafka import create_topic, unique

from driftwarden.core.records import DeadLetter, Origin
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.config import HttpConfig, KafkaConfig
from driftwarden.monitor.errors import ConfigError
from driftwarden.monitor.ingest.kafka import DeadLetterReplayer
from driftwarden.monitor.service.api import (
    Api,
    ApiActions,
    DeadLetterQuery,
    HttpSecurity,
    Response,
    SilenceRequest,
    database_actions,
)
from driftwarden.monitor.service.endpoints import EndpointServer, Health

TOKEN = "s3cret-token-0123456789abcdef"
ENV = {"DRIFTWARDEN_TOKEN": TOKEN, "METRICS_TOKEN": "metrics-token", "METRICS_PASSWORD": "pw"}
NOW = 1_795_046_400_000  # 2026-11-19T00:00:00Z

# Every state-changing endpoint, with a body that would be valid.
SILENCE = {"matchers": ["model=m"], "duration": "1h", "author": "a", "comment": "c"}
STATE_CHANGING = [
    ("POST", "/api/v1/silences", SILENCE),
    ("DELETE", "/api/v1/silences/0b4d9a3e-0000-4000-8000-000000000000", None),
    ("POST", "/api/v1/dead-letters/7/replay", None),
]  # fmt: skip
READS = [("GET", "/api/v1/silences", None), ("GET", "/api/v1/dead-letters", None)]


class Recorder:
    """Fake actions that record what they were asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def actions(self) -> ApiActions:
        def record(name: str, result: object):
            def call(argument: object) -> object:
                self.calls.append((name, argument))
                return result

            return call

        return ApiActions(
            list_silences=record("list_silences", []),
            add_silence=record("add_silence", {"id": "new"}),
            expire_silence=record("expire_silence", {"id": "gone"}),
            list_dead_letters=record("list_dead_letters", []),
            replay_dead_letter=record("replay_dead_letter", {"id": 7}),
        )


def _http(**settings: object) -> HttpConfig:
    return HttpConfig.model_validate({"port": 0, **settings})


@pytest.fixture(scope="module")
def shared_recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def recorder(shared_recorder: Recorder) -> Recorder:
    shared_recorder.calls.clear()
    return shared_recorder


def _serve(http: HttpConfig, actions: ApiActions | None = None) -> EndpointServer:
    registry = CollectorRegistry()
    Gauge("driftwarden_ready", "ready", registry=registry).set(1)
    return EndpointServer.from_config(
        http, registry, Health(), actions=actions, clock=lambda: NOW, environ=ENV
    ).start()


@pytest.fixture(scope="module")
def server(shared_recorder: Recorder) -> Iterator[EndpointServer]:
    running = _serve(_http(token_env="DRIFTWARDEN_TOKEN"), shared_recorder.actions())
    yield running
    running.stop()


def _call(server: EndpointServer, method: str, path: str, body, headers=None) -> httpx.Response:
    return httpx.request(method, server.url + path, json=body, headers=headers or {}, timeout=10)


@pytest.mark.parametrize(("method", "path", "body"), STATE_CHANGING + READS)
def test_api_refuses_requests_without_the_token(server, recorder, method, path, body) -> None:
    for headers in ({}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"}):
        response = _call(server, method, path, body, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert recorder.calls == []


@pytest.mark.parametrize(("method", "path", "body"), STATE_CHANGING + READS)
def test_api_refuses_a_wrong_token(server, recorder, method, path, body) -> None:
    for wrong in (TOKEN[:-1], TOKEN + "x", "x" * len(TOKEN), TOKEN.upper()):
        response = _call(server, method, path, body, {"Authorization": f"Bearer {wrong}"})
        assert response.status_code == 403, response.text
    assert recorder.calls == []


@pytest.mark.parametrize(("method", "path", "body"), STATE_CHANGING + READS)
def test_api_serves_the_right_token(server, recorder, method, path, body) -> None:
    response = _call(server, method, path, body, {"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code in {200, 201}, response.text
    assert len(recorder.calls) == 1


def test_api_passes_validated_arguments(server, recorder) -> None:
    auth = {"Authorization": f"bearer {TOKEN}"}
    body = {"matchers": ["model=m", "rule=~psi.*"], "duration": "2h", "author": "a", "comment": "c"}
    assert _call(server, "POST", "/api/v1/silences", body, auth).status_code == 201
    assert _call(server, "GET", "/api/v1/dead-letters?reason=bad_json&limit=5", None, auth)
    assert _call(server, "POST", "/api/v1/dead-letters/42/replay", None, auth).status_code == 200
    added, listed, replayed = recorder.calls
    assert added == (
        "add_silence",
        SilenceRequest(
            ("model=m", "rule=~psi.*"),
            datetime(2026, 11, 19, 2, tzinfo=UTC),
            "a",
            "c",
            None,
        ),
    )
    assert listed == ("list_dead_letters", DeadLetterQuery("bad_json", None, 5))
    assert replayed == ("replay_dead_letter", 42)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"matchers": [], "duration": "1h", "author": "a", "comment": "c"}, "matchers"),
        ({"matchers": ["model=m"], "author": "a", "comment": "c"}, "ends_at"),
        ({"matchers": ["model=m"], "duration": "soon", "author": "a", "comment": "c"}, "duration"),
        ({"matchers": ["model=m"], "duration": "1h", "comment": "c"}, "author"),
        ({"matchers": ["model=m"], "duration": "1h", "author": "a", "comment": "c", "x": 1}, "x"),
        ([1, 2], "JSON object"),
    ],
)
def test_api_rejects_bad_silences_with_400(server, recorder, body, message) -> None:
    response = _call(server, "POST", "/api/v1/silences", body, {"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 400 and message in response.json()["error"]
    assert recorder.calls == []


def test_api_answers_unknown_routes_and_methods(server) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert _call(server, "GET", "/api/v1/nothing", None, auth).status_code == 404
    wrong = _call(server, "PUT", "/api/v1/silences", {}, auth)
    assert wrong.status_code == 405 and set(wrong.headers["Allow"].split(", ")) == {"GET", "POST"}
    assert _call(server, "POST", "/metrics", None, auth).status_code == 405
    big = httpx.post(server.url + "/api/v1/silences", content=b"x" * 70_000, headers=auth)
    assert big.status_code == 413
    anonymous = httpx.post(server.url + "/api/v1/silences", content=b"x" * 70_000)
    assert anonymous.status_code == 401


def test_health_and_metrics_stay_open_without_metrics_auth(server) -> None:
    assert httpx.get(server.url + "/livez").status_code == 200
    metrics = httpx.get(server.url + "/metrics")
    assert metrics.status_code == 200 and "driftwarden_ready 1.0" in metrics.text


def test_livez_follows_the_loops_heartbeats_long_after_the_start() -> None:
    now = [0.0]
    health = Health(stall_after=60.0, clock=lambda: now[0])
    running = EndpointServer("127.0.0.1", 0, CollectorRegistry(), health).start()
    try:
        for moment in (10.0, 70.0, 130.0, 3600.0):  # both loops beat now and then
            now[0] = moment
            health.beat("poll")
            health.beat("fold")
            assert httpx.get(running.url + "/livez").text == "ok\n"
        now[0] = 3650.0
        health.beat("poll")  # the fold worker hangs on one batch
        now[0] = 3660.0
        answer = httpx.get(running.url + "/livez")
        assert (answer.status_code, answer.text) == (503, "stalled: fold\n")
        never = Health(stall_after=60.0, clock=lambda: now[0])  # loops that never start
        now[0] += 60.0
        assert never.stalled == ["start"]
    finally:
        running.stop()


def test_unwired_actions_answer_503() -> None:
    running = _serve(_http(token_env="DRIFTWARDEN_TOKEN"))
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert _call(running, "GET", "/api/v1/silences", None, auth).status_code == 503
        assert _call(running, "GET", "/api/v1/silences", None).status_code == 401
    finally:
        running.stop()


def test_a_dead_letter_id_past_64_bits_is_not_found() -> None:
    replayed: list[int] = []
    running = _serve(_http(), ApiActions(replay_dead_letter=lambda i: replayed.append(i) or {}))
    try:
        answer = _call(running, "POST", "/api/v1/dead-letters/" + "9" * 40 + "/replay", None)
        assert answer.status_code == 404 and "no dead letter" in answer.json()["error"]
        assert replayed == []
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("auth", "good", "bad"),
    [
        (
            {"token_env": "METRICS_TOKEN"},
            "Bearer metrics-token",
            "Bearer " + TOKEN,
        ),
        (
            {"username": "prometheus", "password_env": "METRICS_PASSWORD"},
            "Basic " + base64.b64encode(b"prometheus:pw").decode(),
            "Basic " + base64.b64encode(b"prometheus:wrong").decode(),
        ),
    ],
    ids=["token", "basic"],
)
def test_metrics_can_require_a_token_or_basic_auth(auth, good, bad) -> None:
    running = _serve(_http(metrics_auth=auth))
    try:
        url = running.url + "/metrics"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": bad}).status_code == 403
        assert httpx.get(url, headers={"Authorization": good}).status_code == 200
        assert httpx.get(running.url + "/livez").status_code == 200
    finally:
        running.stop()


BASE = "models:\n  m:\n    task: regression\n    reference: r.csv\n    features: {numeric: [a]}\n"


def test_config_refuses_a_non_loopback_bind_without_a_token() -> None:
    with pytest.raises(ConfigError) as refused:
        configuration.parse(BASE + "http: {host: 0.0.0.0}\n")
    assert refused.value.path == "http.token_env"
    assert "http.host '0.0.0.0' is not a loopback address" in str(refused.value)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert configuration.parse(BASE + f"http: {{host: '{host}'}}\n").http.host == host
    with pytest.raises(ConfigError, match="never the secret itself"):
        configuration.parse(BASE + f"http: {{host: 0.0.0.0, token_env: '{TOKEN}'}}\n")


def test_server_refuses_to_start_off_loopback_without_a_token() -> None:
    http = HttpConfig.model_construct(host="0.0.0.0", port=0, token_env=None)
    with pytest.raises(ConfigError, match=r"http\.token_env"):
        EndpointServer.from_config(http, CollectorRegistry(), Health(), environ={})
    with pytest.raises(ConfigError, match=r"http\.token_env"):
        EndpointServer("0.0.0.0", 0, CollectorRegistry(), Health())


def test_server_refuses_a_token_variable_that_is_unset_or_weak() -> None:
    http = _http(host="0.0.0.0", token_env="DRIFTWARDEN_TOKEN")
    with pytest.raises(ConfigError, match="DRIFTWARDEN_TOKEN is not set"):
        EndpointServer.from_config(http, CollectorRegistry(), Health(), environ={})
    with pytest.raises(ConfigError, match="shorter than 16"):
        EndpointServer.from_config(
            http, CollectorRegistry(), Health(), environ={"DRIFTWARDEN_TOKEN": "short"}
        )


def test_tls(tmp_path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    running = _serve(
        _http(token_env="DRIFTWARDEN_TOKEN", tls={"cert_file": cert, "key_file": key}),
        Recorder().actions(),
    )
    try:
        assert running.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=context) as client:
            assert client.get(running.url + "/livez").status_code == 200
            assert client.get(running.url + "/api/v1/silences").status_code == 401
            auth = {"Authorization": f"Bearer {TOKEN}"}
            assert client.get(running.url + "/api/v1/silences", headers=auth).status_code == 200
        with pytest.raises(httpx.HTTPError):  # plain HTTP gets no answer
            httpx.get(running.url.replace("https", "http") + "/livez", timeout=5)
    finally:
        running.stop()
    with pytest.raises(ConfigError, match=r"http\.tls"):
        _serve(_http(tls={"cert_file": tmp_path / "none.pem", "key_file": key}))


def test_database_actions_on_sqlite(tmp_path) -> None:
    """The real silence and dead-letter actions the daemon wires, through HTTP."""
    engine = storage.create(f"sqlite:///{tmp_path / 'api.db'}")
    storage.upgrade(engine)
    store = storage.Store(engine)
    letter = DeadLetter(
        "bad_json", "not JSON", b"{oops", Origin("predictions", 0, 12), "prediction"
    )
    store.commit(storage.Commit(dead_letters=[letter]))
    replayed: list[int] = []

    def replay(dead_letter_id: int) -> dict:
        replayed.append(dead_letter_id)
        return {"id": dead_letter_id}

    running = _serve(
        _http(token_env="DRIFTWARDEN_TOKEN"), database_actions(store, lambda: NOW, replay)
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        body = {"matchers": ["model=credit-default"], "duration": "2h", "author": "ops",
                "comment": "maintenance"}  # fmt: skip
        created = _call(running, "POST", "/api/v1/silences", body, auth)
        assert created.status_code == 201, created.text
        silence = created.json()
        assert silence["state"] == "active" and silence["ends_at"] == "2026-11-19T02:00:00.000Z"
        listed = _call(running, "GET", "/api/v1/silences", None, auth).json()
        assert [s["id"] for s in listed] == [silence["id"]]
        expired = _call(running, "DELETE", f"/api/v1/silences/{silence['id']}", None, auth)
        assert expired.status_code == 200 and expired.json()["state"] == "expired"
        assert _call(running, "GET", "/api/v1/silences", None, auth).json() == []
        missing = _call(running, "DELETE", "/api/v1/silences/nope", None, auth)
        assert missing.status_code == 404
        bad = {**body, "matchers": ["model=~.*"]}  # matches an empty label: refused
        assert _call(running, "POST", "/api/v1/silences", bad, auth).status_code == 400
        letters = _call(running, "GET", "/api/v1/dead-letters", None, auth).json()
        assert [(d["reason"], d["origin"]["offset"]) for d in letters] == [("bad_json", 12)]
        done = _call(running, "POST", f"/api/v1/dead-letters/{letters[0]['id']}/replay", None, auth)
        assert done.status_code == 200 and replayed == [letters[0]["id"]]
    finally:
        running.stop()
        engine.dispose()


@pytest.mark.kafka
def test_dead_letter_replayer_produces_to_the_origin_topic(broker: str, tmp_path) -> None:
    topic = unique("replayed")
    create_topic(broker, topic, 1)
    engine = storage.create(f"sqlite:///{tmp_path / 'replay.db'}")
    storage.upgrade(engine)
    store = storage.Store(engine)
    raw = b'{"model": "credit-default", "id": "p-1"}'
    from_kafka = DeadLetter("missing_field", "no ts", raw, Origin(topic, 0, 5), "prediction")
    from_file = DeadLetter("bad_json", "x", b"{", Origin("events.jsonl", None, 3), "prediction")
    store.commit(storage.Commit(dead_letters=[from_kafka, from_file]))
    ids = {stored.letter.origin.source: stored.id for stored in store.dead_letters()}
    replayer = DeadLetterReplayer(KafkaConfig(bootstrap_servers=broker), store, lambda: NOW)
    try:
        done = replayer(ids[topic])
        assert done == {"id": ids[topic], "topic": topic, "replayed_at": "2026-11-19T00:00:00.000Z"}
        api = Api(ApiActions(replay_dead_letter=replayer))

        def replayed(dead_letter_id: int) -> Response:
            path = f"/api/v1/dead-letters/{dead_letter_id}/replay"
            return api.handle("POST", path, {}, lambda: b"")

        from_a_file = replayed(ids["events.jsonl"])
        assert from_a_file.status == 409
        unknown = replayed(999)
        assert unknown.status == 404
    finally:
        replayer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        records = wait_for_records(consumer)
    finally:
        consumer.close()
    assert [(r.key, r.value) for r in records] == [(b"credit-default", raw)]
    assert store.dead_letters(ids=[ids[topic]])[0].replayed_at is not None
    engine.dispose()


def wait_for_records(consumer) -> list:
    records: list = []
    for _ in range(20):
        for batch in consumer.poll(timeout_ms=250).values():
            records += batch
        if records:
            break
    return records


def test_http_secrets_can_come_from_files(tmp_path: Path) -> None:
    """``token_file``, ``metrics_auth.password_file``: read at load, checked by the server."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "metrics-password").write_text("pw-from-file\n")
    path = tmp_path / "conf.yaml"
    path.write_text(
        BASE
        + "http:\n  host: 0.0.0.0\n  port: 0\n  token_file: token\n"
        + "  metrics_auth: {username: prom, password_file: metrics-password}\n"
    )
    loaded = configuration.load(path, environ={})
    assert loaded.http.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(loaded.http)
    running = _serve(loaded.http.model_copy(update={"host": "127.0.0.1"}))
    try:
        assert _call(running, "GET", "/api/v1/silences", None).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert _call(running, "GET", "/api/v1/silences", None, auth).status_code == 503
        basic = "Basic " + base64.b64encode(b"prom:pw-from-file").decode()
        assert httpx.get(running.url + "/metrics").status_code == 401
        assert httpx.get(running.url + "/metrics", headers={"Authorization": basic}).is_success
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("http", "message"),
    [
        ("{token_env: T, token_file: token}", "http.token_env: set either token_env or token"),
        ("{token_file: short}", "http.token: the token in http.token is shorter than 16"),
        ("{token_file: missing}", "http.token_file: cannot read missing"),
        (
            "{metrics_auth: {token_env: M, token_file: token}}",
            "set either token_env or token (or token_file), not both",
        ),
        ("{metrics_auth: {username: u}}", "basic auth needs both username and password_env"),
    ],
)
def test_http_secret_files_that_cannot_serve_name_the_key(
    tmp_path: Path, http: str, message: str
) -> None:
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "short").write_text("short")
    path = tmp_path / "conf.yaml"
    path.write_text(BASE + f"http: {http}\n")
    with pytest.raises(ConfigError) as raised:
        loaded = configuration.load(path, environ={})
        HttpSecurity.from_config(loaded.http, {})
    assert message in str(raised.value)
