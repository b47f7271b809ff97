"""Structural and policy checks over rendered Kustomize output, used by deploy/validate.sh
and deploy/check-metrics.sh. Needs PyYAML (installed in the deploy venv).

    checks.py split RENDER.yaml CORE.yaml CRDS.json   core objects / custom resources
    checks.py policy RENDER.yaml                      project rules for a full entry point
    checks.py rules RENDER.yaml OUT.rules.yaml        PrometheusRule groups -> rules file
    checks.py rules-file PROMETHEUSRULE.yaml OUT      same, from a source file
    checks.py dashboard DASHBOARD.json [PANELS.json]  dashboard structure
    checks.py dashboard-configmap RENDER.yaml DASHBOARD.json
    checks.py metric-names RENDER.yaml...             celery_scaler_* names in alerts + dashboards
    checks.py redis-files RENDER.yaml OUT_DIR         the redis-config ConfigMap as files
    checks.py exprs RENDER.yaml                       alert + dashboard expressions (JSON lines)
    checks.py scrape-settings RENDER.yaml             ServiceMonitor path, interval, timeout
    checks.py exported-source SRC_DIR                 EXPORTED_NOW = names registered in src/
Each command exits 1 with one reason per line on stderr when a check fails.
"""
import json
import re
import sys

import yaml

# Every metric celery-scaler registers (all in src/telemetry.rs and src/telemetry/; live
# signals since issue 4). `checks.py exported-source ROOT/src` proves this list equals the
# names registered in the source; check-metrics.sh proves each used one has a series.
EXPORTED_NOW = {
    "celery_scaler_queue_backlog",
    "celery_scaler_queue_in_flight",
    "celery_scaler_metric_value",
    "celery_scaler_active",
    "celery_scaler_decision_slots",
    "celery_scaler_grpc_requests_total",
    "celery_scaler_grpc_request_duration_seconds",
    "celery_scaler_grpc_streams_open",
    "celery_scaler_redis_errors_total",
    "celery_scaler_redis_commands_total",
    "celery_scaler_pubsub_commands_total",
    "celery_scaler_unacked_malformed_total",
    "celery_scaler_sample_duration_seconds",
    "celery_scaler_sample_age_seconds",
    "celery_scaler_watch_sets",
    "celery_scaler_build_info",
    # the series cap (max_series)
    "celery_scaler_series_refused_total",
    "celery_scaler_series_reserved",
    # live signals (issue 4): per queue, set from the first sample of a watched queue
    "celery_scaler_queue_arrival_rate",
    "celery_scaler_queue_dequeue_rate",
    "celery_scaler_queue_service_time_seconds",
    "celery_scaler_queue_service_time_p95_seconds",
    "celery_scaler_queue_wait_seconds",
    "celery_scaler_queue_running",
    "celery_scaler_signal_mode",
    "celery_scaler_broker_suspect_data_total",
    "celery_scaler_broker_unreadable_keys",
    "celery_scaler_connections_open",
    "celery_scaler_connections_refused_total",
    "celery_scaler_heartbeats_implausible_total",
    "celery_scaler_task_restarts_total",
}
CORE_GROUPS = {"", "apps", "batch", "policy", "autoscaling"}
METRIC_RE = re.compile(r"\bcelery_scaler_[a-z0-9_]+")


def die(errors):
    """Exit 1 listing the errors; return when there are none."""
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        sys.exit(1)


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def group(obj):
    api = obj.get("apiVersion", "")
    return api.split("/")[0] if "/" in api else ""


def is_core(obj):
    g = group(obj)
    return g in CORE_GROUPS or g.endswith(".k8s.io")


def base_metric(name):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in EXPORTED_NOW:
            return name[: -len(suffix)]
    return name


def pod_spec(obj):
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return spec["template"]["spec"]
    return None


def cmd_split(render, core_out, crds_out, source=None):
    objs = load(render)
    core = [o for o in objs if is_core(o)]
    crds = [{"source": source or render, "object": o} for o in objs if not is_core(o)]
    with open(core_out, "w") as f:
        yaml.safe_dump_all(core, f, sort_keys=False)
    with open(crds_out, "w") as f:
        json.dump(crds, f)
    print(f"{len(core)} core, {len(crds)} custom")


def flag_value(args, name):
    for a in args:
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def resolve_env(value, container):
    """Expands $(VAR) from the container's literal env values (as the kubelet does)."""
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def glob_match(pattern, name):
    """celery-scaler's workerHostnames rule: `*` / `?` glob, or a prefix without wildcards."""
    if "*" not in pattern and "?" not in pattern:
        return name.startswith(pattern)
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, name, re.S) is not None


def sample_hostname(flag, deployment, suffix="7d9f8c6b5-x2x9q"):
    """The Celery hostname a pod of `deployment` gets from --hostname (POD_NAME / %h = pod name)."""
    pod = f"{deployment}-{suffix}"
    return flag.replace("$(POD_NAME)", pod).replace("%h", pod).replace("%n", pod.split(".")[0])


def wait_alert_targets(objs):
    """[(queue matcher, target seconds)] of the CeleryQueueWaitAboveTarget rules."""
    out = []
    for g in prom_groups(objs):
        for r in g["rules"]:
            if r.get("alert") != "CeleryQueueWaitAboveTarget":
                continue
            m = re.search(r'queue(=~|!~|!=|=)"([^"]*)"', r["expr"])
            out.append((m.groups() if m else ("=~", ".*"), r.get("labels", {}).get("target_seconds")))
    return out


def matcher_matches(matcher, value):
    op, v = matcher
    hit = re.fullmatch(v, value) is not None if op in ("=~", "!~") else v == value
    return hit if op in ("=", "=~") else not hit


def worker_env(worker, objs):
    """The worker container's environment: its envFrom ConfigMaps, then its literal env."""
    cms = {o["metadata"]["name"]: o.get("data", {}) for o in objs if o["kind"] == "ConfigMap"}
    env = {}
    for ef in worker.get("envFrom", []):
        env.update(cms.get(ef.get("configMapRef", {}).get("name"), {}))
    env.update({e["name"]: e["value"] for e in worker.get("env", []) if "value" in e})
    return env


def check_prefetch(n, md, args, env, errors):
    """prefetchMultiplier = worker --prefetch-multiplier (else the app's env), acksLate = the
    app's CELERY_TASK_ACKS_LATE (the sample app's defaults: 1 and true)."""
    pm = flag_value(args, "--prefetch-multiplier") or env.get("CELERY_WORKER_PREFETCH_MULTIPLIER", "1")
    if md.get("prefetchMultiplier") != pm:
        errors.append(f"ScaledObject/{n}: prefetchMultiplier {md.get('prefetchMultiplier')!r} != worker --prefetch-multiplier {pm!r}")
    truthy = ("1", "true", "yes", "on")
    acks = env.get("CELERY_TASK_ACKS_LATE", "true").strip().lower() in truthy
    if md.get("acksLate", "false").strip().lower() != str(acks).lower():
        errors.append(f"ScaledObject/{n}: acksLate {md.get('acksLate')!r} != the app's CELERY_TASK_ACKS_LATE ({str(acks).lower()})")


def check_latency_trigger(n, md, dep, worker, other_workers, alert_targets, errors, env=None):
    """latency mode: concurrency = worker --concurrency, prefetch settings, targets,
    workerHostnames = the pods' Celery hostnames (and no other worker Deployment's), wait alert
    threshold = targetLatency."""
    args = [resolve_env(a, worker) for a in worker.get("command", []) + worker.get("args", [])]
    dname = dep["metadata"]["name"]
    conc = flag_value(args, "--concurrency")
    if md.get("concurrency") is None or conc is None or md["concurrency"] != conc:
        errors.append(f"ScaledObject/{n}: concurrency {md.get('concurrency')!r} != worker --concurrency {conc!r}")
    check_prefetch(n, md, args, env or {}, errors)
    for key in ("targetLatency", "taskDuration"):
        try:
            if float(md.get(key, "x")) <= 0:
                raise ValueError
        except ValueError:
            errors.append(f"ScaledObject/{n}: {key} {md.get(key)!r} must be a positive number of seconds")
    if "podStartup" in md:
        try:
            v = float(md["podStartup"])
            if not (0 <= v <= 86400):
                raise ValueError
        except ValueError:
            errors.append(f"ScaledObject/{n}: podStartup {md['podStartup']!r} must be a number of seconds from 0 to 86400")
        # From 0.8 x targetLatency on no task waits at zero, but the drain still sizes a
        # backlog for pods that start this much later: not a mistake.
    if "listLength" in md:
        errors.append(f"ScaledObject/{n}: listLength has no effect in latency mode")
    pattern = md.get("workerHostnames")
    hostname = flag_value(args, "--hostname")
    if not pattern or hostname is None:
        errors.append(f"ScaledObject/{n}: needs workerHostnames and an explicit worker --hostname (got {pattern!r}, {hostname!r})")
    else:
        mine = sample_hostname(hostname, dname)
        if not glob_match(pattern, mine):
            errors.append(f"ScaledObject/{n}: workerHostnames {pattern!r} does not match the worker hostname {mine!r}")
        for other_name, other_host in other_workers:
            theirs = sample_hostname(other_host, other_name)
            if glob_match(pattern, theirs):
                errors.append(f"ScaledObject/{n}: workerHostnames {pattern!r} also matches {other_name}'s worker {theirs!r}")
    if "--without-heartbeat" in args:
        errors.append(f"Deployment/{dname}: --without-heartbeat, but latency mode counts running tasks from heartbeats")
    if alert_targets:
        for q in (md.get("queues") or "").split(","):
            hits = [t for m, t in alert_targets if matcher_matches(m, q)]
            if hits != [md.get("targetLatency")]:
                errors.append(f"ScaledObject/{n}: queue {q} has targetLatency {md.get('targetLatency')!r} but "
                              f"CeleryQueueWaitAboveTarget rules with target_seconds {hits}")


def cmd_policy(render):
    objs = load(render)
    errors = []
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    # 1. images: explicit tag, never latest; 2. resources + probes on every container
    for o in objs:
        ps = pod_spec(o)
        if ps is None:
            continue
        name = f'{o["kind"]}/{o["metadata"]["name"]}'
        if ps.get("automountServiceAccountToken") is not False:
            errors.append(f"{name}: automountServiceAccountToken must be false")
        for c in ps.get("initContainers", []) + ps.get("containers", []):
            image = c.get("image", "")
            last = image.rsplit("/", 1)[-1]
            if ":" not in last and "@" not in last:
                errors.append(f"{name}/{c['name']}: image {image!r} has no tag")
            if last.endswith(":latest") or ":latest@" in last:
                errors.append(f"{name}/{c['name']}: image {image!r} uses latest")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(kind, {}):
                        errors.append(f"{name}/{c['name']}: no {kind}.{r}")
            sc = c.get("securityContext", {})
            if not (sc.get("runAsNonRoot") and sc.get("readOnlyRootFilesystem")
                    and sc.get("allowPrivilegeEscalation") is False
                    and sc.get("capabilities", {}).get("drop") == ["ALL"]
                    and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"):
                errors.append(f"{name}/{c['name']}: securityContext not hardened")
        for c in ps.get("containers", []):
            if o["kind"] != "CronJob" and not ("livenessProbe" in c and "readinessProbe" in c):
                errors.append(f"{name}/{c['name']}: needs liveness and readiness probes")
    # 3. Secrets: only clearly marked examples
    for o in objs:
        if o["kind"] == "Secret" and o["metadata"].get("labels", {}).get("celery-scaler.io/example-secret") != "true":
            errors.append(f"Secret/{o['metadata']['name']}: not marked as an example Secret")
    # 4. ScaledObjects vs worker Deployments vs the scaler's config
    scaler_cfg = None
    for o in objs:
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("celery-scaler-config"):
            scaler_cfg = yaml.safe_load(o["data"]["config.yaml"])
    scaler_svc = by.get(("Service", "celery-scaler"))
    sos = [o for o in objs if o["kind"] == "ScaledObject"]
    alert_targets = wait_alert_targets(objs)
    workers = []  # (deployment, --hostname) of every ScaledObject target
    for so in sos:
        d = by.get((so["spec"]["scaleTargetRef"].get("kind", "Deployment"), so["spec"]["scaleTargetRef"]["name"]))
        if d is not None:
            c = d["spec"]["template"]["spec"]["containers"][0]
            h = flag_value([resolve_env(a, c) for a in c.get("command", []) + c.get("args", [])], "--hostname")
            workers.append((d["metadata"]["name"], h or "celery@%h"))
    targeted = set()
    for so in sos:
        n = so["metadata"]["name"]
        ref = so["spec"]["scaleTargetRef"]
        dep = by.get((ref.get("kind", "Deployment"), ref["name"]))
        targeted.add(ref["name"])
        if dep is None:
            errors.append(f"ScaledObject/{n}: target {ref['name']} not rendered")
            continue
        if "replicas" in dep["spec"]:
            errors.append(f"Deployment/{ref['name']}: sets replicas although KEDA owns them")
        if so["spec"].get("minReplicaCount") != 0:
            errors.append(f"ScaledObject/{n}: minReplicaCount must be 0")
        if "fallback" not in so["spec"]:
            errors.append(f"ScaledObject/{n}: no fallback")
        beh = so["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
        if beh.get("scaleDown", {}).get("stabilizationWindowSeconds", 0) < 60:
            errors.append(f"ScaledObject/{n}: scaleDown stabilization window under 60 s (flapping)")
        worker = dep["spec"]["template"]["spec"]["containers"][0]
        queues = flag_value(worker.get("command", []) + worker.get("args", []), "--queues")
        time_limit = flag_value(worker.get("command", []), "--time-limit")
        grace = dep["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        if time_limit is None or grace <= int(time_limit):
            errors.append(f"Deployment/{ref['name']}: terminationGracePeriodSeconds {grace} not above --time-limit {time_limit}")
        ns = so["metadata"].get("namespace")
        for t in so["spec"]["triggers"]:
            md = t.get("metadata", {})
            if t["type"] not in ("external", "external-push"):
                errors.append(f"ScaledObject/{n}: trigger type {t['type']}")
                continue
            if md.get("queues") != queues:
                errors.append(f"ScaledObject/{n}: queues {md.get('queues')!r} != worker --queues {queues!r}")
            want = f"celery-scaler.{ns}.svc:9090"
            if md.get("scalerAddress") != want or scaler_svc is None:
                errors.append(f"ScaledObject/{n}: scalerAddress {md.get('scalerAddress')!r}, want {want!r} and a celery-scaler Service")
            conn = md.get("connection")
            if scaler_cfg is None or conn not in scaler_cfg.get("connections", {}):
                errors.append(f"ScaledObject/{n}: connection {conn!r} not defined in the scaler config")
            else:
                allowed = scaler_cfg["connections"][conn].get("allowed_namespaces")
                if allowed is not None and ns not in allowed:
                    errors.append(f"ScaledObject/{n}: namespace {ns!r} not in connection {conn!r} allowed_namespaces {allowed!r}")
            if any(k in md for k in ("address", "host", "password", "passwordFromEnv")) and conn:
                errors.append(f"ScaledObject/{n}: connection combined with address/password keys")
            mode = md.get("mode", "backlog")
            if mode == "latency":
                others = [w for w in workers if w[0] != ref["name"]]
                check_latency_trigger(n, md, dep, worker, others, alert_targets, errors, worker_env(worker, objs))
            elif mode != "backlog":
                errors.append(f"ScaledObject/{n}: unknown mode {mode!r}")
    # 5. beat: singleton, Recreate, never scaled
    beat = by.get(("Deployment", "celery-beat"))
    if beat is not None:
        if beat["spec"].get("replicas") != 1 or beat["spec"].get("strategy", {}).get("type") != "Recreate":
            errors.append("Deployment/celery-beat: must be replicas 1 with strategy Recreate")
        if "celery-beat" in targeted:
            errors.append("celery-beat is targeted by a ScaledObject")
    # 6. no unexported metric names anywhere in rendered output
    text = open(render).read()
    for m in sorted(set(METRIC_RE.findall(text))):
        if base_metric(m) not in EXPORTED_NOW:
            errors.append(f"rendered output references {m}, which the scaler does not export yet")
    if sos and scaler_cfg is None:
        errors.append("ScaledObjects rendered without the scaler config")
    if scaler_cfg is not None and scaler_cfg.get("broker_policy") != "named-only":
        errors.append("scaler config: broker_policy must be named-only in the shipped manifests (docs/security.md)")
    die(errors)
    print(f"{len(objs)} objects, {len(sos)} ScaledObjects checked")


def prom_groups(objs):
    groups = []
    for o in objs:
        if o["kind"] == "PrometheusRule":
            groups += o["spec"]["groups"]
    return groups


def cmd_rules(render, out):
    groups = prom_groups(load(render))
    if not groups:
        die(["no PrometheusRule groups rendered"])
    with open(out, "w") as f:
        yaml.safe_dump({"groups": groups}, f, sort_keys=False)
    print(f"{sum(len(g['rules']) for g in groups)} rules")


def check_dashboard(d, errors, where):
    for key in ("uid", "title", "panels", "templating", "schemaVersion"):
        if key not in d:
            errors.append(f"{where}: missing {key}")
    check_panels(d.get("panels", []), errors, where)
    names = [v.get("name") for v in d.get("templating", {}).get("list", [])]
    for var in ("datasource", "namespace", "broker", "queue"):
        if var not in names:
            errors.append(f"{where}: template variable {var} missing")


def check_panels(panels, errors, where):
    ids = set()
    if not panels:
        errors.append(f"{where}: no panels")
    for p in panels:
        pid = p.get("id")
        if not isinstance(pid, int) or pid in ids:
            errors.append(f"{where}: panel {p.get('title')!r} has a missing or duplicate id")
        ids.add(pid)
        gp = p.get("gridPos", {})
        if not all(isinstance(gp.get(k), int) for k in ("x", "y", "w", "h")) or gp.get("x", 0) + gp.get("w", 0) > 24:
            errors.append(f"{where}: panel {p.get('title')!r} has a bad gridPos")
        if not p.get("title") or not p.get("type"):
            errors.append(f"{where}: panel {pid} lacks title or type")
        if p.get("type") == "row":
            continue
        targets = p.get("targets", [])
        if not targets:
            errors.append(f"{where}: panel {p.get('title')!r} has no targets")
        for t in targets:
            if not t.get("expr") or not t.get("refId"):
                errors.append(f"{where}: panel {p.get('title')!r} has a target without expr/refId")
            elif t["expr"].count("(") != t["expr"].count(")") or t["expr"].count("{") != t["expr"].count("}"):
                errors.append(f"{where}: panel {p.get('title')!r}: unbalanced expression {t['expr']!r}")


def cmd_dashboard(path, panels_path=None):
    errors = []
    with open(path) as f:
        d = json.load(f)
    check_dashboard(d, errors, path)
    names = {base_metric(m) for m in METRIC_RE.findall(json.dumps(d))}
    for m in sorted(names - EXPORTED_NOW):
        errors.append(f"{path}: references {m}, not exported yet")
    wanted = {"celery_scaler_queue_backlog", "celery_scaler_queue_in_flight", "celery_scaler_metric_value",
              "celery_scaler_active", "celery_scaler_decision_slots", "celery_scaler_queue_arrival_rate",
              "celery_scaler_queue_dequeue_rate", "celery_scaler_queue_wait_seconds",
              "celery_scaler_queue_service_time_seconds", "celery_scaler_queue_service_time_p95_seconds",
              "celery_scaler_queue_running", "celery_scaler_signal_mode"}
    for m in sorted(wanted - names):
        errors.append(f"{path}: no panel shows {m}")
    if panels_path:
        with open(panels_path) as f:
            extra = json.load(f)
        check_panels(extra, errors, panels_path)
        clash = {p["id"] for p in extra} & {p["id"] for p in d["panels"]}
        if clash:
            errors.append(f"{panels_path}: panel ids {sorted(clash)} clash with the dashboard")
    die(errors)
    print(f"{len(d['panels'])} panels, {len(names)} metrics")


def cmd_dashboard_configmap(render, path):
    with open(path) as f:
        want = json.load(f)
    for o in load(render):
        if o["kind"] == "ConfigMap" and o["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            for v in o.get("data", {}).values():
                if json.loads(v) == want:
                    print(f"ConfigMap/{o['metadata']['name']} carries the dashboard")
                    return
    die([f"{render}: no ConfigMap labelled grafana_dashboard=1 carries {path}"])


def cmd_metric_names(*renders):
    names = set()
    for r in renders:
        for o in load(r):
            if o["kind"] == "PrometheusRule" or (o["kind"] == "ConfigMap" and o["metadata"].get("labels", {}).get("grafana_dashboard")):
                names |= {base_metric(m) for m in METRIC_RE.findall(json.dumps(o))}
    print("\n".join(sorted(names)))


def cmd_exprs(render):
    """One JSON string per line: every alert expression and dashboard query (Grafana
    variables replaced by values a test Prometheus can evaluate)."""
    subst = {"$__rate_interval": "1m", "$namespace": "celery", "$broker": ".*", "$queue": ".*"}
    for o in load(render):
        if o["kind"] == "PrometheusRule":
            for g in o["spec"]["groups"]:
                for r in g["rules"]:
                    print(json.dumps(r["expr"].strip()))
        if o["kind"] == "ConfigMap" and o["metadata"].get("labels", {}).get("grafana_dashboard"):
            for v in o["data"].values():
                for p in json.loads(v).get("panels", []):
                    for t in p.get("targets", []):
                        e = t["expr"]
                        for k, val in subst.items():
                            e = e.replace(k, val)
                        print(json.dumps(e))


def cmd_exported_source(src):
    """EXPORTED_NOW must equal the celery_scaler_* names the source registers."""
    import os
    found = set()
    for dirpath, _, files in os.walk(src):
        if "/tests" in dirpath.replace(os.sep, "/"):
            continue
        for f in files:
            if f.endswith(".rs") and f != "tests.rs":
                text = open(os.path.join(dirpath, f)).read()
                found |= set(re.findall(r'register_[a-z_]+!\(\s*"(celery_scaler_[a-z0-9_]+)"', text))
                found |= set(re.findall(r'(?:Opts|opts)::new\(\s*"(celery_scaler_[a-z0-9_]+)"', text))
                # Custom collectors describe their series with Desc::new.
                found |= set(re.findall(r'Desc::new\(\s*"(celery_scaler_[a-z0-9_]+)"', text))
    errors = [f"registered in {src} but missing from EXPORTED_NOW: {m}" for m in sorted(found - EXPORTED_NOW)]
    errors += [f"in EXPORTED_NOW but not registered in {src}: {m}" for m in sorted(EXPORTED_NOW - found)]
    die(errors)
    print(f"{len(found)} metric names registered = EXPORTED_NOW")


def cmd_scrape_settings(render):
    """path interval timeout of the ServiceMonitor's endpoint."""
    for o in load(render):
        if o["kind"] == "ServiceMonitor":
            ep = o["spec"]["endpoints"][0]
            print(ep.get("path", "/metrics"), ep.get("interval", "30s"), ep.get("scrapeTimeout", "10s"))
            return
    die(["no ServiceMonitor rendered"])


def cmd_redis_files(render, out):
    import os
    for o in load(render):
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("redis-config"):
            for k, v in o["data"].items():
                with open(os.path.join(out, k), "w") as f:
                    f.write(v)
            print(" ".join(sorted(o["data"])))
            return
    die(["no redis-config ConfigMap"])


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "split": cmd_split,
        "policy": cmd_policy,
        "rules": cmd_rules,
        "rules-file": lambda src, out: cmd_rules(src, out),
        "dashboard": cmd_dashboard,
        "dashboard-configmap": cmd_dashboard_configmap,
        "metric-names": cmd_metric_names,
        "redis-files": cmd_redis_files,
        "exprs": cmd_exprs,
        "scrape-settings": cmd_scrape_settings,
        "exported-source": cmd_exported_source,
    }[cmd](*args)
