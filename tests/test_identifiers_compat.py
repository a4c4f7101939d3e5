"""Identifier strings from the seed backend (errbot-backend-lark) still build identifiers.

That backend wrote ``{open_id}:{chat_id}:{p2p|group}`` (its occupants' ``str()``, its
``build_identifier`` input). Users' plugin storage and ``BOT_ADMINS_NOTIFICATIONS`` may hold
such strings, and they must keep working after the switch. Ours stay the canonical form.
"""

from __future__ import annotations

import pickle

import pytest
from errbot.backends.base import Message, RoomOccupant
from errbot_config import errbot_config, offline_backend

from lark_cards.identifiers import Identities, LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.outbound.target import target_of

SENDER = "ou_84aad35d084aa403a838cf73ee18467"
GROUP = "oc_a0553eda9014c201e6969b478895c230"
DIRECT = "oc_p2p0000000000000000000000000000"


@pytest.fixture
def backend(tmp_path):
    return offline_backend(errbot_config(tmp_path))


def test_a_p2p_seed_identifier_is_the_person_and_keeps_the_direct_chat(backend):
    person = backend.build_identifier(f"{SENDER}:{DIRECT}:p2p")
    assert type(person) is LarkPerson
    assert person == LarkPerson(SENDER)
    assert (person.person, person.aclattr, person.client) == (SENDER, SENDER, DIRECT)
    assert str(person) == SENDER  # our own form from here on
    assert backend.build_identifier(str(person)) == person
    # a message to it goes to the person, sharing their direct chat's turn
    target = target_of(Message("hi", to=person))
    assert (target.receive_id, target.receive_id_type, target.chat_key) == (
        SENDER,
        "open_id",
        f"p2p:{SENDER}",
    )


def test_a_group_seed_identifier_is_the_person_in_that_room(backend):
    occupant = backend.build_identifier(f"{SENDER}:{GROUP}:group")
    assert isinstance(occupant, LarkRoomOccupant)
    assert isinstance(occupant, RoomOccupant)  # what Errbot's ACLs want of a group frm
    assert occupant.room == LarkRoom(GROUP)
    assert (occupant.person, occupant.aclattr) == (SENDER, SENDER)
    assert occupant == backend.build_identifier(f"{GROUP}/{SENDER}")
    assert str(occupant) == f"{GROUP}/{SENDER}"
    clone = pickle.loads(pickle.dumps(occupant))
    assert clone == occupant
    assert hash(clone) == hash(occupant)
    target = target_of(Message("hi", to=occupant))
    assert (target.receive_id, target.receive_id_type) == (GROUP, "chat_id")


def test_seed_identifiers_are_bound_to_the_backend_that_built_them():
    identities = Identities()
    occupant = identities.parse(f"{SENDER}:{GROUP}:group")
    assert isinstance(occupant, LarkRoomOccupant)
    assert occupant.room.identities is identities


def test_spaces_around_the_parts_are_forgiven(backend):
    person = backend.build_identifier(f"  {SENDER} : {DIRECT} : p2p ")
    assert person == LarkPerson(SENDER)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f"{SENDER}:{GROUP}", "3 parts, not 2"),
        (f"{SENDER}:{GROUP}:group:extra", "3 parts, not 4"),
        (f"{SENDER}:{GROUP}:private", "'private', not p2p or group"),
        (f"{SENDER}:{GROUP}:", "'', not p2p or group"),
        (f"{GROUP}:{SENDER}:group", f"'{GROUP}' is not an open_id"),
        (f"alice:{GROUP}:group", "'alice' is not an open_id"),
        (f"{SENDER}:{SENDER}:p2p", f"'{SENDER}' is not a chat_id"),
        (f"{SENDER}:oc_:group", "'oc_' is not a chat_id"),
        (f"{SENDER}:{GROUP}/{SENDER}:group", "is not a chat_id"),
        ("::", "'' is not an open_id"),
    ],
)
def test_malformed_seed_identifiers_say_which_part_is_wrong(backend, text, says):
    with pytest.raises(ValueError, match="Feishu identifier") as info:
        backend.build_identifier(text)
    message = str(info.value)
    assert says in message
    assert "open_id:chat_id:p2p" in message  # the form that would work


@pytest.mark.parametrize("text", [SENDER, GROUP, f"{GROUP}/{SENDER}"])
def test_our_own_forms_still_round_trip(backend, text):
    identifier = backend.build_identifier(text)
    assert str(identifier) == text
    assert backend.build_identifier(str(identifier)) == identifier
