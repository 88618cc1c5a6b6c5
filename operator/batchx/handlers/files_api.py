"""HTTP glue of the files API (`batchx.reconcile.files_api`), served over TLS to the kube-apiserver.

Registered by an APIService for `files.batchx.io/v1alpha1` (the chart's, or the test bed's), so
users reach it through the API server with their kubeconfig:

    GET    .../namespaces/<env>/files?prefix=P[&urls=true][&children=true]   list
    POST   .../namespaces/<env>/files  {"action": "plan"|"commit", "files": [...]}   create
    DELETE .../namespaces/<env>/files/<name>                  delete; name: the path, base64url

Paths travel in the query or the body, never as URL segments: the API server maps a request to
RBAC attributes by its segments, and `files/a/b` would read as name `a`, subresource `b`.

Who is calling comes only from the front-proxy headers, and only over a connection whose client
certificate the front-proxy CA signed for one of the allowed names: the kube-apiserver's
`extension-apiserver-authentication` ConfigMap (kube-system) holds both, as for every aggregated
API server.
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from batchx.reconcile import files_api
from batchx.reconcile.context import Context
from batchx.reconcile.files_api import ApiRefusal, Identity

BASE = f"/apis/{files_api.GROUP}/{files_api.VERSION}"
AUTH_CONFIG = ("kube-system", "extension-apiserver-authentication")


@dataclass(frozen=True)
class FrontProxy:
    """The kube-apiserver's requestheader settings (its --requestheader-* flags)."""

    client_ca: str
    allowed_names: tuple[str, ...]
    user_headers: tuple[str, ...]
    group_headers: tuple[str, ...]
    extra_prefixes: tuple[str, ...]

    @classmethod
    def from_config_map(cls, data: dict[str, str]) -> FrontProxy:
        def names(key: str, default: list[str]) -> tuple[str, ...]:
            raw = data.get(key)
            return tuple(json.loads(raw) if raw else default)

        ca = data.get("requestheader-client-ca-file")
        if not ca:
            raise ValueError(
                f"{AUTH_CONFIG[0]}/{AUTH_CONFIG[1]} has no requestheader-client-ca-file: the "
                "kube-apiserver runs without --requestheader-client-ca-file, so it cannot "
                "forward users to an aggregated API"
            )
        return cls(
            ca,
            names("requestheader-allowed-names", []),
            names("requestheader-username-headers", ["X-Remote-User"]),
            names("requestheader-group-headers", ["X-Remote-Group"]),
            names("requestheader-extra-headers-prefix", ["X-Remote-Extra-"]),
        )

    def verify_peer(self, request: web.Request) -> None:
        """ApiRefusal 401 unless the peer is the front proxy (its certificate, for an allowed
        name; the TLS layer already checked the front-proxy CA signed it)."""
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(pair for rdn in (peer or {}).get("subject", ()) for pair in rdn)
        common_name = subject.get("commonName")
        if common_name is None or (self.allowed_names and common_name not in self.allowed_names):
            raise ApiRefusal(401, "Unauthorized", "not called by the kube-apiserver's front proxy")

    def identity(self, request: web.Request) -> Identity:
        """The forwarded user; ApiRefusal 401 unless the peer is the front proxy."""
        self.verify_peer(request)
        user = next((request.headers[h] for h in self.user_headers if h in request.headers), "")
        if not user:
            raise ApiRefusal(401, "Unauthorized", "the front proxy forwarded no user")
        groups = tuple(g for h in self.group_headers for g in request.headers.getall(h, []))
        extra: dict[str, tuple[str, ...]] = {}
        for name, value in request.headers.items():
            for prefix in self.extra_prefixes:
                if name.lower().startswith(prefix.lower()):
                    key = name[len(prefix) :].lower()
                    extra[key] = (*extra.get(key, ()), value)
        return Identity(user, groups, extra)


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)


def _discovery() -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{files_api.GROUP}/{files_api.VERSION}",
        "resources": [
            {
                "name": files_api.RESOURCE,
                "singularName": "file",
                "namespaced": True,
                "kind": "File",
                # What the cluster's generic controllers may call, not what RBAC grants (get,
                # list, create, delete: `batchx.reconcile.files_api`). A file is no Kubernetes
                # object (its lifetime is the Environment's store), and the namespace
                # controller lists and deletes every resource that says "delete" here: with
                # answers that are no object lists, every namespace's deletion then hung.
                "verbs": ["get", "create"],
            }
        ],
    }


def app(ctx: Context, proxy: FrontProxy) -> web.Application:
    async def guarded(request: web.Request, verb: str) -> tuple[Identity, str]:
        who = proxy.identity(request)
        namespace = request.match_info["namespace"]
        await files_api.authorize(ctx, who, namespace, verb)
        return who, namespace

    async def discovery(request: web.Request) -> web.Response:
        # The aggregator's availability check asks this as itself, without a forwarded user.
        proxy.verify_peer(request)
        return web.json_response(_discovery())

    async def listing(request: web.Request) -> web.Response:
        _, namespace = await guarded(request, "list")
        answer = await files_api.list_files(
            ctx,
            namespace,
            request.query.get("prefix", ""),
            urls=request.query.get("urls") == "true",
            children=request.query.get("children") == "true",
        )
        return web.json_response(answer)

    async def create(request: web.Request) -> web.Response:
        _, namespace = await guarded(request, "create")
        try:
            body = await request.json()
        except ValueError:
            raise ApiRefusal(400, "BadRequest", "the body is not JSON") from None
        action = body.get("action") if isinstance(body, dict) else None
        items = files_api.parse_items(body)
        if action == "plan":
            return web.json_response(await files_api.plan(ctx, namespace, items))
        if action == "commit":
            uploaded = files_api.uploaded_digests(body)
            return web.json_response(await files_api.commit(ctx, namespace, items, uploaded))
        raise ApiRefusal(400, "BadRequest", f"action: expected plan or commit, not {action!r}")

    async def remove(request: web.Request) -> web.Response:
        _, namespace = await guarded(request, "delete")
        name = request.match_info["name"]
        try:
            path = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ApiRefusal(400, "BadRequest", f"name {name!r}: expected base64url") from None
        return web.json_response(await files_api.delete(ctx, namespace, path))

    @web.middleware
    async def refusals(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except ApiRefusal as exc:
            return _status(exc.code, exc.reason, exc.message)
        return response

    application = web.Application(middlewares=[refusals])
    files = f"{BASE}/namespaces/{{namespace}}/{files_api.RESOURCE}"
    application.router.add_get(BASE, discovery)
    application.router.add_get(files, listing)
    application.router.add_post(files, create)
    application.router.add_delete(files + "/{name}", remove)
    return application


async def serve(
    ctx: Context, proxy: FrontProxy, address: str, cert: str, key: str
) -> web.AppRunner:
    """Serve the files API on `address` (HOST:PORT) over TLS, client certificates required."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    tls.load_verify_locations(cadata=proxy.client_ca)
    tls.verify_mode = ssl.CERT_REQUIRED
    host, _, port = address.rpartition(":")
    runner = web.AppRunner(app(ctx, proxy), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host.strip("[]") or None, int(port), ssl_context=tls).start()
    return runner
