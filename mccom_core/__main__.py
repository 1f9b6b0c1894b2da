"""``python -m mccom_core`` is the ``mccom`` command."""

from mccom_core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
