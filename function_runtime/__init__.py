"""The function app's side: what runs inside the Functions worker and nowhere else.

The invocation wrapper every command's trigger calls (``invocation``), the trigger
builder (``triggers``), process start-up and its timing (``startup``), the process-wide
clients (``runtime``), the handler's context (``context``), feature flags, the HTTP
helper for external APIs and the Discord REST client the replies go out through.
"""
