"""Test support for the Slack app: a Slack Web API stand-in and signed requests."""
