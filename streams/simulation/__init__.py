"""Synthetic CRM traffic: seeded customers and their touchpoints, for demos, load and tests."""
