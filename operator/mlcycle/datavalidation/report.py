"""The validation report: a JSON document and a self-contained HTML page (a table of the expectations with
pass/fail and what was observed, a chart of each column's missing and invalid shares, and the drift charts
of serving's drift report for the compared columns; PNGs embedded as base64, so it opens without a network)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

from mlcycle.datavalidation.expectations import FAILED, PASSED, ColumnSummary, Outcome, share
from mlcycle.drift import report as drift_report
from mlcycle.drift.stats import DatasetResult, Sketch

DRIFT_CHART_LIMIT = 12
_RESULT_STYLE = {"Passed": ("#2e7d32", "Data validated"), "DataValidationFailed": ("#c0392b", "Data validation failed")}
_TAG = {PASSED: ("no", "passed"), FAILED: ("yes", "failed")}
_EXTRA_CSS = ".skip{background:#8a8f98} tr.failed td{background:#fff5f5}"


def report_document(*, result: str, message: str, check_time: str, context: Mapping[str, Any],
                    outcomes: Sequence[Outcome], columns: Mapping[str, ColumnSummary],
                    drift: DatasetResult | None = None, references: Mapping[str, Sketch] | None = None,
                    currents: Mapping[str, Sketch] | None = None) -> dict[str, Any]:
    """report.json. `context` says what was validated (trainingJob, dataset, reference)."""
    doc: dict[str, Any] = {
        "result": result, "message": message, "checkTime": check_time, **context,
        "expectations": [o.to_json() for o in outcomes],
        "failures": [o.expectation for o in outcomes if o.result == FAILED],
        "columns": {name: c.to_json() for name, c in columns.items()},
    }
    if drift is not None and references is not None and currents is not None:
        doc["drift"] = {
            "share": drift.share, "driftShare": drift.drift_share, "driftedColumns": drift.drifted,
            "columns": {f.feature: drift_report.feature_entry(f, references[f.feature], currents[f.feature])
                        for f in drift.features},
        }
    return doc


def shares_png(columns: Mapping[str, ColumnSummary]) -> bytes | None:
    """Horizontal bars: per column with expectations, the share of rows missing and of values invalid."""
    checked = [c for c in columns.values() if c.expectation is not None][:40]
    if not checked:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = [c.name for c in checked]
    missing = [share(c.missing, c.rows) for c in checked]
    invalid = [share(max(c.out_of_range, c.not_allowed), c.present) for c in checked]
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.32 * len(names)), dpi=110)
    y = range(len(names))
    ax.barh([i - 0.2 for i in y], missing, 0.4, color=drift_report.REFERENCE_COLOR, label="missing (of rows)")
    ax.barh([i + 0.2 for i in y], invalid, 0.4, color=drift_report.CURRENT_COLOR,
            label="outside range / not allowed (of values)")
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(0.05, *missing, *invalid) * 1.1)
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}" if v >= 0.01 or v == 0 else f"{v:.1%}")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def render_html(doc: Mapping[str, Any], columns: Mapping[str, ColumnSummary],
                drift_charts: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The page for a report document; `drift_charts` maps compared columns to `drift.report.distribution`."""
    e = drift_report.escaped
    color, words = _RESULT_STYLE.get(doc["result"], ("#555", doc["result"]))
    dataset, reference = doc.get("dataset") or {}, doc.get("reference") or {}
    facts = [
        ("Training job", doc.get("trainingJob")),
        ("Dataset", f"{dataset.get('uri')} ({dataset.get('format')})" if dataset else None),
        ("Rows", dataset.get("rows")),
        ("Digest", dataset.get("digest")),
        ("Drift reference", f"{reference.get('modelVersion')} ({reference.get('alias')}): {reference.get('uri')}"
         if reference.get("uri") else None),
    ]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Data validation {e(doc.get('trainingJob') or '')}</title>"
        f"<style>{drift_report.CSS}{_EXTRA_CSS}</style></head><body><main>",
        f"<h1>Data validation: {e(doc.get('trainingJob') or dataset.get('uri') or '')}</h1>",
        f"<div class='sub'>checked {e(doc['checkTime'])}</div>",
        f"<div class='banner' style='background:{color}'><b>{e(words)}</b>"
        f"<span>{e(doc.get('message', ''))}</span></div>",
        "<div class='facts'>",
        *(f"<div class='fact'><small>{k}</small><div>{e(v)}</div></div>" for k, v in facts if v is not None),
        "</div>",
    ]
    outcomes = sorted(doc["expectations"], key=lambda o: o["result"] != FAILED)
    rows = "".join(
        f"<tr class='{o['result']}'><td>{e(o['expectation'])}</td><td>{e(o['expected'])}</td>"
        f"<td>{e(o['observed'])}</td><td><span class='tag {_TAG.get(o['result'], ('skip',))[0]}'>"
        f"{e(_TAG.get(o['result'], ('', o['result']))[1])}</span></td><td>{e(o['message'])}</td></tr>"
        for o in outcomes
    )
    parts.append("<h2>Expectations</h2><table><tr><th>Expectation</th><th>Expected</th><th>Observed</th>"
                 f"<th>Result</th><th>Details</th></tr>{rows}</table>")
    png = shares_png(columns)
    if png:
        parts.append(f"<h2>Missing and invalid values</h2><div class='card'>{_img(png, 'shares per column')}</div>")
    profile = "".join(
        f"<tr><td>{e(name)}</td><td>{e(c['type'])}</td><td class='num'>{e(c['rows'])}</td>"
        f"<td class='num'>{e(c['missing'])}</td><td class='num'>{e(c['min'])}</td>"
        f"<td class='num'>{e(c['max'])}</td></tr>"
        for name, c in doc["columns"].items()
    )
    parts.append("<h2>Columns</h2><table><tr><th>Column</th><th>Type</th><th>Rows</th><th>Missing</th><th>Min</th>"
                 f"<th>Max</th></tr>{profile}</table>")
    drift = doc.get("drift")
    if drift and drift_charts:
        order = sorted(drift["columns"], key=lambda c: (not drift["columns"][c]["drifted"], c))
        parts.append("<h2>Drift against the reference</h2><div class='cards'>")
        for c in order[:DRIFT_CHART_LIMIT]:
            entry = drift["columns"][c]
            chart = drift_report.chart_png(c, entry, drift_charts[c])
            parts.append(f"<div class='card{' drifted' if entry['drifted'] else ''}'>"
                         f"{_img(chart, f'{c}: reference vs dataset')}</div>")
        parts.append("</div>")
    parts.append("<footer>mlcycle validate-data. Missing values are counted against all rows, values outside the "
                 "range or not allowed against the column's present values. Drift uses the statistics of "
                 "mlcycle drift (reference: the data that trained the alias's version).</footer></main></body></html>")
    return "".join(parts)
