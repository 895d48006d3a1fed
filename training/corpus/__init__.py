"""Corpora that training builds itself (synthetic, phone-labelled speech)."""
