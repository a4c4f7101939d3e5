"""HTTP in: raw Feishu requests → trusted envelopes, handed on (nothing here knows Errbot).

``webhook`` is the aiohttp app, ``security`` the decrypt / signature / token checks, ``dedup``
the duplicate filter and ``envelope`` what is read from a body before it is trusted.
"""
