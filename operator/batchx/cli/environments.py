"""`bx env`: the Environments the user can see, with credits, quota and storage used."""

from __future__ import annotations

from typing import Any

import typer

from batchx.cli.common import EnvOption, Format, OutputOption, emit, session, table


def register(app: typer.Typer) -> None:
    app.command("env")(environments)


def environments(output: OutputOption = Format.TABLE, env: EnvOption = None) -> None:
    """List environments: credits granted/reserved/spent/balance, quota and storage used.

    Example: bx env -o json | jq '.[] | {name, balance: .credits.balance}'
    """
    with session(env) as bx:
        found = bx.environments()
    documents = [e.to_json() for e in found]
    if output is not Format.TABLE:
        emit(documents, output)
        return
    rows = [
        [
            d["name"],
            *(_num(d["credits"].get(k)) for k in ("granted", "reserved", "spent", "balance")),
            ", ".join(f"{k} {v}" for k, v in d["quota"].items()) or "unlimited",
            _storage(d["storage"]),
        ]
        for d in documents
    ]
    table(["NAME", "GRANTED", "RESERVED", "SPENT", "BALANCE", "QUOTA", "STORAGE"], rows)


def _num(value: Any) -> str:
    return "0" if value is None else f"{float(value):g}"


def _storage(storage: dict[str, Any]) -> str:
    used = int(storage.get("usedBytes") or 0)
    return f"{used / 2**20:.1f} MiB in {int(storage.get('files') or 0)} file(s)"
