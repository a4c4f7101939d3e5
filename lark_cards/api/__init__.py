"""Feishu Open API access: the async client, its errors and its flow-control helpers."""

from .client import LarkClient
from .errors import (
    CARD_REJECTED,
    RATE_LIMITED,
    RETRYABLE,
    TOKEN_INVALID,
    LarkAPIError,
    decode_response,
)
from .ratelimit import KeyedLock, KeyedRateLimiter, RateLimiter

__all__ = (
    "CARD_REJECTED",
    "RATE_LIMITED",
    "RETRYABLE",
    "TOKEN_INVALID",
    "KeyedLock",
    "KeyedRateLimiter",
    "LarkAPIError",
    "LarkClient",
    "RateLimiter",
    "decode_response",
)
