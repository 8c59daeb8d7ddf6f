"""selfinstruct: Self-Instruct (Wang et al., ACL 2023) end to end."""

__version__ = "0.1.0"
