"""Known answers and failure modes of the pure security functions (feishu-platform.md §1.5-1.7)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from lark_cards.transport.security import (
    BadCiphertext,
    BadSignature,
    BadToken,
    StaleRequest,
    VerificationError,
    check_token,
    decrypt,
    encrypt,
    signature,
    verify_signature,
)

KEY = "test key"
NOW = 1_700_000_000.0


# --- decrypt / encrypt (§1.6) ----------------------------------------------------------------


def test_decrypt_feishu_doc_vector() -> None:
    # The example from the Feishu "Encrypt Key" doc (§1.6).
    assert decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == b"hello world"


@pytest.mark.parametrize(
    "plaintext",
    [b"", b"x", b"a" * 15, b"a" * 16, b"a" * 17, '{"k": "中文"}'.encode(), bytes(range(256))],
)
def test_round_trip(plaintext: bytes) -> None:
    assert decrypt(KEY, encrypt(KEY, plaintext)) == plaintext


def test_encrypt_with_fixed_iv_is_deterministic_and_carries_iv() -> None:
    iv = bytes(range(16))
    first = encrypt(KEY, b"hello world", iv=iv)
    assert first == encrypt(KEY, b"hello world", iv=iv)
    assert base64.b64decode(first)[:16] == iv
    assert encrypt(KEY, b"hello world") != encrypt(KEY, b"hello world")  # random IV


def test_encrypt_rejects_wrong_iv_length() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        encrypt(KEY, b"x", iv=b"short")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


VALID = encrypt(KEY, b"hello world", iv=b"\0" * 16)
RAW = base64.b64decode(VALID)


@pytest.mark.parametrize(
    ("ciphertext", "case"),
    [
        ("", "empty"),
        (_b64(RAW[:16]), "IV only"),
        (_b64(RAW[:31]), "truncated below two blocks"),
        (_b64(RAW[:-1]), "not a multiple of 16"),
        (_b64(RAW + b"\0"), "one byte too many"),
        ("not base64!!", "bad base64 alphabet"),
        ("QUJD=", "bad base64 padding"),
        (VALID.rstrip("="), "missing base64 padding"),
        ("P37w+VZImNgPEO1R\nBhJ6RtKl7n6zymIbEG1pReEzghk=", "newline inside"),
        ("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghké=", "non-ASCII"),
        ("\ud800" * 4, "lone surrogate"),
    ],
)
def test_malformed_ciphertext(ciphertext: str, case: str) -> None:
    with pytest.raises(BadCiphertext):
        decrypt(KEY, ciphertext)


def test_bad_padding_is_bad_ciphertext() -> None:
    # Flip the last byte of the IV-preceding block so the final block's padding breaks.
    mutated = bytearray(RAW)
    mutated[-17] ^= 0xFF
    with pytest.raises(BadCiphertext, match="padding"):
        decrypt(KEY, _b64(bytes(mutated)))


def test_wrong_key_is_bad_ciphertext() -> None:
    # A wrong key gives garbage; valid PKCS#7 by chance is ~1/256, so pick a case that is not.
    with pytest.raises(BadCiphertext):
        decrypt("other key", VALID)


def test_bad_ciphertext_is_a_verification_error() -> None:
    for cls in (BadToken, BadSignature, StaleRequest, BadCiphertext):
        assert issubclass(cls, VerificationError)


# --- signature (§1.7) ------------------------------------------------------------------------

BODY = b'{"encrypt":"P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="}'
TS, NONCE = "1700000000", "nonce-42"


def test_signature_known_answer() -> None:
    # Computed by hand from the §1.7 formula: sha256((ts + nonce + key).encode() + raw body).
    by_hand = hashlib.sha256(b"1700000000" + b"nonce-42" + b"test key" + BODY).hexdigest()
    assert signature(TS, NONCE, KEY, BODY) == by_hand
    assert by_hand == hashlib.sha256(b"1700000000nonce-42test key" + BODY).hexdigest()


def _verify(**overrides: object) -> None:
    kwargs: dict[str, object] = {
        "timestamp": TS,
        "nonce": NONCE,
        "signature": signature(TS, NONCE, KEY, BODY),
        "encrypt_key": KEY,
        "now": NOW,
        "window": 300.0,
    }
    kwargs.update(overrides)
    body = kwargs.pop("body", BODY)
    verify_signature(body, **kwargs)  # type: ignore[arg-type]


def test_verify_signature_accepts_valid() -> None:
    _verify()
    _verify(now=NOW + 300)  # the window is inclusive
    _verify(now=NOW - 300)  # clocks skew both ways
    _verify(now=NOW + 10**9, window=None)  # no window: freshness not checked


@pytest.mark.parametrize("missing", ["timestamp", "nonce", "signature"])
def test_missing_header_is_bad_signature(missing: str) -> None:
    with pytest.raises(BadSignature, match="missing"):
        _verify(**{missing: None})


@pytest.mark.parametrize(
    "overrides",
    [
        {"signature": "0" * 64},
        {"signature": ""},
        {"signature": signature(TS, NONCE, KEY, BODY).upper()},
        {"signature": "é" * 64},  # non-ASCII must not crash compare_digest
        {"signature": "\udcff" * 64},  # header bytes decoded with surrogateescape
        {"body": BODY + b" "},  # re-serialised / tampered body
        {"nonce": "nonce-43"},
        {"timestamp": "1700000001"},
        {"encrypt_key": "other key"},
        {"nonce": "\ud800"},
    ],
)
def test_wrong_signature(overrides: dict[str, object]) -> None:
    with pytest.raises(BadSignature, match="mismatch"):
        _verify(**overrides)


@pytest.mark.parametrize("now", [NOW + 301, NOW - 301, 0.0])
def test_stale_timestamp(now: float) -> None:
    with pytest.raises(StaleRequest):
        _verify(now=now)


@pytest.mark.parametrize("ts", ["abc", "-1", " 1700000000", "1_700_000_000", "1" * 5000, "１２"])
def test_signed_non_integer_timestamp_is_stale(ts: str) -> None:
    with pytest.raises(StaleRequest, match="integer"):
        _verify(timestamp=ts, signature=signature(ts, NONCE, KEY, BODY))


def test_signature_checked_before_freshness() -> None:
    # A forged request learns "mismatch", never whether its timestamp would be fresh.
    with pytest.raises(BadSignature):
        _verify(signature="0" * 64, now=0.0)


# --- check_token (§1.5) ----------------------------------------------------------------------


def test_check_token() -> None:
    check_token(None, None)
    check_token(None, "anything")
    check_token("secret", "secret")
    for got in (None, "", "Secret", "secret ", "é", "\ud800"):
        with pytest.raises(BadToken):
            check_token("secret", got)
