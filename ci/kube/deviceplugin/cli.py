"""`hilci deviceplugin`: run the rig device plugin on a Jetson node (the DaemonSet in deploy/ runs this)."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("deviceplugin", help="advertise this node's rigs to the kubelet as hilci.dev/rig",
                              description="Serve the kubelet Device Plugin API v1beta1 for the rig YAMLs given "
                                          "(files, or folders of *.yaml): one hilci.dev/rig device per rig, "
                                          "healthy while every device of the rig answers.")
    p.add_argument("rigs", nargs="*", metavar="RIG", help="rig YAML, or a folder of them (e.g. /etc/hilci/rigs)")
    p.add_argument("--check", action="store_true",
                   help="the liveness probe: exit 0 when the plugin serving --state-dir is alive (its heartbeat "
                        "and every rig's last probe are recent), 1 with the reason when it is wedged")
    p.add_argument("--socket-dir", default="/var/lib/kubelet/device-plugins",
                   help="the kubelet's device-plugins folder (default: %(default)s)")
    p.add_argument("--state-dir", default="/run/hilci",
                   help="host folder shared with the pods: allocated rig files and device locks "
                        "(default: %(default)s)")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="probe each rig this often (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true", help="also log probes skipped while a test holds a rig")
    p.set_defaults(func=_cmd_deviceplugin)


def rig_files(items: list[str]) -> list[Path]:
    """Files as given; folders expand to their *.yaml, sorted. A missing path is a usage error."""
    from hilci.errors import UsageError

    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        elif path.exists():
            files.append(path)
        else:
            raise UsageError(f"{item}: no such rig file or folder")
    if not files:
        raise UsageError(f"{', '.join(items)}: no rig YAML found")
    return files


def _cmd_deviceplugin(args) -> int:
    import logging
    import signal

    from hilci.errors import UsageError

    if args.check:
        from hilci.kube.deviceplugin import liveness

        problem = liveness.check(Path(args.state_dir))
        print(f"hilci deviceplugin: {problem}" if problem else "hilci deviceplugin: alive")
        return 1 if problem else 0
    if not args.rigs:
        raise UsageError("give the rig YAMLs or their folder (e.g. /etc/hilci/rigs), or --check")
    if args.interval <= 0:
        raise UsageError(f"--interval {args.interval:g}: must be above 0")
    try:
        from hilci.kube.deviceplugin.server import RigDevicePlugin
    except ImportError as exc:
        raise UsageError(f"the device plugin needs grpcio and protobuf ({exc}): "
                         "pip install 'hilci[cluster]'") from None
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        plugin = RigDevicePlugin(rig_files(args.rigs), Path(args.socket_dir), Path(args.state_dir),
                                 interval_s=args.interval)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for sig in (signal.SIGTERM, signal.SIGINT):  # stop serving, remove our socket, exit 0
        signal.signal(sig, lambda *_: plugin.stop())
    plugin.run()
    return 0
