"""Typed settings read from YAML: loaded by entry points, never at import."""

from sendtime.configs.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
