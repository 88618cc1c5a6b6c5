"""What GitOps tools conclude about an object, computed by their own code (testbed/health).

The Go program in testbed/health links kstatus (sigs.k8s.io/cli-utils `status.Compute`, what
Flux and cli-utils appliers use), gopher-lua (the interpreter Argo CD runs health scripts in) and
Flux's healthCheckExprs evaluator (fluxcd/pkg/runtime/cel), so tests ask the real libraries
instead of an imitation. `build()` compiles it once
(testbed/build-health.sh, cached under ~/.cache/batchx-testbed by the hash of its sources).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HEALTH_SCRIPTS = REPO / "helm" / "batchx-operator" / "health"


@dataclass(frozen=True)
class Verdict:
    """A tool's answer: kstatus's Current/InProgress/Failed/..., or Argo CD's Healthy/..."""

    status: str
    message: str


@dataclass(frozen=True)
class HealthChecker:
    binary: Path

    def kstatus(self, obj: dict[str, Any]) -> Verdict:
        """kstatus's verdict on `obj` (an object as the API server returns it)."""
        return self._run(["kstatus"], obj)

    def argo(self, obj: dict[str, Any], script: Path | None = None) -> Verdict:
        """Argo CD's health of `obj` from the chart's script for its kind (or `script`)."""
        return self._run(["lua", str(script or HEALTH_SCRIPTS / f"{obj['kind']}.lua")], obj)

    def flux(self, obj: dict[str, Any], exprs: dict[str, Any]) -> Verdict:
        """Flux's verdict on `obj` from one entry of a Kustomization's healthCheckExprs."""
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(exprs, f)
            f.flush()
            return self._run(["flux", f.name], obj)

    def _run(self, args: list[str], obj: dict[str, Any]) -> Verdict:
        done = subprocess.run(
            [str(self.binary), *args],
            input=json.dumps(obj),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"health {' '.join(args)} failed: {done.stderr.strip()}")
        out = json.loads(done.stdout)
        return Verdict(str(out["status"]), str(out["message"]))


def build() -> HealthChecker:
    out = subprocess.run(
        [str(HERE / "build-health.sh")], check=True, capture_output=True, text=True
    ).stdout
    return HealthChecker(Path(out.strip().splitlines()[-1]))
