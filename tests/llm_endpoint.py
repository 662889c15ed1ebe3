"""A scriptable stand-in for an OpenAI-compatible endpoint on 127.0.0.1, speaking raw HTTP/1.1.

Each connection's request is read whole, then a handler writes whatever bytes it likes to the socket: a
normal chat-completions reply, an error, a reply trickled a byte at a time, 50 MB. Used where the
endpoint must misbehave below the level ``http.server`` allows (tests/test_llm.py, tests/test_serve.py).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

#: Writes the response for one request body to the connection.
Handler = Callable[[socket.socket, bytes], None]


def http_response(status: int, body: bytes, *, reason: str = "OK") -> bytes:
    """A whole HTTP/1.1 response with a JSON content type and a Content-Length."""
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def completion(content: str) -> bytes:
    """A 200 chat-completions response whose first choice says ``content``."""
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
    }
    return http_response(200, json.dumps(body).encode())


class RawEndpoint:
    """A threaded TCP server on an ephemeral port: one thread per connection, running ``handler``.

    Args:
        handler: Called with the connection and the request body; the connection is closed after it.

    Attributes:
        url: The API base to give :class:`sitetune.answer.LLMConfig` (``http://127.0.0.1:PORT/v1``).
        requests: The request bodies received, parsed as JSON, in order of arrival.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # so the accept loop notices close()
        self._closed = threading.Event()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            conn.settimeout(None)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the client may hang up first: that is the point
            data = b""
            while b"\r\n\r\n" not in data:
                more = conn.recv(65536)
                if not more:
                    return
                data += more
            head, body = data.split(b"\r\n\r\n", 1)
            lines = head.lower().split(b"\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length:"))
            while len(body) < length:
                body += conn.recv(65536)
            with self._lock:
                self.requests.append(json.loads(body))
            self.handler(conn, body)

    def close(self) -> None:
        """Stop accepting connections (handlers still running finish on their own)."""
        self._closed.set()
        self._thread.join(5)
        self._listener.close()

    def __enter__(self) -> RawEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
