#!/usr/bin/python3
"""Generate ecsplay's compact Lua model tables from botocore service models.

Usage: tools/gen_models.py [MODELS_DIR] [OUT_DIR]
  MODELS_DIR  default: vendor/aws-models relative to the project root
  OUT_DIR     default: stdlib-lua/ecsplay/aws/models under the project root

Reads MODELS_DIR/<svc>/<version>/{service-2,paginators-1,waiters-2}.json for each
service ecsplay speaks and writes OUT_DIR/<svc>.lua.  Documentation strings and
traits nothing in ecsplay reads are dropped; keys are emitted sorted so that
regenerating from the same input gives byte-identical files.
"""

import json
import os
import re
import sys

SERVICES = ["ecs", "elbv2", "codedeploy", "cloudwatch", "sts"]

# botocore.xform_name, reproduced exactly (botocore/__init__.py).
_FIRST_CAP = re.compile(r"(.)([A-Z][a-z]+)")
_END_CAP = re.compile(r"([a-z0-9])([A-Z])")
_SPECIAL_CASE = re.compile(r"[A-Z]{2,}s$")
# botocore pre-seeds its cache with names its regexes get wrong.
_PARTIAL_RENAMES = {
    "CreateCachediSCSIVolume": "create_cached_iscsi_volume",
    "DescribeCachediSCSIVolumes": "describe_cached_iscsi_volumes",
    "DescribeStorediSCSIVolumes": "describe_stored_iscsi_volumes",
    "CreateStorediSCSIVolume": "create_stored_iscsi_volume",
    "ListHITsForQualificationType": "list_hits_for_qualification_type",
    "ExecutePartiQLStatement": "execute_partiql_statement",
    "ExecutePartiQLTransaction": "execute_partiql_transaction",
    "ExecutePartiQLBatch": "execute_partiql_batch",
}


def xform_name(name, sep="_"):
    if sep in name:
        return name
    if name in _PARTIAL_RENAMES:
        return _PARTIAL_RENAMES[name].replace("_", sep)
    m = _SPECIAL_CASE.search(name)
    if m is not None:
        matched = m.group()
        name = name[: -len(matched)] + sep + matched.lower()
    s1 = _FIRST_CAP.sub(r"\1" + sep + r"\2", name)
    return _END_CAP.sub(r"\1" + sep + r"\2", s1).lower()


METADATA_KEYS = [
    "apiVersion", "awsQueryCompatible", "endpointPrefix", "globalEndpoint",
    "jsonVersion", "protocol", "protocols", "serviceId", "signatureVersion",
    "signingName", "targetPrefix", "uid", "xmlNamespace",
]
# Member traits the codecs and the validator read.
MEMBER_KEYS = [
    "shape", "locationName", "flattened", "xmlName", "queryName",
    "idempotencyToken", "xmlNamespace", "xmlAttribute", "jsonvalue",
    "timestampFormat",
]
SHAPE_SCALAR_KEYS = [
    "type", "min", "max", "timestampFormat", "exception", "fault",
    "flattened", "locationName", "union", "document", "sensitive",
]


def compact_member(m):
    return {k: m[k] for k in MEMBER_KEYS if k in m}


def compact_shape(sh):
    out = {k: sh[k] for k in SHAPE_SCALAR_KEYS if k in sh}
    if "members" in sh:
        out["members"] = {n: compact_member(m) for n, m in sh["members"].items()}
        # Model order, for encoders that emit members the way AWS does.
        out["order"] = list(sh["members"].keys())
    if sh.get("required"):
        out["required"] = list(sh["required"])
    if "enum" in sh:
        out["enum"] = list(sh["enum"])
    for k in ("member", "key", "value"):
        if k in sh:
            out[k] = compact_member(sh[k])
    if "error" in sh:
        out["error"] = {k: sh["error"][k] for k in ("code", "httpStatusCode", "senderFault")
                        if k in sh["error"]}
    return out


def compact_operation(op):
    out = {"name": op["name"]}
    http = op.get("http", {})
    out["http"] = {k: http[k] for k in ("method", "requestUri", "responseCode") if k in http}
    if "input" in op:
        out["input"] = op["input"]["shape"]
    if "output" in op:
        out["output"] = op["output"]["shape"]
        if "resultWrapper" in op["output"]:
            out["resultWrapper"] = op["output"]["resultWrapper"]
    if op.get("errors"):
        out["errors"] = [e["shape"] for e in op["errors"]]
    for k in ("idempotent", "authtype", "deprecated"):
        if k in op:
            out[k] = op[k]
    if "auth" in op:
        out["auth"] = list(op["auth"])
    return out


LUA_KEYWORDS = set("""and break do else elseif end false for function goto if in
local nil not or repeat return then true until while""".split())
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def lua_str(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif o < 32 or o == 127:
            out.append("\\%03d" % o)
        else:
            out.append(ch)
    out.append('"')
    # Non-ASCII stays as UTF-8 bytes: Lua strings are byte strings.
    return "".join(out)


def lua_key(k):
    if isinstance(k, str) and IDENT.match(k) and k not in LUA_KEYWORDS:
        return k
    return "[" + lua_str(str(k)) + "]"


def lua_value(v, indent, depth):
    if v is None:
        raise ValueError("null in model")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v == int(v) and abs(v) < 2 ** 53:
            return str(int(v)) + ".0"
        return repr(v)
    if isinstance(v, str):
        return lua_str(v)
    if isinstance(v, list):
        items = [lua_value(x, indent, depth + 1) for x in v]
        return "{" + ",".join(items) + "}"
    if isinstance(v, dict):
        if not v:
            return "{}"
        keys = sorted(v.keys())
        # Top levels one entry a line (readable diffs); deeper levels inline (small file).
        if depth < indent:
            pad = " " * (depth + 1)
            parts = [pad + lua_key(k) + "=" + lua_value(v[k], indent, depth + 1) for k in keys]
            return "{\n" + ",\n".join(parts) + "\n" + " " * depth + "}"
        return "{" + ",".join(lua_key(k) + "=" + lua_value(v[k], indent, depth + 1)
                              for k in keys) + "}"
    raise TypeError("cannot encode %r" % (v,))


def load_json(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def generate(svc, src_dir):
    versions = sorted(d for d in os.listdir(os.path.join(src_dir, svc))
                      if os.path.isdir(os.path.join(src_dir, svc, d)))
    if not versions:
        raise SystemExit("gen_models: no model version under %s/%s" % (src_dir, svc))
    vdir = os.path.join(src_dir, svc, versions[-1])
    service = load_json(os.path.join(vdir, "service-2.json"))
    if service is None:
        raise SystemExit("gen_models: missing %s/service-2.json" % vdir)
    pag = load_json(os.path.join(vdir, "paginators-1.json")) or {}
    wait = load_json(os.path.join(vdir, "waiters-2.json")) or {}

    md = service["metadata"]
    metadata = {k: md[k] for k in METADATA_KEYS if k in md}
    if "awsQueryCompatible" in metadata:
        metadata["awsQueryCompatible"] = True
    if "protocols" not in metadata:
        metadata["protocols"] = [md["protocol"]]
    metadata["signingName"] = md.get("signingName", md["endpointPrefix"])

    ops = {n: compact_operation(o) for n, o in service["operations"].items()}
    model = {
        "service": svc,
        "metadata": metadata,
        "operations": ops,
        "shapes": {n: compact_shape(s) for n, s in service["shapes"].items()},
        "paginators": pag.get("pagination", {}),
        "waiters": wait.get("waiters", {}),
        "snake": {n: xform_name(n) for n in ops},
    }
    body = lua_value(model, 2, 0)
    return ("-- Generated by tools/gen_models.py from botocore's %s/%s models; do not edit.\n"
            "-- Regenerate with `make models`.\nreturn %s\n" % (svc, versions[-1], body))


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = argv[1] if len(argv) > 1 else os.path.join(root, "vendor", "aws-models")
    out = argv[2] if len(argv) > 2 else os.path.join(root, "stdlib-lua", "ecsplay", "models")
    os.makedirs(out, exist_ok=True)
    for svc in SERVICES:
        text = generate(svc, src)
        path = os.path.join(out, svc + ".lua")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
        print("wrote %s (%d bytes)" % (os.path.relpath(path, root), len(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
