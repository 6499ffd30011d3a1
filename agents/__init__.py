"""Moments' decision logic: plain Python over plain data (offers, contact policy,
interventions, online models), and the thin Faust agents that call it."""
