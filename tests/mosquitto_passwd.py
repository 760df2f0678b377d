"""Reading what ``qihe provision`` writes to Mosquitto's password file, as Mosquitto reads it."""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["usernames", "verify_password"]


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (as Mosquitto checks it)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        raise ValueError("not a $7$ (PBKDF2-SHA512) password hash")
    iterations, salt, digest = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
    mine = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(digest))
    return hmac.compare_digest(mine, digest)


def usernames(password_text: str) -> list[str]:
    """Users in a password file's text, in order."""
    return [line.partition(":")[0] for line in password_text.splitlines() if line.strip()]
