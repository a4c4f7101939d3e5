"""One exception for every failed Open API call, the code sets that decide what to do next,
and the pure function that turns an HTTP response into a body or that exception.

Feishu reports most failures as HTTP 200/400 with a non-zero ``code`` in the JSON body, so the
body code (not the HTTP status) is what callers branch on. The sets below are the single place
that maps codes to a reaction; the client and the card renderer import them instead of keeping
their own lists (the SDKs that did drifted and misclassified 230020/99991400, see
reference/feishu-platform.md §4.4).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# §3: "on 99991663/99991665/20013 drop the cached token, refetch, retry once".
TOKEN_INVALID: frozenset[int] = frozenset({99991663, 99991665, 20013})

# §4.4 signals table: gateway limit (99991400, also sent with HTTP 429), per-chat/user limit
# (230020), create-message service/chat limits (11232, 11233) and internal send limit (11247).
RATE_LIMITED: frozenset[int] = frozenset({99991400, 230020, 11232, 11233, 11247})

# §4.4: 2200 is "internal error, usually under frequent calls — back off and retry".
# §4.1: 18121 is "create request is being processed" — the same uuid is still in flight after
# a timeout; waiting and resending that uuid returns the one message, never a second.
RETRYABLE: frozenset[int] = RATE_LIMITED | {2200, 18121}

# Codes meaning "this card JSON was refused": body too big (230025, 19036 §4.1; 200860 §5.4),
# too many components (300305 §5.4) or tables (230099 §5.4), undeclared table row key
# (200915 §5.5), plus 11310 / 200570 from the project's card-error list (not in the reference).
# The renderer reacts by sending a simpler fallback; the client itself treats them like any
# other non-retryable error.
CARD_REJECTED: frozenset[int] = frozenset(
    {230099, 11310, 200570, 230025, 200860, 19036, 200915, 300305}
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
