"""The store's file system: one URL through fsspec (s3fs for S3), blobs by sha256, bounded waits, safe names.

Every call has a deadline (`timeout_s`): an unreachable store makes a `StoreUnavailable` (the run goes on without
the store), a refusal (permission denied, bucket missing) a `StoreDenied` (a usage error, exit 2). A store that
times out or stops answering once is down for the rest of the process (a circuit breaker), so a dead store costs a
run one deadline, not one per call; a call left waiting runs in a daemon thread that never holds the process
open. Messages name the store by `display_url`, which never carries credentials.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from hilci.errors import UsageError
from hilci.util.digest import sha256_bytes, sha256_file

if TYPE_CHECKING:
    from hilci.pipeline.config import Config

ENV_URL = "HILCI_STORE"
ENV_DOWN = "HILCI_STORE_DOWN"  # set by `hilci run` for its stages once its store is down: they skip it too
LOCAL_DIR = ".hilci-cache"
CALL_TIMEOUT_S = float(os.environ.get("HILCI_STORE_TIMEOUT_S", "20"))
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class StoreUnavailable(Exception):
    """The store did not answer (unreachable, timed out, broken connection): go on without it."""


class StoreDenied(UsageError):
    """The store refused us (permission denied, bucket missing, full): one line naming its URL, exit 2."""


class CorruptBlob(Exception):
    """A blob is missing or does not hash to its name."""


def display_url(url: str) -> str:
    """The URL without user, password or query (where credentials hide)."""
    parts = urlsplit(url)
    if not parts.scheme:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def configured_url(root: Path, config: Config | None = None) -> str | None:
    """The store URL set by $HILCI_STORE or hilci.yaml's `store:` (None when neither says; `root` names the file
    in the error for a config built by hand with an empty URL)."""
    env = os.environ.get(ENV_URL, "").strip()
    if env:
        return env
    value = config.store if config is not None else None
    if value is None:
        return None
    if not value.strip():
        raise UsageError(f"{root / 'hilci.yaml'}: store: expected a URL such as s3://bucket/prefix or "
                         f"file:///path, got {value!r}")
    return value.strip()


def store_url(root: Path, config: Config | None = None) -> str:
    """The configured URL, or the repository's own `.hilci-cache` folder."""
    return configured_url(root, config) or (root / LOCAL_DIR).resolve().as_uri()


CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                  "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", ENV_URL)


def missing_credentials(url: str) -> str:
    """Why an S3 store cannot be signed for here ('' when credentials are found or none are needed): the keys,
    a profile, a web identity or container credentials, or a credentials file."""
    if not url.startswith("s3://"):
        return ""
    env = os.environ
    if (env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")) or urlsplit(url).password:
        return ""
    if any(env.get(k) for k in ("AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")):
        return ""
    if Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials").is_file():
        return ""
    return (f"store {display_url(url)}: no S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY unset, no "
            "AWS_PROFILE or credentials file); set them, or `store_optional: true` in hilci.yaml to run without it")


def without_store_credentials(env: dict[str, str]) -> dict[str, str]:
    """`env` without the store's URL and keys: what a stage that never touches the store is given."""
    return {k: v for k, v in env.items() if k not in CREDENTIAL_ENV}


@dataclass
class Listed:
    """One object under a prefix: its path relative to the store, its size and modification time (epoch s)."""

    rel: str
    size: int
    mtime: float


class Store:
    """A store at one URL: relative paths in, bytes out, every call bounded by `timeout_s`."""

    def __init__(self, url: str, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.url = url
        self.display = display_url(url)
        self.timeout_s = timeout_s
        self.uploaded_bytes = 0  # what this process sent (the benchmark's bytes per commit)
        self.local = url.startswith("file:") or "://" not in url
        self.down = os.environ.get(ENV_DOWN, "") if not self.local else ""  # why the store is off ('' = on)
        self.fs, self.base = self._open(url)

    def _open(self, url: str):
        if self.local:  # the file backend needs no fsspec: a core install (a Jetson) keeps its local cache
            path = unquote(urlsplit(url).path) if url.startswith("file:") else url
            return _LocalFS(), str(Path(path).resolve()).rstrip("/")
        try:
            import fsspec
        except ImportError:
            raise UsageError(f"store {self.display} needs fsspec: pip install 'hilci[store]'") from None
        options: dict[str, Any] = {}
        if url.startswith("s3://"):
            try:
                import s3fs  # noqa: F401
            except ImportError:
                raise UsageError(f"store {self.display} needs s3fs: pip install 'hilci[store]'") from None
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            # botocore's own limits fit inside the call's deadline: one retry, each wait at most half of it
            options = {"config_kwargs": {"connect_timeout": min(5.0, self.timeout_s / 2),
                                         "read_timeout": self.timeout_s / 2,
                                         "retries": {"max_attempts": 2, "mode": "standard"}},
                       "skip_instance_cache": True}
            if endpoint:
                options["endpoint_url"] = endpoint
        try:
            fs, path = fsspec.core.url_to_fs(url, **options)
        except (ValueError, ImportError) as exc:
            raise UsageError(f"store {self.display}: cannot open ({exc})") from None
        if hasattr(fs, "retries"):  # s3fs retries a timed-out read 5 times by default, each past the deadline
            fs.retries = 1
        return fs, path.rstrip("/")

    # -- bounded calls --------------------------------------------------------------------------------------
    def _call(self, what: str, func, *args, **kwargs):
        if self.down:
            raise StoreUnavailable(self.down)
        try:
            return _with_deadline(self.timeout_s, func, *args, **kwargs)
        except TimeoutError:
            self.down = (f"store {self.display} did not answer {what} within {self.timeout_s:g} s; it is taken as "
                         f"down for the rest of this run ({self.timeout_s:g} s lost waiting)")
            raise StoreUnavailable(self.down) from None
        except FileNotFoundError:
            raise
        except PermissionError as exc:
            raise StoreDenied(f"store {self.display}: permission denied ({_short(exc)})") from None
        except (UsageError, TypeError, AttributeError):  # ours, or a bug: never mistaken for an absent store
            raise
        except Exception as exc:  # botocore/aiohttp/OS errors: the store is not there right now
            text = _short(exc)
            if "NoSuchBucket" in text or "bucket does not exist" in text.lower():
                raise StoreDenied(f"store {self.display}: bucket missing ({text})") from None
            if "No space left" in text or "QuotaExceeded" in text or "EntityTooLarge" in text:
                raise StoreDenied(f"store {self.display}: store full ({text})") from None
            self.down = f"store {self.display}: {what} failed ({text}); it is taken as down for the rest of this run"
            raise StoreUnavailable(self.down) from None

    def _path(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def close(self) -> None:
        """Nothing to wait for: a call still waiting on a dead store is a daemon thread."""

    def probe(self) -> None:
        """Check the store answers and lets us write; raise StoreUnavailable or StoreDenied."""
        if self.local:
            base = Path(self.base)
            if base.exists() and not base.is_dir():
                raise StoreDenied(f"cache {base} is not a directory")
            try:
                base.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreDenied(f"cache {base} is unreadable or unwritable ({exc.strerror})") from None
        else:
            bucket = self.base.split("/", 1)[0]
            try:
                self._call("checking the bucket", self.fs.ls, bucket, detail=False)
            except FileNotFoundError:
                raise StoreDenied(f"store {self.display}: bucket {bucket} missing") from None
        try:
            self.write_bytes(".probe", b"ok")
        except OSError as exc:
            raise StoreDenied(f"cache {self.base} is unreadable or unwritable ({exc.strerror})") from None
        except StoreUnavailable as exc:
            if self.local:
                raise StoreDenied(str(exc)) from None
            raise

    # -- objects --------------------------------------------------------------------------------------------
    def read_bytes(self, rel: str) -> bytes | None:
        """The object's bytes, or None when there is none."""
        try:
            return self._call(f"reading {rel}", self.fs.cat_file, self._path(rel))
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            return None

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write one object whole (a local file is renamed into place; an S3 PUT is atomic)."""
        path = self._path(rel)
        if self.local:
            try:
                _write_local(Path(path), data)
            except OSError as exc:  # disk full, read-only, permissions: one line naming the folder
                why = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
                raise StoreDenied(f"cache {self.base}: cannot write {rel} ({why})") from None
            return
        self._call(f"writing {rel}", self.fs.pipe_file, path, data)

    def touch(self, rel: str) -> None:
        """Mark an object as just used (its modification time now): a blob a writer reuses is then inside gc's
        grace period until the writer's entry names it."""
        if self.local:
            try:
                os.utime(self._path(rel))
            except FileNotFoundError:
                pass
            return
        bucket, _, key = self._path(rel).partition("/")
        self._call(f"touching {rel}", self.fs.call_s3, "copy_object", Bucket=bucket, Key=key,
                   CopySource={"Bucket": bucket, "Key": key}, MetadataDirective="REPLACE",
                   Metadata={"hilci-reused": "1"})

    def exists(self, rel: str) -> bool:
        return bool(self._call(f"looking up {rel}", self.fs.exists, self._path(rel)))

    def delete(self, rel: str) -> None:
        try:
            self._call(f"deleting {rel}", self.fs.rm_file, self._path(rel))
        except FileNotFoundError:
            pass

    def names(self, prefix: str) -> list[str]:
        """The names directly below `prefix` (files and folders, one listing, no sizes): the cheap look at a
        folder whose file names already say what each holds."""
        path = self._path(prefix)
        if self.local:
            try:
                return sorted(n for n in os.listdir(path) if not n.startswith((".tmp-", ".probe")))
            except (FileNotFoundError, NotADirectoryError):
                return []
        try:
            found = self._call(f"listing {prefix}", self.fs.ls, path, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in found)

    def list(self, prefix: str) -> list[Listed]:
        """Every object below `prefix` (recursively), with size and modification time."""
        try:
            found = self._call(f"listing {prefix}", self.fs.find, self._path(prefix), detail=True)
        except FileNotFoundError:
            return []
        out = []
        base = self.base + "/"
        for path, info in found.items():
            rel = path[len(base):] if path.startswith(base) else path
            if rel.rsplit("/", 1)[-1].startswith((".tmp-", ".probe")):
                continue
            out.append(Listed(rel, int(info.get("size") or 0), _mtime(info)))
        return sorted(out, key=lambda item: item.rel)

    def clean_partial(self, cutoff: float, dry_run: bool = False) -> int:
        """Remove what killed writers left, older than `cutoff` (epoch s): `.tmp-*` files of the folder store,
        unfinished multipart uploads on S3. Returns how many."""
        if self.local:
            stale = []
            for dirpath, _dirs, files in os.walk(self.base):
                for name in files:
                    path = os.path.join(dirpath, name)
                    try:
                        if name.startswith(".tmp-") and os.stat(path).st_mtime < cutoff:
                            stale.append(path)
                    except FileNotFoundError:
                        continue
            for path in stale if not dry_run else ():
                Path(path).unlink(missing_ok=True)
            return len(stale)
        bucket, _, prefix = self.base.partition("/")
        found = self._call("listing unfinished uploads", self.fs.call_s3, "list_multipart_uploads", Bucket=bucket,
                           Prefix=prefix)
        stale = [u for u in found.get("Uploads") or [] if _mtime({"mtime": u.get("Initiated")}) < cutoff]
        for upload in stale if not dry_run else ():
            self._call("aborting an unfinished upload", self.fs.call_s3, "abort_multipart_upload", Bucket=bucket,
                       Key=upload["Key"], UploadId=upload["UploadId"])
        return len(stale)

    # -- blobs ----------------------------------------------------------------------------------------------
    def put_blob(self, path: Path, ns: str = "") -> str:
        """Upload a file as `<ns>blobs/<sha256>` (skipped when already there or shared); returns its digest."""
        digest = sha256_file(path)
        if not self._has_blob(digest, ns):
            self.write_bytes(blob_path(digest, ns), path.read_bytes())
            self.uploaded_bytes += path.stat().st_size
        return digest

    def put_blob_bytes(self, data: bytes, ns: str = "") -> str:
        digest = sha256_bytes(data)
        if not self._has_blob(digest, ns):
            self.write_bytes(blob_path(digest, ns), data)
            self.uploaded_bytes += len(data)
        return digest

    def _has_blob(self, digest: str, ns: str) -> bool:
        """Whether the blob is there to reuse (then touched, so gc leaves it while our entry is written)."""
        for where in (ns, "") if ns else ("",):
            if self.exists(blob_path(digest, where)):
                if where == ns:  # only what we may write; a shared blob reused by a branch is main's to keep
                    self.touch(blob_path(digest, where))
                return True
        return False

    def get_blob(self, digest: str, namespaces: tuple[str, ...] = ("",), own: str = "") -> bytes:
        """A blob's bytes from the first of `namespaces` that holds it, checked against its name: CorruptBlob
        when missing or tampered (a tampered blob is deleted only from `own`, the namespace this build writes)."""
        if not is_digest(digest):
            raise CorruptBlob(f"{digest!r} is not a sha256")
        for ns in namespaces:
            data = self.read_bytes(blob_path(digest, ns))
            if data is None:
                continue
            if sha256_bytes(data) != digest:
                if ns == own:  # garbage under a name it does not hash to: a rebuild re-uploads it
                    self.delete(blob_path(digest, ns))
                raise CorruptBlob(f"blob {digest[:12]} does not match its sha256")
            return data
        raise CorruptBlob(f"blob {digest[:12]} missing")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's 0600 keeps a shared cache from its team


def _write_local(target: Path, data: bytes) -> None:
    """Write a file whole: into a temporary file beside it, then renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _with_deadline(timeout_s: float, func, *args, **kwargs):
    """func(*args) in a daemon thread, its result or exception; TimeoutError after `timeout_s` (the thread is
    left to finish on its own and never keeps the process alive)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = func(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="hilci-store-call", daemon=True).start()
    if not done.wait(timeout_s):
        raise TimeoutError
    if "error" in box:
        raise box["error"]
    return box["value"]


class _LocalFS:
    """The few file-system calls the store makes, on a local folder (fsspec's names and behaviour)."""

    @staticmethod
    def cat_file(path: str) -> bytes:
        return Path(path).read_bytes()

    @staticmethod
    def exists(path: str) -> bool:
        return Path(path).exists()

    @staticmethod
    def rm_file(path: str) -> None:
        Path(path).unlink()

    @staticmethod
    def find(path: str, detail: bool = True) -> dict[str, dict]:
        root = Path(path)
        if not root.exists():
            raise FileNotFoundError(path)
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        out = {}
        for p in files:
            try:
                st = p.stat()
            except FileNotFoundError:  # removed while listing (gc, a discard)
                continue
            out[str(p)] = {"size": st.st_size, "mtime": st.st_mtime}
        return out


def blob_path(digest: str, ns: str = "") -> str:
    return f"{ns}blobs/{digest[:2]}/{digest}"


def is_digest(value: Any) -> bool:
    return isinstance(value, str) and bool(_DIGEST.match(value))


def _mtime(info: dict) -> float:
    value = info.get("mtime") or info.get("LastModified") or info.get("created") or 0
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"(?i)(aws_secret_access_key|secret|signature|credential)=[^&\s]+", r"\1=***", text)[:200]
