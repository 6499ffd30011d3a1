"""Throwaway certificates for the TLS tests, made with the ``openssl`` command line
(installed by ``deploy/local/install-deps.sh --tests``)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Issued:
    """A certificate signed by a test CA, and its private key (PKCS#8 PEM)."""

    cert: Path
    key: Path

    def key_and_chain(self, where: Path) -> Path:
        """The key followed by the certificate, in one file (a PEM keystore)."""
        where.write_text(self.key.read_text() + self.cert.read_text())
        return where


def _openssl(*args: object) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is installed by deploy/local/install-deps.sh --tests"
    subprocess.run([openssl, *map(str, args)], check=True, capture_output=True)


@dataclass(frozen=True)
class PrivateCA:
    """A private certificate authority in a directory of its own."""

    where: Path
    cert: Path
    key: Path

    @classmethod
    def create(cls, where: Path, name: str = "test CA") -> PrivateCA:
        where.mkdir(parents=True, exist_ok=True)
        cert, key = where / "ca.pem", where / "ca.key"
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                 "-subj", f"/CN={name}", "-keyout", key, "-out", cert)  # fmt: skip
        return cls(where, cert, key)

    def issue(self, name: str, ip: str | None = None) -> Issued:
        """A certificate for ``name`` (and for the address ``ip``, for a server)."""
        key, csr, cert = (self.where / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", key, "-out", csr)  # fmt: skip
        ext = self.where / f"{name}.ext"
        ext.write_text(f"subjectAltName=IP:{ip}\n" if ip else "extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                 "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", cert)  # fmt: skip
        return Issued(cert, key)
