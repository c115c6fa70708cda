"""Fuzzer (d): mutated AWS credentials/config files (INI).

Each case writes a mutated ~/.aws/config and ~/.aws/credentials (from a seed with profiles
using region, role_arn + source_profile, credential_process, mfa_serial, SSO, loops, nested
sections), picks a profile, and runs one signed call:
    ecsplay --endpoint-url <local sim serve> -e 'sts.get_caller_identity{}'
The chunk reports the error it caught (kind, code, message) before re-raising it, so the exit
code is the runner's own. Passing means:
  - no crash (signal, sanitizer report), no hang, no Lua traceback through ecsplay's files;
  - every error has a code and a message;
  - InvalidConfigFile / InvalidConfig exit 2 and name the file and the line (docs/cli.md: a
    malformed credentials file is bad input);
  - a call that succeeded exits 0.
Safety: credential_process lines are never mutated (they run a command; the seed's command is
/bin/echo), and every endpoint is the local server (--endpoint-url and AWS_ENDPOINT_URL win
over anything a mutated file says).
"""
import json
import os
import re
import sys

import fuzzlib

sys.path.insert(0, os.path.join(fuzzlib.ROOT, "tests", "py"))
import simserve  # noqa: E402

NAME = "config"
CONFIG = """[default]
region = us-east-1
output = json

[profile dev]
region = us-west-2
role_arn = arn:aws:iam::123456789012:role/dev
source_profile = base
duration_seconds = 3600

[profile base]
region = us-east-1
max_attempts = 2
retry_mode = standard

[profile proc]
region = us-east-1
credential_process = /bin/echo {"Version": 1, "AccessKeyId": "AKIDPROC", "SecretAccessKey": "proc-secret"}

[profile loop-a]
region = us-east-1
role_arn = arn:aws:iam::123456789012:role/a
source_profile = loop-b

[profile loop-b]
role_arn = arn:aws:iam::123456789012:role/b
source_profile = loop-a

[profile mfa]
region = us-east-1
role_arn = arn:aws:iam::123456789012:role/m
source_profile = base
mfa_serial = arn:aws:iam::123456789012:mfa/me

[profile sso]
sso_start_url = https://sso.invalid/start
sso_region = us-east-1
sso_account_id = 123456789012

[profile env]
region = us-east-1
role_arn = arn:aws:iam::123456789012:role/e
credential_source = Environment

[profile nested]
region = eu-west-1
s3 =
  max_concurrent_requests = 20
  addressing_style = path
"""
CREDENTIALS = """[default]
aws_access_key_id = AKIDSIMULATOR
aws_secret_access_key = simulator-secret-key

[base]
aws_access_key_id = AKIDBASE
aws_secret_access_key = base-secret
aws_session_token = base-token

[dev]
aws_access_key_id = AKIDDEV
aws_secret_access_key = dev-secret
"""
PROFILES = ["default", "dev", "base", "proc", "loop-a", "mfa", "sso", "env", "nested", "missing", "base"]
KEYS = ["region", "role_arn", "source_profile", "mfa_serial", "credential_source", "duration_seconds",
        "max_attempts", "retry_mode", "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
        "sso_start_url", "external_id", "role_session_name", "web_identity_token_file", "ca_bundle",
        "output", "regoin", "aws_acess_key_id", "s3", "services", ""]
VALUES = ["", " ", "us-east-1 us-west-2", "x" * 5000, "99999999999999999999999", "-1", "1e999", "0",
          "nan", "arn:aws:iam::123456789012:role/" + "r" * 300, "arn:", "base", "dev", "loop-a", "default",
          "nonexistent", "Environment", "Ec2InstanceMetadata", "EcsContainer", "Bogus", "legacy", "adaptive",
          "/nonexistent/ca.pem", "\u00e9\u00e8\u4e2d", "\\", "\"quoted\"", "'single'", "= = =", "[x]", "; c", "# c",
          "${HOME}", "%s%n%x", "\x00", "\t"]
PROTECTED = re.compile(r"^\s*credential_process\s*=")


def mutate_lines(r, text):
    lines = text.split("\n")
    for _ in range(r.randint(1, 4)):
        i = r.randrange(len(lines)) if lines else 0
        if lines and PROTECTED.match(lines[i]):
            continue
        op = r.randrange(14)
        if not lines:
            lines = [""]
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2:
            lines[i] = "  " + lines[i]                              # a continuation line
        elif op == 3:
            lines[i] = lines[i].replace("=", r.choice(["", ":", "==", " = = "]), 1)
        elif op == 4:
            lines[i] = lines[i].replace("]", "", 1) if "]" in lines[i] else "[" + lines[i]
        elif op == 5:
            lines.insert(i, r.choice(["[]", "[profile]", "[profile  ]", "[[x]]", "[profile dev]", "[default]",
                                      "[sso-session s]", "[services x]", "[profile a b]", "[ profile dev ]"]))
        elif op == 6:
            lines.insert(i, "%s = %s" % (r.choice(KEYS), r.choice(VALUES)))
        elif op == 7 and "=" in lines[i]:
            k, _ = lines[i].split("=", 1)
            lines[i] = "%s= %s" % (k, r.choice(VALUES))
        elif op == 8 and "=" in lines[i]:
            _, v = lines[i].split("=", 1)
            lines[i] = "%s =%s" % (r.choice(KEYS), v)
        elif op == 9:
            lines[i] = lines[i] + r.choice([" ; comment", " # comment", "\r", "\x00", "\ufeff", " \\"])
        elif op == 10:
            lines.insert(i, "x" * r.choice([1000, 70000]))
        elif op == 11:
            j = r.randrange(len(lines))
            if not PROTECTED.match(lines[j]):
                lines[i], lines[j] = lines[j], lines[i]
        elif op == 12:
            lines.insert(i, "".join(chr(r.randrange(1, 0x250)) for _ in range(r.randint(1, 40))))
        else:
            lines = lines[:i]                                          # truncated file
    return "\n".join(lines)


def mutate_bytes(r, data):
    data = bytearray(data)
    for _ in range(r.randint(1, 3)):
        if not data:
            break
        i = r.randrange(len(data))
        line_start = data.rfind(b"\n", 0, i) + 1
        if PROTECTED.match(data[line_start:line_start + 40].decode("latin-1")):
            continue
        op = r.randrange(4)
        if op == 0:
            data[i] = r.randrange(256)
        elif op == 1:
            data[i:i] = bytes(r.randrange(256) for _ in range(r.randint(1, 8)))
        elif op == 2:
            del data[i:i + r.randint(1, 20)]
        else:
            data[i:i] = r.choice([b"\r\n", b"\xef\xbb\xbf", b"\x00", b"\xff\xfe", b"[", b"]", b"="])
    return bytes(data)


def build(r):
    cfg, creds = CONFIG, CREDENTIALS
    which = r.randrange(3)
    if which in (0, 2):
        cfg = mutate_lines(r, cfg)
    if which in (1, 2):
        creds = mutate_lines(r, creds)
    cfg_b, creds_b = cfg.encode("utf-8", "surrogatepass"), creds.encode("utf-8", "surrogatepass")
    if r.random() < 0.35:
        cfg_b = mutate_bytes(r, cfg_b)
    if r.random() < 0.2:
        creds_b = mutate_bytes(r, creds_b)
    if r.random() < 0.1:
        cfg_b = cfg_b.replace(b"\n", b"\r\n")
    return cfg_b, creds_b, r.choice(PROFILES)


CHUNK = r'''
local ok, e = pcall(function() return require("ecsplay.sts").get_caller_identity{} end)
if ok then print("FUZZOK") return end
local t = type(e) == "table" and e or { message = tostring(e) }
print("FUZZERR " .. require("ecsplay.json").encode({ kind = t.kind, code = t.code,
  message = type(t.message) == "string" and t.message or tostring(t.message), lua_type = type(e) }))
error(e, 0)
'''
LINE = re.compile(r"(line \d+|:\d+)")


def judge(case_id, p, cfg_path, creds_path):
    problems = fuzzlib.crash_evidence(p)
    m = re.search(r"^FUZZERR (.*)$", p.out, re.M)
    if "FUZZOK" in p.out:
        if p.rc != 0:
            problems.append(("exit-after-success", "the call succeeded but ecsplay exited %s" % p.rc))
        return problems
    if not m:
        if not problems:
            problems.append(("no-error-report", "neither success nor an error: exit %s, %s"
                             % (p.rc, fuzzlib.excerpt(p.text, 0))))
        return problems
    err = json.loads(m.group(1))
    code, msg = err.get("code"), err.get("message") or ""
    if err.get("lua_type") != "table":
        problems.append(fuzzlib.plain_lua_error(err))
        return problems
    if not code or not msg.strip():
        problems.append(("error-without-code", "error without a code and a message: %s" % m.group(1)[:300]))
    if code in ("InvalidConfigFile", "InvalidConfig"):
        if p.rc != 2:
            problems.append(("exit2:" + code, "%s exited %s, want 2: %s" % (code, p.rc, msg[:300])))
        if cfg_path not in msg and creds_path not in msg:
            problems.append(("file:" + code, "%s does not name the file: %s" % (code, msg[:300])))
        elif not LINE.search(msg.replace(cfg_path, "").replace(creds_path, "")):
            problems.append(("line:" + code, "%s does not name the line: %s" % (code, msg[:300])))
    elif p.rc not in (1, 2):
        problems.append(("exit", "error %s exited %s, want 1 or 2" % (code, p.rc)))
    return problems


class Fuzzer:
    name = NAME

    def __init__(self, tmp):
        self.tmp = tmp
        self.srv = simserve.Server(no_auth=True)
        self.url = self.srv.url

    def close(self):
        self.srv.close()

    def case(self, seed, n, keep=False):
        r = fuzzlib.rng(NAME, seed, n)
        cfg, creds, profile = build(r)
        d = os.path.join(self.tmp, "config-%d" % n)
        os.makedirs(d, exist_ok=True)
        cfg_path, creds_path = os.path.join(d, "config"), os.path.join(d, "credentials")
        with open(cfg_path, "wb") as f:
            f.write(cfg)
        with open(creds_path, "wb") as f:
            f.write(creds)
        env = fuzzlib.base_env({"AWS_CONFIG_FILE": cfg_path, "AWS_SHARED_CREDENTIALS_FILE": creds_path,
                                "AWS_PROFILE": profile, "AWS_ENDPOINT_URL": self.url,
                                "AWS_ENDPOINT_URL_STS": self.url, "AWS_MAX_ATTEMPTS": "1"})
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
            env.pop(k, None)
        p = fuzzlib.run(["--endpoint-url", self.url, "-e", CHUNK], env=env, timeout=20)
        cid = "%s#%d" % (NAME, n)
        out = fuzzlib.Outcome(cid, judge(cid, p, cfg_path, creds_path),
                              note="profile %s; exit %s; %s" % (profile, p.rc, fuzzlib.last_error_line(p.text)[:200]))
        out.files = {"config": cfg, "credentials": creds}
        if not keep:
            for f in (cfg_path, creds_path):
                os.unlink(f)
            os.rmdir(d)
        return out
