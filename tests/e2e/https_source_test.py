#!/usr/bin/python3
"""End to end: a git source over https:// with a token from a file (`source.tokenFile`) and a
private certificate authority (`source.caFile`).

usage: https_source_test.py GITVIRT_BINARY

The server is git's own smart-HTTP CGI (`git http-backend`) behind a small TLS server on
127.0.0.1 (https://localhost:PORT) with a certificate signed by a CA made for the test (openssl). It answers 401 unless the
request carries Basic credentials with the token as the password, as GitHub/GitLab/Gitea do.

  plan and `serve --once` read the commit with the token and the CA; a wrong token is refused
  with the file named and the token never shown; without caFile the server's certificate is not
  trusted, and the error says so.
"""
import base64
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest

from e2e_lib import Repo, run, vm_manifest, write_git_source_config

GITVIRT = ""
TOKEN = "tok-7f3a9c"


class GitHttpBackend(http.server.BaseHTTPRequestHandler):
    """Smart HTTP through `git http-backend` (CGI), behind Basic authentication."""

    root = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.serve()

    def do_POST(self):
        self.serve()

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def reply(self, status, headers, body):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def serve(self):
        data = self.body() if self.command == "POST" else b""
        expected = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.reply(401, [("WWW-Authenticate", 'Basic realm="git"')], b"")
            return
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(data)),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(["git", "http-backend"], input=data, env=env, capture_output=True, timeout=60).stdout
        head, _, body = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.reply(status, headers, body)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class HttpsSourceEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="gve2ehttps-")
        projects = os.path.join(cls.dir, "projects")
        cls.repo = Repo(os.path.join(projects, "infra", "vms.git"))
        cls.repo.write("vm-a.yaml", vm_manifest("vm-a", network=False, node="hv1"))
        cls.commit = cls.repo.commit("vm-a")
        # A CA, and a certificate for localhost signed by it (by name: libgit2's TLS library,
        # mbedTLS, matches DNS names only).
        pki = os.path.join(cls.dir, "pki")
        os.makedirs(pki)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                "-days", "2", "-subj", "/CN=gitvirt test CA", cwd=pki)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
                "-subj", "/CN=localhost", cwd=pki)
        with open(os.path.join(pki, "san.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=pki)
        cls.ca = os.path.join(pki, "ca.pem")
        GitHttpBackend.root = projects
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GitHttpBackend)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(os.path.join(pki, "server.pem"), os.path.join(pki, "server.key"))
        cls.server.socket = context.wrap_socket(cls.server.socket, server_side=True)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.url = f"https://localhost:{cls.server.server_address[1]}/infra/vms.git"
        cls.token = os.path.join(cls.dir, "token")
        with open(cls.token, "w") as f:
            f.write(TOKEN + "\n")
        cls.wrong = os.path.join(cls.dir, "wrong-token")
        with open(cls.wrong, "w") as f:
            f.write("not-the-token\n")

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        shutil.rmtree(cls.dir, ignore_errors=True) if not os.environ.get("KEEP") else print(cls.dir)

    def gv(self, name, token, ca, *args):
        config = os.path.join(self.dir, f"gitvirt-{name}.yaml")
        extra = f", caFile: {ca}" if ca else ""
        write_git_source_config(config, f'{{repo: "{self.url}", ref: main, tokenFile: {token}{extra}}}',
                                f"{self.dir}/state-{name}", f"{self.dir}/pool")
        return run(GITVIRT, "--config", config, *args, check=False, stdin=subprocess.DEVNULL, timeout=120)

    def test_1_plan_and_serve_read_the_commit_with_the_token_and_the_ca(self):
        out = self.gv("good", self.token, self.ca, "plan", "-o", "json")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        plan = json.loads(out.stdout)
        self.assertEqual(plan["revision"], self.commit)
        self.assertEqual([a["target"]["name"] for a in plan["actions"] if a["type"] == "create"], ["vm-a"])
        out = self.gv("good", self.token, self.ca, "serve", "--once")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(f"revision {self.commit}: synced", out.stdout)
        self.assertNotIn(TOKEN, out.stdout + out.stderr)

    def test_2_a_wrong_token_is_refused_and_never_shown(self):
        out = self.gv("wrong", self.wrong, self.ca, "plan")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn(f"refused the credentials (token from {self.wrong})", out.stderr)
        self.assertNotIn("not-the-token", out.stdout + out.stderr)

    def test_3_without_the_ca_the_certificate_is_not_trusted(self):
        out = self.gv("noca", self.token, None, "plan")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("certificate", out.stderr.lower())
        self.assertNotIn(self.commit, out.stdout)


if __name__ == "__main__":
    GITVIRT = sys.argv[1]
    unittest.main(argv=sys.argv[:1], verbosity=2)
