"""End to end: a real ``errbot`` process with the LarkCards backend against a fake Open Platform.

The fake platform (``lark_cards.sandbox.openapi``) runs in this test's loop on 127.0.0.1; the
bot runs as a subprocess started the way a user starts it (``errbot -c config.py``), loading the
backend from the clone root through ``BOT_EXTRA_BACKEND_DIR`` (``tests/e2e_bots.py``).
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from e2e_bots import GROUP, Bot, Bots, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
async def bot(bots: Bots) -> Bot:
    return await bots.start()


async def test_encrypted_echo_gets_exactly_one_reply_even_when_delivered_three_times(bot: Bot):
    question = "om_e2equestion00000000000000000001"
    payload = bot.message("!echo hi", message_id=question, mention=True)

    assert await bot.post(payload) == 200
    await wait_until(lambda: len(bot.platform.messages) >= 1, 30, "the reply to !echo hi")
    # Feishu's retries of the same event (same event_id and message_id).
    assert await bot.post(payload) == 200
    assert await bot.post(payload) == 200
    await asyncio.sleep(2)

    assert len(bot.platform.messages) == 1, bot.tail()
    reply = bot.platform.messages[0]
    assert reply.reply_to == question
    assert reply.chat_id == GROUP
    assert reply.msg_type == "interactive"
    assert reply.content["schema"] == "2.0"
    elements = reply.content["body"]["elements"]
    assert [e["tag"] for e in elements] == ["markdown"]
    assert elements[0]["content"].strip() == "hi"


async def test_bot_stops_cleanly_on_sigint(bot: Bot):
    returncode = await bot.stop(signal.SIGINT, 30)
    log = bot.log()
    assert returncode == 0, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    assert bot.platform.app_secret not in log
    assert bot.encrypt_key not in log


async def test_sigterm_lets_running_commands_finish_and_their_answers_arrive(bot: Bot):
    """Feishu never re-sends an acked event: a stop must not lose the commands it started."""
    for n in range(3):
        assert await bot.post(bot.message("!slow 2", message_id=f"om_e2eslow{n:025d}")) == 200

    await wait_until(
        lambda: bot.log().count("slow command started") == 3, 30, "three running !slow commands"
    )
    returncode = await bot.stop(signal.SIGTERM, 60)
    log = bot.log()
    assert returncode == 0, log[-4000:]
    answers = [m for m in bot.platform.messages if "slept 2 s" in str(m.content)]
    assert len(answers) == 3, log[-4000:]
    assert sorted(m.reply_to for m in answers) == [f"om_e2eslow{n:025d}" for n in range(3)]
    assert "cut off" not in log
