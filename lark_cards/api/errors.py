"""One exception for every failed Open API call, Feishu's error codes by name, the code sets
that decide what to do next, and the pure function that turns an HTTP response into a body or
that exception.

Feishu reports most failures as HTTP 200/400 with a non-zero ``code`` in the JSON body, so the
body code (not the HTTP status) is what callers branch on. The sets below are the single place
that maps codes to a reaction; the client and the card renderer import them instead of keeping
their own lists (the SDKs that did drifted and misclassified 230020/99991400, see
docs/feishu-platform.md §4.4).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

# --- Feishu's codes -------------------------------------------------------------------------
# Every Feishu body code the project names, named once here; the client, the renderer's card
# checker and the sandbox import them (the sandbox answers with the very codes the client
# reacts to). Sections are docs/feishu-platform.md.

# Tokens (§3).
# A wrong app_id / app_secret. Feishu answers a wrong secret with 10014 "app secret invalid" and
# an unknown app_id with 10003 "invalid param" (seen, and so classified by Lark's own CLI); the
# reference table reads 10014 "app unavailable", 10015 "wrong app secret" (§3). All three mean
# the credentials in BOT_IDENTITY are wrong, which no retry fixes.
APP_ID_INVALID = 10003
APP_SECRET_INVALID = 10014
APP_SECRET_WRONG = 10015
TENANT_TOKEN_REJECTED = 20013  # "The tenant access token passed is invalid"
TOKEN_MISSING = 99991661  # "Need a token": no Authorization header, or not "Bearer …"
ACCESS_TOKEN_INVALID = 99991663  # the tenant token expired (or the API takes no tenant token)
TENANT_TOKEN_ILLEGAL = 99991665  # "invalid tenant code"

# Rate limits and transient failures (§4.1, §4.4).
GATEWAY_RATE_LIMITED = 99991400  # comes with HTTP 429 (or 400) and x-ogw-ratelimit-reset
CHAT_RATE_LIMITED = 230020  # per chat / per user: "This operation triggers the frequency limit"
CREATE_SERVICE_RATE_LIMITED = 11232  # "create message service trigger rate limit"
CREATE_CHAT_RATE_LIMITED = 11233  # "create message chat trigger rate limit"
INTERNAL_SEND_RATE_LIMITED = 11247  # "internal send message trigger rate limit"
INTERNAL_ERROR = 2200  # "internal error", usually under frequent calls: back off and retry
# "create request is being processed": the same uuid is still in flight after a timeout;
# waiting and resending that uuid returns the one message, never a second.
REQUEST_IN_PROGRESS = 18121

# Messages (§4.1-§4.3).
INVALID_PARAM = 230001  # an invalid request parameter, message content included (§5.2)
BOT_NOT_IN_CHAT = 230002
MESSAGE_GONE = 230011  # the message was recalled or does not exist
MESSAGE_TOO_LARGE = 230025  # request body over 30 KB (card, post) or 150 KB (text)
BODY_TOO_LARGE = 19036  # generic "exceeds the size limit of 30KB"
FIELD_VALIDATION_FAILED = 99992402  # e.g. a missing or unknown receive_id_type

# Cards (§5.3-§5.5). Structural errors (unknown property, wrong type) have no code of their own
# on im/v1 in the reference; the card checker answers them with INVALID_PARAM (UNCONFIRMED).
CARD_SCHEMA_MISMATCH = 200830  # a 2.0 card may only be replaced or answered by a 2.0 card
INVALID_IMAGE_KEY = 200570  # an image key that is not an uploaded img_ key (§4.5)
UNKNOWN_TABLE_ROW_KEY = 200915  # a table row key that is no column name (§5.5)
TOO_MANY_TABLES = 230099  # more tables than a card may hold (§5.4, UNCONFIRMED)
TOO_MANY_TABLES_EXT = 11310  # "ErrCode: 11310 card table number over limit", inside 230099
# > 200 components: the reference only has CardKit's code (§5.4); im/v1's is UNCONFIRMED.
TOO_MANY_COMPONENTS = 300305
CARDKIT_TOO_LARGE = 200860  # CardKit's "Card content exceeds limit … 30KB" (§5.4)

# Card callbacks (§6.1): what the Feishu client shows when a button's callback fails.
CALLBACK_TIMEOUT = 200341  # no answer within 3 s
CALLBACK_UNREACHABLE = 200342  # the TCP connection failed
CALLBACK_BAD_STATUS = 200671  # the answer's HTTP status was not 200
CALLBACK_BAD_BODY = 200672  # the answer's body was not a JSON object
CALLBACK_BAD_CARD = 200673  # the card in the answer is invalid

# Long connection (§2.2): endpoint discovery's body codes and the WebSocket handshake's
# ``handshake-status`` / ``handshake-autherrcode`` headers (lark-oapi 1.7.5 ws/const.py).
WS_SYSTEM_BUSY = 1  # discovery: try again later
WS_FORBIDDEN = 403  # handshake: the app may not connect
WS_AUTH_FAILED = 514  # handshake: see handshake-autherrcode
WS_INTERNAL_ERROR = 1000040343  # discovery: Feishu's own failure, try again later
WS_CONNECTION_LIMIT = 1000040350  # handshake: the app has its 50 connections already
WS_TRANSIENT: frozenset[int] = frozenset({WS_SYSTEM_BUSY, WS_INTERNAL_ERROR})

# Uploads, reactions, users and chats (Feishu's per-API error tables).
UPLOAD_INVALID = 234001
UPLOAD_TOO_LARGE = 234006
REACTION_INVALID = 231001
NO_USER_AUTHORITY = 41050  # contact: the user is outside the app's visibility
OPERATOR_NOT_IN_CHAT = 232011

# --- what each code means to the caller ------------------------------------------------------

# The token endpoint refused the app's id or secret (§3): fatal, see CredentialsRejected.
CREDENTIALS_REJECTED: frozenset[int] = frozenset(
    {APP_ID_INVALID, APP_SECRET_INVALID, APP_SECRET_WRONG}
)

# §3: "on 99991663/99991665/20013 drop the cached token, refetch, retry once".
TOKEN_INVALID: frozenset[int] = frozenset(
    {ACCESS_TOKEN_INVALID, TENANT_TOKEN_ILLEGAL, TENANT_TOKEN_REJECTED}
)

# §4.4 signals table: the gateway limit, the per-chat/user limit, the create-message service
# and chat limits and the internal send limit.
RATE_LIMITED: frozenset[int] = frozenset(
    {
        GATEWAY_RATE_LIMITED,
        CHAT_RATE_LIMITED,
        CREATE_SERVICE_RATE_LIMITED,
        CREATE_CHAT_RATE_LIMITED,
        INTERNAL_SEND_RATE_LIMITED,
    }
)

RETRYABLE: frozenset[int] = RATE_LIMITED | {INTERNAL_ERROR, REQUEST_IN_PROGRESS}

# Codes meaning "this card JSON was refused": body too big, too many components or tables,
# an undeclared table row key, an image key Feishu never issued. The renderer reacts by sending
# a simpler fallback; the client itself treats them like any other non-retryable error.
CARD_REJECTED: frozenset[int] = frozenset(
    {
        TOO_MANY_TABLES,
        TOO_MANY_TABLES_EXT,
        INVALID_IMAGE_KEY,
        MESSAGE_TOO_LARGE,
        CARDKIT_TOO_LARGE,
        BODY_TOO_LARGE,
        UNKNOWN_TABLE_ROW_KEY,
        TOO_MANY_COMPONENTS,
    }
)

# Not a Feishu code: the request never produced a usable Feishu answer (network failure,
# timeout, or a body that is not JSON).
NO_FEISHU_CODE = -1


class LarkAPIError(Exception):
    """A Feishu Open API call failed; ``code`` is Feishu's body code (or -1 without one).

    ``log_id`` is the ``X-Tt-Logid`` response header: Feishu support needs it to trace a
    request, so it is kept on the exception and shown in ``str()``. ``retry_after`` is the
    gateway's ``x-ogw-ratelimit-reset`` (seconds, §4.4) when the response carried one.
    """

    def __init__(
        self,
        code: int,
        msg: str,
        *,
        log_id: str | None = None,
        http_status: int = 200,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.msg = msg
        self.log_id = log_id
        self.http_status = http_status
        self.retry_after = retry_after
        text = f"Feishu API error {code}: {msg}"
        if log_id:
            text += f" (log_id {log_id})"
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        # Exception pickling replays ``args`` (the formatted text) into __init__, which would
        # not match this signature; rebuild from the real fields instead.
        return (
            _rebuild,
            (type(self), self.code, self.msg, self.log_id, self.http_status, self.retry_after),
        )


class CredentialsRejected(LarkAPIError):
    """The token endpoint refused BOT_IDENTITY's ``app_id`` or ``app_secret``: every call
    needs a token, so the bot cannot work until the config changes, and retrying (Errbot's
    reconnect loop) only hides that. ``str()`` names the key to check, never its value."""

    @property
    def config_key(self) -> str:
        """The BOT_IDENTITY key that is most likely wrong."""
        return "app_id" if self.code == APP_ID_INVALID else "app_secret"

    def __str__(self) -> str:
        said = f"{self.code} {self.msg}" + (f", log_id {self.log_id}" if self.log_id else "")
        return (
            f"Feishu refused the app's credentials ({said}): check "
            f"BOT_IDENTITY['{self.config_key}'] (app_id, app_secret and domain must be one app's)"
        )


def credentials_checked(error: LarkAPIError) -> LarkAPIError:
    """A token endpoint's ``error`` as :class:`CredentialsRejected` when its code says the
    credentials are wrong; any other error (network, 5xx, rate limit) as it is."""
    if error.code not in CREDENTIALS_REJECTED or isinstance(error, CredentialsRejected):
        return error
    return CredentialsRejected(
        error.code,
        error.msg,
        log_id=error.log_id,
        http_status=error.http_status,
        retry_after=error.retry_after,
    )


def _rebuild(
    cls: type[LarkAPIError],
    code: int,
    msg: str,
    log_id: str | None,
    http_status: int,
    retry_after: float | None,
) -> LarkAPIError:
    return cls(code, msg, log_id=log_id, http_status=http_status, retry_after=retry_after)


def decode_response(status: int, headers: Mapping[str, str], raw: bytes) -> dict[str, Any]:
    """Turn one HTTP response into the body dict, or raise :class:`LarkAPIError`.

    Pure (no I/O), so every odd response shape is testable without a server. Feishu signals
    most errors in the body ``code`` with HTTP 200/400 (§4.4), so the status only matters
    when the body has no code (gateway pages, 5xx) or claims success on an HTTP error.
    """
    log_id = headers.get("X-Tt-Logid")
    retry_after = _reset_seconds(headers)
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        msg = f"non-JSON response (HTTP {status})"
        raise LarkAPIError(
            NO_FEISHU_CODE, msg, log_id=log_id, http_status=status, retry_after=retry_after
        )
    code = body.get("code")
    if not isinstance(code, int):
        code = 0 if status < 400 else NO_FEISHU_CODE
    if code == 0 and status < 400:
        return body
    if not log_id and isinstance(body.get("error"), dict):
        log_id = body["error"].get("log_id")
    msg = str(body.get("msg") or body.get("message") or f"HTTP {status}")
    code = code or NO_FEISHU_CODE  # an HTTP error that claims code 0 is still an error
    raise LarkAPIError(code, msg, log_id=log_id, http_status=status, retry_after=retry_after)


def _reset_seconds(headers: Mapping[str, str]) -> float | None:
    """§4.4: on a gateway limit, ``x-ogw-ratelimit-reset`` is the seconds until it lifts."""
    try:
        return max(0.0, float(headers["x-ogw-ratelimit-reset"]))
    except (KeyError, ValueError):
        return None


def is_error_body(headers: Mapping[str, str], data: bytes) -> bool:
    """Whether a binary endpoint's answer is an error: a JSON ``{"code": ≠0, "msg": …}`` body
    is one even with HTTP 200; a JSON *file* (no such code) is data."""
    if not headers.get("Content-Type", "").startswith("application/json"):
        return False
    try:
        body = json.loads(data)
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("code"), int) and body["code"] != 0


BACKOFF_START, BACKOFF_CAP = 1.0, 30.0  # §4.4 "exponential backoff (start ≥ 1 s)"
MAX_RESET_WAIT = 60.0  # §4.4: the longest Feishu window is a minute (1000/min)


def retry_delay(error: LarkAPIError, retries: int, jitter: Callable[[], float]) -> float | None:
    """Seconds to wait before retrying ``error``, or None when retrying cannot help (§4.4):
    a gateway limit waits for its reset header, other transient failures back off."""
    if error.http_status == 429 or error.code == GATEWAY_RATE_LIMITED:
        if error.retry_after is not None:
            return min(MAX_RESET_WAIT, error.retry_after)
        return backoff(retries, jitter)
    if error.http_status >= 500 or error.code in RETRYABLE:
        return backoff(retries, jitter)
    return None


def backoff(retries: int, jitter: Callable[[], float]) -> float:
    """Capped exponential backoff plus jitter, so many bots do not retry in step."""
    return min(BACKOFF_CAP, BACKOFF_START * 2**retries) + jitter()
