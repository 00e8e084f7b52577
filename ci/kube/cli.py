"""`hilci cluster` (nodes, GPUs, Jetsons and rigs: capacity, holders, conflicts) and `hilci cluster preflight`
(can each pod template be scheduled, where, and if not, why)."""

from __future__ import annotations

import argparse

from hilci.kube import cluster, preflight


def register(subparsers) -> None:
    p = subparsers.add_parser("cluster", help="nodes, GPUs, Jetsons and rigs: capacity, holders, conflicts; "
                                              "`cluster preflight`: can each pod template be scheduled")
    _connection_options(p, None)
    p.add_argument("--namespace", default="hilci-ci",
                   help="the CI pods' namespace: events, and preflight's Secret checks (default: %(default)s)")
    p.add_argument("--period", default="24h", help="busy share over this period (default: %(default)s)")
    sub = p.add_subparsers(dest="cluster_command", metavar="[preflight]")
    pre = sub.add_parser("preflight", help="for each pod template: can it be scheduled, where, and if not, why")
    _connection_options(pre, argparse.SUPPRESS)  # accepted after `preflight` too, without undoing the parent's
    pre.add_argument("--namespace", default=argparse.SUPPRESS, help="the CI pods' namespace (default: hilci-ci)")
    pre.add_argument("--root", default=".", help="the repository (its podtemplates/) (default: %(default)s)")
    pre.set_defaults(func=_cmd_preflight)
    p.set_defaults(func=_cmd_cluster)


def _connection_options(parser, default) -> None:
    parser.add_argument("--kubeconfig", default=default,
                        help="kubeconfig file (default: KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--context", default=default, help="kubeconfig context")


def _api_client(args):
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    from hilci.errors import UsageError

    try:
        return config.new_client_from_config(config_file=args.kubeconfig, context=args.context)
    except (ConfigException, OSError) as exc:
        raise UsageError(f"kubeconfig: {exc}") from None


def _api_failure(exc: Exception) -> int:
    """One line for an API server that is unreachable or says no (RBAC): exit 2."""
    import sys

    from kubernetes import client

    if isinstance(exc, client.ApiException):
        hint = " (RBAC: deploy/cluster-view-rbac.yaml grants what hilci cluster reads)" if exc.status == 403 else ""
        print(f"hilci: error: the API server answered {exc.status} {exc.reason}{hint}", file=sys.stderr)
    else:
        print(f"hilci: error: cannot reach the API server ({type(exc).__name__})", file=sys.stderr)
    return 2


def _cmd_cluster(args) -> int:
    """Exit 0 when the cluster is sound, 1 when a rig or GPU is double-allocated."""
    from kubernetes import client

    from hilci.errors import UsageError

    try:
        period = cluster.parse_period(args.period)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    api_client = _api_client(args)
    try:
        core = client.CoreV1Api(api_client)
        view = cluster.collect(core)
        recs = cluster.records(core, args.namespace, period)
    except Exception as exc:  # ApiException and urllib3's connection errors: one line, not a traceback
        return _api_failure(exc)
    print(cluster.format_view(view))
    print(cluster.format_records(recs, period))
    return 1 if view.conflicts or any(r.doubles for r in recs) else 0


def _cmd_preflight(args) -> int:
    """Exit 0 when every pod template can be scheduled, 1 when one cannot, 2 when the cluster cannot be read."""
    from pathlib import Path

    from hilci.kube import setupcheck

    api_client = _api_client(args)
    templates = preflight.read_templates(Path(args.root))
    try:
        nodes, classes = preflight.read_cluster(api_client)
        facts = setupcheck.read_facts(api_client, args.namespace, templates)
    except Exception as exc:
        return _api_failure(exc)
    verdicts = preflight.check(templates, nodes, classes)
    print(preflight.format_verdicts(verdicts, len(nodes)))
    findings = (setupcheck.account_findings(facts) + setupcheck.token_findings(facts)
                + setupcheck.secret_findings(templates, facts)
                + setupcheck.image_findings(templates, verdicts, nodes, facts)
                + setupcheck.runtime_findings(templates, nodes))
    print(setupcheck.format_findings(findings))
    return 0 if all(v.schedulable for v in verdicts) and all(f.ok for f in findings) else 1
