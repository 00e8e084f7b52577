"""Jenkins's testReport JSON as hilci's CaseRecords, so `hilci results` reads measurements like the report does.

Jenkins (junit plugin, `keepProperties: true`) exports each case's `<properties>` as a `properties` object;
they are grouped back with `hilci.results.measurements.parse_properties`, the one spelling of measurements.
"""

from __future__ import annotations

from hilci.results.junit import ERROR, FAILED, PASSED, SKIPPED, CaseRecord


def cases_from_report(report: dict) -> list[CaseRecord]:
    """Every case of a Jenkins testReport (`suites[].cases[]`) as a CaseRecord."""
    records = []
    for suite in report.get("suites") or []:
        for case in suite.get("cases") or []:
            if case.get("skipped"):
                status, message = SKIPPED, case.get("skippedMessage") or ""
            elif case.get("errorDetails") is not None or case.get("errorStackTrace") is not None:
                status = FAILED if case.get("status") in ("FAILED", "REGRESSION") else ERROR
                message = case.get("errorDetails") or (case.get("errorStackTrace") or "").strip().splitlines()[0:1]
                message = message if isinstance(message, str) else "".join(message)
            else:
                status, message = PASSED, ""
            props = sorted((case.get("properties") or {}).items())
            records.append(CaseRecord(suite=suite.get("name") or "", classname=case.get("className") or "",
                                      name=case.get("name") or "", time=float(case.get("duration") or 0),
                                      status=status, message=message, text=case.get("errorStackTrace") or "",
                                      properties=props))
    return records


def format_report(report: dict) -> str:
    """Counts, then each failure with its message and measurements, then every measurement in a table."""
    cases = cases_from_report(report)
    failed = [c for c in cases if c.status in (FAILED, ERROR)]
    lines = [f"tests: {len(cases)}  passed: {report.get('passCount', sum(c.status == PASSED for c in cases))}  "
             f"failed: {report.get('failCount', len(failed))}  skipped: "
             f"{report.get('skipCount', sum(c.status == SKIPPED for c in cases))}"]
    for case in failed:
        lines.append(f"FAIL {case.suite} :: {case.classname}.{case.name}: {case.message}")
        for name, fields in case.measurements.items():
            lines.append(f"     {name} = {_value(fields)}  [{fields.get('verdict', '')}]{_limits(fields)}")
    rows = [(c, name, fields) for c in cases for name, fields in c.measurements.items()]
    if rows:
        lines.append("measurements:")
        for case, name, fields in rows:
            stats = "  ".join(f"{k}={fields[k]}" for k in ("n", "p50", "p99", "max", "jitter") if k in fields)
            lines.append(f"  {fields.get('verdict', ''):4}  {name:28} {_value(fields):>16}{_limits(fields)}"
                         f"{'  ' + stats if stats else ''}  ({case.suite})")
    return "\n".join(lines)


def _value(fields: dict[str, str]) -> str:
    unit = fields.get("unit", "")
    return f"{fields.get('value', '?')}{' ' + unit if unit else ''}"


def _limits(fields: dict[str, str]) -> str:
    bounds = []
    if "low" in fields:
        bounds.append(f">= {fields['low']}")
    if "high" in fields:
        bounds.append(f"<= {fields['high']}")
    return f"  (limit {' and '.join(bounds)})" if bounds else ""
