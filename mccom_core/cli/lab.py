"""``mccom lab``: JupyterLab on the project, notebooks opening as notebooks on double-click."""

from __future__ import annotations

from mccom_core.cli._defaults import default

LAB = "mccom_core.lab.jupyterlab:LabConfig"


def register(sub) -> None:
    p = sub.add_parser("lab", help="start JupyterLab on the project; notebooks open as notebooks on double-click",
                       description="Sets jupytext's notebook view as the default viewer of .py files in this "
                                   "environment's JupyterLab (a settings override under sys.prefix), then starts "
                                   "JupyterLab. Arguments after -- go to JupyterLab.")
    p.add_argument("--root", default=default(LAB, "root"), help="folder to show (default: the project root)")
    p.add_argument("--port", type=int, default=default(LAB, "port"), help="port (default: %(default)s)")
    p.add_argument("--ip", default=default(LAB, "ip"), help="address to listen on (default: %(default)s)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--setup-only", action="store_true",
                   help="only install the default-viewer setting and print where it is; do not start JupyterLab")
    p.add_argument("extra", nargs="*", help="further JupyterLab options, after --")
    p.set_defaults(func=run)


def run(args) -> int:
    import subprocess

    from mccom_core.lab.jupyterlab import LabConfig, ensure_notebook_viewer, lab_command

    path = ensure_notebook_viewer()
    print(f"JupyterLab opens .py notebooks as notebooks (setting: {path})")
    if args.setup_only:
        return 0
    cmd = lab_command(LabConfig(root=args.root, port=args.port, ip=args.ip, open_browser=not args.no_browser),
                      tuple(args.extra))
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0
