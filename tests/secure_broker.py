"""A Mosquitto child process secured like production: TLS, a password file and an ACL.

:class:`AclMosquitto` is the plain-TCP, anonymous half of it: only the ACL, for tests of
what the broker refuses (a denied QoS 1 publish gets PUBACK 0x87 under MQTT 5) and of
the broker reloading a corrected ACL.

:func:`make_test_ca` makes a throwaway certificate authority and a server certificate
for ``127.0.0.1``/``localhost`` with the ``openssl`` command line (no Python crypto
dependency); :class:`SecureMosquitto` serves TLS with it, refuses anonymous clients and
checks every publish and delivery against ``acl_file``. Users and ACL entries are made
with ``qihe provision`` (``central/provision.py``); :meth:`SecureMosquitto.reload` makes
the running broker read them again, as ``systemctl reload mosquitto`` does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from devstack.processes import DevStackError, MosquittoProcess, find_program

__all__ = ["AclMosquitto", "SecureMosquitto", "TestPki", "make_test_ca"]

#: Logged by Mosquitto (at "information") when it has handled SIGHUP.
_RELOADED = b"Reloading config."


@dataclass(frozen=True, slots=True)
class TestPki:
    """Files of a test certificate authority and of the server certificate it signed."""

    __test__ = False  # not a pytest test class, whatever its name

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    command = [find_program("openssl", "/usr/bin/openssl", package="openssl"), *args]
    result = subprocess.run(command, cwd=cwd, capture_output=True, check=False)
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip()
        raise DevStackError(f"openssl {args[0]} failed ({result.returncode}): {reason}")


def make_test_ca(
    folder: Path,
    *,
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    days: int = 2,
) -> TestPki:
    """A new CA (EC P-256) and a server certificate for ``hosts``, all under ``folder``.

    The server certificate carries its hosts as subjectAltName (IP or DNS), as TLS
    clients check those, not the common name. Keys are written 0600.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pki = TestPki(
        ca_cert=folder / "ca.crt",
        ca_key=folder / "ca.key",
        server_cert=folder / "server.crt",
        server_key=folder / "server.key",
    )
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", pki.ca_key.name, "-out", pki.ca_cert.name,
        "-days", str(days), "-subj", "/CN=qihe test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "req", *ec, "-keyout", pki.server_key.name, "-out", "server.csr",
        "-subj", f"/CN={hosts[0]}",
        cwd=folder,
    )  # fmt: skip
    names = ",".join(
        f"IP:{host}" if host.replace(".", "").isdigit() or ":" in host else f"DNS:{host}"
        for host in hosts
    )
    (folder / "server.ext").write_text(
        f"subjectAltName={names}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", pki.ca_cert.name,
        "-CAkey", pki.ca_key.name, "-CAcreateserial", "-out", pki.server_cert.name,
        "-days", str(days), "-extfile", "server.ext",
        cwd=folder,
    )  # fmt: skip
    for key in (pki.ca_key, pki.server_key):
        key.chmod(0o600)
    return pki


class AclMosquitto(MosquittoProcess):
    """Mosquitto on a free loopback port, anonymous clients, every publish checked against
    ``acl_file`` (its first lines, before any ``user``, hold for anonymous clients).

    Plain TCP: for tests of what the broker refuses (MQTT 5 PUBACK 0x87). Change the
    file and call :meth:`reload` to make the running broker read it again (SIGHUP), as
    ``systemctl reload mosquitto`` does. The ACL file starts empty (all denied) when missing.
    """

    name = "mosquitto"

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        *,
        acl_file: Path | None = None,
        max_queued_messages: int = 1_000_000,
        extra_config: str = "",
    ) -> None:
        super().__init__(
            folder, port, max_queued_messages=max_queued_messages, extra_config=extra_config
        )
        self.acl_file = Path(acl_file or self.folder / "acl")

    @property
    def broker_log(self) -> Path:
        """Mosquitto's own log file (written as it happens, unlike its buffered stdout)."""
        return self.folder / "broker.log"

    def listener_config(self) -> list[str]:
        return [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            f"acl_file {self.acl_file}",
            *self.log_config(),
        ]

    def log_config(self) -> list[str]:
        # Connections, refusals and reloads, flushed line by line (stdout is buffered):
        # reload() waits for its line.
        return ["log_type information", f"log_dest file {self.broker_log}"]

    def _files(self) -> tuple[Path, ...]:
        return (self.acl_file,)

    def start(self, timeout: float = 15.0) -> Self:
        for path in self._files():
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch(mode=0o640)
        super().start(timeout)
        return self

    def reload(self, timeout: float = 10.0) -> None:
        """Send SIGHUP and wait until Mosquitto has re-read its password and ACL files."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise DevStackError("mosquitto is not running: nothing to reload")
        before = self._log_bytes().count(_RELOADED)
        os.kill(proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self._log_bytes().count(_RELOADED) <= before:
            if time.monotonic() > deadline:
                raise DevStackError(f"mosquitto did not reload within {timeout}s")
            time.sleep(0.02)

    def _log_bytes(self) -> bytes:
        try:
            return self.broker_log.read_bytes()
        except FileNotFoundError:
            return b""


class SecureMosquitto(AclMosquitto):
    """Mosquitto on a free loopback port with TLS 1.2+, ``password_file`` and ``acl_file``.

    Anonymous clients are refused; clients need ``pki.ca_cert`` to verify the broker
    (no client certificates are asked for). The password and ACL files start empty
    when missing: nobody can connect until users are provisioned and :meth:`reload`
    (or a start) makes the broker read them.
    """

    name = "mosquitto"

    def __init__(
        self,
        folder: Path,
        pki: TestPki,
        port: int | None = None,
        *,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        max_queued_messages: int = 1_000_000,
        extra_config: str = "",
    ) -> None:
        super().__init__(
            folder,
            port,
            acl_file=acl_file,
            max_queued_messages=max_queued_messages,
            extra_config=extra_config,
        )
        self.pki = pki
        self.password_file = Path(password_file or self.folder / "passwd")

    def listener_config(self) -> list[str]:
        return [
            f"listener {self.port} {self.host}",
            f"cafile {self.pki.ca_cert}",
            f"certfile {self.pki.server_cert}",
            f"keyfile {self.pki.server_key}",
            "require_certificate false",
            "tls_version tlsv1.2",
            # Global (per_listener_settings is false): they hold for every listener.
            "allow_anonymous false",
            f"password_file {self.password_file}",
            f"acl_file {self.acl_file}",
            *self.log_config(),
        ]

    def _files(self) -> tuple[Path, ...]:
        return (self.password_file, self.acl_file)
