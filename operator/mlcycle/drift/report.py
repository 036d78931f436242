"""The drift check's report: a JSON document and a self-contained HTML page with one chart per feature
(reference vs current distribution, matplotlib PNGs embedded as base64: it opens without a network)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlcycle.drift.stats import DISCRETE_JS_LIMIT, DatasetResult, FeatureResult, Sketch, count_below

REFERENCE_COLOR = "#4C78A8"
CURRENT_COLOR = "#F58518"
_HIST_BINS = 40
CHART_LIMIT = 60  # charts per page (drifted features first); report.json has every feature
_RESULT_STYLE = {  # result -> (banner colour, words)
    "DriftDetected": ("#c0392b", "Drift detected"),
    "NoDrift": ("#2e7d32", "No drift"),
    "InsufficientData": ("#b26a00", "Insufficient data"),
    "ReferenceMissing": ("#b26a00", "Reference missing"),
    "Failed": ("#6d4c41", "Check failed"),
}


def feature_entry(result: FeatureResult, reference: Sketch, current: Sketch) -> dict[str, Any]:
    return {
        "method": result.method,
        "statistic": json_number(result.statistic),
        "pValue": json_number(result.p_value),
        "threshold": result.threshold,
        "drifted": result.drifted,
        "score": result.score,
        "reference": {**reference.summary(), "exact": reference.exact},
        "current": current.summary(),
    }


def report_document(
    *,
    result: str,
    message: str,
    check_time: str,
    context: Mapping[str, Any],
    dataset: DatasetResult | None = None,
    references: Mapping[str, Sketch] | None = None,
    currents: Mapping[str, Sketch] | None = None,
) -> dict[str, Any]:
    """The JSON report. `context` carries where the data came from (title, logs, reference, window...)."""
    doc: dict[str, Any] = {"result": result, "message": message, "checkTime": check_time, **context}
    if dataset is not None and references is not None and currents is not None:
        doc |= {
            "score": dataset.score,
            "share": dataset.share,
            "driftShare": dataset.drift_share,
            "driftedFeatures": dataset.drifted,
            "features": {
                f.feature: feature_entry(f, references[f.feature], currents[f.feature]) for f in dataset.features
            },
        }
    return doc


def json_number(value: float | None) -> float | str | None:
    """JSON has no infinity: write it as a string."""
    if value is None or np.isfinite(value):
        return value
    return "inf" if value > 0 else "-inf"


# --- charts --------------------------------------------------------------------------------------


def distribution(reference: Sketch, current: Sketch) -> dict[str, Any]:
    """What a chart shows: shares per value for a column with few values, else densities on common
    equal-width bins over the central 99% of both."""
    if reference.exact and np.count_nonzero(reference.support()) <= DISCRETE_JS_LIMIT:
        keep = reference.support()
        values = reference.cuts[keep].tolist()
        ref = (reference.at[keep] / reference.count).tolist()
        cur = (current.at[keep] / current.count).tolist()
        rest = 1.0 - sum(cur)
        if rest > 1e-12:
            values.append("other")
            ref.append(0.0)
            cur.append(rest)
        return {"kind": "bars", "values": values, "reference": ref, "current": cur}
    lo = min(_quantile(reference, 0.005), _quantile(current, 0.005))
    hi = max(_quantile(reference, 0.995), _quantile(current, 0.995))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, _HIST_BINS + 1)

    def density(s: Sketch) -> list[float]:
        counts = np.diff(count_below(s, edges))
        return (counts / (s.count * np.diff(edges))).tolist()

    return {"kind": "histogram", "edges": edges.tolist(), "reference": density(reference), "current": density(current)}


def _quantile(s: Sketch, q: float) -> float:
    """Roughly the q-quantile: the first cut with at least q of the values at or below it (the extremes
    for values beyond the cuts)."""
    cumulative = (s.below() + s.at) / s.count
    if s.cells[0] / s.count >= q:
        return s.minimum
    index = int(np.searchsorted(cumulative, q))
    return float(s.cuts[index]) if index < s.cuts.size else s.maximum


def chart_png(feature: str, entry: Mapping[str, Any], chart: Mapping[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 2.7), dpi=110)
    if chart["kind"] == "bars":
        labels = [f"{v:g}" if isinstance(v, float) else str(v) for v in chart["values"]]
        x = np.arange(len(labels))
        ax.bar(x - 0.2, chart["reference"], 0.4, color=REFERENCE_COLOR, label="reference")
        ax.bar(x + 0.2, chart["current"], 0.4, color=CURRENT_COLOR, label="current")
        ax.set_xticks(x, labels)
        ax.set_ylabel("share of rows")
    else:
        edges = np.asarray(chart["edges"])
        ax.stairs(chart["reference"], edges, fill=True, color=REFERENCE_COLOR, alpha=0.45, label="reference")
        ax.stairs(chart["current"], edges, color=CURRENT_COLOR, linewidth=1.8, label="current")
        ax.set_ylabel("density")
    verdict = "drifted" if entry["drifted"] else "no drift"
    ax.set_title(f"{feature}: {entry['method']} {fmt(entry['statistic'])} ({verdict})", fontsize=10, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


# --- HTML ----------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def escaped(value: Any) -> str:
    return html.escape(fmt(value) if not isinstance(value, str) else value)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1f2328}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} .sub{color:#57606a;font-size:13px;margin-bottom:16px}
.banner{color:#fff;border-radius:8px;padding:14px 18px;margin-bottom:16px}
.banner b{font-size:18px;display:block;margin-bottom:4px} .banner span{font-size:14px;opacity:.95}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:10px;margin-bottom:18px}
.fact{background:#fff;border-radius:8px;padding:10px 14px;box-shadow:0 1px 2px #0001}
.fact small{color:#57606a;display:block;font-size:12px} .fact div{font-size:15px;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;background:#fff;border-radius:8px;overflow:hidden;box-shadow:0 1px 2px #0001}
th,td{padding:7px 12px;text-align:left;font-size:13px;border-bottom:1px solid #eaecef}
th{background:#f0f2f5;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
.tag{border-radius:10px;padding:1px 9px;font-size:12px;color:#fff}
.yes{background:#c0392b} .no{background:#2e7d32}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(540px,1fr));gap:14px;margin-top:18px}
.card{background:#fff;border-radius:8px;padding:12px;box-shadow:0 1px 2px #0001}
.card.drifted{border-left:4px solid #c0392b} .card img{width:100%;height:auto}
.card table{box-shadow:none;margin-top:6px} .card td,.card th{font-size:12px;padding:4px 8px}
footer{color:#57606a;font-size:12px;margin-top:22px}
"""


def render_html(doc: Mapping[str, Any], charts: Mapping[str, Mapping[str, Any]]) -> str:
    """The page for a report document; `charts` maps features to `distribution(...)` data."""
    color, words = _RESULT_STYLE.get(doc["result"], ("#555", doc["result"]))
    window = doc.get("window") or {}
    facts = [
        ("Model version", doc.get("modelVersion")),
        ("Method", doc.get("method")),
        ("Drifted features", f"{len(doc['driftedFeatures'])} of {len(doc['features'])}: {doc['share']:.0%} "
         f"(the service drifts at ≥ {doc['driftShare']:.0%})" if "share" in doc else None),
        ("Window", f"{fmt(window.get('rows'))} of {fmt(window.get('size'))} newest rows" if window else None),
        ("Logged between", f"{window['from']} and {window['to']}".replace("T", " ") if window.get("from") else None),
        ("Reference", f"{doc.get('reference')} ({fmt(doc.get('referenceRows'))} rows)"
         if doc.get("referenceRows") else doc.get("reference")),
        ("Request logs", doc.get("logs")),
    ]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Drift report {html.escape(str(doc.get('title', '')))}</title><style>{CSS}</style></head><body><main>",
        f"<h1>Drift report: {html.escape(str(doc.get('title', '')))}</h1>",
        f"<div class='sub'>checked {html.escape(doc['checkTime'])}</div>",
        f"<div class='banner' style='background:{color}'><b>{html.escape(words)}</b>"
        f"<span>{html.escape(doc.get('message', ''))}</span></div>",
        "<div class='facts'>",
        *(f"<div class='fact'><small>{k}</small><div>{escaped(v)}</div></div>" for k, v in facts if v is not None),
        "</div>",
    ]
    features: Mapping[str, Any] = doc.get("features") or {}
    if features:
        order = sorted(features, key=lambda f: (not features[f]["drifted"], f))
        rows = "".join(
            f"<tr><td>{html.escape(f)}</td><td>{escaped(features[f]['method'])}</td>"
            f"<td class='num'>{escaped(features[f]['statistic'])}</td>"
            f"<td class='num'>{escaped(features[f]['pValue'])}</td>"
            f"<td class='num'>{escaped(features[f]['threshold'])}</td>"
            f"<td><span class='tag {'yes' if features[f]['drifted'] else 'no'}'>"
            f"{'drifted' if features[f]['drifted'] else 'ok'}</span></td></tr>"
            for f in order
        )
        parts.append(
            "<table><tr><th>Feature</th><th>Method</th><th>Statistic</th><th>p-value</th><th>Threshold</th>"
            f"<th>Drift</th></tr>{rows}</table><div class='cards'>"
        )
        for f in order[:CHART_LIMIT]:
            entry = features[f]
            png = base64.b64encode(chart_png(f, entry, charts[f])).decode()
            ref, cur = entry["reference"], entry["current"]
            stats_rows = "".join(
                f"<tr><td>{k}</td><td class='num'>{escaped(ref.get(k))}</td>"
                f"<td class='num'>{escaped(cur.get(k))}</td></tr>"
                for k in ("count", "mean", "std", "min", "max", "nonFinite")
            )
            parts.append(
                f"<div class='card{' drifted' if entry['drifted'] else ''}'>"
                f"<img alt='{html.escape(f)}: reference vs current' src='data:image/png;base64,{png}'>"
                f"<table><tr><th></th><th>reference</th><th>current</th></tr>{stats_rows}</table></div>"
            )
        parts.append("</div>")
        if len(order) > CHART_LIMIT:
            parts.append(f"<p class='sub'>Charts of {len(order) - CHART_LIMIT} more features are left out; "
                         "report.json beside this page has all of them.</p>")
    parts.append(
        "<footer>mlcycle drift. p-value tests (ks, chi2, z) drift when p falls below the threshold; distances "
        "(psi, wasserstein normalised by the reference's standard deviation, jensenshannon) when they reach it. "
        "auto picks per column as Evidently's DataDriftPreset does.</footer></main></body></html>"
    )
    return "".join(parts)
