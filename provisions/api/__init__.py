"""The REST API under /api/v1/: thin interfaces over the rules, selectors and services."""
