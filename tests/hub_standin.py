"""A loopback stand-in for the Hugging Face hub's HTTP API, serving local folders as repos.

It answers the calls `huggingface_hub.snapshot_download` makes (revision info, tree listing, file
HEAD/GET) plus the error codes the real hub sends, so download code runs unchanged against it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubStandIn:
    """Serve `repos` ({"owner/name": folder}); repos named in `errors` answer with that hub error code."""

    def __init__(self, repos: dict[str, Path], errors: dict[str, tuple[int, str]] | None = None):
        self.repos = {repo: Path(folder) for repo, folder in repos.items()}
        self.errors = errors or {}
        self.requested_files: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> "HubStandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _files(self, repo: str) -> dict[str, Path]:
        folder = self.repos[repo]
        return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

            def _json(self, obj) -> None:
                self._send(200, json.dumps(obj).encode(), {"Content-Type": "application/json"})

            def do_GET(self):  # noqa: N802 - http.server naming
                path = unquote(urlparse(self.path).path)
                api = path.startswith("/api/models/")
                parts = path.removeprefix("/api/models/").lstrip("/").split("/")
                repo = "/".join(parts[:2])
                if repo in hub.errors:
                    status, code = hub.errors[repo]
                    return self._send(status, b'{"error": "refused"}', {"X-Error-Code": code})
                if repo not in hub.repos:
                    return self._send(404, b'{"error": "not found"}', {"X-Error-Code": "RepoNotFound"})
                files = hub._files(repo)
                if api and len(parts) > 2 and parts[2] == "tree":
                    return self._json([{"type": "file", "path": name, "size": p.stat().st_size,
                                        "oid": hashlib.sha1(p.read_bytes()).hexdigest()} for name, p in files.items()])
                if api:
                    return self._json({"id": repo, "sha": COMMIT, "siblings": [{"rfilename": n} for n in files]})
                name = path.split("/resolve/", 1)[1].split("/", 1)[1]
                if name not in files:
                    return self._send(404, b"{}", {"X-Error-Code": "EntryNotFound"})
                body = files[name].read_bytes()
                if self.command == "GET":
                    hub.requested_files.append(name)
                self._send(200, body, {"ETag": f'"{hashlib.sha1(body).hexdigest()}"', "X-Repo-Commit": COMMIT})

            do_HEAD = do_GET

            def log_message(self, *args) -> None:
                pass

        return Handler
