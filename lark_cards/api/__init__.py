"""Feishu Open API access (HTTP out): one client, one module per Open API resource.

``client`` (the one request path: token, retries, pacing), ``errors`` (every Feishu code the
project names), ``ratelimit``, ``token``; resources: ``chats``, ``contacts``, ``files``,
``images``, ``reactions``. Import from the modules: this package re-exports nothing, so code
that only needs the error codes (the renderer) does not load aiohttp.
"""
