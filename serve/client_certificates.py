"""The kernel's client certificate, as verified by the mTLS proxy in front of the API (issue 7).

nginx (serve/mtls/) checks the certificate against our CA and forwards its subject in
`X-Client-Subject`, replacing any header of that name a client sent. When
BILLING_KERNEL_SUBJECTS lists subjects, usage ingest requires one of them in that header, on top
of the JWT: a stolen token is useless without the kernel's key, and the reverse. The header can
be trusted only because the API is reachable through the proxy alone (Serve bound to loopback or
a private interface: the deployment's job, see docs/operations.md). Empty list: no certificate
asked for (development, and the test suite outside tests/test_mtls.py).
"""

from __future__ import annotations

from fastapi import Request

from serve.problems import Problem

SUBJECT_HEADER = "X-Client-Subject"


async def kernel_certificate(request: Request) -> str | None:
    """The verified subject of the caller's certificate when one is required; else 403.

    403 rather than 401: the JWT (checked first) is the HTTP authentication, and a client
    certificate is not something a request can add by a header; it is a property of the
    connection that reached us."""
    allowed = request.app.state.services.settings.kernel_subjects
    if not allowed:
        return None
    sent = request.headers.getlist(SUBJECT_HEADER)
    if not sent:
        raise Problem(
            403,
            "client-certificate-required",
            "Client certificate required",
            "usage is accepted only through the mTLS proxy, with the kernel's client certificate",
        )
    if len(sent) > 1 or sent[0] not in allowed:
        detail = (
            f"the certificate subject {sent[0]!r}" if len(sent) == 1 else f"more than one {SUBJECT_HEADER}"
        )
        raise Problem(403, "client-certificate-not-allowed", "Client certificate not allowed", detail)
    return sent[0]
