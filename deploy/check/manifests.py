"""Validates the deployment manifests offline, then checks what the schemas cannot.

- deploy/k8s/*.yaml against the Kubernetes schemas (kubernetes-validate, strict: unknown fields
  fail), every object in kustomization.yaml's resources, and the shape this service needs:
  readiness on /readyz and liveness on /healthz, a non-root read-only container, a
  PodDisruptionBudget and a Service selecting the Deployment's pods, the migration Job, and the
  vault key and database URL from a Secret.
- deploy/compose.yaml with the compose_spec validating parser, and the topology: PostgreSQL,
  a migration run that the replicas wait for, two replicas, a proxy with the Caddyfile.
"""

import re
import subprocess
import sys
from pathlib import Path

import yaml
from compose_spec import PyCompose

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.34.1"
failures = []


def check(cond, what):
    if cond:
        print(f"  ok   {what}")
    else:
        print(f"  FAIL {what}")
        failures.append(what)


def kubernetes():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = [K8S / r for r in kustomization["resources"]]
    listed = {f.name for f in files}
    on_disk = {f.name for f in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    check(listed == on_disk, f"kustomization lists every manifest ({', '.join(sorted(listed))})")
    r = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--kubernetes-version",
         KUBERNETES_VERSION, *map(str, files)],
        capture_output=True, text=True,
    )
    print(r.stdout.strip())
    check(r.returncode == 0, f"every manifest validates against Kubernetes {KUBERNETES_VERSION} (strict) {r.stderr.strip()}")
    objects = [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    deployment = by_kind["Deployment"][0]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    check(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness on /readyz (the database)")
    check(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness on /healthz")
    sc = container["securityContext"]
    check(pod["spec"]["securityContext"]["runAsNonRoot"] and sc["readOnlyRootFilesystem"]
          and sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"],
          "non-root, read-only root filesystem, no privilege escalation, no capabilities")
    check(deployment["spec"]["replicas"] >= 2, "at least two replicas")
    labels = pod["metadata"]["labels"]
    selects = lambda sel: all(labels.get(k) == v for k, v in sel.items())
    check(selects(by_kind["Service"][0]["spec"]["selector"]), "the Service selects the Deployment's pods")
    pdb = by_kind["PodDisruptionBudget"][0]["spec"]
    check(selects(pdb["selector"]["matchLabels"]) and pdb["minAvailable"] >= 1, "the PodDisruptionBudget keeps a replica")
    job = by_kind["Job"][0]["spec"]["template"]["spec"]["containers"][0]
    check(job["args"] == ["migrate"], "a migration Job runs `clari-mcp migrate`")
    secret = by_kind["Secret"][0]
    check({"CLARI_MCP_VAULT_KEYS", "CLARI_MCP_DATABASE_URL"} <= set(secret["stringData"]),
          "the vault key and the database URL come from a Secret")
    for c in (container, job):
        refs = {e.get("secretRef", {}).get("name") for e in c["envFrom"]}
        check(secret["metadata"]["name"] in refs, f"{c['name']} reads the Secret")
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    shutdown = next(e["value"] for e in container["env"] if e["name"] == "CLARI_MCP_SHUTDOWN_GRACE")
    check(int(shutdown.rstrip("s")) + 5 < grace, f"the shutdown grace ({shutdown}) and preStop fit in terminationGracePeriodSeconds ({grace})")


def interpolate(text, env):
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR:?error}."""
    def one(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name, "")
        if op == ":?" and not value:
            raise ValueError(f"{name} is required: {arg}")
        if op == ":-" and not value:
            return arg
        return value
    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", one, text)


def compose():
    # As `compose up` would read it with deploy/.env made from the example.
    example = (ROOT / "deploy" / "compose.env.example").read_text()
    env = dict(l.split("=", 1) for l in example.splitlines() if l and not l.startswith("#"))
    for k, v in env.items():
        if not v:
            env[k] = f"test-{k.lower()}"
    text = interpolate((ROOT / "deploy" / "compose.yaml").read_text(), env)
    try:
        PyCompose.from_yaml(text)
        check(True, "deploy/compose.yaml passes the Compose Specification parser")
    except Exception as e:  # noqa: BLE001 - the parser's own message is the report
        check(False, f"deploy/compose.yaml: {e}")
    services = yaml.safe_load(text)["services"]
    replicas = [n for n, s in services.items() if s.get("command") == ["serve"]]
    check(len(replicas) == 2, f"two replicas ({', '.join(replicas)})")
    check(all(services[n]["depends_on"]["migrate"]["condition"] == "service_completed_successfully" for n in replicas),
          "the replicas start after the migration succeeds")
    check(services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy", "the migration waits for PostgreSQL")
    proxy = services["proxy"]
    check(any("Caddyfile" in v for v in proxy["volumes"]) and (ROOT / "deploy" / "proxy" / "Caddyfile").exists(),
          "the proxy runs deploy/proxy/Caddyfile")
    caddy = (ROOT / "deploy" / "proxy" / "Caddyfile").read_text()
    check(all(f"{n}:8080" in caddy for n in replicas) and "health_uri /readyz" in caddy,
          "Caddy balances over both replicas, health-checked on /readyz")


kubernetes()
compose()
if failures:
    print(f"manifests: {len(failures)} failed")
    sys.exit(1)
print("manifests: passed")
