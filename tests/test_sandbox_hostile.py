"""No input may give the sandbox's Open API a 5xx: Feishu answers bad requests with a 4xx and
a code, and a 500 from the sandbox is always its own bug (the official SDK's file upload found
one). Every route the platform serves — listed from its router, so new routes are covered
without touching this file — is called with ids that exist and ids that do not, and with
bodies and queries that are wrong in every way a table and Hypothesis can think of."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sandbox_live import LiveSandbox

from lark_cards.sandbox.state import ALICE, GROUP_CHAT, p2p_chat_id

IM = "/open-apis/im/v1"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
_PARAM = re.compile(r"\{(\w+)\}")

# Every field name the routes read, so generated bodies reach past "field missing".
FIELDS = (
    "receive_id",
    "msg_type",
    "content",
    "uuid",
    "reply_in_thread",
    "reaction_type",
    "id_list",
    "name",
    "description",
    "chat_type",
    "user_id_list",
    "group_message_type",
    "edit_permission",
    "app_id",
    "app_secret",
)
QUERIES = (
    "receive_id_type",
    "reaction_type",
    "member_id_type",
    "succeed_type",
    "user_id_type",
    "uuid",
    "type",
    "page_token",
    "page_size",
)
WEIRD = ["", "0", "-1", "x" * 300, "%00", "../..", "☃", "om_", "oc_"]


@pytest.fixture(scope="module")
def module_loop() -> Iterator[asyncio.AbstractEventLoop]:
    import threading

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture(scope="module")
def live(module_loop: asyncio.AbstractEventLoop) -> Iterator[LiveSandbox]:
    """One sandbox with something of everything, so ids in paths reach real objects."""
    sandbox = LiveSandbox(module_loop).start()
    platform = sandbox.platform
    platform.post_user_message(GROUP_CHAT, ALICE, "!hello")
    platform.post_user_file(GROUP_CHAT, ALICE, PNG, "shot.png")
    platform.post_user_file(GROUP_CHAT, ALICE, b"%PDF-1.7", "report.pdf")
    sent = sandbox.call(
        "POST",
        f"{IM}/messages",
        params={"receive_id_type": "chat_id"},
        json={"receive_id": GROUP_CHAT, "msg_type": "text", "content": '{"text": "hi"}'},
    ).json()["data"]["message_id"]
    sandbox.call(
        "POST",
        f"{IM}/messages/{sent}/reactions",
        json={"reaction_type": {"emoji_type": "DONE"}},
    )
    yield sandbox
    sandbox.stop()


def routes(live: LiveSandbox) -> list[tuple[str, str]]:
    """(method, path template) of every Open API route of the platform."""
    found = []
    for route in live.platform.app().router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD" and path and path.startswith("/open-apis/"):
            found.append((route.method, path))
    return sorted(set(found))


def ids(live: LiveSandbox, name: str) -> list[str]:
    """Values for a path parameter: the real ones first, then ones that name nothing."""
    platform = live.platform
    messages = [m.message_id for m in platform.conversations.timeline[:4]]
    real = {
        "message_id": messages,
        "chat_id": [GROUP_CHAT, p2p_chat_id(ALICE), *platform.chats][:4],
        "reaction_id": [r.reaction_id for m in platform.messages for r in m.reactions],
        "image_key": list(platform.uploads.images) + list(platform.uploads.received),
        "file_key": list(platform.uploads.received),
        "open_id": [ALICE],
    }.get(name, [])
    return [*real, "om_nothing", "x" * 200, "%25", "a b"]


def fill(template: str, value_of: Any) -> str:
    return _PARAM.sub(lambda m: value_of(m.group(1)), template)


HOSTILE_BODIES: list[tuple[bytes, str]] = [
    (b"", "application/json"),
    (b"not json", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'"a string"', "application/json"),
    (b"\xff\xfe\x00", "application/json"),
    (b"{" * 2000, "application/json"),
    (json.dumps({f: [1, {"a": None}] for f in FIELDS}).encode(), "application/json"),
    (json.dumps({f: {"emoji_type": 7} for f in FIELDS}).encode(), "application/json"),
    (json.dumps(dict.fromkeys(FIELDS, "x")).encode(), "application/json"),
    (json.dumps(dict.fromkeys(FIELDS, 10**30)).encode(), "application/json"),
    (json.dumps({"content": json.dumps({"elements": "x", "schema": 3})}).encode(), "text/plain"),
    (b"--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--\r\n", "multipart/form-data"),
    (b"garbage", "multipart/form-data; boundary=B"),
    (
        b'--B\r\nContent-Disposition: form-data; name="file"\r\n\r\nunterminated',
        "multipart/form-data; boundary=B",
    ),
    (
        b'--B\r\nContent-Disposition: form-data; name="image"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!\r\n--B--\r\n",
        "multipart/form-data; boundary=B",
    ),
    (
        b'--B\r\nContent-Disposition: form-data; name="file"\r\n'
        b"Content-Encoding: gzip\r\n\r\nnot gzip\r\n--B--\r\n",
        "multipart/form-data; boundary=B",
    ),
]


def assert_no_5xx(live: LiveSandbox, method: str, path: str, **kwargs: Any) -> None:
    answer = live.call(method, path, **kwargs)
    assert answer.status < 500, (method, path, kwargs, answer.status, answer.body[:300])


def test_the_route_list_covers_the_bots_endpoints(live: LiveSandbox):
    listed = {f"{m} {p}" for m, p in routes(live)}
    for expected in (
        f"GET {IM}/chats/{{chat_id}}/members/is_in_chat",
        f"PATCH {IM}/chats/{{chat_id}}/members/me_join",
        f"POST {IM}/chats/{{chat_id}}/members",
        f"DELETE {IM}/chats/{{chat_id}}/members",
        f"POST {IM}/chats",
        f"DELETE {IM}/chats/{{chat_id}}",
        f"PUT {IM}/chats/{{chat_id}}",
        f"GET {IM}/messages/{{message_id}}/resources/{{file_key}}",
        f"PUT {IM}/messages/{{message_id}}",
    ):
        assert expected in listed


@pytest.mark.parametrize(("body", "content_type"), HOSTILE_BODIES)
def test_hostile_bodies_on_every_route_are_4xx_at_worst(
    live: LiveSandbox, body: bytes, content_type: str
):
    for method, template in routes(live):
        for value in ("real", "unknown"):

            def value_of(name: str, value: str = value) -> str:
                choices = ids(live, name)
                return choices[0] if value == "real" and choices else choices[-1]

            assert_no_5xx(
                live,
                method,
                fill(template, value_of),
                data=body,
                headers={"Content-Type": content_type},
            )


def test_hostile_queries_and_tokens_are_4xx_at_worst(live: LiveSandbox):
    for method, template in routes(live):
        path = fill(template, lambda name: ids(live, name)[0])
        for weird in WEIRD:
            assert_no_5xx(live, method, path, params=dict.fromkeys(QUERIES, weird), json={})
        for token in ("", "t-forged", "\u2603"):
            assert_no_5xx(live, method, path, token=token, json={})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
CONTENT = st.one_of(
    JSON.map(json.dumps),  # the double-encoded ``content`` string, with any JSON inside
    st.builds(
        lambda tag, extra: json.dumps({"elements": [{"tag": tag, **extra}]}),
        st.sampled_from(["img", "markdown", "div", "table", "button"]),
        st.dictionaries(st.sampled_from(["img_key", "content", "text", "rows"]), JSON),
    ),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.data(),
    body=st.dictionaries(st.sampled_from(FIELDS), JSON | CONTENT, max_size=6),
    query=st.dictionaries(st.sampled_from(QUERIES), st.text(max_size=12), max_size=4),
)
def test_generated_requests_are_4xx_at_worst(
    live: LiveSandbox, data: st.DataObject, body: dict[str, Any], query: dict[str, str]
):
    method, template = data.draw(st.sampled_from(routes(live)))
    path = fill(template, lambda name: data.draw(st.sampled_from(ids(live, name))))
    assert_no_5xx(live, method, path, params=query, json=body)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    route=st.sampled_from([f"{IM}/files", f"{IM}/images"]),
    parts=st.dictionaries(
        st.sampled_from(["file", "image", "file_type", "image_type", "file_name", "duration"]),
        st.binary(max_size=64) | st.sampled_from([b"mp4", b"opus", b"message", b"stream"]),
        max_size=5,
    ),
    with_filename=st.booleans(),
)
def test_generated_uploads_are_4xx_at_worst(
    live: LiveSandbox, route: str, parts: dict[str, bytes], with_filename: bool
):
    body = b""
    for name, value in parts.items():
        disposition = f'form-data; name="{name}"'
        if with_filename and name in ("file", "image"):
            disposition += '; filename="x.bin"'
        body += b"--B\r\nContent-Disposition: " + disposition.encode() + b"\r\n\r\n"
        body += value + b"\r\n"
    body += b"--B--\r\n"
    headers = {"Content-Type": "multipart/form-data; boundary=B"}
    assert_no_5xx(live, "POST", route, data=body, headers=headers)


def test_a_form_of_many_large_parts_is_refused_as_too_large(live: LiveSandbox):
    """Found in review: each part was bounded, the form was not (16 parts of the file limit
    each). A form is one file and small fields: beyond that, 234006."""
    from lark_cards.sandbox.uploads import IMAGE_LIMIT

    chunk = b"x" * (IMAGE_LIMIT * 3 // 5)
    body = b""
    for name in ("image_type", "padding_1", "padding_2"):
        body += f'--B\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        body += chunk + b"\r\n"
    body += b"--B--\r\n"
    answer = live.call(
        "POST",
        f"{IM}/images",
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    )
    assert answer.status == 400
    assert answer.json()["code"] == 234006


@pytest.mark.parametrize("msg_type", [[], {}, ["text"], 1, None])
def test_a_msg_type_of_any_json_type_is_a_400(live: LiveSandbox, msg_type: Any):
    """Found by the generated requests: a list msg_type made the content check raise."""
    sent = live.platform.post_user_message(GROUP_CHAT, ALICE, "!ping").message_id
    for path in (f"{IM}/messages/{sent}/reply", f"{IM}/messages?receive_id_type=chat_id"):
        body = {"receive_id": GROUP_CHAT, "msg_type": msg_type, "content": '{"text": "x"}'}
        answer = live.call("POST", path, json=body)
        assert answer.status == 400, answer.body[:200]
