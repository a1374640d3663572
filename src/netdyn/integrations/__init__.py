"""Integrations with other training frameworks (optional extras, imported only when used)."""
