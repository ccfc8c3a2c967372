"""Throw-away certificates for the TLS delivery tests (tests/test_delivery.py).

:func:`make_pki` writes, as PEM files: a CA, a server certificate signed by it (for 127.0.0.1 and
localhost), a client certificate signed by it (mutual TLS), and a self-signed server
certificate that no CA vouches for. P-256 keys, valid two days; made with the ``cryptography``
package (a dependency of moto, tests/requirements.txt). :func:`tests.helpers.faults.make_tls_files`
makes a CA and a server certificate only and keeps no CA key, so it cannot sign client
certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Sequence


def make_pki(directory: Path, ips: Sequence[str] = ("127.0.0.1",),
             names: Sequence[str] = ("localhost",)) -> dict:
    """Returns paths: ``ca``; ``server_cert``/``server_key`` (signed by the CA, SAN ``ips`` and
    ``names``); ``client_cert``/``client_key`` (signed by the CA, CN ``flbt client``, clientAuth);
    ``self_signed_cert``/``self_signed_key`` (same SANs, its own issuer)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=2)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(path: Path, key) -> Path:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return path

    def write_cert(path: Path, cert) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    san = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address(i)) for i in ips] + [x509.DNSName(n) for n in names])

    def leaf(subject: str, key, issuer_name, issuer_key, usage, with_san: bool):
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(issuer_name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now).not_valid_after(later)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                          False), critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 issuer_key.public_key()), critical=False))
        if with_san:
            b = b.add_extension(san, critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("flbt delivery test CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(later)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))

    server_key = ec.generate_private_key(ec.SECP256R1())
    server = leaf("flbt receiver", server_key, ca_name, ca_key, ExtendedKeyUsageOID.SERVER_AUTH,
                  True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = leaf("flbt client", client_key, ca_name, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH,
                  False)
    # self-signed: issuer = subject, signed with its own key, no CA anywhere
    ss_key = ec.generate_private_key(ec.SECP256R1())
    ss_name = name("flbt self-signed receiver")
    self_signed = leaf("flbt self-signed receiver", ss_key, ss_name, ss_key,
                       ExtendedKeyUsageOID.SERVER_AUTH, True)

    return {
        "ca": write_cert(d / "ca.pem", ca),
        "server_cert": write_cert(d / "server.pem", server),
        "server_key": write_key(d / "server.key", server_key),
        "client_cert": write_cert(d / "client.pem", client),
        "client_key": write_key(d / "client.key", client_key),
        "self_signed_cert": write_cert(d / "self-signed.pem", self_signed),
        "self_signed_key": write_key(d / "self-signed.key", ss_key),
    }


def make_openssl_req_x509(directory: Path, ip: str = "127.0.0.1") -> dict:
    """A self-signed server certificate made the common way, exactly
    ``openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=<ip> -addext subjectAltName=IP:<ip>``
    (OpenSSL marks it ``CA:TRUE``). Returns ``cert`` and ``key`` paths; needs the openssl CLI."""
    import subprocess

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "openssl-x509.pem", d / "openssl-x509.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", f"/CN={ip}", "-addext", f"subjectAltName=IP:{ip}",
                    "-days", "2", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return {"cert": cert, "key": key}
