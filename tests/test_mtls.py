"""mTLS for usage ingestion (issue 7): nginx verifies the kernel's client certificate and forwards
its subject; the API, with BILLING_KERNEL_SUBJECTS set, takes usage only from those subjects and
only with the JWT as well.

The session's Serve app does not ask for certificates, so this module runs its own instance of
the API (same database and Redis) under uvicorn in a thread, with nginx in front of it.
"""

from __future__ import annotations

import socket
import ssl
import stat
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from cryptography import x509

from cli.main import main as billing
from infra import certificates
from infra.settings import Settings
from serve.app import build_app
from serve.client_certificates import SUBJECT_HEADER
from serve.mtls.proxy import ProxyConfig, find_nginx, start
from tests.conftest import auth, free_port

needs_nginx = pytest.mark.skipif(
    find_nginx() is None, reason="nginx is not installed (apt-get install nginx-light)"
)
REPO = Path(__file__).resolve().parents[1]


class Certs:
    """A CA with the proxy's certificate, the kernel's, another service's (same CA, not allowed
    to post usage), and a kernel look-alike signed by a CA nobody trusts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        ca = certificates.create_ca()
        certificates.write(ca, directory, certificates.CA)
        certificates.write(certificates.issue_server(ca), directory, certificates.SERVER)
        self.kernel = self._client(certificates.issue_client(ca, "enis-kernel"), "enis-kernel")
        self.other = self._client(certificates.issue_client(ca, "other-service"), "other-service")
        stranger_ca = certificates.create_ca("someone else's CA")
        self.foreign = self._client(certificates.issue_client(stranger_ca, "enis-kernel"), "foreign")
        self.server_as_client = (directory / "server.pem", directory / "server-key.pem", "")
        self.kernel_subject = self.kernel[2]

    def _client(self, issued: certificates.Issued, stem: str) -> tuple[Path, Path, str]:
        certificate, key = certificates.write(issued, self.directory, stem)
        return certificate, key, issued.subject

    def context(self, client: tuple[Path, Path, str] | None) -> ssl.SSLContext:
        """Trusts our CA for the proxy's certificate; presents `client`'s certificate, if any."""
        context = ssl.create_default_context(cafile=str(self.directory / "ca.pem"))
        if client is not None:
            context.load_cert_chain(str(client[0]), str(client[1]))
        return context


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def mtls_api(settings: Settings, stack, certs: Certs):
    """The API with mTLS required, on plain uvicorn at 127.0.0.1 (the session's migrations,
    database, Redis and shard actors behind it)."""
    app = build_app(settings.with_(kernel_subjects=(certs.kernel_subject,)))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="mtls-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start under uvicorn"
        time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def proxy(mtls_api: str, certs: Certs, tmp_path_factory) -> str:
    if find_nginx() is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    listen = f"127.0.0.1:{free_port()}"
    running = start(ProxyConfig(certs.directory, listen, mtls_api), tmp_path_factory.mktemp("proxy"))
    yield f"https://localhost:{listen.split(':')[1]}"  # the server certificate names localhost
    running.stop()
    assert running.process.returncode is not None


def through_proxy(proxy: str, certs: Certs, client, **kwargs) -> httpx.Response:
    with httpx.Client(base_url=proxy, verify=certs.context(client), timeout=30) as http:
        return http.post("/api/v1/usage", **kwargs)


def usage(tenant: str, executions: int = 1) -> dict:
    return {
        "tenant_id": tenant,
        "timestamp": datetime.now(UTC).isoformat(),
        "usage": {"executions": executions},
        "event_id": uuid.uuid4().hex,
    }


@needs_nginx
def test_the_kernel_certificate_and_jwt_get_usage_counted(proxy, certs, tokens, api):
    tenant = f"mtls-{uuid.uuid4().hex[:6]}"
    events = [usage(tenant, executions=n) for n in (1, 2, 4)]
    response = through_proxy(
        proxy, certs, certs.kernel, json={"events": events}, headers=auth(tokens["kernel"])
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"queued": True, "accepted": 3, "duplicates": 0}
    # Counted like any other usage: visible live through the session's API.
    deadline = time.monotonic() + 10
    while True:
        rows = api.get(f"/api/v1/usage/{tenant}", headers=auth(tokens["viewer"])).json()["rows"]
        if sum(Decimal(row["executions"]) for row in rows) == 7:
            break
        assert time.monotonic() < deadline, f"usage posted through the proxy not visible: {rows}"
        time.sleep(0.1)


@needs_nginx
@pytest.mark.parametrize(
    "client, problem",
    [
        (None, "client-certificate-required"),
        ("foreign", "client-certificate-invalid"),  # CN=enis-kernel, but from another CA
        ("server_as_client", "client-certificate-invalid"),  # our CA, but not a client certificate
    ],
)
def test_nginx_refuses_without_a_certificate_our_ca_issued_to_a_client(proxy, certs, tokens, client, problem):
    chosen = getattr(certs, client) if client else None
    response = through_proxy(proxy, certs, chosen, json=usage("mtls-refused"), headers=auth(tokens["kernel"]))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith(problem)


@needs_nginx
def test_a_forged_subject_header_never_reaches_the_api(proxy, certs, tokens):
    # Another service's certificate (our CA) claiming to be the kernel: nginx replaces every
    # copy of the header, in any letter case, with the verified subject.
    forged = [(SUBJECT_HEADER, certs.kernel_subject), (SUBJECT_HEADER.lower(), certs.kernel_subject)]
    headers = [*auth(tokens["kernel"]).items(), *forged]
    refused = through_proxy(proxy, certs, certs.other, json=usage("mtls-forged"), headers=headers)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("client-certificate-not-allowed")
    assert "CN=other-service" in refused.json()["detail"]
    # And the kernel's own certificate is not hurt by a junk header: its real subject wins.
    junk = [*auth(tokens["kernel"]).items(), (SUBJECT_HEADER, "CN=nobody")]
    assert (
        through_proxy(proxy, certs, certs.kernel, json=usage("mtls-forged"), headers=junk).status_code == 202
    )


@needs_nginx
def test_the_kernel_certificate_without_a_jwt_is_401(proxy, certs, tokens):
    missing = through_proxy(proxy, certs, certs.kernel, json=usage("mtls-nojwt"))
    assert missing.status_code == 401, missing.text
    wrong_role = through_proxy(
        proxy, certs, certs.kernel, json=usage("mtls-nojwt"), headers=auth(tokens["viewer"])
    )
    assert wrong_role.status_code == 403


@needs_nginx
def test_nginx_keeps_the_apis_body_limit(proxy, certs, tokens):
    response = through_proxy(
        proxy,
        certs,
        certs.kernel,
        content=b"x" * (20 * 1024 * 1024 + 1),
        headers=auth(tokens["kernel"]) | {"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["type"].endswith("too-large")


class DroppingAPI:
    """An upstream that reads each request and closes the connection without an answer, as Serve's
    HAProxy does with a request whose API replica died under it (tests/test_multinode.py)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            with connection:
                if connection.recv(65536):
                    self.requests += 1


@needs_nginx
def test_a_batch_the_api_dropped_is_sent_once_more_then_answered_503(certs, tokens, tmp_path):
    dropping = DroppingAPI()
    listen = f"127.0.0.1:{free_port()}"
    running = start(ProxyConfig(certs.directory, listen, dropping.address), tmp_path / "proxy")
    try:
        response = through_proxy(
            f"https://localhost:{listen.split(':')[1]}", certs, certs.kernel,
            json=usage("mtls-dropped"), headers=auth(tokens["kernel"]),
        )
    finally:
        running.stop()
        dropping.listener.close()
    assert dropping.requests == 2  # the batch, and the same batch once more
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/unavailable")
    assert "reported as duplicates" in response.json()["detail"]


def test_the_api_refuses_usage_that_did_not_come_through_the_proxy(mtls_api, tokens):
    with httpx.Client(base_url=f"http://{mtls_api}", timeout=30) as http:
        response = http.post("/api/v1/usage", json=usage("mtls-direct"), headers=auth(tokens["kernel"]))
    assert response.status_code == 403
    assert response.json()["type"].endswith("client-certificate-required")


def test_serve_binds_to_loopback_by_default(monkeypatch):
    # The subject header is trusted because only the proxy can reach the API: a client that
    # reached Serve directly could write the header itself. So Serve listens on loopback unless
    # an operator says otherwise (and then on a private interface, docs/operations.md).
    monkeypatch.delenv("BILLING_HTTP_HOST", raising=False)
    assert Settings.from_env().http_host == "127.0.0.1"
    config = yaml.safe_load((REPO / "serve_config.yaml").read_text())
    assert config["http_options"]["host"] == "127.0.0.1"


def test_allowed_subjects_are_separated_by_semicolons(monkeypatch):
    monkeypatch.setenv("BILLING_KERNEL_SUBJECTS", "CN=enis-kernel,O=ENIS; CN=enis-kernel-2,O=ENIS;")
    assert Settings.from_env().kernel_subjects == ("CN=enis-kernel,O=ENIS", "CN=enis-kernel-2,O=ENIS")
    monkeypatch.setenv("BILLING_KERNEL_SUBJECTS", "")
    assert Settings.from_env().kernel_subjects == ()


def test_billing_certs_writes_a_ca_server_and_kernel_certificates(tmp_path, capsys):
    assert billing(["certs", "--out", str(tmp_path), "--server-name", "billing.internal"]) == 0
    printed = capsys.readouterr().out
    written = {Path(line) for line in printed.splitlines() if line.startswith("/")}
    assert {p.name for p in written} == {
        "ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "enis-kernel.pem", "enis-kernel-key.pem"
    }  # fmt: skip
    for key in tmp_path.glob("*-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert "BILLING_KERNEL_SUBJECTS='CN=enis-kernel,O=ENIS'" in printed
    server = certificates.read(tmp_path, "server").certificate
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n.value) for n in names} == {"localhost", "127.0.0.1", "billing.internal"}
    # A second run reuses the CA, so certificates handed out before stay valid.
    ca_before = (tmp_path / "ca.pem").read_bytes()
    assert billing(["certs", "--out", str(tmp_path), "--client-name", "enis-kernel-2"]) == 0
    assert (tmp_path / "ca.pem").read_bytes() == ca_before
    kernel_2 = certificates.read(tmp_path, "enis-kernel-2").certificate
    kernel_2.verify_directly_issued_by(certificates.read(tmp_path, "ca").certificate)
