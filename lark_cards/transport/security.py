"""Feishu webhook security as pure functions: decrypt, sign, verify, check the token.

Sans-I/O on purpose, so every rule is tested on bytes: no aiohttp, no clock, no config. Each
check either returns ``None`` or raises one member of the :class:`VerificationError` family, so
the HTTP layer only maps exception classes to status codes.

Every helper here must be *total* over hostile input: any ``str`` or ``bytes`` an attacker can
put in a header or a JSON field ends in a return or a ``VerificationError``, never in a
``TypeError``/``UnicodeError`` that would surface as an HTTP 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "BadCiphertext",
    "BadSignature",
    "BadToken",
    "MissingSignature",
    "StaleRequest",
    "VerificationError",
    "check_token",
    "decrypt",
    "encrypt",
    "signature",
    "verify_signature",
]

_BLOCK = 16  # AES block size in bytes; the IV is one block (§1.6 step 3).


class VerificationError(Exception):
    """A request failed a security check; the message is a short, secret-free reason."""


class BadToken(VerificationError):
    """The Verification Token is missing or differs from the configured one (§1.5)."""


class BadSignature(VerificationError):
    """``X-Lark-Signature`` is missing or does not match the raw body (§1.7)."""


class MissingSignature(BadSignature):
    """Some but not all of the three signature headers: a broken client, not a wrong key."""


class StaleRequest(VerificationError):
    """The signed timestamp is outside the replay window (or not a timestamp at all)."""


class BadCiphertext(VerificationError):
    """The ``encrypt`` field is not base64 of IV + AES-256-CBC + PKCS#7 under our key (§1.6)."""


def _utf8(text: str) -> bytes:
    # "surrogatepass" makes encoding total: aiohttp decodes header bytes with surrogateescape and
    # JSON may carry lone "\ud800" escapes; a strict encode would raise on both (→ HTTP 500).
    return text.encode("utf-8", "surrogatepass")


def _aes_key(encrypt_key: str) -> bytes:
    # §1.6 step 2: the AES-256 key is SHA-256 of the Encrypt Key's UTF-8 bytes (32 bytes).
    return hashlib.sha256(_utf8(encrypt_key)).digest()


def decrypt(encrypt_key: str, ciphertext_b64: str) -> bytes:
    """Decrypt the ``encrypt`` field of a Feishu body and return the plaintext bytes (§1.6).

    Returns bytes, not JSON: parsing is the caller's job, so this function has one failure mode.
    Raises :class:`BadCiphertext` for anything that is not valid ciphertext under this key.
    """
    try:
        # §1.6 step 3: raw = base64decode(encrypt). validate=True rejects stray characters
        # instead of silently skipping them; non-ASCII str raises ValueError.
        raw = base64.b64decode(ciphertext_b64, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadCiphertext("encrypt is not base64") from exc
    # §1.6 (and lark-oapi's AESCipher): at least IV + one block, whole blocks only.
    if len(raw) < 2 * _BLOCK or len(raw) % _BLOCK:
        raise BadCiphertext("ciphertext length is not IV + whole AES blocks")
    iv, body = raw[:_BLOCK], raw[_BLOCK:]  # §1.6 step 3: iv = raw[:16]
    # §1.6 step 4: AES-256-CBC, then strip PKCS#7 padding (pad byte 1..16, all equal).
    decryptor = Cipher(algorithms.AES(_aes_key(encrypt_key)), modes.CBC(iv)).decryptor()
    padded = decryptor.update(body) + decryptor.finalize()
    unpadder = padding.PKCS7(8 * _BLOCK).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        # Wrong key and tampered ciphertext both end here; say nothing more specific.
        raise BadCiphertext("bad padding") from exc


def encrypt(encrypt_key: str, plaintext: bytes, *, iv: bytes | None = None) -> str:
    """Encrypt like Feishu does: base64(iv + AES-256-CBC(PKCS#7(plaintext))) (§1.6, inverted).

    Used by tests, the benchmark and the local Feishu sandbox. ``iv`` is random unless given (a
    fixed IV makes outputs reproducible in tests); it must be 16 bytes.
    """
    if iv is None:
        iv = os.urandom(_BLOCK)
    if len(iv) != _BLOCK:
        raise ValueError("iv must be 16 bytes")
    padder = padding.PKCS7(8 * _BLOCK).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(_aes_key(encrypt_key)), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """The ``X-Lark-Signature`` Feishu sends for ``body`` (§1.7).

    ``sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()`` over the *raw*
    request bytes, never re-serialised JSON (re-serialising changes the bytes; §1.7 notes the
    Node SDK does that and is weaker for it).
    """
    return hashlib.sha256(_utf8(timestamp + nonce + encrypt_key) + body).hexdigest()


def verify_signature(
    body: bytes,
    *,
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
    encrypt_key: str,
    now: float,
    window: float | None,
) -> None:
    """Check the §1.7 signature of a raw body, then its freshness.

    ``now`` is passed in (wall-clock seconds) so tests pin time without patching a clock.
    ``window`` is the allowed ``|now - timestamp|`` in seconds; ``None`` disables the check, as
    lark-oapi never does it (§1.7). The signature is checked first so the freshness answer is
    only ever given about timestamps Feishu really signed.

    Raises :class:`MissingSignature` if any header is missing, :class:`BadSignature` if the
    digest differs, and :class:`StaleRequest` if the signed timestamp is not an integer or is
    outside the window.
    """
    if timestamp is None or nonce is None or signature is None:
        raise MissingSignature("missing signature headers")
    expected = _digest(timestamp, nonce, encrypt_key, body)
    # Constant-time compare on bytes: compare_digest refuses non-ASCII str with a TypeError.
    if not hmac.compare_digest(expected.encode("ascii"), _utf8(signature)):
        raise BadSignature("signature mismatch")
    if window is None:
        return
    # The header is Unix time in *seconds* (10 digits in captured Feishu requests; the official
    # §1.7 text does not state the unit). isdigit+isascii rejects "1_0", " 1" and "-1"; the
    # length cap keeps int() away from Python's 4300-digit limit (ValueError).
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 20):
        raise StaleRequest("timestamp is not an integer")
    if abs(now - int(timestamp)) > window:
        raise StaleRequest("timestamp outside the replay window")


_digest = signature  # verify_signature's keyword argument shadows the function name.


def check_token(expected: str | None, got: str | None) -> None:
    """Compare the Verification Token in constant time (§1.5); no-op if none is configured.

    Raises :class:`BadToken` when a token is configured and ``got`` is absent or different.
    """
    if expected is None:
        return
    if got is None or not hmac.compare_digest(_utf8(expected), _utf8(got)):
        raise BadToken("verification token mismatch")
