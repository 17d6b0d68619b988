"""What only the function app imports (the listener never does)."""
