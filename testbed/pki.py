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


def ensure_pki(pki: Path) -> None:
    """A CA and one certificate per component; made once, kept across `down`/`up`."""
    pki.mkdir(parents=True, exist_ok=True)
    # The front-proxy CA is a second signer, as kubeadm and kind make it: the API server presents
    # its front-proxy client certificate to aggregated API servers, which trust only that CA for
    # the forwarded identity headers (--requestheader-*).
    for ca, subject in (("ca", "/CN=batchx-testbed-ca"), ("front-proxy-ca", "/CN=front-proxy-ca")):
        if (pki / f"{ca}.crt").exists():
            continue
        _openssl(
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            str(pki / f"{ca}.key"),
            "-out",
            str(pki / f"{ca}.crt"),
            "-days",
            "3650",
            "-subj",
            subject,
        )
    if not (pki / "sa.key").exists():
        _openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
        _openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    sans = (
        f"subjectAltName=IP:127.0.0.1,IP:{GATEWAY},IP:{SERVICE_IP},DNS:localhost,"
        "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
        "DNS:kubernetes.default.svc.cluster.local"
    )
    certs = {
        "apiserver": ("/CN=kube-apiserver", f"{sans}\nextendedKeyUsage=serverAuth"),
        "apiserver-kubelet-client": (
            "/O=system:masters/CN=kube-apiserver-kubelet-client",
            "extendedKeyUsage=clientAuth",
        ),
        "admin": ("/O=system:masters/CN=batchx-admin", "extendedKeyUsage=clientAuth"),
        "controller-manager": ("/CN=system:kube-controller-manager", "extendedKeyUsage=clientAuth"),
        "scheduler": ("/CN=system:kube-scheduler", "extendedKeyUsage=clientAuth"),
        "kubelet": (f"/O=system:nodes/CN=system:node:{NODE}", "extendedKeyUsage=clientAuth"),
        "front-proxy-client": ("/CN=front-proxy-client", "extendedKeyUsage=clientAuth"),
    }
    for name, (subject, ext) in certs.items():
        signer = "front-proxy-ca" if name.startswith("front-proxy") else "ca"
        if (pki / f"{name}.crt").exists():
            continue
        (pki / f"{name}.ext").write_text(ext + "\n")
        _openssl(
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            str(pki / f"{name}.key"),
            "-subj",
            subject,
            "-out",
            str(pki / f"{name}.csr"),
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            str(pki / f"{name}.csr"),
            "-CA",
            str(pki / f"{signer}.crt"),
            "-CAkey",
            str(pki / f"{signer}.key"),
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            str(pki / f"{name}.ext"),
            "-out",
            str(pki / f"{name}.crt"),
        )


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
