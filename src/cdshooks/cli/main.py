"""The ``cdshooks`` command: serve | health | check | eval | test | schemas | valuesets."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from cdshooks.files.datafile import DataFileError
    from cdshooks.settings import SettingsError

    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    if args.run is not _serve:  # offline commands: the "JWT is off" warning is for servers
        logging.getLogger("cdshooks.web.auth").setLevel(logging.ERROR)
    try:
        return args.run(args) or 0
    except DataFileError as exc:  # a user's data files, not our code: the problems, no traceback
        if all(p.kind == "missing" for p in exc.problems):
            print(f"cdshooks: {', '.join(p.file for p in exc.problems)}: not found" + _where_hint(args),
                  file=sys.stderr)
            return 2
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"cdshooks: the data files have {len(exc.problems)} problem(s); `cdshooks check` lists them all"
              + _where_hint(args), file=sys.stderr)
        return 2
    except (SettingsError, OSError) as exc:
        print(f"cdshooks: {exc}", file=sys.stderr)
        return 2


def _where_hint(args) -> str:
    policies = _paths(args)[0]
    return "" if policies.is_dir() else (f" (no '{policies}' folder here: run in the project folder, or give "
                                         f"--policies/--mappings or CDSHOOKS_POLICIES/CDSHOOKS_MAPPINGS)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdshooks", description=__doc__)
    commands = parser.add_subparsers(title="commands")
    serve = commands.add_parser("serve", help="run the service under gunicorn")
    serve.add_argument("--host", default=os.environ.get("CDSHOOKS_HOST", "127.0.0.1"),
                       help="default: CDSHOOKS_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, default=_port(), help="default: CDSHOOKS_PORT or 8000")
    serve.add_argument("--workers", type=int, default=os.environ.get("CDSHOOKS_WORKERS", "2"),
                       help="default: CDSHOOKS_WORKERS or 2")
    serve.add_argument("--reload", action="store_true",
                       help="development: reload when a policy, mapping, value set or site file changes "
                            "(validated first; a broken change keeps the last good configuration)")
    serve.set_defaults(run=_serve)
    health = commands.add_parser("health", help="exit 0 when the local service's /healthz answers 200")
    health.add_argument("--host", default="127.0.0.1",
                        help="where to probe (default: 127.0.0.1, also when serving on 0.0.0.0)")
    health.add_argument("--port", type=int, default=_port(), help="default: CDSHOOKS_PORT or 8000, as serve")
    health.add_argument("--timeout", type=float, default=2.0, help="seconds (default: 2)")
    health.set_defaults(run=_health)
    check = commands.add_parser("check", help="validate policies, mappings and policy tests")
    _folders(check)
    check.set_defaults(run=_check)
    evaluate = commands.add_parser("eval", help="evaluate a saved hook request and explain it")
    evaluate.add_argument("request", type=Path, help="a CDS Hooks request (JSON)")
    evaluate.add_argument("--today", help="evaluation date YYYY-MM-DD (default: configured / today)")
    _folders(evaluate)
    evaluate.set_defaults(run=_eval)
    test = commands.add_parser("test", help="run every policies/<id>_test.yaml (and the site's *_test.yaml)")
    _folders(test)
    test.add_argument("--policy", help="only the suites of this policy id")
    test.add_argument("-k", dest="keyword",
                      help="only cases whose 'file::name' contains this text (no every-leaf rule)")
    test.add_argument("-q", "--quiet", action="store_true", help="print failures and the count only")
    test.set_defaults(run=_test)
    schemas = commands.add_parser("schemas", help="write the JSON Schemas of the data-file formats")
    _folders(schemas)
    schemas.set_defaults(run=_schemas)
    valuesets = commands.add_parser("valuesets", help="list the value sets: members per code system and sources")
    _folders(valuesets)
    valuesets.set_defaults(run=_valuesets)
    return parser


def _port() -> str:
    """The port ``serve`` binds and ``health`` probes: one setting, so a container's probe follows it.

    A string: argparse converts string defaults with ``type``, so a bad value is a usage error.
    """
    return os.environ.get("CDSHOOKS_PORT", "8000")


def _folders(parser) -> None:
    parser.add_argument("--policies", type=Path, default=None, help="default: CDSHOOKS_POLICIES or policies/")
    parser.add_argument("--mappings", type=Path, default=None, help="default: CDSHOOKS_MAPPINGS or mappings/")
    parser.add_argument("--valuesets", type=Path, default=None,
                        help="default: CDSHOOKS_VALUESETS or the valuesets/ folder beside the mappings")
    parser.add_argument("--site", type=Path, default=None,
                        help="a site folder extending the shipped files (default: CDSHOOKS_SITE)")


def _site(args) -> Path | None:
    chosen = getattr(args, "site", None) or os.environ.get("CDSHOOKS_SITE")
    return Path(chosen) if chosen else None


def _paths(args) -> tuple[Path, Path]:
    policies = args.policies or Path(os.environ.get("CDSHOOKS_POLICIES", "policies"))
    mappings = args.mappings or Path(os.environ.get("CDSHOOKS_MAPPINGS", "mappings"))
    return policies, mappings


def _patch_for_gevent() -> None:
    """Make sockets, threads and ssl cooperative, before anything imports them.

    Patched late (after requests, psycopg or gunicorn are imported), HTTPS calls can fail with
    RecursionError and psycopg would block a whole worker instead of one greenlet.
    """
    from gevent import monkey

    monkey.patch_all()


def _serve(args) -> int:
    _patch_for_gevent()
    from cdshooks import logsafe
    from cdshooks.serve import server

    logsafe.configure(logging.INFO)
    return server.run(args.host, args.port, args.workers, reload=args.reload)


def _health(args) -> int:
    import urllib.request

    url = f"http://{args.host}:{args.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            status = response.status
    except (OSError, ValueError) as exc:   # refused, timed out, or an HTTP error status
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    print(f"{url}: {status}")
    return 0 if status == 200 else 1


def _check(args) -> int:
    from cdshooks.cli import lint
    from cdshooks.policy.loader import check
    from cdshooks.testing import cases

    policies, mappings = _paths(args)
    loaded, problems = check(policies, mappings, _env_settings(), _valueset_folder(args), _site(args))
    suites, found = cases.load_suites(policies, _site(args))
    problems += found + lint.problems(loaded, suites, policies, _site(args), complete=not problems)
    problems = sorted(set(problems))
    for problem in problems:
        print(("warning: " if lint.is_warning(problem) else "") + str(problem))
    errors = [p for p in problems if not lint.is_warning(p)]
    warnings = len(problems) - len(errors)
    print(f"{len(errors)} problem{'s' if len(errors) != 1 else ''}" + (f", {warnings} warning(s)" if warnings else ""),
          file=sys.stderr)
    return 1 if errors else 0


def _env_settings() -> dict:
    """CDSHOOKS_POLICY_SETTINGS, so `check` sees the deployment's settings too."""
    import json

    raw = os.environ.get("CDSHOOKS_POLICY_SETTINGS")
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        raise OSError("CDSHOOKS_POLICY_SETTINGS is not JSON") from None
    return value if isinstance(value, dict) else {}


def _test(args) -> int:
    from cdshooks.files.datafile import DataFileError
    from cdshooks.files.datafile import Problem
    from cdshooks.testing import runner

    policies, mappings = _paths(args)
    if not policies.is_dir():
        raise DataFileError([Problem(str(policies), 1, "", "missing", "policies folder not found")])
    outcomes = runner.run(policies, mappings, _site(args), runner.Selection(args.policy, args.keyword),
                          _valueset_folder(args))
    for outcome in outcomes:
        if not (args.quiet and outcome.passed):
            print(f"{'PASS' if outcome.passed else 'FAIL'} {outcome.suite}::{outcome.case}")
        for failure in outcome.failures:
            print(f"    {failure}")
    failed = sum(not o.passed for o in outcomes)
    print(f"{len(outcomes) - failed} passed, {failed} failed")
    if not outcomes:
        print("no case selected", file=sys.stderr)
    return 1 if failed or not outcomes else 0


def _eval(args) -> int:
    from cdshooks.cli import eval as explain_cli

    policies, mappings = _paths(args)
    return explain_cli.run(args.request, policies, mappings, args.today, _site(args), _valueset_folder(args))


def _valueset_folder(args) -> Path | None:
    chosen = args.valuesets or os.environ.get("CDSHOOKS_VALUESETS")
    return Path(chosen) if chosen else None


def _valuesets(args) -> int:
    """One Markdown row per set: name, members per code system (codes, filters), sources."""
    from cdshooks.facts import site
    from cdshooks.fhir import valuesets

    folder = _valueset_folder(args) or _paths(args)[1].parent / "valuesets"
    sets, problems = valuesets.load(folder, site.load(_site(args)))
    print("| value set | members by system | sources |\n|---|---|---|")
    for name, found in sorted(sets.by_name.items()):
        members = ", ".join(f"{system.rsplit('/', 1)[-1]} {n}" for system, n in sorted(found.members.items()))
        print(f"| {name} | {members} | {'; '.join(found.sources)} |")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def _schemas(args) -> int:
    from cdshooks.cli import schemas

    policies, mappings = _paths(args)
    for path in schemas.write(policies, mappings):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
