"""`selfinstruct seeds`: check a seed file, list the built-in sets, copy one to edit."""

from selfinstruct.seeds.command import seeds

__all__ = ["seeds"]
