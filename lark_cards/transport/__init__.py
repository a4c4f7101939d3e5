"""How events reach the bot: the webhook app, its security checks and the duplicate filter.

Public names are re-exported here; the modules stay importable for tests and the benchmark.
"""

from lark_cards.transport.dedup import DedupStore, TTLSet
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
from lark_cards.transport.webhook import create_app

__all__ = [
    "BadCiphertext",
    "BadSignature",
    "BadToken",
    "DedupStore",
    "StaleRequest",
    "TTLSet",
    "VerificationError",
    "check_token",
    "create_app",
    "decrypt",
    "encrypt",
    "signature",
    "verify_signature",
]
