"""Helpers for the safety tests: a scripted model that proposes forbidden actions."""
