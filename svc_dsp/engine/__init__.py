"""Converter (offline), parameters, dynamics."""
