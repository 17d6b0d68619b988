"""Code used by both the gateway listener and the function app."""
