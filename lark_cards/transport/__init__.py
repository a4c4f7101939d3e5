"""HTTP in: raw Feishu requests → trusted envelopes, handed on (nothing here knows Errbot).

``webhook`` is the aiohttp app, ``server`` the listening socket that serves it (request
deadline, keep-alive, connection cap), ``security`` the decrypt / signature / token checks,
``dedup`` the duplicate filter, ``envelope`` what is read from a body before it is trusted and
``logs`` the rate-limited log lines for what any client can cause.
"""
