"""Pagers, one module each."""
