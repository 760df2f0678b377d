"""MQTT users and their ACL entries for Mosquitto: one gateway or one central service at a time.

Each user gets a fresh random password (hashed into Mosquitto's ``password_file``) and
a managed block in the ``acl_file``, written so that provisioning again replaces it::

    # qihe: begin gw1@qibin-taoyuan (gateway qibin-taoyuan/gw1)
    user gw1@qibin-taoyuan
    topic readwrite qihe/v1/qibin-taoyuan/gw1/status
    ...
    # qihe: end gw1@qibin-taoyuan

Least privilege, per role (``ROOT`` is ``{prefix}/v1``; docs/security.md explains why):

- gateway ``SITE/GW`` (user ``GW@SITE``): writes its readings, backlog, command replies
  and status (also its Last Will); reads its status (late Wills), its commands and the
  configs pushed to it.
- consumer: reads readings, status and backlog of every gateway; writes only its own
  dead-letter topic ``ROOT/_dead_letter/{client_id}``.
- live: reads readings, status, alerts and the sites' silences ``ROOT/_silences/+``.
- alerts: reads readings and status; reads and writes ``ROOT/_alerts/+/+``; reads the
  operators' orders ``ROOT/_alerts_ctl/+`` and writes the silences ``ROOT/_silences/+``.
- operator: reads everything under ``ROOT``; writes only commands and configs to gateways
  and orders to the alert engine (acknowledge, silence: ``ROOT/_alerts_ctl/+``).

Passwords are hashed by ``mosquitto_passwd -U`` when it is installed (the clear password
goes through a private temporary file, never a command line other users can read),
otherwise here, in the same ``$7$`` format (PBKDF2-SHA512, 101 iterations).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from qihe.contract import ID_PATTERN, READING_KINDS, TopicError, TopicTree

__all__ = [
    "ProvisionError",
    "gateway_acl",
    "hash_password",
    "provision",
    "service_acl",
]

Role = Literal["consumer", "live", "alerts", "operator"]
Access = Literal["read", "write", "readwrite"]
ROLES: tuple[Role, ...] = ("consumer", "live", "alerts", "operator")

_ID = re.compile(ID_PATTERN)
_PBKDF2_ITERATIONS = 101  # what mosquitto_passwd writes; Mosquitto reads the count from the hash
_SALT_BYTES = 12
_BEGIN = "# qihe: begin "
_END = "# qihe: end "
_FILE_MODE = 0o640


class ProvisionError(RuntimeError):
    """A user could not be provisioned: a bad id, or a password or ACL file problem."""


class InvalidIdError(ProvisionError, ValueError):
    """A site, gateway or service name that cannot be a topic level or a username."""


@dataclass(frozen=True, slots=True)
class AclEntry:
    """One user's ACL block: ``(access, topic)`` lines after ``user {username}``."""

    username: str
    label: str
    topics: tuple[tuple[Access, str], ...]

    def render(self) -> str:
        lines = [f"{_BEGIN}{self.username} ({self.label})", f"user {self.username}"]
        lines += [f"topic {access} {topic}" for access, topic in self.topics]
        lines.append(f"{_END}{self.username}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a client needs to log in; the password exists in clear only here."""

    username: str
    password: str
    acl: AclEntry


def _checked_id(what: str, value: str) -> str:
    """``value`` if it is a valid id (``ID_PATTERN``); otherwise :class:`InvalidIdError`."""
    if not _ID.fullmatch(value):
        raise InvalidIdError(
            f"{what} {value!r} is not a valid id: use letters, digits, '.', '_' and '-' "
            f"(starting with a letter or digit, at most 64); '/', '+', '#' and spaces "
            f"would let it reach other topics"
        )
    return value


def _tree(prefix: str) -> TopicTree:
    try:
        return TopicTree(prefix)
    except TopicError as exc:
        raise InvalidIdError(str(exc)) from None


def _gateway_username(site: str, gateway: str) -> str:
    """``GW@SITE``: ``@`` is never in an id, so no two gateways can share a username."""
    return f"{_checked_id('gateway', gateway)}@{_checked_id('site', site)}"


def gateway_acl(site: str, gateway: str, *, prefix: str) -> AclEntry:
    tree = _tree(prefix)
    base = tree.gateway_root(_checked_id("site", site), _checked_id("gateway", gateway))
    return AclEntry(
        username=_gateway_username(site, gateway),
        label=f"gateway {site}/{gateway}",
        topics=(
            # Status: its own online/offline and Last Will; read to catch a late Will.
            ("readwrite", f"{base}/status"),
            *(("write", f"{base}/{kind}/+") for kind in READING_KINDS),
            ("write", f"{base}/backlog"),
            ("write", f"{base}/cmd_reply/+"),
            ("read", f"{base}/cmd/+"),
            ("read", f"{base}/config"),  # configs pushed to it (docs/remote-config.md)
        ),
    )


def service_acl(name: str, role: Role, *, prefix: str, client_id: str | None = None) -> AclEntry:
    """The ACL of a central service; ``client_id`` names a consumer's dead-letter topic."""
    tree = _tree(prefix)
    root = tree.root
    readings: tuple[tuple[Access, str], ...] = tuple(
        ("read", topic) for topic in tree.reading_filters()
    )
    status: tuple[Access, str] = ("read", tree.status_filter())
    topics: tuple[tuple[Access, str], ...]
    if role == "consumer":
        dead_letter = tree.dead_letter(_checked_id("client id", client_id or name))
        topics = (*readings, status, ("read", tree.backlog_filter()), ("write", dead_letter))
    elif role == "live":
        topics = (
            *readings,
            status,
            ("read", tree.alerts_filter()),
            ("read", tree.silences_filter()),
        )
    elif role == "alerts":
        topics = (
            *readings, status, ("readwrite", tree.alerts_filter()),
            ("read", tree.alert_control_filter()), ("write", tree.silences_filter()),
        )  # fmt: skip
    elif role == "operator":
        topics = (
            ("read", f"{root}/#"),
            ("write", f"{root}/+/+/cmd/+"),
            ("write", f"{root}/+/+/config"),
            ("write", tree.alert_control_filter()),
        )
    else:
        raise ProvisionError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    return AclEntry(
        username=_checked_id("service name", name), label=f"service {role}", topics=topics
    )


# Password hashes ------------------------------------------------------------


def _python_hash(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${_PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def _tool_hash(tool: str, username: str, password: str) -> str:
    with tempfile.TemporaryDirectory(prefix="qihe-passwd-") as folder:  # mode 0700
        plain = Path(folder) / "passwd"
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"{username}:{password}\n")
        result = subprocess.run([tool, "-U", str(plain)], capture_output=True, check=False)
        if result.returncode != 0:
            raise ProvisionError(
                f"{tool} -U failed ({result.returncode}): {result.stderr.decode(errors='replace')}"
            )
        line = plain.read_text().strip()
    user, _, hashed = line.partition(":")
    if user != username or not hashed.startswith("$7$"):
        raise ProvisionError(f"{tool} -U wrote an unexpected line for {username!r}")
    return hashed


def hash_password(username: str, password: str, *, tool: str | None = "auto") -> str:
    """Mosquitto's ``$7$`` hash of ``password``: by ``mosquitto_passwd`` if found, else here.

    ``tool="auto"`` looks for ``mosquitto_passwd`` on the PATH; ``None`` always hashes
    in Python; a path uses that program.
    """
    if tool == "auto":
        tool = shutil.which("mosquitto_passwd")
    if tool is None:
        return _python_hash(password)
    return _tool_hash(tool, username, password)


# Files ----------------------------------------------------------------------


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` whole, 0640, keeping the owner and group of the file it replaces.

    Mosquitto reads these files as its own user: a packaged install has them
    ``root:mosquitto 0640``, and a rewrite must not take its group away.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.stat() if path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, _FILE_MODE)
        if old is not None:
            # Only root may give a file away; anyone else keeps their own ownership.
            with contextlib.suppress(PermissionError):
                os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise ProvisionError(f"cannot read {path}: {exc.strerror}") from exc


def _set_password_line(text: str, username: str, hashed: str) -> str:
    """The password file ``text`` with ``username``'s line replaced (or added)."""
    lines = [line for line in text.splitlines() if line.partition(":")[0] != username]
    return "\n".join([*lines, f"{username}:{hashed}"]) + "\n"


def _set_acl_block(text: str, entry: AclEntry, *, path: Path | str = "acl file") -> str:
    """The ACL ``text`` with ``entry``'s managed block replaced (or appended at the end).

    Appended last because a Mosquitto ACL file has no block ends: lines after a
    ``user`` line belong to that user until the next one.
    """
    kept: list[str] = []
    inside = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(_BEGIN) and line[len(_BEGIN) :].split(" ")[0] == entry.username:
            inside = True
            continue
        if inside:
            if line == f"{_END}{entry.username}":
                inside = False
            continue
        if line.split() == ["user", entry.username]:
            raise ProvisionError(
                f"{path}:{number}: user {entry.username!r} has ACL lines qihe does not manage; "
                "remove them first"
            )
        kept.append(line)
    if inside:
        raise ProvisionError(f"{path}: the block of {entry.username!r} has no end line")
    while kept and not kept[-1].strip():
        kept.pop()
    head = "\n".join(kept) + "\n\n" if kept else ""
    return head + entry.render()


def provision(
    acl: AclEntry,
    *,
    password_file: Path,
    acl_file: Path,
    tool: str | None = "auto",
) -> Credentials:
    """Give ``acl.username`` a new password and its ACL block; return the clear password.

    Idempotent in effect: provisioning again rotates the password and replaces the
    block. The broker reads both files again on reload (SIGHUP).
    """
    password = secrets.token_urlsafe(24)
    hashed = hash_password(acl.username, password, tool=tool)
    new_acl = _set_acl_block(_read(acl_file), acl, path=acl_file)
    new_passwords = _set_password_line(_read(password_file), acl.username, hashed)
    try:
        _write_atomically(acl_file, new_acl)
        _write_atomically(password_file, new_passwords)
    except OSError as exc:
        raise ProvisionError(f"cannot write {exc.filename}: {exc.strerror}") from exc
    return Credentials(username=acl.username, password=password, acl=acl)
