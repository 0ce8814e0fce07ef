"""deploy/kubernetes/ (#24 item 6, docs/serving.md "Kubernetes"): every
manifest parses, and every name one refers to exists in the code or in
another manifest: serve.js's options, the probes' routes in app.js, the
metrics the autoscaler and prometheus-adapter read in metrics.js, the
sequence-id header the ingress hashes on, the Services and ports. A manifest
that drifts from the code fails (the negative controls: one drift each)."""

import copy
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "kubernetes"
SERVE = ROOT / "node" / "serve.js"
APP = ROOT / "node" / "lib" / "serve" / "app.js"
METRICS = ROOT / "node" / "lib" / "serve" / "metrics.js"
SEQUENCES = ROOT / "node" / "lib" / "serve" / "sequences.js"


def _code():
    """The names the manifests may refer to, read from the code."""
    serve = SERVE.read_text()
    options = set(re.findall(r"^\s+'?([a-z][a-z-]*)'?: \{ type: '(?:string|boolean)'", serve, re.M))
    routes = set(re.findall(r"app\.get\(\s*'([^']+)'", APP.read_text()))
    text = METRICS.read_text()
    prefix = re.search(r"const PREFIX = '([^']+)'", text).group(1)
    metrics = {
        prefix + name: kind for kind, name in re.findall(r"make\(\s*client\.(\w+),\s*'(\w+)'", text)
    }
    header = re.search(r"SEQUENCE_ID_HEADER = '([^']+)'", SEQUENCES.read_text()).group(1)
    return {"options": options, "routes": routes, "metrics": metrics, "header": header}


def _manifests():
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _problems(docs, code):
    """Every reference that does not resolve, one line each."""
    out = []
    by_kind = {}
    for doc in docs:
        for key in ("apiVersion", "kind", "metadata"):
            if key not in doc:
                out.append(f"a document without {key}")
        by_kind.setdefault(doc.get("kind"), []).append(doc)
    (deployment,) = by_kind["Deployment"]
    pod = deployment["spec"]["template"]
    if deployment["spec"]["selector"]["matchLabels"].items() - pod["metadata"]["labels"].items():
        out.append("the Deployment's selector does not match its pods' labels")
    (container,) = pod["spec"]["containers"]
    if container["command"][:2] != ["node", "node/serve.js"] or not SERVE.exists():
        out.append(f"the container runs {container['command']}, not node/serve.js")
    for arg in container["args"]:
        if arg.startswith("--") and arg[2:] not in code["options"]:
            out.append(f"serve.js has no option {arg}")
    port_names = {p["name"] for p in container["ports"]}
    for probe, want in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        got = container[probe]["httpGet"]
        if got["path"] != want or got["path"] not in code["routes"]:
            out.append(f"{probe} asks {got['path']}: the service answers {want} for it")
        if got["port"] not in port_names:
            out.append(f"{probe} names port {got['port']}, not a container port")
    scrape = pod["metadata"].get("annotations", {}).get("prometheus.io/path")
    if scrape not in code["routes"]:
        out.append(f"Prometheus scrapes {scrape}, not a route of the service")

    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
    for name, service in services.items():
        if service["spec"]["selector"].items() - pod["metadata"]["labels"].items():
            out.append(f"Service {name} selects no pod of the Deployment")
        for port in service["spec"]["ports"]:
            if port["targetPort"] not in port_names:
                out.append(f"Service {name} targets port {port['targetPort']}")

    hashed = []
    for ingress in by_kind["Ingress"]:
        hash_by = (
            ingress["metadata"]
            .get("annotations", {})
            .get("nginx.ingress.kubernetes.io/upstream-hash-by")
        )
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = services.get(backend["name"])
                if not service:
                    out.append(f"an Ingress routes to Service {backend['name']}, not defined")
                elif backend["port"]["name"] not in {p["name"] for p in service["spec"]["ports"]}:
                    out.append(f"an Ingress names port {backend['port']} of {backend['name']}")
                if hash_by:
                    hashed.append((path["path"], hash_by, backend["name"]))
    want_hash = "$http_" + code["header"].replace("-", "_")
    if not hashed:
        out.append("no Ingress hashes :stream by sequence id")
    for path, hash_by, service in hashed:
        if hash_by != want_hash:
            out.append(f"the Ingress hashes on {hash_by}; the service reads {code['header']}")
        if not re.fullmatch(path, "/v1/models/gru:stream") or re.fullmatch(
            path, "/v1/models/gru:predict"
        ):
            out.append(f"the hashed path {path} is not :stream alone")
        if service == "tfjs-bridge-serve":
            out.append("the hashed Ingress shares its Service (its upstream) with the rest")

    (hpa,) = by_kind["HorizontalPodAutoscaler"]
    target = hpa["spec"]["scaleTargetRef"]
    if (target["kind"], target["name"]) != ("Deployment", deployment["metadata"]["name"]):
        out.append(f"the autoscaler scales {target['kind']} {target['name']}")
    scaled_on = set()
    for metric in hpa["spec"]["metrics"]:
        name = metric["pods"]["metric"]["name"]
        scaled_on.add(name)
        if code["metrics"].get(name) != "Gauge":
            out.append(f"the autoscaler reads {name}: no such gauge in metrics.js")

    (adapter,) = [c for c in by_kind["ConfigMap"] if c["metadata"]["name"] == "prometheus-adapter"]
    served = set()
    for rule in yaml.safe_load(adapter["data"]["config.yaml"])["rules"]:
        series = rule["seriesQuery"].split("{")[0]
        if series not in code["metrics"]:
            out.append(f"prometheus-adapter reads {series}: no such metric in metrics.js")
        served.add(rule["name"]["as"])
    for name in scaled_on - served:
        out.append(f"the autoscaler reads {name}, which prometheus-adapter does not serve")
    return out


def test_the_manifests_refer_to_what_exists():
    code = _code()
    # the reading of the code found what it looks for (not vacuous)
    assert {"/readyz", "/healthz", "/metrics"} <= code["routes"]
    assert {"http-processes", "max-sequences", "model"} <= code["options"]
    assert code["metrics"]["tfjs_bridge_live_sequences"] == "Gauge"
    assert code["header"] == "x-sequence-id"
    docs = _manifests()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        ["Deployment", "Service", "Service", "Ingress", "Ingress"]
        + ["HorizontalPodAutoscaler", "ConfigMap"]
    )
    assert _problems(docs, code) == []


def _edit(docs, kind, change, name=None):
    for doc in docs:
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name):
            change(doc)
    return docs


def _container(doc):
    return doc["spec"]["template"]["spec"]["containers"][0]


DRIFTS = {
    "readiness on /ready": (
        "Deployment",
        lambda d: _container(d)["readinessProbe"]["httpGet"].update(path="/ready"),
        "readinessProbe",
    ),
    "an option serve.js lacks": (
        "Deployment",
        lambda d: _container(d)["args"].append("--http-process"),
        "no option --http-process",
    ),
    "a metric renamed in the HPA": (
        "HorizontalPodAutoscaler",
        lambda d: d["spec"]["metrics"][0]["pods"]["metric"].update(
            name="tfjs_bridge_live_sequence"
        ),
        "tfjs_bridge_live_sequence",
    ),
    "another header hashed": (
        "Ingress",
        lambda d: (
            d["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/upstream-hash-by")
            and d["metadata"]["annotations"].update(
                {"nginx.ingress.kubernetes.io/upstream-hash-by": "$http_x_session_id"}
            )
        ),
        "hashes on $http_x_session_id",
    ),
}


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_a_manifest_that_drifts_fails(drift):
    kind, change, words = DRIFTS[drift]
    problems = _problems(_edit(copy.deepcopy(_manifests()), kind, change), _code())
    assert any(words in p for p in problems), problems


def test_code_that_drifts_fails():
    """The other way: a metric renamed in metrics.js, a header renamed in sequences.js."""
    code = _code()
    renamed = {**code, "metrics": dict(code["metrics"])}
    renamed["metrics"].pop("tfjs_bridge_queue_depth")
    renamed["header"] = "x-stream-id"
    problems = _problems(_manifests(), renamed)
    assert any("tfjs_bridge_queue_depth" in p for p in problems), problems
    assert any("x-stream-id" in p for p in problems), problems
