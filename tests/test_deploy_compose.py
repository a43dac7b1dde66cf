"""docker-compose.yml, Dockerfile and environment.yml checked without Docker.

The compose file is validated against the Compose specification's JSON schema
(compose-spec/compose-spec, schema/compose-spec.json on its master branch, as
vendored by the check-jsonschema package in
check_jsonschema/builtin_schemas/vendor/compose-spec.json), then every service
is checked against the code: its command parses with tstream's own CLI parser,
every TSTREAM_* variable is a Settings field and its value passes
Settings.from_env, published ports match the configured ones, URLs point at
services that exist, and dependencies wait for health checks that exist.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shlex
import urllib.parse
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from tstream_kit.cli import build_parser
from tstream_kit.config import Settings

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {"TSTREAM_" + f.name.upper() for f in dataclasses.fields(Settings)}
#: read by the code but not Settings fields
OTHER_TSTREAM_VARS = {"TSTREAM_ENV_FILE", "TSTREAM_URL", "TSTREAM_SESSION"}
#: what a filled-in .env provides
DOTENV = {"POSTGRES_PASSWORD": "pw-for-tests", "TSTREAM_API_TOKEN": "0123456789abcdef0123",
          "JUPYTER_TOKEN": "jt-for-tests"}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $$."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        v = env.get(name)
        if op in (":?", "?") and not v:
            raise KeyError(f"{name}: {arg}")
        if op == ":-" and not v or op == "-" and v is None:
            return arg
        return v or ""
    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", sub, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def resolved(value, env=DOTENV):
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [resolved(v, env) for v in value]
    if isinstance(value, dict):
        return {k: resolved(v, env) for k, v in value.items()}
    return value


def test_compose_file_follows_the_compose_specification(compose: dict) -> None:
    schema_text = (resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
                   / "compose-spec.json").read_text()
    schema = json.loads(schema_text)
    jsonschema.validators.validator_for(schema)(schema).validate(compose)
    assert set(compose["services"]) == {"postgres", "redis", "tstream", "dashboards"}


def test_required_secrets_fail_loudly_when_missing(compose: dict) -> None:
    for name in ("POSTGRES_PASSWORD", "TSTREAM_API_TOKEN", "JUPYTER_TOKEN"):
        env = {k: v for k, v in DOTENV.items() if k != name}
        with pytest.raises(KeyError, match=name):
            resolved(compose, env)
    example = dict(l.split("=", 1) for l in (ROOT / ".env.example").read_text().splitlines()
                   if l and not l.startswith("#"))
    assert set(DOTENV) <= set(example)


@pytest.mark.parametrize("name", ["tstream", "dashboards"])
def test_app_services_match_the_code(compose: dict, name: str) -> None:
    svc = resolved(compose["services"][name])
    env = {k: str(v) for k, v in svc["environment"].items()}
    for key in env:
        if key.startswith("TSTREAM_"):
            assert key in FIELDS | OTHER_TSTREAM_VARS, f"{name}: {key} is not a setting"
    settings = Settings.from_env(env)            # raises ConfigError on any bad value
    # the command is one of ours and parses
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices   # type: ignore[union-attr]
    if svc["command"][1] not in commands:   # `tstream dashboard` comes with issue 6
        pytest.skip(f"tstream {svc['command'][1]} does not exist yet")
    args = parser.parse_args(svc["command"][1:])
    assert svc["command"][0] == "tstream"
    # dependencies: healthy PostgreSQL and Redis, whose names the URLs use
    deps = svc["depends_on"]
    for dep in ("postgres", "redis"):
        assert deps[dep]["condition"] == "service_healthy"
        assert "healthcheck" in compose["services"][dep]
    db = urllib.parse.urlsplit(settings.database_url)
    pg_env = compose["services"]["postgres"]["environment"]
    assert (db.hostname, db.port, db.username, db.path.lstrip("/")) == \
        ("postgres", 5432, pg_env["POSTGRES_USER"], pg_env["POSTGRES_DB"])
    assert db.password == DOTENV["POSTGRES_PASSWORD"]
    assert urllib.parse.urlsplit(settings.redis_url).hostname == "redis"
    ports = svc["ports"]
    bt_port = settings.bt_listen.rsplit(":", 1)[1]
    assert f"{bt_port}:{bt_port}/tcp" in ports and f"{bt_port}:{bt_port}/udp" in ports
    assert settings.data_dir == Path("/data")
    assert any(v.endswith(":/data") for v in svc["volumes"])
    if name == "tstream":
        http = settings.port
        assert f"127.0.0.1:{http}:{http}" in ports          # behind a proxy; never all addresses
        assert settings.host == "0.0.0.0" and settings.api_token   # so a token is required
        assert args.func.__name__ == "cmd_serve"
    else:
        assert args.func.__name__ == "run_dashboard"
        assert f"127.0.0.1:{args.port}:{args.port}" in ports
        assert args.token == DOTENV["JUPYTER_TOKEN"] and args.host == "0.0.0.0"
        assert str(args.data_dir) == "/data" and str(args.notebooks) == "/app/dashboards"
        assert str(args.port) in " ".join(svc["healthcheck"]["test"])
    assert int(svc["stop_grace_period"].rstrip("s")) > float(env.get("TSTREAM_SHUTDOWN_TIMEOUT", 10))


def test_the_two_engines_do_not_share_a_volume_or_a_port(compose: dict) -> None:
    a, b = (resolved(compose["services"][n]) for n in ("tstream", "dashboards"))
    assert {v.split(":")[0] for v in a["volumes"]}.isdisjoint(v.split(":")[0] for v in b["volumes"])
    assert {p.split(":")[-1] for p in a["ports"]}.isdisjoint(p.split(":")[-1] for p in b["ports"])
    assert set(compose["volumes"]) >= {"pgdata", "data", "dashboards-data"}
    assert "pgdata:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]


def dockerfile() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l.strip() else "")
            for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]


def test_dockerfile_is_slim_non_root_with_a_health_check() -> None:
    ins = dockerfile()
    froms = [a for i, a in ins if i == "FROM"]
    assert froms and all(re.match(r"python:3\.\d+-slim\b", f) for f in froms)
    final = ins[max(n for n, (i, _) in enumerate(ins) if i == "FROM"):]
    users = [a for i, a in final if i == "USER"]
    assert users and users[-1] not in ("root", "0")
    health = [a for i, a in final if i == "HEALTHCHECK"][0]
    hc = json.loads(health[health.index("["):])
    assert hc[0] == "tstream" and build_parser().parse_args(hc[1:]).func.__name__ == "cmd_health"
    cmd = json.loads([a for i, a in final if i == "CMD"][-1])
    assert build_parser().parse_args(cmd[1:]).func.__name__ == "cmd_serve"
    env_text = " ".join(a for i, a in final if i == "ENV")
    env = dict(kv.split("=", 1) for kv in shlex.split(env_text))
    for key in env:
        if key.startswith("TSTREAM_"):
            assert key in FIELDS, key
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("TSTREAM_")},
                                 api_token="0123456789abcdef0123")
    exposed = " ".join(a for i, a in final if i == "EXPOSE").split()
    assert str(settings.port) in exposed
    bt = settings.bt_listen.rsplit(":", 1)[1]
    assert f"{bt}/tcp" in exposed and f"{bt}/udp" in exposed
    ignore = (ROOT / ".dockerignore").read_text().split()
    for must in (".git", ".venv", ".env", "data"):
        assert must in ignore
    # the dashboards service runs the same image on /app/dashboards
    assert any(i == "COPY" and a.endswith("/app/dashboards") for i, a in final)


def test_environment_yml_installs_this_package() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict)][0]["pip"]
    spec = [p for p in pip if p.startswith("-e .") or p.startswith(".")]
    assert spec, pip
    extras = re.search(r"\[(.*)\]", spec[0]).group(1).split(",")
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(extras) <= set(project["optional-dependencies"])
    py = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")][0]
    need = project["requires-python"].lstrip(">=")
    assert tuple(map(int, py.split("=")[1].split("."))) >= tuple(map(int, need.split(".")))
