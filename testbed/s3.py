"""The test bed's S3 server: a real MinIO, built from its Go module, on a private port.

    python -m testbed.s3 up      # prints BATCHX_S3_ENDPOINT=..., AWS_ACCESS_KEY_ID=... lines
    python -m testbed.s3 env     # the same lines for a server that is already up
    python -m testbed.s3 down    # stops it (by PID) and removes its data

Why MinIO: it checks SigV4 signatures and payload checksums, and honours conditional writes
(`If-None-Match: *` -> 412), which the content store relies on for create-only commits; mocks
(moto) and rclone accept what a real store refuses (see shared/TESTBED.md).

The listen address defaults to 127.0.0.1; the cluster test bed binds it to its bridge gateway
(`BATCHX_S3_HOST=10.87.0.1`, or `--host`) so that pods can reach it. Root credentials are
generated per start and never leave the state directory and the printed env lines.

`up` first tidies whatever a crashed earlier run left (a stale PID file, a leftover data dir), so
it is always safe to call. The library functions `start()`/`stop()` are what the pytest fixture
uses: a server in a temp dir, owned by the test session.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from testbed import paths, procs

HERE = Path(__file__).resolve().parent
DEFAULT_HOST = os.environ.get("BATCHX_S3_HOST", "127.0.0.1")
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class S3Server:
    """A running MinIO: where it listens, how to authenticate, and what to clean up."""

    endpoint: str
    access_key: str
    secret_key: str
    pid: int
    data_dir: str
    log_file: str
    region: str = "us-east-1"

    def client(self) -> Any:
        """A boto3 S3 client for this server (boto3 imported here: only its callers pay for it)."""
        import boto3  # noqa: PLC0415

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def credentials(self) -> dict[str, str]:
        """The AWS_* variables boto3 (the store, the bx CLI, the runner) reads for this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def env_lines(self) -> list[str]:
        """Shell `export`-able lines; AWS_* so that boto3 and the bx CLI pick them up as-is."""
        return [
            f"BATCHX_S3_ENDPOINT={self.endpoint}",
            f"AWS_ACCESS_KEY_ID={self.access_key}",
            f"AWS_SECRET_ACCESS_KEY={self.secret_key}",
            f"AWS_DEFAULT_REGION={self.region}",
        ]


def build() -> Path:
    """Path of the MinIO binary, building it (cached by version) when needed."""
    out = (
        subprocess.run(
            [str(HERE / "build-minio.sh")], check=True, stdout=subprocess.PIPE, text=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return Path(out)


def free_port(host: str) -> int:
    # The kernel picks a free port; MinIO binds it a moment later. The tiny race with another
    # process is acceptable for a test bed and reported clearly if it happens (start fails).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    data_dir: Path,
    *,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    binary: Path | None = None,
    timeout: float = READY_TIMEOUT,
    keys: tuple[str, str] | None = None,
) -> S3Server:
    """Start MinIO serving `data_dir` on host:port and return once it answers its health check.

    `keys` (access key, secret key) are made up unless given (a restart keeps them).
    """
    binary = binary or build()
    port = port or free_port(host)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "data").mkdir(exist_ok=True)
    access_key, secret_key = keys or ("bx" + secrets.token_hex(8), secrets.token_urlsafe(30))
    log_file = data_dir / "minio.log"
    env = {
        **_clean_env(),
        "MINIO_ROOT_USER": access_key,
        "MINIO_ROOT_PASSWORD": secret_key,
        # Nothing may phone home or open extra listeners (network rule of the test bed).
        "MINIO_UPDATE": "off",
        "MINIO_BROWSER": "off",
        "MINIO_CALLHOME_ENABLE": "off",
        "MINIO_CI_CD": "1",
    }
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            [
                str(binary),
                "server",
                "--quiet",
                "--address",
                f"{host}:{port}",
                "--console-address",
                f"{host}:{free_port(host)}",
                str(data_dir / "data"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # our own process group: stop() never signals anyone else
        )
    server = S3Server(
        f"http://{host}:{port}", access_key, secret_key, proc.pid, str(data_dir), str(log_file)
    )
    try:
        _wait_ready(server, proc, timeout)
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: S3Server, timeout: float = 20.0) -> None:
    """Stop the server by PID (TERM, then KILL after `timeout`); safe if it already exited."""
    _terminate(server.pid, timeout)


def restart(server: S3Server, down_for: float = 0.0) -> S3Server:
    """Stop `server` and start it again on the same address, data and keys (for fault tests).

    `down_for` seconds pass in between: clients see connections refused for that long.
    """
    stop(server)
    time.sleep(down_for)  # the outage itself, not a synchronisation
    address = urllib.parse.urlsplit(server.endpoint)
    assert address.hostname is not None
    assert address.port is not None
    return start(
        Path(server.data_dir),
        host=address.hostname,
        port=address.port,
        keys=(server.access_key, server.secret_key),
    )


def _terminate(pid: int, timeout: float) -> None:
    if not _alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _alive(pid)  # reap


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reaps our own child if it exited
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child (CLI `down` from another process): fall back to signal 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return _is_minio(pid)


def _is_minio(pid: int) -> bool:
    # A PID from a stale state file may have been reused by an unrelated process: only ever
    # signal it if it is still a MinIO server.
    argv = procs.live_argv(pid)
    return argv is not None and any("minio" in arg for arg in argv)


def _clean_env() -> dict[str, str]:
    # MinIO reads MINIO_* from the environment; do not inherit a developer's settings.
    return {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}


def _wait_ready(server: S3Server, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"{server.endpoint}/minio/health/live"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"MinIO exited with {proc.returncode} during start; log: {server.log_file}\n"
                + _tail(Path(server.log_file))
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(
        f"MinIO not live after {timeout:.0f}s; log: {server.log_file}\n"
        + _tail(Path(server.log_file))
    )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ------------------------------------------------------------------------------------ CLI state


def state_dir() -> Path:
    """State of the CLI-managed server: $BATCHX_TESTBED_DIR/s3 or <cache>/state/s3."""
    return paths.state_dir() / "s3"


def _state_file() -> Path:
    return state_dir() / "server.json"


def load_state() -> S3Server | None:
    try:
        return S3Server(**json.loads(_state_file().read_text()))
    except (OSError, ValueError, TypeError):
        return None


def up(host: str = DEFAULT_HOST, port: int | None = None) -> S3Server:
    """Start the shared server, or return the running one; tidies a crashed previous run."""
    current = load_state()
    if current is not None and _alive(current.pid) and _healthy(current):
        return current
    down()
    root = state_dir()
    root.mkdir(parents=True, exist_ok=True)
    server = start(root, host=host, port=port)
    tmp = root / "server.json.tmp"
    tmp.write_text(json.dumps(asdict(server), indent=2))
    tmp.chmod(0o600)  # holds the root credentials
    tmp.replace(_state_file())
    return server


def down() -> None:
    """Stop the shared server (if any) and remove its state and data."""
    current = load_state()
    if current is not None:
        _terminate(current.pid, 20.0)
    root = state_dir()
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)


def _healthy(server: S3Server) -> bool:
    try:
        with urllib.request.urlopen(f"{server.endpoint}/minio/health/live", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.s3",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "env", "status"])
    parser.add_argument("--host", default=DEFAULT_HOST, help="listen address (default %(default)s)")
    parser.add_argument("--port", type=int, default=None, help="listen port (default: a free one)")
    args = parser.parse_args(argv)
    if args.command == "up":
        print("\n".join(up(args.host, args.port).env_lines()))
    elif args.command == "down":
        down()
    else:
        current = load_state()
        if current is None or not _healthy(current):
            print("S3 server: down", file=sys.stderr)
            return 1
        print("\n".join(current.env_lines()) if args.command == "env" else current.endpoint)
    return 0


def temp_server(host: str = DEFAULT_HOST) -> tuple[S3Server, tempfile.TemporaryDirectory[str]]:
    """A server in a fresh temp dir (for fixtures and benchmarks); caller stops and cleans up."""
    tmp = tempfile.TemporaryDirectory(prefix="batchx-s3-")
    try:
        return start(Path(tmp.name), host=host), tmp
    except BaseException:
        tmp.cleanup()
        raise


if __name__ == "__main__":
    sys.exit(main())
