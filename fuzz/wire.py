"""A raw HTTP/1.1 client: the request goes out byte for byte as written, so the fuzz can send what
``requests`` and ``http.client`` refuse to (bad percent-escapes, NUL in the path, a Content-Length that
lies, invalid UTF-8 in headers)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    target: bytes  # path and query, exactly as sent
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    content_length: int | None = None  # None: the body's real length; else this (a lie, possibly)

    def to_bytes(self, host: bytes) -> bytes:
        names = {name.lower() for name, _ in self.headers}
        lines = [self.method.encode() + b" " + self.target + b" HTTP/1.1"]
        if b"host" not in names:
            lines.append(b"Host: " + host)
        lines += [name + b": " + value for name, value in self.headers]
        if b"content-length" not in names and (self.body or self.content_length is not None):
            length = len(self.body) if self.content_length is None else self.content_length
            lines.append(b"Content-Length: " + str(length).encode())
        lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body

    def describe(self, host: bytes, limit: int = 600) -> str:
        """The request as a Python bytes literal, long bodies cut (the seed and case regenerate it whole)."""
        raw = self.to_bytes(host)
        text = repr(raw[:limit]) + (f" … ({len(raw)} bytes)" if len(raw) > limit else "")
        return text


@dataclass
class Response:
    status: int  # 0: no answer (connection refused, reset, timed out)
    headers: dict[str, str]
    body: bytes
    error: str = ""
    cut: bool = False  # a chunked body that ended without its last chunk: the server broke off mid-answer


def send(address: tuple[str, int], host: bytes, request: Request, timeout: float = 60.0) -> Response:
    """Send ``request`` on a new connection and read the answer until the server closes it."""
    chunks, trouble = [], ""
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            try:
                sock.sendall(request.to_bytes(host))
                # The server sees the end of the request, so a Content-Length longer than the body is a short
                # read for it (a 400), not a wait until its timeout.
                sock.shutdown(socket.SHUT_WR)
            except OSError as exc:  # it may answer (a 414, a 400) and close before reading all we send
                trouble = f"{type(exc).__name__}: {exc}"
            try:
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except OSError as exc:
                trouble = trouble or f"{type(exc).__name__}: {exc}"
    except OSError as exc:
        return Response(0, {}, b"", error=f"{type(exc).__name__}: {exc}")
    if not chunks:
        return Response(0, {}, b"", error=trouble or "the server closed the connection without an answer")
    return _parse(b"".join(chunks))


def _parse(raw: bytes) -> Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError):
        return Response(0, {}, raw, error=f"no HTTP status line in {raw[:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, complete = _dechunk(body)
        return Response(status, headers, body, cut=not complete)
    return Response(status, headers, body)


def _dechunk(body: bytes) -> tuple[bytes, bool]:
    """The body, and whether it ended with the zero-size last chunk."""
    out, rest = [], body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            return b"".join(out), True
        out.append(rest[:size])
        rest = rest[size + 2:]
    return b"".join(out), False
