"""A small Hugging Face Hub-compatible HTTP server for tests (no package offers one that accepts uploads).

It speaks the endpoints the real `huggingface_hub` client uses for a model round trip: repository creation,
branch creation, pre-upload (every file "regular", so no LFS/Xet storage is needed), commit (ndjson), model
info (with siblings), tree listing, and file download (HEAD + GET on /resolve/). Repositories live in memory,
one snapshot per branch. The model card's metadata is accepted as sent (/api/validate-yaml).

Tokens: TOKENS maps a token to the namespace it may write to; reads need no token (public repositories only).
"""

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

TOKENS = {"hf_test_alice_write": "alice"}


class Repo:
    def __init__(self, private: bool):
        self.private = private
        self.branches: dict[str, dict[str, bytes]] = {"main": {}}
        self.commits: dict[str, str] = {"main": hashlib.sha1(b"init").hexdigest()}


class HubState:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.lock = threading.Lock()
        self.requests: list[str] = []


def make_handler(state: HubState):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        # ---- helpers -------------------------------------------------------------------------------------
        def send_json(self, obj, status=200, headers=None):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def error(self, status, message, code=None):
            """An error as the Hub sends it; `code` (X-Error-Code: RepoNotFound, RevisionNotFound) is what the
            client turns into its RepositoryNotFoundError / RevisionNotFoundError."""
            self.send_json({"error": message}, status, {"X-Error-Message": message,
                                                        **({"X-Error-Code": code} if code else {})})

        def branch(self, repo, revision):
            """The branch a revision (a branch name or a commit id) names, or None."""
            return next((b for b, c in repo.commits.items() if c == revision), revision if revision in
                        repo.branches else None)

        def body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def writer(self) -> str | None:
            auth = self.headers.get("Authorization", "")
            return TOKENS.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None

        def may_write(self, repo_id: str) -> bool:
            who = self.writer()
            if who is None:
                self.error(401, "Invalid credentials in Authorization header")
                return False
            if repo_id.split("/")[0] != who:
                self.error(403, f"You don't have the rights to create a model under the namespace {repo_id}")
                return False
            return True

        def repo_info(self, repo_id, repo, revision):
            files = repo.branches[revision]
            return {"id": repo_id, "modelId": repo_id, "sha": repo.commits[revision], "private": repo.private,
                    "siblings": [{"rfilename": p} for p in sorted(files)], "tags": [], "downloads": 0, "likes": 0}

        # ---- routes -------------------------------------------------------------------------------------
        def do_POST(self):
            path = unquote(urlparse(self.path).path)
            state.requests.append(f"POST {path}")
            if path == "/api/validate-yaml":  # the model card's metadata header, checked before the commit
                self.body()
                return self.send_json({"errors": [], "warnings": []})
            if path == "/api/repos/create":
                data = json.loads(self.body())
                repo_id = f"{data.get('organization') or self.writer()}/{data['name']}"
                if not self.may_write(repo_id):
                    return
                with state.lock:
                    if repo_id in state.repos:  # the Hub's 409 names the repository's url too (create_repo reads it)
                        message = "You already created this model repo"
                        return self.send_json({"error": message, "url": f"http://{self.headers['Host']}/{repo_id}"},
                                              409, {"X-Error-Message": message})
                    state.repos[repo_id] = Repo(data.get("visibility") == "private" or bool(data.get("private")))
                return self.send_json({"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id})
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit|branch)/(.+)", path)
            if not m:
                return self.error(404, f"no route {path}")
            repo_id, action, revision = m.groups()
            data = self.body()
            if not self.may_write(repo_id):
                return
            repo = state.repos.get(repo_id)
            if repo is None:
                return self.error(404, "Repository not found")
            if action == "branch":
                with state.lock:
                    repo.branches.setdefault(revision, dict(repo.branches["main"]))
                    repo.commits.setdefault(revision, repo.commits["main"])
                return self.send_json({})
            if revision not in repo.branches:
                return self.error(404, f"Invalid rev id: {revision}")
            if action == "preupload":
                files = json.loads(data)["files"]
                return self.send_json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                 for f in files]})
            # commit: ndjson lines {"key": "header"|"file"|"deletedFile", "value": {...}}
            with state.lock:
                files = dict(repo.branches[revision])
                for line in data.decode().splitlines():
                    item = json.loads(line)
                    value = item["value"]
                    if item["key"] == "file":
                        files[value["path"]] = base64.b64decode(value["content"])
                    elif item["key"] == "deletedFile":
                        files.pop(value["path"], None)
                    elif item["key"] not in ("header",):
                        return self.error(400, f"unsupported commit operation {item['key']}")
                repo.branches[revision] = files
                oid = hashlib.sha1(json.dumps(sorted((p, hashlib.sha1(c).hexdigest()) for p, c in files.items()))
                                   .encode() + revision.encode()).hexdigest()
                repo.commits[revision] = oid
            host = self.headers["Host"]
            return self.send_json({"commitUrl": f"http://{host}/{repo_id}/commit/{oid}", "commitOid": oid,
                                   "success": True})

        def do_HEAD(self):
            self.do_GET(head=True)

        def do_GET(self, head: bool = False):
            path = unquote(urlparse(self.path).path)
            state.requests.append(f"{'HEAD' if head else 'GET'} {path}")
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path)
            if m:
                repo_id, revision = m.group(1), m.group(2) or "main"
                repo = state.repos.get(repo_id)
                if repo is None:
                    return self.error(404, "Repository not found", "RepoNotFound")
                if self.branch(repo, revision) is None:
                    return self.error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
                return self.send_json(self.repo_info(repo_id, repo, self.branch(repo, revision)))
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", path)
            if m:
                repo = state.repos.get(m.group(1))
                if repo is None:
                    return self.error(404, "Repository not found", "RepoNotFound")
                if self.branch(repo, m.group(2)) is None:
                    return self.error(404, f"Invalid rev id: {m.group(2)}", "RevisionNotFound")
                files = repo.branches[self.branch(repo, m.group(2))]
                return self.send_json([{"type": "file", "path": p, "size": len(c),
                                         "oid": hashlib.sha1(c).hexdigest()} for p, c in sorted(files.items())])
            m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if m:
                repo_id, revision, filename = m.groups()
                repo = state.repos.get(repo_id)
                branch = next((b for b, c in repo.commits.items() if c == revision), revision) if repo else None
                if repo is None or branch not in repo.branches:
                    return self.error(404, "Repository not found")
                content = repo.branches[branch].get(filename)
                if content is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Repo-Commit", repo.commits[branch])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(content)))
                self.send_header("ETag", f'"{hashlib.sha1(content).hexdigest()}"')
                self.send_header("X-Repo-Commit", repo.commits[branch])
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if not head:
                    self.wfile.write(content)
                return
            self.error(404, f"no route {path}")

    return Handler


class HubServer:
    """with HubServer() as hub: ... hub.url ... (binds 127.0.0.1 on a free port)"""

    def __init__(self):
        self.state = HubState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
