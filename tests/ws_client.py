"""The tests' WebSocket client: the `websockets` package's synchronous
client, with dicts sent as JSON text, answers read as JSON, and the
server's close code kept where the tests read it."""

import json

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class WebSocket:
    def __init__(self, port, path, timeout=60):
        self.timeout = timeout
        self.conn = connect(
            f"ws://127.0.0.1:{port}{path}", open_timeout=timeout, close_timeout=2, max_size=None
        )
        self.status = self.conn.response.status_code  # 101: switched protocols
        self.close_code = None

    def send(self, payload):
        """A dict or str as a text message, bytes as a binary one."""
        self.conn.send(json.dumps(payload) if isinstance(payload, dict) else payload)

    def recv(self):
        """The next message as JSON; None once the server closed (close_code set)."""
        try:
            return json.loads(self.conn.recv(timeout=self.timeout))
        except ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd else 1006
            return None

    def close(self):
        self.conn.close()
