"""The simulated world read back with boto3 (Debian's 1.26) and the sweep's invariants.

    w = World(url, regions=None)        boto3 clients on one `ecsplay sim serve`
    snap = w.read()                     {"rules": {...}, "health": {...}, "services": {...},
                                         "in_progress": [...]}: what the invariants look at
                                        (with several Regions: each Region's world, every
                                        name prefixed "REGION " so the worlds stay apart)
    traffic_violations(snap)            target groups that receive traffic without a healthy target
    progress_violations(snap)           deployments left in progress (ECS, task sets, native, CodeDeploy)
    state_diff(snap, want, keys, exact) how a world differs from a reference one (restored / completed)

Only boto3 calls and one raw signed request (ListServiceDeployments is newer than boto3 1.26)
are used, never /_sim/world: the invariant is what an AWS client sees.
"""
import json

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import urllib.request

AK, SK, REGION = "AKIDSIMULATOR", "simulator-secret-key", "us-east-1"
CODEDEPLOY_ACTIVE = ["Created", "Queued", "InProgress", "Baking", "Ready"]
NATIVE_ACTIVE = {"PENDING", "IN_PROGRESS", "STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"}
ECS_TARGET = "AmazonEC2ContainerServiceV20141113."


class World:
    def __init__(self, url, timeout=20, regions=None):
        self.url = url
        self.regions = list(regions or [REGION])
        self.cfg = botocore.config.Config(retries={"max_attempts": 4, "mode": "standard"},
                                          connect_timeout=5, read_timeout=timeout)
        self._clients = {}
        self.timeout = timeout
        self._images = {}
        self._use(self.regions[0])

    def _use(self, region):
        """Points the clients (and ecs_raw's signature) at one Region's world."""
        if region not in self._clients:
            session = boto3.session.Session(aws_access_key_id=AK, aws_secret_access_key=SK, region_name=region)
            self._clients[region] = tuple(session.client(s, endpoint_url=self.url, config=self.cfg)
                                          for s in ("ecs", "elbv2", "codedeploy"))
        self.region = region
        self.ecs, self.elbv2, self.codedeploy = self._clients[region]

    # --- raw JSON 1.1 call, for operations boto3 1.26 does not know ---------------------------
    def ecs_raw(self, operation, params):
        body = json.dumps(params).encode()
        req = botocore.awsrequest.AWSRequest(method="POST", url=self.url + "/", data=body, headers={
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": ECS_TARGET + operation})
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(AK, SK), "ecs", self.region).add_auth(req)
        r = urllib.request.Request(self.url + "/", data=body, method="POST", headers=dict(req.headers.items()))
        try:
            with urllib.request.urlopen(r, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise RuntimeError("ecs %s: HTTP %d %s" % (operation, e.code, e.read()[:300]))

    def images(self, td_arn):
        """The container images of a task definition (cached: revisions never change)."""
        if td_arn not in self._images:
            td = self.ecs.describe_task_definition(taskDefinition=td_arn)["taskDefinition"]
            self._images[td_arn] = sorted(c.get("image", "") for c in td.get("containerDefinitions", []))
        return self._images[td_arn]

    # --- reading ------------------------------------------------------------------------------
    def read(self):
        if len(self.regions) == 1:
            return self._read_region(self.regions[0])
        snap = {"rules": {}, "health": {}, "services": {}, "in_progress": []}
        for region in self.regions:
            part = self._read_region(region)
            p = region + " "
            for where, weights in part["rules"].items():
                snap["rules"][p + where] = {p + tg: w for tg, w in weights.items()}
            for tg, states in part["health"].items():
                snap["health"][p + tg] = states
            for name, s in part["services"].items():
                snap["services"][p + name] = s
            snap["in_progress"] += [p + e for e in part["in_progress"]]
        return snap

    def _read_region(self, region):
        self._use(region)
        snap = {"rules": {}, "health": {}, "services": {}, "in_progress": []}
        self._read_elbv2(snap)
        self._read_ecs(snap)
        self._read_codedeploy(snap)
        return snap

    def test_listeners(self):
        """Listeners that carry CodeDeploy's test traffic only (a deployment group's
        testTrafficRoute): between deployments they point at the idle side on purpose."""
        out = set()
        for app in self.codedeploy.list_applications()["applications"]:
            groups = self.codedeploy.list_deployment_groups(applicationName=app)["deploymentGroups"]
            if not groups:
                continue
            info = self.codedeploy.batch_get_deployment_groups(applicationName=app, deploymentGroupNames=groups)
            for g in info.get("deploymentGroupsInfo", []):
                for pair in (g.get("loadBalancerInfo") or {}).get("targetGroupPairInfoList", []):
                    out.update((pair.get("testTrafficRoute") or {}).get("listenerArns", []))
        return out

    def _read_elbv2(self, snap):
        names = {}
        test = self.test_listeners()
        for tg in self.elbv2.describe_target_groups()["TargetGroups"]:
            names[tg["TargetGroupArn"]] = tg["TargetGroupName"]
            states = {}
            for d in self.elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]:
                st = d.get("TargetHealth", {}).get("State", "unknown")
                states[st] = states.get(st, 0) + 1
            snap["health"][tg["TargetGroupName"]] = states
        for lb in self.elbv2.describe_load_balancers()["LoadBalancers"]:
            for lis in self.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
                for rule in self.elbv2.describe_rules(ListenerArn=lis["ListenerArn"])["Rules"]:
                    weights = {}
                    for a in rule.get("Actions", []):
                        if a.get("Type") != "forward":
                            continue
                        groups = (a.get("ForwardConfig") or {}).get("TargetGroups")
                        if groups:
                            for g in groups:
                                weights[names.get(g["TargetGroupArn"], g["TargetGroupArn"])] = g.get("Weight", 1)
                        elif a.get("TargetGroupArn"):
                            weights[names.get(a["TargetGroupArn"], a["TargetGroupArn"])] = 1
                    where = "%s:%s rule %s" % (lb["LoadBalancerName"], lis["Port"],
                                               "default" if rule.get("IsDefault") else rule.get("Priority"))
                    if lis["ListenerArn"] in test:
                        where += " (test traffic)"
                    snap["rules"][where] = weights

    def _read_ecs(self, snap):
        for cluster in self.ecs.list_clusters()["clusterArns"]:
            arns = self.ecs.list_services(cluster=cluster, maxResults=100)["serviceArns"]
            for i in range(0, len(arns), 10):
                for s in self.ecs.describe_services(cluster=cluster, services=arns[i:i + 10])["services"]:
                    self._service(snap, cluster, s)

    def _service(self, snap, cluster, s):
        name = s["serviceName"]
        snap["services"][name] = {"td": s.get("taskDefinition", ""), "desired": s.get("desiredCount"),
                                  "images": self.images(s["taskDefinition"]) if s.get("taskDefinition") else []}
        for d in s.get("deployments", []):
            if d.get("rolloutState") == "IN_PROGRESS":
                snap["in_progress"].append("ECS service %s: deployment %s (%s, %s) rolloutState IN_PROGRESS: %s" % (
                    name, d.get("id"), d.get("status"), short_td(d.get("taskDefinition")),
                    d.get("rolloutStateReason", "")))
        sets = s.get("taskSets", [])
        for ts in sets:
            if ts.get("status") != "PRIMARY":
                snap["in_progress"].append("ECS service %s: task set %s (%s) left %s at scale %s%%, %s" % (
                    name, ts.get("id"), short_td(ts.get("taskDefinition")), ts.get("status"),
                    (ts.get("scale") or {}).get("value"), ts.get("stabilityStatus")))
        if ((s.get("deploymentController") or {}).get("type", "ECS")) == "ECS":
            self._native(snap, cluster, name)

    def _native(self, snap, cluster, name):
        try:
            out = self.ecs_raw("ListServiceDeployments", {"cluster": cluster, "service": name})
        except Exception as e:  # noqa: BLE001 - an unreadable world is evidence too
            snap["in_progress"].append("ECS service %s: ListServiceDeployments failed: %s" % (name, e))
            return
        for sd in out.get("serviceDeployments", []):
            if sd.get("status") in NATIVE_ACTIVE:
                snap["in_progress"].append("ECS service %s: service deployment %s %s (%s)" % (
                    name, sd.get("serviceDeploymentArn", "").rsplit("/", 1)[-1], sd.get("status"),
                    self._stage(sd.get("serviceDeploymentArn"))))

    def _stage(self, arn):
        try:
            out = self.ecs_raw("DescribeServiceDeployments", {"serviceDeploymentArns": [arn]})
            sd = (out.get("serviceDeployments") or [{}])[0]
            return "stage %s, target weight %s" % (sd.get("lifecycleStage"), (sd.get(
                "targetServiceRevision") or {}).get("requestedProductionTrafficWeight"))
        except Exception as e:  # noqa: BLE001
            return "undescribable: %s" % e

    def _read_codedeploy(self, snap):
        for app in self.codedeploy.list_applications()["applications"]:
            for group in self.codedeploy.list_deployment_groups(applicationName=app)["deploymentGroups"]:
                ids = self.codedeploy.list_deployments(applicationName=app, deploymentGroupName=group,
                                                       includeOnlyStatuses=CODEDEPLOY_ACTIVE)["deployments"]
                if not ids:
                    continue
                for d in self.codedeploy.batch_get_deployments(deploymentIds=ids[:25])["deploymentsInfo"]:
                    snap["in_progress"].append("CodeDeploy %s/%s: deployment %s left %s" % (
                        app, group, d["deploymentId"], d["status"]))


def short_td(arn):
    return (arn or "").rsplit("/", 1)[-1]


def healthy(snap, tg):
    return snap["health"].get(tg, {}).get("healthy", 0)


def traffic_violations(snap):
    """Every target group with weight > 0 on a rule or default action must have a healthy target
    (CodeDeploy's test listeners aside: they point at the idle side between deployments)."""
    out = []
    for where, weights in sorted(snap["rules"].items()):
        if where.endswith("(test traffic)"):
            continue
        total = sum(weights.values())
        for tg, w in sorted(weights.items()):
            if w > 0 and healthy(snap, tg) == 0:
                out.append("%s sends %d%% to %s, which has no healthy target (targets: %s)" % (
                    where, round(100 * w / total) if total else 0, tg,
                    json.dumps(snap["health"].get(tg, {}), sort_keys=True)))
    return out


def progress_violations(snap):
    return list(snap["in_progress"])


def shares(weights):
    """Weights as whole percentages: a lone TargetGroupArn (weight 1) and a ForwardConfig
    with one group at 100 send the same traffic."""
    if weights is None:
        return None
    total = sum(weights.values())
    return {tg: (round(100 * w / total) if total else 0) for tg, w in weights.items()}


def touched(home, final):
    """The rules and services a strategy changes (they differ between the world before a
    run and after the baseline run): the parts `restored`/`completed` compare."""
    rules = sorted(k for k in set(home["rules"]) | set(final["rules"])
                   if shares(home["rules"].get(k)) != shares(final["rules"].get(k)))
    services = sorted(k for k in set(home["services"]) | set(final["services"])
                      if home["services"].get(k) != final["services"].get(k))
    return {"rules": rules, "services": services}


def state_diff(snap, want, keys, exact_td):
    """How `snap` differs from `want` on the touched rules and services. exact_td: compare the
    task definition ARN (a rollback restores the very revision); else the images (a resumed or
    retried run may register its revision again)."""
    out = []
    for r in keys["rules"]:
        got, exp = shares(snap["rules"].get(r)), shares(want["rules"].get(r))
        if {k: v for k, v in (got or {}).items() if v} != {k: v for k, v in (exp or {}).items() if v}:
            out.append("%s sends %s, want %s" % (r, fmt(got), fmt(exp)))
    for s in keys["services"]:
        got, exp = snap["services"].get(s) or {}, want["services"].get(s) or {}
        if got.get("desired") != exp.get("desired"):
            out.append("service %s desired %s, want %s" % (s, got.get("desired"), exp.get("desired")))
        if exact_td and got.get("td") != exp.get("td"):
            out.append("service %s runs %s, want %s" % (s, short_td(got.get("td")), short_td(exp.get("td"))))
        elif not exact_td and got.get("images") != exp.get("images"):
            out.append("service %s runs images %s (%s), want %s" % (s, got.get("images"), short_td(got.get("td")),
                                                                 exp.get("images")))
    return out


def fmt(v):
    return json.dumps(v, sort_keys=True) if v is not None else "(absent)"
