"""A real redis-server with TLS and an ACL user, and a throwaway CA made here.

Security tests connect with rediss:// and a password; nothing else on the
machine trusts this CA, and the files live in a temp folder removed at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from support.redis_server import free_port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca_and_cert(folder: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", "-days", "2", "-subj", "/CN=queueworker-test-ca", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=127.0.0.1", cwd=folder)
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf",
             cwd=folder)


class SecureRedisServer:
    """redis-server reachable only over TLS, as ACL user `username` with `password`."""

    def __init__(self, username: str = "qwtest", password: str = "Sup3r-s3cret-pw") -> None:
        self.username = username
        self.password = password
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="qw-redis-tls-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_pem(self) -> str:
        return self.ca_file.read_text()

    @property
    def url(self) -> str:
        """The URL without credentials."""
        return f"rediss://127.0.0.1:{self.port}/0"

    @property
    def url_with_password(self) -> str:
        return f"rediss://{self.username}:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> SecureRedisServer:
        make_ca_and_cert(self.dir)
        (self.dir / "users.acl").write_text(
            f"user {self.username} on >{self.password} ~* &* +@all\nuser default off\n"
        )
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: run `make setup`")
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
             "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
             "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no",
             "--aclfile", str(self.dir / "users.acl"), "--dir", str(self.dir), "--save", ""],
            cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.client().ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("TLS redis-server did not start")

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, username=self.username, password=self.password,
                                    ssl_ca_certs=str(self.ca_file))

    def cleanup(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)
