"""Publishing an export folder as a Hugging Face dataset repository, in one commit.

The token comes from huggingface_hub's usual places (HF_TOKEN, the cached `hf auth login`): this module only
asks whether there is one, never stores or prints it, and removes it from any error text it passes on.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from typing import Any, Protocol

from selfinstruct import __version__
from selfinstruct.errors import CommandError, UserError
from selfinstruct.export import ExportResult

# Hugging Face's access tokens: scrubbed from error text even where the token in use is not known.
_TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{8,}")
# Exported files with one row per instance (ExportResult keys), for the commit message.
INSTANCE_FILES = ("all_generated_instances", "parquet", "alpaca", "openai-chat")
_STATUS_HINTS = {
    401: "the Hub refused the token (401): log in again with `hf auth login` or set HF_TOKEN",
    403: "the token may not write there (403): it needs write access to the repository's owner",
}


class HubApi(Protocol):
    """The calls this module makes on `huggingface_hub.HfApi`, as it makes them (a test passes a fake)."""

    def create_repo(self, repo_id: str, *, repo_type: str, exist_ok: bool, private: bool) -> Any: ...

    def repo_info(self, repo_id: str, *, repo_type: str) -> Any: ...

    def upload_folder(
        self,
        *,
        repo_id: str,
        folder_path: str,
        repo_type: str,
        allow_patterns: list[str],
        commit_message: str,
    ) -> Any: ...


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    url: str
    private: bool
    files: tuple[str, ...]


def check_repo_id(repo_id: str) -> None:
    """OWNER/NAME as the Hub spells repository ids; anything else is the user's mistake."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        if repo_id.count("/") != 1:
            raise HFValidationError("not OWNER/NAME")
        validate_repo_id(repo_id)
    except HFValidationError:
        raise UserError(
            f"--push-to-hub: {repo_id!r} is not a dataset repository id: OWNER/NAME, each of letters, "
            "digits, '-', '_' and '.' (no '--' or '..')"
        ) from None


def check_token() -> None:
    """A runtime failure (exit 1) unless huggingface_hub finds a token."""
    from huggingface_hub import get_token

    try:
        found = get_token() is not None
    except Exception as exc:  # an OIDC exchange that fails raises; its message is not ours to print
        raise CommandError(
            f"--push-to-hub: could not read a Hugging Face token ({type(exc).__name__})"
        ) from None
    if not found:
        raise CommandError(
            "--push-to-hub: no Hugging Face token; set HF_TOKEN or log in with `hf auth login`"
        )


def push_export(
    exported: ExportResult, repo_id: str, *, private: bool = False, api: HubApi | None = None
) -> PushResult:
    """Create the dataset repository if needed, then upload the export's files and its card in one commit.

    Only the files this export wrote go up (a folder may hold older exports' files). With `private`, an
    existing public repository is refused rather than made private behind the user's back."""
    if exported.card is None:
        raise CommandError("--push-to-hub: the export wrote no dataset card")
    folder = exported.card.parent
    names = [exported.card.name] + [
        path.relative_to(folder).as_posix() for path, _ in exported.files.values()
    ]
    instances = next((exported.files[key][1] for key in INSTANCE_FILES if key in exported.files), None)
    message = f"Self-Instruct data from selfinstruct {__version__}" + (
        f": {instances:,} instances" if instances is not None else ""
    )
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        repo = api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
        if private and getattr(api.repo_info(repo_id, repo_type="dataset"), "private", None) is False:
            raise CommandError(
                f"--private: {repo_id} exists and is public; nothing was uploaded (make it private on the "
                "Hub, or push without --private)"
            )
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="dataset",
            allow_patterns=[glob.escape(name) for name in names],  # these files, matched literally
            commit_message=message,
        )
    except CommandError:
        raise
    except (TypeError, AttributeError, NameError):  # a bug here, not a refusal: show it whole
        raise
    except Exception as exc:  # the Hub or the network refused: whichever HTTP client huggingface_hub uses
        raise CommandError(f"--push-to-hub {repo_id}: upload failed: {_reason(exc)}") from None
    url = str(getattr(repo, "url", "") or f"https://huggingface.co/datasets/{repo_id}")
    return PushResult(repo_id, url, private, tuple(names))


def _reason(exc: Exception) -> str:
    """One line on why a Hub call failed, with any token removed."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status in _STATUS_HINTS:
        return _STATUS_HINTS[status]
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else 'no detail'}"
    return _scrub(text[:300])


def _scrub(text: str) -> str:
    from huggingface_hub import get_token

    try:
        token = get_token()
    except Exception:
        token = None
    if token:
        text = text.replace(token, "***")
    return _TOKEN_LIKE.sub("hf_***", text)
