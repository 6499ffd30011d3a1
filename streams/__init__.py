"""Moments shell: the Faust app, settings, topics, web views, metrics and the CLI."""
