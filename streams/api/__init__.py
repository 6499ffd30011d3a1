"""The Moments HTTP API: live recommendations, ingestion, profiles, erasure, alerts."""
