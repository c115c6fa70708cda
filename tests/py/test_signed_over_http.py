"""ecsplay's own client over HTTP: every AWS call through the default transport is signed
by the HTTP layer in C as it is sent (http.start's signer=), and `ecsplay sim serve`
verifies SigV4 on every request, so these runs pass only if what C signs is what AWS
would accept: the simulator's key pair, an assumed role's temporary credentials (a
session token), two Regions, JSON and query services; and a wrong secret is refused
as AWS refuses it, with nothing of it in the output.

Run: /usr/bin/python3 tests/py/test_signed_over_http.py   (from the project root, after make)
"""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simserve  # noqa: E402

PLAYBOOK = r'''
local aws = require "ecsplay.aws"
local ecs, elbv2, sts = require "ecsplay.ecs", require "ecsplay.elbv2", require "ecsplay.sts"
print("plain clusters", #ecs.list_clusters {}.clusterArns)
print("plain load balancers", #elbv2.describe_load_balancers {}.LoadBalancers)
for _, region in ipairs { "us-east-1", "eu-west-1" } do
  local s = aws.session { region = region, role_arn = "arn:aws:iam::123456789012:role/deployer",
    external_id = "ext-id-1" }
  s:run(function()
    print(region .. " caller", sts.get_caller_identity {}.Arn)
    for i = 1, 3 do print(region .. " clusters " .. i, #ecs.list_clusters {}.clusterArns) end
    print(region .. " load balancers", #elbv2.describe_load_balancers {}.LoadBalancers)
  end)
end
'''


def run(srv, playbook, env):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(playbook)
    try:
        p = subprocess.run([simserve.ECSPLAY_RUN, "--endpoint-url", srv.url, f.name], cwd=simserve.ROOT,
                           capture_output=True, text=True, timeout=120, env=env)
    finally:
        os.unlink(f.name)
    return p.returncode, p.stdout, p.stderr


class SignedOverHttp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # three Regions in one world (the scenario `playbooks/multi_region.lua` rehearses on)
        cls.srv = simserve.Server(scenario="playbooks/scenarios/multi_region.lua")
        cls.runs = tempfile.TemporaryDirectory(prefix="ecsplay-signed-runs-")

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()
        cls.runs.cleanup()

    def env(self, **keys):
        env = simserve.clean_env(**keys)
        env["ECSPLAY_RUNS_DIR"] = self.runs.name
        return env

    def test_key_pair_and_assumed_role_in_two_regions(self):
        rc, out, err = run(self.srv, PLAYBOOK, self.env())
        self.assertEqual(rc, 0, err)
        lines = out.replace("\t", " ")
        self.assertRegex(lines, r"plain clusters [1-9]")
        for region in ("us-east-1", "eu-west-1"):
            self.assertIn("%s caller arn:aws:sts::%s:assumed-role/deployer/" % (region, simserve.ACCOUNT), lines)
            for i in (1, 2, 3):
                self.assertRegex(lines, r"%s clusters %d \d+" % (region, i))
            self.assertRegex(lines, r"%s load balancers \d+" % region)

    def test_a_wrong_secret_is_refused_and_never_shown(self):
        secret = "not-the-simulators-secret-0123456789"
        rc, out, err = run(self.srv, 'print(#require("ecsplay.ecs").list_clusters {}.clusterArns)',
                           self.env(sk=secret))
        self.assertNotEqual(rc, 0, out)
        # ECS (JSON protocol) words a bad signature as InvalidSignatureException
        self.assertIn("InvalidSignatureException", out + err)
        self.assertNotIn(secret, out + err)


if __name__ == "__main__":
    simserve.run_tests()
