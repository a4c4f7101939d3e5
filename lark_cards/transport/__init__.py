"""Events in: Feishu's bytes → trusted envelopes, handed on (nothing here knows Errbot).

Two ways in, one way on. ``webhook`` is the aiohttp app Feishu POSTs to (``server`` the
listening socket: request deadline, keep-alive, connection cap; ``security`` the decrypt /
signature / token checks); ``longconn`` is the client of Feishu's long connection
(``endpoint`` its set-up rules, ``frames`` its wire format, ``pushed`` a pushed frame
→ its ack). Both hand verified envelopes to
``reception``: the claim, the card callback's answer, the dispatch after the ack. ``dedup`` is
the claim interface, ``envelope`` what is read from a body before it is trusted and ``logs`` the
rate-limited log lines for what any client can cause.
"""
