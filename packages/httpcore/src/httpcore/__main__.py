"""``python -m httpcore``: the command line (see ``httpcore._cli`` and docs/cli.md)."""

if __name__ == "__main__":
    from httpcore._cli import main

    raise SystemExit(main())
