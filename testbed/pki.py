"""The test bed's certificates and kubeconfigs: two CAs (the cluster's and the front proxy's) and
one client or serving certificate per component, made once with openssl and kept across `down`
and `up`, so kubeconfigs handed out stay valid.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from testbed.topology import API_PORT, GATEWAY, NODE, SERVICE_IP


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


_NEW_EC_KEY = ("-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")
_TEN_YEARS = ("-days", "3650")


def ensure_pki(pki: Path) -> None:
    """The CAs and one certificate per component; made once, kept across `down`/`up`."""
    pki.mkdir(parents=True, exist_ok=True)
    # The front-proxy CA is a second signer, as kubeadm and kind make it: the API server presents
    # its front-proxy client certificate to aggregated API servers, which trust only that CA for
    # the forwarded identity headers (--requestheader-*).
    for ca, subject in (("ca", "/CN=batchx-testbed-ca"), ("front-proxy-ca", "/CN=front-proxy-ca")):
        if not (pki / f"{ca}.crt").exists():
            key, crt = str(pki / f"{ca}.key"), str(pki / f"{ca}.crt")
            _openssl("req", "-x509", *_NEW_EC_KEY, "-keyout", key, "-out", crt, *_TEN_YEARS,
                     "-subj", subject)  # fmt: skip
    if not (pki / "sa.key").exists():
        _openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
        _openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    sans = (
        f"subjectAltName=IP:127.0.0.1,IP:{GATEWAY},IP:{SERVICE_IP},DNS:localhost,"
        "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
        "DNS:kubernetes.default.svc.cluster.local"
    )
    client = "extendedKeyUsage=clientAuth"
    certs = {
        "apiserver": ("/CN=kube-apiserver", f"{sans}\nextendedKeyUsage=serverAuth"),
        "apiserver-kubelet-client": ("/O=system:masters/CN=kube-apiserver-kubelet-client", client),
        "admin": ("/O=system:masters/CN=batchx-admin", client),
        "controller-manager": ("/CN=system:kube-controller-manager", client),
        "scheduler": ("/CN=system:kube-scheduler", client),
        "kubelet": (f"/O=system:nodes/CN=system:node:{NODE}", client),
        "front-proxy-client": ("/CN=front-proxy-client", client),
    }
    for name, (subject, ext) in certs.items():
        if (pki / f"{name}.crt").exists():
            continue
        signer = pki / ("front-proxy-ca" if name.startswith("front-proxy") else "ca")
        (pki / f"{name}.ext").write_text(ext + "\n")
        key, csr, crt = (str(pki / f"{name}.{suffix}") for suffix in ("key", "csr", "crt"))
        _openssl("req", *_NEW_EC_KEY, "-keyout", key, "-subj", subject, "-out", csr)
        _openssl("x509", "-req", "-in", csr, "-CA", f"{signer}.crt", "-CAkey", f"{signer}.key",
                 "-CAcreateserial", *_TEN_YEARS, "-extfile", str(pki / f"{name}.ext"),
                 "-out", crt)  # fmt: skip


def write_kubeconfig(path: Path, pki: Path, user: str) -> None:
    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "batchx-testbed",
                "cluster": {
                    "server": f"https://127.0.0.1:{API_PORT}",
                    "certificate-authority-data": b64("ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(f"{user}.crt"),
                    "client-key-data": b64(f"{user}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "batchx-testbed", "context": {"cluster": "batchx-testbed", "user": user}}
        ],
        "current-context": "batchx-testbed",
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML: every client reads it
