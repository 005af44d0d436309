"""`shelfkeeper serve` as a real process: HTTPS with `--ssl-certfile`/`--ssl-keyfile`, and
structured logs from every logger, uvicorn's included, with its access log replaced by ours.

The certificate is made here: a throwaway CA and a leaf for 127.0.0.1 signed by it; the
client trusts only that CA.
"""

from __future__ import annotations

import json
import ssl
import time
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.test_cli import READY_TIMEOUT, Server, cli_environment, run_cli, serving


def write_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 it signed. Returns (ca, cert, key)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Shelfkeeper test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server-key.pem",
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


def wait_ready_over_tls(server: Server, verify: ssl.SSLContext) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(base_url=f"https://127.0.0.1:{server.port}", verify=verify) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(f"serve exited with {server.process.returncode}:\n{server.output()}")
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    pytest.fail(f"serve not ready over TLS within {READY_TIMEOUT} s:\n{server.output()}")


def log_lines(output: str) -> list[dict[str, Any]]:
    """Every line of the server's output, each of which must be one JSON object."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line!r}\n{output}")
    return parsed


def test_serve_over_tls_with_structured_logs(database_url: str, tmp_path: Path) -> None:
    # given
    ca, certificate, key = write_certificate(tmp_path)
    env = cli_environment(tmp_path, DATABASE_URL=database_url)
    trusted = ssl.create_default_context(cafile=str(ca))
    arguments = ("--ssl-certfile", str(certificate), "--ssl-keyfile", str(key))

    # when
    with serving(env, tmp_path / "serve.log", *arguments) as server:
        wait_ready_over_tls(server, trusted)
        url = f"https://127.0.0.1:{server.port}"
        with httpx.Client(base_url=url, verify=trusted) as client:
            health = client.get("/healthz", headers={"X-Request-ID": "tls-probe"})
        with httpx.Client(base_url=url, verify=ssl.create_default_context()) as untrusting:
            with pytest.raises(httpx.ConnectError):
                untrusting.get("/healthz")
        status = server.stop()

    # then: HTTPS, with HSTS
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert health.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert health.headers["X-Content-Type-Options"] == "nosniff"
    assert status == 0, server.output()
    # every line is a JSON object: uvicorn's own, and one access line per request
    lines = log_lines(server.output())
    assert all({"timestamp", "level", "logger", "event"} <= line.keys() for line in lines)
    started = [line for line in lines if line["logger"].startswith("uvicorn")]
    assert any(f"Uvicorn running on {url}" in line["event"] for line in started), started
    [access] = [line for line in lines if line.get("request_id") == "tls-probe"]
    assert access["logger"] == "shelfkeeper.access"
    assert (access["event"], access["route"], access["method"], access["status"]) == (
        "request",
        "/healthz",
        "GET",
        200,
    )
    # uvicorn's access log is off: no line of its own for the request
    assert not any("GET /healthz" in line["event"] for line in lines), lines


def test_serve_needs_both_tls_files(tmp_path: Path) -> None:
    _, certificate, _ = write_certificate(tmp_path)

    result = run_cli("serve", "--ssl-certfile", str(certificate), env=cli_environment(tmp_path))

    assert result.returncode == 2, result.stderr
    assert "give both --ssl-certfile and --ssl-keyfile" in result.stderr
    assert not (tmp_path / "postgres").exists()
