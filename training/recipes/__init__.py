"""Reproducible recipes: the content encoder and the bundled demo voice."""
