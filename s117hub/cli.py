"""The ``s117hub`` command line. Only commands that work are listed.

Output meant for scripts goes to stdout (``token create`` prints the token and nothing else);
logs and messages for people go to stderr.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from register_core.adapters.database import make_engine, migrate
from register_core.adapters.security import ROLES, TokenStore
from register_core.adapters.sources import SourceRegistry
from register_core.domain.errors import InvalidValue, NotFound

from .cli_csv import add_import_csv
from .cli_reconcile import add_reconcile
from .cli_replay import add_replay
from .config import Settings
from .logs import configure_logging

Handler = Callable[[Settings, argparse.Namespace], int]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _err(message: str) -> None:
    print(f"s117hub: {message}", file=sys.stderr)


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            revision = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    print(revision)
    return EXIT_OK


def _tokens(settings: Settings) -> TokenStore:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:  # (not alembic's context: it logs at INFO)
        never_migrated = not inspect(conn).has_table("alembic_version")
    if never_migrated:  # the quick start issues a token before the first serve
        migrate(settings.database_url)
    return TokenStore(engine)


def cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    store = _tokens(settings)
    try:
        _token_id, plaintext = store.create(args.role, source=args.source, label=args.label)
    except InvalidValue as exc:
        _err(f"{exc.message} (use --source with --role source-system, and it alone)")
        return EXIT_USAGE
    else:
        if args.source and not _source_known(settings, store, args.source):
            # Not refused: a provisioning script may issue the token before the source is
            # configured. But a typo would give a token that can never send, so say so.
            _err(f"warning: no source {args.source!r} is configured yet; this token can "
                 "send nothing until it is (POST /api/v1/sources or the config file)")
    finally:
        store.engine.dispose()
    print(plaintext)
    return EXIT_OK


def _source_known(settings: Settings, store: TokenStore, source_id: str) -> bool:
    """Stored, or in the config file that ``serve`` preloads at start."""
    if SourceRegistry(store.engine).get(source_id) is not None:
        return True
    return any(raw.get("source_id") == source_id for raw in settings.load_file().sources)


def cmd_token_list(settings: Settings, _args: argparse.Namespace) -> int:
    store = _tokens(settings)
    try:
        tokens = store.list()
    finally:
        store.engine.dispose()
    print("id\trole\tsource\tlabel\tcreated_at\trevoked_at")
    for t in tokens:
        print("\t".join([t.id, t.role, t.source or "-", t.label or "-", t.created_at.isoformat(),
                         t.revoked_at.isoformat() if t.revoked_at else "-"]))
    return EXIT_OK


def cmd_token_revoke(settings: Settings, args: argparse.Namespace) -> int:
    store = _tokens(settings)
    try:
        store.revoke(args.token_id)
    except NotFound as exc:
        _err(exc.message)
        return EXIT_FAILED
    finally:
        store.engine.dispose()
    print(f"revoked {args.token_id}")
    return EXIT_OK


def _hub(settings: Settings):  # type: ignore[no-untyped-def]
    from .bootstrap import bootstrap

    migrate(settings.database_url)
    hub = bootstrap(settings)
    # Config as seed: only entries new or changed in the file are written, so every process
    # started here (serve, mllp, worker, import-csv) keeps changes made through the API.
    hub.sources.preload(hub.file_config.sources, hub.clock.now())
    hub.subscriptions.preload(hub.file_config.subscriptions, hub.clock.now())
    return hub


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from .serve import CannotListen, serve

    try:
        serve(_hub(settings), with_http=not args.no_http, with_mllp=not args.no_mllp,
              with_worker=False if args.no_worker else None, with_pollers=not args.no_poll)
    except CannotListen as exc:
        _err(str(exc))
        return EXIT_FAILED
    return EXIT_OK


def cmd_mllp(settings: Settings, args: argparse.Namespace) -> int:
    from .serve import CannotListen, serve

    try:
        serve(_hub(settings), with_http=args.metrics, with_mllp=True, with_pollers=False,
              metrics_only=True)
    except CannotListen as exc:
        _err(str(exc))
        return EXIT_FAILED
    return EXIT_OK


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from .serve import run_worker

    run_worker(_hub(settings), threads=args.threads)
    return EXIT_OK


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from .demo import run_demo  # the scenario, fake partners and servers: only when asked

    return run_demo(settings, directory=args.dir, keep=args.keep, http=args.http, mllp=args.mllp)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s117hub", description="Integration hub for Section 117 aftercare registers. "
        "Settings come from S117HUB_* environment variables.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("migrate", help="upgrade the database to the latest schema"
                        ).set_defaults(handler=cmd_migrate)
    serve = commands.add_parser(
        "serve", help="migrate, then serve the HTTP API (S117HUB_HTTP), the MLLP listener "
        "(S117HUB_MLLP) and, with the in-process broker, the worker")
    serve.add_argument("--no-http", action="store_true", help="do not serve HTTP")
    serve.add_argument("--no-mllp", action="store_true", help="do not listen for MLLP")
    serve.add_argument("--no-worker", action="store_true",
                       help="do not run the in-process worker")
    serve.add_argument("--no-poll", action="store_true",
                       help="do not run the FHIR and council pollers")
    serve.set_defaults(handler=cmd_serve)
    mllp = commands.add_parser("mllp", help="the MLLP listener only (S117HUB_MLLP)")
    mllp.add_argument("--metrics", action="store_true",
                      help="also serve /healthz and /metrics (the listener's counters) on "
                           "S117HUB_HTTP; no other endpoint")
    mllp.set_defaults(handler=cmd_mllp)
    worker = commands.add_parser("worker", help="dramatiq workers only (S117HUB_BROKER_URL); "
                                 "scale out by running more")
    worker.add_argument("--threads", type=int, default=4,
                        help="worker threads applying messages and deliveries (default 4)")
    worker.set_defaults(handler=cmd_worker)

    token = commands.add_parser("token", help="issue, list and revoke API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True,
                                          metavar="ACTION")
    create = token_commands.add_parser("create", help="issue a token (printed once)")
    create.add_argument("--role", required=True, choices=ROLES, action="append",
                        help="the token's role; repeat to give one token several roles")
    create.add_argument("--source", help="the source a source-system token submits as")
    create.add_argument("--label", help="who or what holds the token")
    create.set_defaults(handler=cmd_token_create)
    token_commands.add_parser("list", help="list tokens (never their values)"
                              ).set_defaults(handler=cmd_token_list)
    revoke = token_commands.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id", metavar="ID")
    revoke.set_defaults(handler=cmd_token_revoke)
    add_import_csv(commands)
    add_replay(commands)
    add_reconcile(commands)
    _add_demo(commands)
    return parser


def _add_demo(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = commands.add_parser(
        "demo", help="serve the hub with a synthetic partnership playing a scenario through "
        "the real paths (SQLite in a fresh demo directory)",
        description="Recreates DIR, starts fake partner systems, serves the hub (HTTP, MLLP, "
        "in-process worker), plays 16 weeks of synthetic HL7, FHIR, council REST and CSV "
        "traffic through it, prints a login token and what to try, and serves until Ctrl-C.")
    demo.add_argument("--dir", type=Path, default=Path("var/demo"), metavar="DIR",
                      help="the demo directory (default var/demo)")
    demo.add_argument("--keep", action="store_true",
                      help="keep DIR's register from an earlier run and do not replay")
    demo.add_argument("--http", metavar="HOST:PORT",
                      help="where the API binds (default S117HUB_HTTP or 127.0.0.1:8117; "
                      "port 0 picks a free port)")
    demo.add_argument("--mllp", metavar="HOST:PORT",
                      help="where the MLLP listener binds (default S117HUB_MLLP or "
                      "127.0.0.1:2575; port 0 picks a free port)")
    demo.set_defaults(handler=cmd_demo)


def _validation_problem(exc: ValidationError, prefix: str = "") -> str:
    """Where and what, never the value given (a database URL holds a password)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{prefix}{where.upper() if prefix else where}: {first['msg']}"


def _settings(*, check_file: bool) -> Settings | None:
    """The settings, or None after saying in one line what is wrong with them (a traceback
    told an operator less, and a pydantic error quoted the value, passwords included)."""
    try:
        settings = Settings()
        settings.http_bind, settings.mllp_bind  # noqa: B018 - parsed now, not at bind time
    except ValidationError as exc:
        _err(f"bad setting {_validation_problem(exc, 'S117HUB_')}")
        return None
    except ValueError:
        _err("bad setting: S117HUB_HTTP and S117HUB_MLLP are HOST:PORT with a numeric port")
        return None
    if check_file and settings.config_file is not None:
        where = f"config file {settings.config_file}"
        try:
            settings.load_file()
        except OSError as exc:
            _err(f"{where}: cannot be read ({exc.strerror or type(exc).__name__})")
            return None
        except tomllib.TOMLDecodeError as exc:
            _err(f"{where}: not valid TOML ({exc})")
            return None
        except ValidationError as exc:
            _err(f"{where}: {_validation_problem(exc)}")
            return None
        except ValueError as exc:  # JSON
            _err(f"{where}: not valid JSON ({type(exc).__name__})")
            return None
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors and --help: report the code, do not exit
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    settings = _settings(check_file=args.handler is not cmd_demo)  # demo writes its own
    if settings is None:
        return EXIT_USAGE
    configure_logging(settings.log_level, settings.log_json)
    handler: Handler = args.handler
    try:
        return handler(settings, args)
    except SQLAlchemyError as exc:
        _err(f"database error ({type(exc).__name__}); has `s117hub migrate` been run?")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
