"""The function app's side: what runs inside the Functions worker and nowhere else.

The invocation wrapper every command's trigger calls (``invocation``), the trigger
builder (``triggers``), process start-up and its timing (``startup``), the process-wide
clients (``runtime``), the handler's context (``context``), feature flags, the HTTP
helper for external APIs and the Discord REST client the replies go out through; and the
HTTP ``interactions`` endpoint (gateway-less mode: ``interactions``, ``signature``, ``queue_sender``).
"""

import time

# The first import of this package is where the Functions worker began indexing the app
# (function_app.py imports it first): the boundary between the worker's start and the indexing
# in the cold_start span (function_runtime.startup).
INDEXING_BEGAN_NS = time.time_ns()
