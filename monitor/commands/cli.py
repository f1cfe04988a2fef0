"""The ``driftwarden`` command: parses arguments and delegates."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import orjson

from driftwarden.core.durations import parse_duration
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands import alerting, dead_letters
from driftwarden.monitor.errors import DriftwardenError, InputError
from driftwarden.monitor.ingest.decoding import parse_time
from driftwarden.monitor.service import logs


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; print errors as one line and return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except DriftwardenError as exc:
        print(f"driftwarden: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftwarden", description="Watch machine-learning models in production."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=_check_config)

    baseline = commands.add_parser("baseline", help="fit reference profiles and summarize them")
    baseline.add_argument("--config", type=Path, required=True)
    baseline.set_defaults(handler=_baseline)

    database = commands.add_parser("db", help="database schema")
    database_commands = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = database_commands.add_parser("upgrade", help="upgrade the schema to this release")
    target = upgrade.add_mutually_exclusive_group(required=True)
    target.add_argument("--config", type=Path)
    target.add_argument("--storage", metavar="URL")
    upgrade.set_defaults(handler=_db_upgrade)

    replay = commands.add_parser("replay", help="run the pipeline on files (back-testing)")
    replay.add_argument("--config", type=Path, required=True)
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
    results.add_argument("--config", type=Path, required=True)
    results.add_argument("--model")
    results.add_argument("--since", metavar="TIME", help="RFC 3339 time or epoch milliseconds")
    results.set_defaults(handler=_results)

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument("--log-format", choices=("json", "text"), help="default: text on a terminal")
    run.set_defaults(handler=_run)

    dead_letters.add_commands(commands)
    alerting.add_commands(commands)

    demo = commands.add_parser("demo", help="run the whole path on a synthetic drifting model")
    demo.add_argument("--out", type=Path, default=Path("demo-out"))
    demo.add_argument("--keep-running", action="store_true", help="stay up after the day")
    demo.set_defaults(handler=_demo)
    return parser


def _check_config(args: argparse.Namespace) -> int:
    loaded = configuration.load(args.file)
    print(f"{args.file}: valid ({len(loaded.models)} model(s): {', '.join(loaded.models)})")
    return 0


def _baseline(args: argparse.Namespace) -> int:
    from driftwarden.monitor.commands.baseline import describe
    from driftwarden.monitor.pipeline.building import load_profile

    loaded = configuration.load(args.config)
    store = _store(loaded.storage.url, args.config)
    for name, model in loaded.models.items():
        profile, fitted = load_profile(name, model, store)
        print(describe(profile, fitted))
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    url = args.storage or configuration.load(args.config).storage.url
    engine = storage.create(url)
    head = storage.upgrade(engine)
    print(f"database schema at revision {head}")
    return 0


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
    return 0


def _results(args: argparse.Namespace) -> int:
    loaded = configuration.load(args.config)
    since = None
    if args.since is not None:
        since = parse_time(args.since)
        if since is None:
            raise InputError(
                f"--since: expected an RFC 3339 time or epoch milliseconds, got {args.since!r}"
            )
    store = _store(loaded.storage.url, args.config)
    out = sys.stdout.buffer
    for record in store.results(model=args.model, since=since):
        out.write(orjson.dumps(record.to_json()) + b"\n")
    out.flush()
    return 0


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
