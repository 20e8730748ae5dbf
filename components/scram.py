"""SCRAM-SHA-256 password verifiers, as PostgreSQL stores them (RFC 5802, RFC 7677).

A role is created with the verifier, not the password: PostgreSQL stores a verifier as it is,
and the password itself then never travels in a CREATE/ALTER ROLE statement, which PostgreSQL
writes to its log whenever such a statement fails.
"""

import base64
import hashlib
import hmac

ITERATIONS = 4096
"""PostgreSQL's default scram_iterations."""

SALT_BYTES = 16
"""As long as the salts PostgreSQL makes itself."""


def derived_salt(seed: bytes, password: str) -> bytes:
    """The salt of ``password``'s verifier: HMAC-SHA-256 of the password, keyed by the
    server's random salt seed, cut to 16 bytes. Different for every password, the same from one
    run to the next (so a verifier does not change unless its password does), and not
    computable without the seed; no random resource per login."""
    return hmac.digest(seed, password.encode(), "sha256")[:SALT_BYTES]


def scram_sha256_verifier(password: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    """``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` for an ASCII password.

    PostgreSQL normalises passwords with SASLprep first, which leaves printable ASCII as it is;
    the generated passwords are printable ASCII.
    """
    if not password.isascii() or not password.isprintable():
        raise ValueError("SCRAM verifiers here are for printable ASCII passwords only")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
