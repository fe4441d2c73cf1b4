"""Frontends: what talks to the master from outside, through api.Operations only."""
