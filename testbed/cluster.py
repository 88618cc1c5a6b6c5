"""A real single-node Kubernetes cluster on this machine, from components built here.

    python -m testbed.cluster up      # prints the kubeconfig path once the node is Ready (a
                                      # running cluster is kept; `down` then `up` restarts it)
    python -m testbed.cluster down    # stops everything; leaves no process, mount or interface
    python -m testbed.cluster status
    python -m testbed.cluster restart kube-apiserver   # one component, for fault tests

Pieces: etcd and kube-apiserver on 127.0.0.1, kube-controller-manager, kube-scheduler, and a
kubelet driving Debian's containerd + runc with the CNI bridge plugin. Pods live on a bridge the
test bed creates (`bxbr0`, 10.87.0.1/24 by default); the node's address is the bridge gateway, so
nothing listens on any address the test bed did not make. Kubernetes v1.34 is the newest minor
whose kubelet still runs on cgroup v1 (these machines) without opting out of failCgroupV1, and
it speaks CRI v1, which containerd 1.6 serves.

`up` first tidies whatever a crashed earlier run left behind, so it is always safe to call.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed import images, kube, network, paths, procs, registry
from testbed import pki as pki_files
from testbed.topology import (
    API_PORT,
    BRIDGE,
    BRIDGE_MAC,
    ETCD_PORT,
    GATEWAY,
    NODE,
    SERVICE_RANGE,
    SUBNET,
)

HERE = Path(__file__).resolve().parent

GPUS = int(os.environ.get("BATCHX_FAKE_GPUS", "2"))
GPU_PRODUCT = os.environ.get("BATCHX_FAKE_GPU_PRODUCT", "T4")
COMPONENTS = [
    "etcd",
    "registry",
    "containerd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
]  # start order; stopped in reverse


def log(msg: str) -> None:
    print(f"[testbed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.25) -> None:
    """Poll `check` until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s (logs: {paths.run_dir()})")


# --------------------------------------------------------------------------------------- build


# ------------------------------------------------------------------------------------ processes


@dataclass
class Proc:
    name: str
    argv: list[str]

    @property
    def pidfile(self) -> Path:
        return paths.run_dir() / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return paths.run_dir() / f"{self.name}.log"

    def start(self) -> int:
        with open(self.logfile, "ab") as out:
            # A new session: the cluster outlives the shell or pytest process that started it.
            proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pidfile.write_text(f"{proc.pid} {self.argv[0]}\n")
        return proc.pid


def _alive(pid: int, exe: str) -> bool:
    """True if `pid` runs `exe` (guards against a recycled pid from a crashed earlier run)."""
    argv = procs.live_argv(pid)
    return argv is not None and argv[0] == exe


def stop_pid(pid: int, exe: str, grace: float = 10.0) -> None:
    if not _alive(pid, exe):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid, exe):
        time.sleep(0.1)
    if _alive(pid, exe):
        os.kill(pid, signal.SIGKILL)
        wait_for(f"pid {pid} to exit", lambda: not _alive(pid, exe), 10)


def _pids_with_arg(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# ---------------------------------------------------------------------------------- components


def containerd_config(state: Path) -> Path:
    run = paths.run_dir()
    cni_conf = state / "cni"
    cni_conf.mkdir(parents=True, exist_ok=True)
    (cni_conf / "10-batchx.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "batchx",
                "plugins": [
                    # No masquerade: pods only talk to the bridge gateway and to each other.
                    {
                        "type": "bridge",
                        "bridge": BRIDGE,
                        "isGateway": True,
                        "ipMasq": False,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                            # The one route off the bridge: Services (the API server's).
                            "routes": [{"dst": SERVICE_RANGE}],
                            "dataDir": str(state / "cni-ipam"),
                        },
                    },
                    {"type": "loopback"},
                ],
            },
            indent=2,
        )
    )
    cfg = state / "containerd.toml"
    cfg.write_text(f"""version = 2
root = "{state / "containerd"}"
state = "{run / "containerd"}"
[grpc]
  address = "{paths.containerd_socket()}"
[ttrpc]
  address = "{run / "containerd-ttrpc.sock"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.REGISTRY}/pause:3.10"
  enable_cdi = false
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which these machines withhold.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
  # Image names resolve through hosts.toml files: batchx.local is the test bed's registry.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{registry.hosts_dir(state)}"
""")
    return cfg


def kubelet_config(state: Path, pki: Path, overrides: Mapping[str, Any] | None = None) -> Path:
    """The kubelet's configuration file; `overrides` replace top-level fields (a fault test's)."""
    cfg = state / "kubelet.yaml"
    cfg.write_text(
        json.dumps(
            {
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                "address": GATEWAY,
                "port": 10250,
                "readOnlyPort": 0,
                "healthzBindAddress": "127.0.0.1",
                "healthzPort": 10248,
                "cgroupDriver": "cgroupfs",  # no systemd on these machines
                "failCgroupV1": False,
                "containerRuntimeEndpoint": f"unix://{paths.containerd_socket()}",
                "failSwapOn": False,
                "authentication": {
                    "anonymous": {"enabled": False},
                    "webhook": {"enabled": True},
                    "x509": {"clientCAFile": str(pki / "ca.crt")},
                },
                "authorization": {"mode": "Webhook"},
                # Images the test bed imported with `ctr` (pause) cannot be pulled again.
                "imageGCHighThresholdPercent": 100,
                "imageGCLowThresholdPercent": 99,
                "evictionHard": {
                    "memory.available": "200Mi",
                    "nodefs.available": "1%",
                    "imagefs.available": "1%",
                    "nodefs.inodesFree": "1%",
                },
                "serializeImagePulls": False,
                "resolvConf": "/etc/resolv.conf",
                "nodeStatusReportFrequency": "10s",
                "maxPods": 110,
            }
            | dict(overrides or {}),
            indent=2,
        )
    )
    return cfg


def processes(
    bins: Path, state: Path, pki: Path, kubelet: Mapping[str, Any] | None = None
) -> list[Proc]:
    def k(name: str) -> str:
        return str(state / f"{name}.kubeconfig")

    return [
        Proc(
            "etcd",
            [
                str(bins / "etcd"),
                "--data-dir",
                str(state / "etcd"),
                "--name",
                NODE,
                "--listen-client-urls",
                f"http://127.0.0.1:{ETCD_PORT}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{ETCD_PORT}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{ETCD_PORT + 10}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{ETCD_PORT + 10}",
                "--initial-cluster",
                f"{NODE}=http://127.0.0.1:{ETCD_PORT + 10}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes",
                str(2 << 30),
            ],
        ),
        Proc("registry", registry.argv(state)),
        Proc("containerd", ["/usr/bin/containerd", "--config", str(containerd_config(state))]),
        Proc(
            "kube-apiserver",
            [
                str(bins / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
                "--bind-address=127.0.0.1",
                f"--secure-port={API_PORT}",
                f"--advertise-address={GATEWAY}",
                f"--service-cluster-ip-range={SERVICE_RANGE}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                "--kubelet-preferred-address-types=InternalIP",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,"
                "NodeRestriction,PodSecurity,ResourceQuota,DefaultStorageClass",
                "--allow-privileged=true",
                "--profiling=false",
                "--endpoint-reconciler-type=none",
                # Aggregated APIs (the operator's files API): the front-proxy identity headers,
                # and routing to a Service's endpoints (the test bed runs no kube-proxy).
                f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                "--enable-aggregator-routing=true",
            ],
        ),
        Proc(
            "kube-controller-manager",
            [
                str(bins / "kube-controller-manager"),
                f"--kubeconfig={k('controller-manager')}",
                f"--authentication-kubeconfig={k('controller-manager')}",
                f"--authorization-kubeconfig={k('controller-manager')}",
                "--bind-address=127.0.0.1",
                "--secure-port=10257",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                # Fast feedback for tests: quota recalculation and namespace deletion react quickly.
                "--resource-quota-sync-period=10s",
                "--concurrent-namespace-syncs=5",
            ],
        ),
        Proc(
            "kube-scheduler",
            [
                str(bins / "kube-scheduler"),
                f"--kubeconfig={k('scheduler')}",
                f"--authentication-kubeconfig={k('scheduler')}",
                f"--authorization-kubeconfig={k('scheduler')}",
                "--bind-address=127.0.0.1",
                "--secure-port=10259",
                "--leader-elect=false",
            ],
        ),
        Proc(
            "kubelet",
            [
                str(bins / "kubelet"),
                f"--config={kubelet_config(state, pki, kubelet)}",
                f"--kubeconfig={k('kubelet')}",
                f"--hostname-override={NODE}",
                f"--node-ip={GATEWAY}",
                f"--root-dir={state / 'kubelet'}",
                f"--cert-dir={state / 'kubelet-pki'}",
                f"--node-labels=nvidia.com/gpu.product={GPU_PRODUCT}",
            ],
        ),
    ]


# ---------------------------------------------------------------------------------- up / down


def _sh(*argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


def _https_ok(url: str, pki: Path) -> bool:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
        return bool(resp.status == 200)


def _kubectl(bins: Path, *args: str) -> str:
    return kube.kubectl(
        paths.kubeconfig(), *args, check=True, executable=str(bins / "kubectl")
    ).stdout


def _node_ready(bins: Path) -> bool:
    out = _kubectl(
        bins, "get", "node", NODE, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
    )
    return out.strip() == "True"


def _advertise_gpus(bins: Path) -> None:
    """Advertise fake GPUs as an extended resource, the way the Kubernetes docs describe."""
    patch = json.dumps(
        [{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": str(GPUS)}]
    )
    _kubectl(bins, "patch", "node", NODE, "--subresource=status", "--type=json", "-p", patch)


def up() -> Path:
    t0 = time.monotonic()
    down(quiet=True)
    bins = kube.build_binaries()
    state, run, pki = paths.state_dir(), paths.run_dir(), paths.state_dir() / "pki"
    run.mkdir(parents=True, exist_ok=True)
    pki_files.ensure_pki(pki)
    pki_files.write_kubeconfig(paths.kubeconfig(), pki, "admin")
    for user in ("controller-manager", "scheduler", "kubelet"):
        pki_files.write_kubeconfig(state / f"{user}.kubeconfig", pki, user)
    # The bridge exists before the kubelet so the node can take the gateway as its address.
    # A fixed MAC: a bridge without one takes the lowest MAC of its ports, so deleting a pod
    # whose veth had it changes the gateway's MAC under every other pod, whose ARP entry then
    # points nowhere for up to a minute (connections to the store hung: uploads killed at the
    # end of their grace period, "the uploader reported nothing").
    _sh("ip", "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge", check=True)
    _sh("ip", "addr", "add", f"{GATEWAY}/{SUBNET.split('/')[1]}", "dev", BRIDGE, check=True)
    _sh("ip", "link", "set", BRIDGE, "up", check=True)
    procs = {p.name: p for p in processes(bins, state, pki)}
    t_build = time.monotonic()

    procs["etcd"].start()
    procs["registry"].start()
    procs["containerd"].start()
    wait_for("containerd", lambda: bool(images.ctr("version")), 30)
    images.import_image(images.pause_spec())
    wait_for("etcd", _etcd_healthy, 30)
    procs["kube-apiserver"].start()
    wait_for("kube-apiserver", lambda: _https_ok(f"https://127.0.0.1:{API_PORT}/readyz", pki), 90)
    wait_for("registry", registry.ready, 30)
    network.route_service_ip_to_apiserver()
    for name in ("kube-controller-manager", "kube-scheduler", "kubelet"):
        procs[name].start()
    wait_for("node Ready", lambda: _node_ready(bins), 120)
    _advertise_gpus(bins)
    wait_for(
        "default service account",
        lambda: bool(
            _kubectl(bins, "get", "serviceaccount", "default", "-n", "default", "-o", "name")
        ),
        60,
    )
    log(
        f"cluster up in {time.monotonic() - t0:.1f}s "
        f"(build check {t_build - t0:.1f}s, start {time.monotonic() - t_build:.1f}s)"
    )
    return paths.kubeconfig()


RESTARTABLE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet")


def restart(name: str, down_for: float = 0.0, kubelet: Mapping[str, Any] | None = None) -> float:
    """Stop one running component by PID (TERM, then KILL) and start it again as `up` did.

    For fault tests: `down_for` seconds pass between the stop and the start (the outage);
    `kubelet` holds KubeletConfiguration fields that replace the test bed's own until the next
    restart (eviction thresholds, to put the node under pressure without filling anything).
    Returns the seconds from the start until the component answers again (for the kubelet:
    the node is Ready). Containers keep running through a kubelet restart, as on a real node.
    """
    if name not in RESTARTABLE:
        raise ValueError(f"{name}: only {', '.join(RESTARTABLE)} can be restarted")
    bins = kube.build_binaries()
    state, pki = paths.state_dir(), paths.state_dir() / "pki"
    proc = {p.name: p for p in processes(bins, state, pki, kubelet)}[name]
    pid_text, exe = proc.pidfile.read_text().split()
    stop_pid(int(pid_text), exe)
    try:
        time.sleep(down_for)  # the outage itself, not a synchronisation
    finally:  # an interrupted outage still ends: the component is never left stopped
        started = time.monotonic()
        proc.start()
    ready: dict[str, Callable[[], bool]] = {
        "etcd": _etcd_healthy,
        "kube-apiserver": lambda: _https_ok(f"https://127.0.0.1:{API_PORT}/readyz", pki),
        "kubelet": lambda: _node_ready(bins),
    }
    wait_for(f"{name} after its restart", ready.get(name, lambda: True), 120)
    if name == "kubelet":
        _advertise_gpus(bins)
    return time.monotonic() - started


def _etcd_healthy() -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{ETCD_PORT}/health", timeout=2) as resp:
        return bool(resp.status == 200)


def _kill_pods_cgroups() -> None:
    """SIGKILL every process the kubelet placed in its pod cgroups, then remove the cgroups.

    The kubelet and containerd may still be removing cgroups meanwhile: os.walk skips a folder
    that vanishes under it (pathlib's rglob raises), and one that goes before we read it is done.
    """
    groups = [c / "kubepods" for c in sorted(Path("/sys/fs/cgroup").iterdir())]
    for kubepods in groups:
        for folder, _, files in os.walk(kubepods):
            if "cgroup.procs" not in files:
                continue
            with contextlib.suppress(OSError):
                for pid in (Path(folder) / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
    for kubepods in groups:
        for folder, _, _ in os.walk(kubepods, topdown=False):  # children before parents
            with contextlib.suppress(OSError):  # still busy: the next `down` retries
                os.rmdir(folder)


def _unmount_under(prefixes: list[str]) -> None:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
            mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        _sh("umount", "-l", point)


def down(quiet: bool = False) -> None:
    state, run = paths.state_dir(), paths.run_dir()
    if not quiet:
        log("stopping cluster")
    for name in reversed(COMPONENTS):
        if name == "containerd":
            # Containers first: their shims and processes outlive containerd otherwise.
            _kill_pods_cgroups()
            for pid in _pids_with_arg(str(paths.containerd_socket())):
                argv = procs.live_argv(pid)
                if argv is not None and "containerd-shim" in argv[0]:
                    stop_pid(pid, argv[0], grace=2)
        pidfile = run / f"{name}.pid"
        if pidfile.exists():
            pid_text, exe = pidfile.read_text().split()
            stop_pid(int(pid_text), exe)
            pidfile.unlink()
    _kill_pods_cgroups()
    netns = (
        [f"/run/netns/{p.name}" for p in Path("/run/netns").glob("cni-*")]
        if Path("/run/netns").is_dir()
        else []
    )
    _unmount_under([str(state), *netns])
    for ns in netns:
        Path(ns).unlink(missing_ok=True)
    _sh("ip", "link", "del", BRIDGE)
    network.remove_kubelet_iptables()
    # Wipe the cluster's data but keep PKI and containerd's image store (no registry to refill it).
    for name in ("etcd", "kubelet", "kubelet-pki", "cni-ipam", "run"):
        subprocess.run(["rm", "-rf", str(state / name)], check=False)
    if not quiet:
        log("cluster down")


def status_quiet() -> bool:
    """True if every component runs and the API server answers ready."""
    run, pki = paths.run_dir(), paths.state_dir() / "pki"
    for name in COMPONENTS:
        pidfile = run / f"{name}.pid"
        if not pidfile.exists():
            return False
        pid, exe = pidfile.read_text().split()
        if not _alive(int(pid), exe):
            return False
    return _https_ok(f"https://127.0.0.1:{API_PORT}/readyz", pki)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def status() -> int:
    """Print each component's state and resident memory; exit 1 unless all run."""
    run = paths.run_dir()
    ok, total = True, 0.0
    for name in COMPONENTS:
        pidfile = run / f"{name}.pid"
        alive, rss = False, 0.0
        if pidfile.exists():
            pid, exe = pidfile.read_text().split()
            alive = _alive(int(pid), exe)
            rss = _rss_mib(int(pid)) if alive else 0.0
        ok &= alive
        total += rss
        print(f"{name:25} {'running' if alive else 'stopped':8} {rss:7.0f} MiB")
    print(f"{'total':25} {'':8} {total:7.0f} MiB")
    print(f"kubeconfig: {paths.kubeconfig()}")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("verb", choices=["up", "down", "status", "build", "restart"])
    parser.add_argument("component", nargs="?", choices=RESTARTABLE, help="with restart")
    args = parser.parse_args()
    verb = args.verb
    if verb == "restart":
        if args.component is None:
            parser.error("restart needs a component")
        log(f"{args.component} answers {restart(args.component):.1f}s after its start")
    elif verb == "up":
        # Idempotent: a running, healthy cluster is kept (other sessions may be using it);
        # `down` then `up` restarts it.
        print(paths.kubeconfig() if status_quiet() else up())
    elif verb == "down":
        down()
    elif verb == "build":
        print(kube.build_binaries())
    else:
        sys.exit(status())


if __name__ == "__main__":
    main()
