"""Ticket backends, one module each."""
