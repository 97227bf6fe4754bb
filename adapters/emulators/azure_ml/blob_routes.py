"""The emulated blob storage: ``/blob/{account}/{container}/{path}``, enough of the Blob REST API for the
azure-storage-blob client that azure-ai-ml uses for code upload (HEAD, PUT, ``comp=metadata``, block lists)
and for reading ``MLmodel`` files (GET with or without a range).

Docs: https://learn.microsoft.com/rest/api/storageservices/blob-service-rest-api
"""

from __future__ import annotations

import re
import uuid
from email.utils import format_datetime
from xml.etree import ElementTree

from aiohttp import web

from adapters.emulators.azure_ml.state import BlobKey, BlobRecord, WorkspaceState
from bot.clock import Clock

API_VERSION = "2025-01-05"
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def _error(status: int, code: str, message: str, method: str) -> web.Response:
    headers = {"x-ms-error-code": code, "x-ms-request-id": str(uuid.uuid4()), "x-ms-version": API_VERSION}
    if method == "HEAD":
        return web.Response(status=status, headers=headers)
    body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return web.Response(status=status, text=body, content_type="application/xml", headers=headers)


class BlobService:
    """Blob REST handlers over :attr:`WorkspaceState.blobs`."""

    def __init__(self, state: WorkspaceState, clock: Clock) -> None:
        self.state = state
        self.clock = clock

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/blob/{account}/{container}", self.container)
        app.router.add_route("*", "/blob/{account}/{container}/{path:.+}", self.blob)

    def put(self, key: BlobKey, data: bytes, content_type: str = "application/octet-stream") -> BlobRecord:
        """Store a blob (used by the emulator itself, e.g. for MLmodel files and landed data)."""
        record = BlobRecord(data, content_type, self.clock.now())
        self.state.blobs[key] = record
        return record

    def _headers(self, record: BlobRecord) -> dict[str, str]:
        headers = {
            "ETag": record.etag,
            "Last-Modified": format_datetime(record.last_modified, usegmt=True),
            "x-ms-blob-type": "BlockBlob",
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-version": API_VERSION,
            "x-ms-creation-time": format_datetime(record.last_modified, usegmt=True),
            "x-ms-server-encrypted": "true",
            "Accept-Ranges": "bytes",
        }
        headers.update({f"x-ms-meta-{k}": v for k, v in record.metadata.items()})
        return headers

    async def container(self, request: web.Request) -> web.Response:
        """Container-level calls: create (``restype=container``) and list blobs (``comp=list``)."""
        account, container = request.match_info["account"], request.match_info["container"]
        if request.method == "PUT":
            return web.Response(status=201, headers={"x-ms-request-id": str(uuid.uuid4())})
        if request.method == "GET" and request.query.get("comp") == "list":
            return self._list(account, container, request.query.get("prefix", ""))
        if request.method in ("GET", "HEAD"):
            return web.Response(status=200, headers={"x-ms-request-id": str(uuid.uuid4())})
        return _error(405, "UnsupportedHttpVerb", "The resource doesn't support the verb.", request.method)

    def _list(self, account: str, container: str, prefix: str) -> web.Response:
        root = ElementTree.Element("EnumerationResults", ContainerName=container)
        ElementTree.SubElement(root, "Prefix").text = prefix
        blobs = ElementTree.SubElement(root, "Blobs")
        for (acct, cont, path), record in sorted(self.state.blobs.items()):
            if acct == account and cont == container and path.startswith(prefix):
                item = ElementTree.SubElement(blobs, "Blob")
                ElementTree.SubElement(item, "Name").text = path
                props = ElementTree.SubElement(item, "Properties")
                ElementTree.SubElement(props, "Content-Length").text = str(len(record.data))
                ElementTree.SubElement(props, "Etag").text = record.etag
                ElementTree.SubElement(props, "BlobType").text = "BlockBlob"
        ElementTree.SubElement(root, "NextMarker")
        body = b'<?xml version="1.0" encoding="utf-8"?>' + ElementTree.tostring(root)
        return web.Response(body=body, content_type="application/xml", headers={"x-ms-version": API_VERSION})

    async def blob(self, request: web.Request) -> web.Response:
        key: BlobKey = (
            request.match_info["account"],
            request.match_info["container"],
            request.match_info["path"],
        )
        comp = request.query.get("comp")
        if request.method == "PUT":
            if comp == "metadata":
                return self._set_metadata(request, key)
            if comp == "block":
                return await self._stage_block(request, key)
            if comp == "blocklist":
                return await self._commit_blocks(request, key)
            return await self._put_blob(request, key)
        if request.method in ("GET", "HEAD"):
            return self._read(request, key)
        if request.method == "DELETE":
            if self.state.blobs.pop(key, None) is None:
                return _error(404, "BlobNotFound", "The specified blob does not exist.", request.method)
            return web.Response(status=202, headers={"x-ms-request-id": str(uuid.uuid4())})
        return _error(405, "UnsupportedHttpVerb", "The resource doesn't support the verb.", request.method)

    def _read(self, request: web.Request, key: BlobKey) -> web.Response:
        record = self.state.blobs.get(key)
        if record is None:
            return _error(404, "BlobNotFound", "The specified blob does not exist.", request.method)
        headers = self._headers(record)
        headers["Content-Type"] = record.content_type
        data = record.data
        wanted = request.headers.get("x-ms-range") or request.headers.get("Range")
        match = _RANGE.fullmatch(wanted or "")
        status = 200
        if match and data:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data):
                return _error(416, "InvalidRange", "The range specified is invalid.", request.method)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(record.data))
            return web.Response(status=200, headers=headers)
        return web.Response(status=status, body=data, headers=headers)

    async def _put_blob(self, request: web.Request, key: BlobKey) -> web.Response:
        record = self.put(
            key,
            await request.read(),
            request.headers.get("x-ms-blob-content-type", "application/octet-stream"),
        )
        record.metadata = _metadata(request)
        return web.Response(status=201, headers={**self._headers(record), "x-ms-request-server-encrypted": "true"})

    def _set_metadata(self, request: web.Request, key: BlobKey) -> web.Response:
        record = self.state.blobs.get(key)
        if record is None:
            return _error(404, "BlobNotFound", "The specified blob does not exist.", request.method)
        record.metadata = _metadata(request)
        return web.Response(status=200, headers=self._headers(record))

    async def _stage_block(self, request: web.Request, key: BlobKey) -> web.Response:
        block_id = request.query.get("blockid", "")
        self.state.staged_blocks.setdefault(key, {})[block_id] = await request.read()
        return web.Response(status=201, headers={"x-ms-request-id": str(uuid.uuid4()), "x-ms-version": API_VERSION})

    async def _commit_blocks(self, request: web.Request, key: BlobKey) -> web.Response:
        staged = self.state.staged_blocks.pop(key, {})
        root = ElementTree.fromstring(await request.read())  # noqa: S314 (the SDK's own XML, loopback only)
        parts = []
        for element in root:
            block = staged.get(element.text or "")
            if block is None:
                return _error(400, "InvalidBlockList", "The specified block list is invalid.", request.method)
            parts.append(block)
        content_type = request.headers.get("x-ms-blob-content-type", "application/octet-stream")
        record = self.put(key, b"".join(parts), content_type)
        record.metadata = _metadata(request)
        return web.Response(status=201, headers=self._headers(record))


def _metadata(request: web.Request) -> dict[str, str]:
    return {k[len("x-ms-meta-") :]: v for k, v in request.headers.items() if k.lower().startswith("x-ms-meta-")}
