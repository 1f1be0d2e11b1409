"""Push adapter folders to a Hugging Face-compatible hub and pull them back, with the stock ``huggingface_hub`` client.

A push uploads every file of the adapter folder (peft's ``adapter_config.json`` + ``adapter_model.safetensors`` with
LoRA *and* head, ``metanlp.json``, ``recipe.yaml``, ``metrics.json``) and a generated model card as ``README.md``
(:func:`metanlp.core.model_card.build_model_card`) in **one** commit (``HfApi.create_commit``, checked against the
commit it read with ``parent_commit``). The hub applies a commit all at once, so a push that fails or is interrupted
leaves the repo as it was. A repo that holds files metanlp did not push is replaced only with ``force=True``.

A pull downloads a snapshot (``snapshot_download``) after checking that the revision holds an adapter, verifies every
file against the repo's tree (git blob sha1 of regular files, sha256 of LFS files: ``HfApi.verify_repo_checksums``)
and, with ``out_dir``, moves the verified folder into place atomically. The result loads with
:func:`metanlp.core.saving.load_classifier` or stock ``PeftModel.from_pretrained(base, folder_or_repo_id)``.

The endpoint is ``endpoint`` or huggingface_hub's default (``HF_ENDPOINT``, else https://huggingface.co); the token is
``token`` or huggingface_hub's standard places (``HF_TOKEN``, ``hf auth login``). Tokens are never logged and never
part of an error message. Every failure of the hub is raised as one :class:`~metanlp.core.errors.HubError` that names
the endpoint, the repo and the revision.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi, snapshot_download
from huggingface_hub.constants import is_offline_mode
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    LocalTokenNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from metanlp.core.errors import HubError
from metanlp.core.files import METADATA_FILE, atomic_dir, read_metadata
from metanlp.core.model_card import build_model_card

try:  # the HTTP library under huggingface_hub: httpx2 since 2.0, httpx in 1.x
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    import httpx

__all__ = ["REQUIRED_FILES", "adapter_files", "pull_adapter", "push_adapter", "resolve_adapter",
           "resolve_family_adapter"]

log = logging.getLogger(__name__)

#: What makes a folder (or a repo) a metanlp adapter.
REQUIRED_FILES = (METADATA_FILE, "adapter_config.json", "adapter_model.safetensors")
#: Files the hub itself puts in a new repo.
HUB_FILES = {".gitattributes"}
REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")
UNREACHABLE = (httpx.ConnectError, httpx.TimeoutException, httpx.UnsupportedProtocol)


@contextmanager
def _hub_errors(action: str, endpoint: str, repo_id: str, revision: str) -> Iterator[None]:
    """Turn huggingface_hub's and httpx's exceptions into one :class:`HubError` message each."""
    where = f"{repo_id}@{revision} on {endpoint}"
    try:
        yield
    except HubError:
        raise
    except LocalTokenNotFoundError as e:
        raise HubError(f"cannot {action} {where}: no hub token; set HF_TOKEN or run `hf auth login`") from e
    except RevisionNotFoundError as e:
        raise HubError(f"cannot {action} {where}: the repo has no revision {revision!r}") from e
    except RepositoryNotFoundError as e:
        raise HubError(
            f"cannot {action} {where}: repository {repo_id!r} not found, or it is private and your token has no "
            "access to it (check the repo id and HF_TOKEN)"
        ) from e
    except OfflineModeIsEnabled as e:
        raise HubError(f"cannot {action} {where}: offline mode is on; unset HF_HUB_OFFLINE") from e
    except LocalEntryNotFoundError as e:
        raise HubError(
            f"cannot {action} {where}: the hub is unreachable and the files are not in the local cache"
        ) from e
    except HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        if status == 401:
            msg = "the hub rejected the token (401 Unauthorized); set a valid HF_TOKEN or run `hf auth login`"
        elif status == 403:
            need = "write access to the namespace" if action == "push to" else "read access to the repo"
            msg = f"your token lacks the rights (403 Forbidden); it needs {need}"
        elif status in (409, 412):
            msg = f"the repo changed while pushing (HTTP {status}); nothing was committed, run the push again"
        else:
            msg = f"the hub answered HTTP {status}: {e.server_message or str(e).splitlines()[0]}"
        raise HubError(f"cannot {action} {where}: {msg}") from e
    except UNREACHABLE as e:
        raise HubError(
            f"cannot {action} {where}: cannot reach the hub at {endpoint} ({type(e).__name__}); check the URL, "
            "your network, and HF_ENDPOINT / --endpoint"
        ) from e
    except httpx.TransportError as e:
        outcome = (
            "a push is a single commit, so the repo holds either its previous content or the whole adapter"
            if action == "push to"
            else "nothing was written to the output folder"
        )
        raise HubError(f"cannot {action} {where}: the connection broke ({type(e).__name__}); {outcome}; retry") from e


def adapter_files(adapter_dir: str | Path) -> list[str]:
    """The files of an adapter folder that a push uploads, as repo paths (hidden files and ``README.md`` left out).

    Raises:
        FileNotFoundError: the folder is missing or lacks one of :data:`REQUIRED_FILES` (the message names them).
        ValueError: ``metanlp.json`` is not valid JSON.
    """
    folder = Path(adapter_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such adapter folder")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not an adapter folder written by metanlp: missing {', '.join(missing)}")
    read_metadata(folder)
    paths = (p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    return sorted(p.as_posix() for p in paths if not any(s.startswith(".") for s in p.parts) and str(p) != "README.md")


def push_adapter(
    adapter_dir: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str = "main",
    endpoint: str | None = None,
    token: str | None = None,
    force: bool = False,
    commit_message: str = "",
) -> CommitInfo:
    """Upload an adapter folder and its model card to a hub repo as one commit, creating the repo or branch if needed.

    Args:
        adapter_dir: a folder written by :func:`metanlp.core.saving.save_adapter`.
        repo_id: ``user/name`` (a bare ``name`` goes to the token owner's namespace).
        private: create the repo as private (an existing repo keeps its visibility).
        revision: the branch to commit to; created from ``main`` when missing.
        endpoint: hub URL; default ``HF_ENDPOINT`` or https://huggingface.co.
        token: hub token; default ``HF_TOKEN`` or the one saved by ``hf auth login``.
        force: replace the content of a repo that holds files metanlp did not push.
        commit_message: default ``"metanlp push: <family> adapter on <backbone>"``.

    Returns:
        The commit (``.commit_url``, ``.oid``); when nothing changed since the last push, the current head.

    Raises:
        FileNotFoundError: the folder is not an adapter folder.
        HubError: hub unreachable, token missing or rejected (401/403), the repo holds other content and ``force`` is
            off, the repo changed meanwhile, or the upload was interrupted (the repo is then left as it was).
    """
    folder = Path(adapter_dir)
    files = adapter_files(folder)
    meta = read_metadata(folder)
    api = HfApi(endpoint=endpoint, token=token)
    with _hub_errors("push to", api.endpoint, repo_id, revision):
        if "/" not in repo_id:
            repo_id = f"{api.whoami()['name']}/{repo_id}"
        else:
            api.whoami()  # a clear 401 before anything is created
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.repo_info(repo_id, revision=revision)
        if private and not info.private:
            log.warning("%s already exists and is public: --private does not change an existing repo", repo_id)
        remote = {s.rfilename for s in info.siblings or []}
        foreign = sorted(remote - HUB_FILES) if METADATA_FILE not in remote else []
        if foreign and not force:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise HubError(
                f"{repo_id}@{revision} on {api.endpoint} already holds files that metanlp did not push ({shown}); "
                "choose another repo id or revision, or pass --force (force=True) to replace them"
            )
        card = str(build_model_card(folder, repo_id)).encode("utf-8")
        ops: list = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f)) for f in files]
        ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card))
        stale = sorted(remote - HUB_FILES - set(files) - {"README.md"})
        ops += [CommitOperationDelete(path_in_repo=p) for p in stale]
        message = commit_message or f"metanlp push: {meta.get('family')} adapter on {meta.get('backbone')}"
        commit = api.create_commit(repo_id, ops, commit_message=message, revision=revision, parent_commit=info.sha)
    log.info("pushed %s to %s (revision %s, commit %s)", folder, repo_id, revision, commit.oid)
    return commit


def _verify(api: HfApi, repo_id: str, sha: str, folder: Path, in_cache: bool) -> None:
    """Compare ``folder`` with the repo tree at ``sha``; raise :class:`HubError` (and drop bad cache files) if off."""
    result = api.verify_repo_checksums(repo_id, revision=sha, local_dir=folder)
    bad = sorted([m["path"] for m in result.mismatches] + list(result.missing_paths))
    if not bad:
        log.info("verified %d files of %s@%s", result.checked_count, repo_id, sha[:12])
        return
    if in_cache:  # do not leave corrupted blobs for the next pull to trust
        for path in (folder / p for p in bad):
            target = path.resolve()
            path.unlink(missing_ok=True)
            if target != path:
                target.unlink(missing_ok=True)
    raise HubError(
        f"pulled {repo_id}@{sha[:12]} does not match the hub: {len(result.mismatches)} file(s) with a wrong "
        f"checksum, {len(result.missing_paths)} missing ({', '.join(bad[:5])}); nothing was kept, run the pull again"
    )


def pull_adapter(
    repo_id: str,
    revision: str | None = None,
    out_dir: str | Path | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Download an adapter repo, verify every file against the hub's checksums, and return the local folder.

    Args:
        repo_id: ``user/name``.
        revision: branch, tag or commit; default ``main``.
        out_dir: a folder to create (or replace, if it holds an adapter) atomically; default: the huggingface_hub
            cache (``HF_HOME``), shared with ``from_pretrained``; with ``HF_HUB_OFFLINE`` set, the snapshot an
            earlier pull left there.
        endpoint: hub URL; default ``HF_ENDPOINT`` or https://huggingface.co.
        token: hub token; default ``HF_TOKEN`` or the one saved by ``hf auth login`` (public repos need none).
        cache_dir: huggingface_hub cache to use instead of the default (``HF_HOME``).

    Returns:
        The adapter folder.

    Raises:
        ValueError: ``out_dir`` exists and is not an adapter folder (it is left untouched).
        HubError: hub unreachable, token rejected, repo or revision missing (or private), the revision is not a
            metanlp adapter, or a downloaded file does not match the hub's checksum.
    """
    rev = revision or "main"
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and out.exists() and not (out.is_dir() and (out / METADATA_FILE).is_file()):
        if not out.is_dir() or any(out.iterdir()):
            raise ValueError(f"--out {out} exists and is not an adapter folder; choose a new or empty folder")
    api = HfApi(endpoint=endpoint, token=token)
    if out is None and is_offline_mode():  # HF_HUB_OFFLINE: what an earlier (verified) pull left in the cache
        with _hub_errors("pull", api.endpoint, repo_id, rev):
            path = Path(snapshot_download(repo_id, revision=rev, cache_dir=cache_dir, local_files_only=True))
        log.info("HF_HUB_OFFLINE is set: using the cached snapshot %s", path)
        return path
    with _hub_errors("pull", api.endpoint, repo_id, rev):
        info = api.repo_info(repo_id, revision=rev)
        missing = [f for f in REQUIRED_FILES if f not in {s.rfilename for s in info.siblings or []}]
        if missing:
            raise HubError(f"{repo_id}@{rev} on {api.endpoint} is not a metanlp adapter: no {', '.join(missing)}")
        common = {"repo_id": repo_id, "endpoint": api.endpoint, "token": token, "cache_dir": cache_dir}
        if out is None:  # a branch name, not the sha, so that the cache records refs/<rev> like from_pretrained does
            path = Path(snapshot_download(revision=rev, **common))
            _verify(api, repo_id, path.name, path, in_cache=True)
            return path
        with atomic_dir(out) as tmp:
            snapshot_download(revision=info.sha, local_dir=tmp, **common)
            shutil.rmtree(tmp / ".cache", ignore_errors=True)  # huggingface_hub's download bookkeeping
            _verify(api, repo_id, info.sha, tmp, in_cache=False)
    log.info("pulled %s@%s (commit %s) into %s", repo_id, rev, info.sha, out)
    return out


def resolve_adapter(
    path_or_repo_id: str | Path,
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """A local adapter folder for a folder path or a hub repo id (pulled into the huggingface_hub cache).

    Args:
        path_or_repo_id: an existing folder (returned as is) or ``user/name`` on the hub.
        revision: branch, tag or commit of a repo; default ``main``.
        endpoint: hub URL; default ``HF_ENDPOINT`` or https://huggingface.co.
        token: hub token; default ``HF_TOKEN`` or the one saved by ``hf auth login``.
        cache_dir: huggingface_hub cache to use instead of the default.

    Returns:
        The folder.

    Raises:
        FileNotFoundError: not a folder, and not shaped like a repo id.
        HubError: not a folder, and pulling it as a repo failed (see :func:`pull_adapter`).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> resolve_adapter(d) == Path(d)
        True
    """
    local = Path(path_or_repo_id).expanduser()
    if local.is_dir():
        return local
    name = str(path_or_repo_id)
    if local.exists() or not REPO_ID.fullmatch(name):
        raise FileNotFoundError(f"{name}: no such adapter folder (and not a hub repo id of the form user/name)")
    try:
        return pull_adapter(name, revision=revision, endpoint=endpoint, token=token, cache_dir=cache_dir)
    except HubError as e:
        raise HubError(f"{name} is not a local folder, and pulling it from the hub failed: {e}") from e


def resolve_family_adapter(path_or_repo_id: str | Path, family: str, revision: str | None = None) -> tuple[Path, dict]:
    """``(folder, metanlp.json)`` of an adapter of ``family``: a local folder, or a hub repo pulled into the cache.

    Raises:
        FileNotFoundError: the folder or repo is missing.
        ValueError: the adapter belongs to another task family (the message names both).
    """
    folder = Path(path_or_repo_id)
    if not folder.is_dir():
        folder = resolve_adapter(str(path_or_repo_id), revision=revision)
    meta = read_metadata(folder)
    if meta.get("family") != family:
        raise ValueError(f"{folder}: family is {meta.get('family')!r}, not a {family} adapter")
    return folder, meta
