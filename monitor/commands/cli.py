"""The ``driftwarden`` command: parses arguments and delegates.

Exit status: 0 success; 1 an error, printed as one line on stderr
(``driftwarden: error: ...``); 2 a usage error (argparse's message and usage);
130 interrupted (Ctrl-C). Every command that reads a configuration takes
``--config FILE``, whose default is the environment variable ``DRIFTWARDEN_CONFIG``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import orjson
from sqlalchemy import make_url

from driftwarden.core.durations import parse_duration
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands import alerting, dead_letters
from driftwarden.monitor.errors import DriftwardenError, InputError
from driftwarden.monitor.ingest.decoding import parse_time
from driftwarden.monitor.service import logs
from driftwarden.monitor.storage import schema

CONFIG_ENV = "DRIFTWARDEN_CONFIG"
"""The environment variable that names the configuration file when ``--config`` is absent."""

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; print errors as one line and return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    _resolve_config(args, os.environ if environ is None else environ)
    try:
        return args.handler(args)
    except DriftwardenError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `driftwarden results ... | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as exc:  # a file named on the command line that cannot be read or written
        return _error(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))


def _error(message: str) -> int:
    print(f"driftwarden: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _version() -> str:
    try:
        return version("driftwarden")
    except PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftwarden",
        description="Watch machine-learning models in production.",
        epilog="Exit status: 0 success, 1 error, 2 usage error, 130 interrupted. "
        f"--config defaults to ${CONFIG_ENV}.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"driftwarden {_version()} (Python {platform.python_version()})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check-config",
        help="validate a configuration file and its reference files, and exit",
    )
    check.add_argument("file", type=Path, nargs="?", metavar="FILE", help="same as --config")
    check.add_argument("--config", type=Path)
    check.add_argument(
        "--skip-references",
        action="store_true",
        help="check the file alone, not the models' reference files",
    )
    check.set_defaults(handler=_check_config)

    baseline = commands.add_parser("baseline", help="fit reference profiles and summarize them")
    baseline.add_argument("--config", type=Path)
    baseline.set_defaults(handler=_baseline)

    database = commands.add_parser("db", help="database schema")
    database_commands = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = database_commands.add_parser("upgrade", help="upgrade the schema to this release")
    current = database_commands.add_parser("current", help="the database's schema revision")
    history = database_commands.add_parser(
        "history", help="the chain of migrations, newest first, with the head marked"
    )
    for action, handler, need in (
        (upgrade, _db_upgrade, "or-storage"),
        (current, _db_current, "or-storage"),
        (history, _db_history, "optional"),
    ):
        target = action.add_mutually_exclusive_group()
        target.add_argument("--config", type=Path)
        target.add_argument("--storage", metavar="URL", help="the database URL instead")
        action.set_defaults(handler=handler, config_need=need)

    replay = commands.add_parser("replay", help="run the pipeline on files (back-testing)")
    replay.add_argument("--config", type=Path)
    replay.add_argument("--predictions", type=Path, required=True)
    replay.add_argument("--labels", type=Path, help="label events (JSON lines or Parquet)")
    replay.add_argument(
        "--label-delay",
        type=_duration,
        metavar="DURATION",
        help="set each label's time to its prediction's time plus this delay",
    )
    replay.add_argument("--storage", metavar="URL", help="default: a temporary SQLite database")
    replay.add_argument("--out", type=Path, required=True)
    replay.set_defaults(handler=_replay)

    results = commands.add_parser("results", help="print stored results as JSON lines")
    results.add_argument("--config", type=Path)
    results.add_argument("--model")
    results.add_argument(
        "--version", dest="model_version", help="only records of this model version"
    )
    results.add_argument(
        "--segment",
        help="only records of this segment (attribute=value); '' for the whole model's",
    )
    results.add_argument("--since", metavar="TIME", help="RFC 3339 time or epoch milliseconds")
    results.set_defaults(handler=_results)

    report = commands.add_parser(
        "report", help="write a model's evidence pages as one self-contained HTML file"
    )
    report.add_argument("--config", type=Path)
    report.add_argument("--model", required=True)
    report.add_argument("--window", type=int, metavar="INDEX", help="one window")
    report.add_argument("--since", metavar="TIME", help="RFC 3339 time or epoch milliseconds")
    report.add_argument("--until", metavar="TIME", help="RFC 3339 time or epoch milliseconds")
    report.add_argument("--out", type=Path, required=True, metavar="FILE.html")
    report.set_defaults(handler=_report)

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path)
    run.add_argument("--log-format", choices=("json", "text"), help="default: text on a terminal")
    run.set_defaults(handler=_run)

    dead_letters.add_commands(commands)
    alerting.add_commands(commands)

    demo = commands.add_parser("demo", help="run the whole path on a synthetic drifting model")
    demo.add_argument("--out", type=Path, default=Path("demo-out"))
    demo.add_argument("--keep-running", action="store_true", help="stay up after the day")
    demo.set_defaults(handler=_demo)

    for command in _commands(parser):
        for action in command._actions:
            if action.dest == "config":
                action.metavar = "FILE"
                action.help = f"the configuration file (default: ${CONFIG_ENV})"
                command.set_defaults(usage_error=command.error)
    return parser


def _commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every runnable (sub)command's parser."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield parser
        return
    for child in groups[0].choices.values():
        yield from _commands(child)


def _resolve_config(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Settle ``args.config``: the positional FILE of check-config, ``--config``, or else
    ``$DRIFTWARDEN_CONFIG``; a command that needs one and has none is a usage error (2)."""
    usage_error = getattr(args, "usage_error", None)
    if usage_error is None:  # a command without a configuration (demo)
        return
    if getattr(args, "file", None) is not None:
        if args.config is not None and args.config != args.file:
            usage_error("give the configuration once: FILE or --config")
        args.config = args.file
    if args.config is None and getattr(args, "storage", None) is None and environ.get(CONFIG_ENV):
        args.config = Path(environ[CONFIG_ENV])
    need = getattr(args, "config_need", "required")
    if args.config is None and (
        need == "required" or (need == "or-storage" and args.storage is None)
    ):
        also = " or --storage" if need == "or-storage" else ""
        usage_error(f"the following arguments are required: --config{also} (or set {CONFIG_ENV})")


def _check_config(args: argparse.Namespace) -> int:
    from driftwarden.monitor.windows.profile import check_reference

    loaded = configuration.load(args.config)
    summary = f"{len(loaded.models)} model(s): {', '.join(loaded.models)}"
    if args.skip_references:
        print(f"{args.config}: valid ({summary}); reference files not checked")
        return EXIT_OK
    rows = {name: check_reference(name, model) for name, model in loaded.models.items()}
    references = ", ".join(f"{name} {count:,} rows" for name, count in rows.items())
    print(f"{args.config}: valid ({summary}); references readable ({references})")
    return EXIT_OK


def _baseline(args: argparse.Namespace) -> int:
    from driftwarden.monitor.commands.baseline import describe
    from driftwarden.monitor.pipeline.building import load_reference

    loaded = configuration.load(args.config)
    store = _store(loaded.storage.url, args.config)
    for name, model in loaded.models.items():
        reference = load_reference(name, model, store)
        print(describe(reference.profile, reference.fitted))
    return EXIT_OK


def _database(args: argparse.Namespace) -> tuple[str, str]:
    """The database URL of a ``db`` command, and the upgrade command that names it the same
    way (its password hidden)."""
    if args.storage is not None:
        shown = make_url(args.storage).render_as_string(hide_password=True)
        return args.storage, f"driftwarden db upgrade --storage {shown}"
    return configuration.load(args.config).storage.url, (
        f"driftwarden db upgrade --config {args.config}"
    )


def _db_upgrade(args: argparse.Namespace) -> int:
    url, _ = _database(args)
    engine = storage.create(url)
    try:
        head = storage.upgrade(engine)
    finally:
        engine.dispose()
    print(f"database schema at revision {head}")
    return EXIT_OK


def _db_current(args: argparse.Namespace) -> int:
    url, hint = _database(args)
    engine = storage.create(url)
    try:
        current = storage.current_revision(engine)
    finally:
        engine.dispose()
    head = storage.head_revision()
    if current == head:
        print(f"{current} (head)")
    elif current is None:
        print(f"none: the database has no schema; this release needs {head}: run `{hint}`")
    else:
        print(f"{current}: this release needs {head}: run `{hint}`")
    return EXIT_OK


def _db_history(args: argparse.Namespace) -> int:
    current = None
    if args.config is not None or args.storage is not None:
        url, _ = _database(args)
        engine = storage.create(url)
        try:
            current = storage.current_revision(engine)
        finally:
            engine.dispose()
    for migration in reversed(schema.history()):
        marks = {"head": migration.head, "current": migration.revision == current}
        shown = "".join(f" ({mark})" for mark, on in marks.items() if on)
        before = migration.down_revision or "<base>"
        print(f"{before} -> {migration.revision}{shown}, {migration.description}")
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    from driftwarden.monitor.commands.replay import replay

    loaded = configuration.load(args.config)
    outcome = replay(
        loaded,
        args.predictions,
        args.out,
        labels=args.labels,
        label_delay=args.label_delay,
        storage_url=args.storage,
        progress=sys.stderr,
    )
    drifted = sum(1 for r in outcome.results.values() if r.drift)
    rate = outcome.events / outcome.seconds if outcome.seconds else 0.0
    print(
        f"replayed {outcome.events:,} events in {outcome.seconds:.1f} s ({rate:,.0f}/s): "
        f"{outcome.windows} windows, {len(outcome.results)} results ({drifted} drift), "
        f"{len(outcome.dead_letters)} dead letters, {outcome.ignored} ignored; "
        f"written to {args.out}"
    )
    channels = outcome.per_channel()
    if channels:
        sent = ", ".join(f"{name} {count}" for name, count in sorted(channels.items()))
        print(f"notifications (alerts.jsonl): {sent}")
    elif outcome.notifications:
        print("notifications (alerts.jsonl): none sent, all suppressed or failed")
    return EXIT_OK


def _results(args: argparse.Namespace) -> int:
    loaded = configuration.load(args.config)
    since = _time(args.since, "--since")
    store = _store(loaded.storage.url, args.config)
    out = sys.stdout.buffer
    records = store.results(
        model=args.model, since=since, version=args.model_version, segment=args.segment
    )
    for record in records:
        out.write(orjson.dumps(record.to_json()) + b"\n")
    out.flush()
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from driftwarden.monitor.commands.report import write_report

    if args.window is not None and (args.since is not None or args.until is not None):
        raise InputError("give --window or --since/--until, not both")
    loaded = configuration.load(args.config)
    store = _store(loaded.storage.url, args.config)
    covered = write_report(
        store.engine,
        args.model,
        args.out,
        window=args.window,
        since=_time(args.since, "--since"),
        until=_time(args.until, "--until"),
    )
    print(f"wrote {args.out}: {args.model}, {covered} windows")
    return EXIT_OK


def _time(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    millis = parse_time(text)
    if millis is None:
        raise InputError(f"{option}: expected an RFC 3339 time or epoch milliseconds, got {text!r}")
    return millis


def _run(args: argparse.Namespace) -> int:
    from driftwarden.monitor.service.daemon import Daemon

    logs.configure(None if args.log_format is None else args.log_format == "json")
    loaded = configuration.load(args.config)
    daemon = Daemon(loaded, config_path=args.config)
    daemon.install_signal_handlers()
    return daemon.run()


def _demo(args: argparse.Namespace) -> int:
    from driftwarden.monitor.commands.demo import run_demo

    return run_demo(args.out, keep_running=args.keep_running)


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _store(url: str, config_path: Path) -> storage.Store:
    engine = storage.create(url)
    storage.require_current(engine, f"driftwarden db upgrade --config {config_path}")
    return storage.Store(engine)


if __name__ == "__main__":
    sys.exit(main())
