"""Importable test helpers (worker processes import them by module path)."""
