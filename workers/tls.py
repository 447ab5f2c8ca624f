"""The fleet's own certificate authority, for Redis listening on a network (`cvfleet up --listen`).

A self-signed CA is made once per fleet directory and kept (workers on other machines hold a copy
of `ca.crt`); the server certificate is made again at every `up --listen`, naming the address it
listens on, 127.0.0.1 and localhost in its subjectAltName, since the head's own workers and clients
connect on loopback. Private keys are mode 0600 in a 0700 directory.

The `openssl` command line makes them: it comes with the OpenSSL that a TLS-capable redis-server
links anyway (Debian's `openssl`, a dependency of `ca-certificates`), so this needs no new Python
package. EC P-256 keys: generated in milliseconds.

Clients verify the server against that CA (`ssl_cert_reqs=required`) and authenticate with the
Redis password; they present no certificate of their own (`--tls-auth-clients no`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity that strict TLS clients accept for a server certificate


class TLSError(RuntimeError):
    """A one-line reason the fleet's certificates could not be made."""


@dataclass(frozen=True)
class TLSFiles:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def files(tls_dir: Path) -> TLSFiles:
    return TLSFiles(tls_dir / "ca.crt", tls_dir / "ca.key", tls_dir / "server.crt", tls_dir / "server.key")


def ensure_certificates(tls_dir: Path, address: str) -> TLSFiles:
    """The CA (made once, then reused) and a server certificate for `address` and loopback (made now)."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise TLSError("no `openssl` command on PATH to make the fleet's certificates: run `apt-get install openssl`")
    tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(tls_dir, 0o700)
    f = files(tls_dir)
    if not (f.ca_cert.exists() and f.ca_key.exists()):
        _run(
            openssl,
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f.ca_key, "-out", f.ca_cert, "-days", str(CA_DAYS),
            "-subj", f"/CN=cvfleet fleet CA {socket.gethostname()}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
    names = ",".join([*(f"IP:{a}" for a in dict.fromkeys([address, "127.0.0.1"])), "DNS:localhost"])
    ext = tls_dir / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={names}\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    csr = tls_dir / "server.csr"
    try:
        _run(
            openssl,
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f.server_key, "-out", csr, "-subj", f"/CN={address}",
        )  # fmt: skip
        _run(
            openssl,
            "x509", "-req", "-in", csr, "-CA", f.ca_cert, "-CAkey", f.ca_key, "-CAcreateserial",
            "-out", f.server_cert, "-days", str(SERVER_DAYS), "-extfile", ext,
        )  # fmt: skip
    finally:
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)
    for key in (f.ca_key, f.server_key):
        os.chmod(key, 0o600)
    return f


def _run(*args) -> None:
    old = os.umask(0o077)  # keys are never readable by others, not even for a moment
    try:
        done = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    finally:
        os.umask(old)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise TLSError(f"openssl could not make the fleet's certificates ({reason})")
