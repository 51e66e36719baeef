"""A minimal HTTP/1.1 JSON-RPC server on asyncio streams.

Why not FastAPI/uvicorn: the node answers one small JSON body per request and
LiteSVM is single-threaded anyway; a hand-rolled keep-alive loop on one event
loop avoids framework overhead and makes TCP_NODELAY explicit (with Nagle on,
each small answer waited ~40-96 ms for the peer's delayed ACK).
Only what JSON-RPC clients send is supported: POST with Content-Length
(batches included), plus ``GET /health`` like a validator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

import structlog

from ops.localchain.rpc import Methods, RpcError

log = structlog.get_logger("ops.localchain")

MAX_BODY = 16 * 1024 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            411: "Length Required", 413: "Payload Too Large"}


def _response(status: int, body: bytes, keep_alive: bool,
              content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode() + body


def _with_id(serialized: str, request_id: Any) -> str:
    """solders serialises ``"id":0`` last; put the caller's id there instead."""
    suffix = ',"id":0}'
    if serialized.endswith(suffix):
        return serialized[: -len(suffix)] + ',"id":' + json.dumps(request_id) + "}"
    body = json.loads(serialized)
    body["id"] = request_id
    return json.dumps(body)


def _error(request_id: Any, err: RpcError) -> str:
    return json.dumps({"jsonrpc": "2.0", "error": err.body(), "id": request_id})


class RpcServer:
    """Dispatches JSON-RPC requests to ``Methods`` and serves them over HTTP."""

    def __init__(self, methods: Methods) -> None:
        self.methods = methods
        self.requests = 0

    def handle_one(self, request: Any) -> str:
        request_id = request.get("id") if isinstance(request, dict) else None
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(request_id, RpcError(-32600, "Invalid request"))
        params = request.get("params") or []
        if not isinstance(params, list):
            return _error(request_id, RpcError(-32602, "params must be an array"))
        self.requests += 1
        try:
            return _with_id(self.methods.call(request["method"], params).to_json(), request_id)
        except RpcError as err:
            return _error(request_id, err)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            return _error(request_id, RpcError(-32602, f"Invalid params: {exc}"))
        except Exception as exc:  # noqa: BLE001 - a bug must answer, not kill the node
            log.exception("rpc_internal_error", method=request.get("method"))
            return _error(request_id, RpcError(-32603, f"Internal error: {exc}"))

    def handle_body(self, body: bytes) -> bytes:
        try:
            payload = json.loads(body)
        except ValueError:
            return _error(None, RpcError(-32700, "Parse error")).encode()
        if isinstance(payload, list):
            if not payload:
                return _error(None, RpcError(-32600, "Invalid request")).encode()
            return ("[" + ",".join(self.handle_one(r) for r in payload) + "]").encode()
        return self.handle_one(payload).encode()

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ", 2)
                except ValueError:
                    writer.write(_response(400, b"bad request line", False, "text/plain"))
                    return
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                connection = headers.get("connection", "").lower()
                keep_alive = connection != "close" and not (
                    version == "HTTP/1.0" and connection != "keep-alive"
                )
                if method == "GET" and target.split("?")[0] == "/health":
                    writer.write(_response(200, b"ok", keep_alive, "text/plain"))
                elif method != "POST":
                    writer.write(_response(405, b"POST JSON-RPC to /", keep_alive, "text/plain"))
                elif "content-length" not in headers:
                    writer.write(_response(411, b"Content-Length required", False, "text/plain"))
                    return
                else:
                    length = int(headers["content-length"])
                    if length > MAX_BODY:
                        writer.write(_response(413, b"body too large", False, "text/plain"))
                        return
                    body = await reader.readexactly(length)
                    writer.write(_response(200, self.handle_body(body), keep_alive))
                await writer.drain()
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
